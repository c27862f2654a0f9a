"""Losing a node: a driver against a multi-node cluster already running on this host, one shard of
300 listeners per node; the second node's processes are killed (SIGKILL) or frozen (MODE=stop:
SIGSTOP, a hung or partitioned node), and the time each pending call takes to end and the engine
takes to mark the node dead is recorded.

    pip install 'dask[distributed]' psutil     # not deadair's dependencies (dask: for ENGINE dask only)
    python bench/engines/server.py 8790 &
    # Ray 2.6x: token auth is on for `ray start --head`; every ray command and the driver need it.
    # NEVER `ray stop` on a shared host (it stops every Ray process there): kill your nodes' raylets.
    export RAY_AUTH_MODE=token
    ray start --head --port=6390 --num-cpus=1 --include-dashboard=false --disable-usage-stats
    ray start --address=127.0.0.1:6390 --num-cpus=1 --disable-usage-stats
    [MODE=stop] [WAIT=90] python bench/engines/multinode_driver.py ray 127.0.0.1:6390 8790 > ray_multinode.json
    # Dask (the actor's module must be importable on the scheduler too):
    PYTHONPATH=bench/engines dask scheduler --host 127.0.0.1 --port 8796 --dashboard-address :0 &
    PYTHONPATH=bench/engines dask worker tcp://127.0.0.1:8796 --nworkers 1 --nthreads 2 --name node1 --dashboard-address :0 &
    PYTHONPATH=bench/engines dask worker tcp://127.0.0.1:8796 --nworkers 1 --nthreads 2 --name node2 --dashboard-address :0 &
    [MODE=stop] python bench/engines/multinode_driver.py dask tcp://127.0.0.1:8796 8790 > dask_multinode.json

The victims (the shard's process and its raylet / nanny) are listed in the output: with MODE=stop
they are still there, frozen; kill them yourself. At most WAIT (90) s of waiting.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import psutil
from shard import Shard

HERE = Path(__file__).resolve().parent
N = 300


def main() -> None:
    engine, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    wait = float(os.environ.get("WAIT", 90))
    out: dict[str, Any] = {}
    t0 = time.monotonic()
    if engine == "ray":
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        ray.init(address=addr, logging_level="ERROR", runtime_env={"env_vars": {"PYTHONPATH": str(HERE)}})
        out["connect_s"] = time.monotonic() - t0
        nodes = sorted(
            (n for n in ray.nodes() if n["Alive"]), key=lambda n: "node:__internal_head__" not in n["Resources"]
        )
        out["nodes"] = [
            (n["NodeID"][:8], n["NodeManagerAddress"], n["NodeManagerPort"], n["Resources"].get("CPU")) for n in nodes
        ]
        cls = ray.remote(num_cpus=1)(Shard)
        shards = [
            cls.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(f"s{i}")
            for i, n in enumerate(nodes[:2])
        ]

        def send(a: Any, m: str, *x: Any) -> Any:
            return getattr(a, m).remote(*x)

        def get(ref: Any, timeout: float | None = 120) -> Any:
            return ray.get(ref, timeout=timeout)
    else:
        from distributed import Client

        client = Client(addr, timeout=60)
        client.wait_for_workers(2, timeout=60)
        out["connect_s"] = time.monotonic() - t0
        ws = client.scheduler_info()["workers"]
        out["nodes"] = [(a, w.get("name"), w.get("nthreads")) for a, w in sorted(ws.items())]
        futs = [
            client.submit(Shard, f"s{i}", actor=True, workers=[a], pure=False) for i, a in enumerate(sorted(ws)[:2])
        ]
        shards = [f.result(timeout=120) for f in futs]

        def send(a: Any, m: str, *x: Any) -> Any:
            return getattr(a, m)(*x)

        def get(ref: Any, timeout: float | None = 120) -> Any:
            return ref.result(timeout=timeout)

    try:
        pids = [get(send(a, "pid")) for a in shards]
        out["shard_pids"] = pids
        out["shard_parents"] = [[f"{p.name()}:{p.pid}" for p in psutil.Process(x).parents()][:3] for x in pids]
        for a in shards:
            get(send(a, "start", "127.0.0.1", port, N))
        refs = [send(a, "measure", 10.0) for a in shards]
        time.sleep(3)
        # the second "node": the shard's process and its parents (raylet, or nanny and dask worker)
        parents = [
            p.pid
            for p in psutil.Process(pids[1]).parents()
            if p.name() in ("raylet", "python", "python3.11", "dask") and p.pid != os.getpid()
        ]
        victims = [pids[1], *parents[:2]]
        out["killed"] = [(v, psutil.Process(v).name()) for v in victims]
        sig = signal.SIGSTOP if os.environ.get("MODE") == "stop" else signal.SIGKILL
        tk = time.monotonic()
        for v in victims:
            try:
                os.kill(v, sig)
            except ProcessLookupError:
                pass
        res: dict[int, Any] = {}
        pending = dict(enumerate(refs))
        while pending and time.monotonic() - tk < wait:
            for i, ref in list(pending.items()):
                try:
                    v = get(ref, timeout=0.05)
                    res[i] = {"ok": True, "s": round(time.monotonic() - tk, 3), "alive": v["alive"]}
                    del pending[i]
                except Exception as e:
                    if "Timeout" in type(e).__name__:
                        continue
                    res[i] = {
                        "ok": False,
                        "s": round(time.monotonic() - tk, 3),
                        "exc": type(e).__name__,
                        "msg": str(e)[:500],
                    }
                    del pending[i]
        out["kill"] = res
        if engine == "ray":
            while time.monotonic() - tk < wait and sum(n["Alive"] for n in ray.nodes()) > 1:
                time.sleep(0.5)
            out["node_marked_dead_s"] = round(time.monotonic() - tk, 3)
        else:
            while time.monotonic() - tk < wait and len(client.scheduler_info()["workers"]) > 1:
                time.sleep(0.2)
            out["worker_removed_s"] = round(time.monotonic() - tk, 3)
        out["victims_to_cleanup"] = victims
    finally:
        if engine == "ray":
            ray.shutdown()
        else:
            client.close()
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
