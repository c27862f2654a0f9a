"""Clock offset between driver and shard through actor calls, and a shard's worker killed mid-run.

    pip install 'dask[distributed]'     # for ENGINE dask only (not a deadair dependency)
    python bench/engines/server.py 8790 &
    python bench/engines/faults.py ray|dask 8790 > ENGINE_faults.json

Local cluster, two shards (shard.py). Clock: 200 calls of `now()` (the shard's wall clock); offset =
remote - (t0 + t1) / 2, taking the sample with the smallest round trip; uncertainty = that round
trip / 2 (same host: the true offset is 0); idle, then with 300 listeners on each shard. Kill:
both shards measure 12 s; 4 s in, shard 1's process gets SIGKILL; when and how each pending call
ends (which exception, after how long), what a fresh call to the dead shard raises, and what the
engine did afterwards (Dask: workers back; Ray: nodes alive). About 40 s.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from common import local_cluster
from shard import Shard

N = 300
PINGS = 200


def pings(call: Callable[[str], Any], k: int = PINGS) -> dict[str, float]:
    rows = []
    for _ in range(k):
        t0 = time.time()
        remote = call("now")
        t1 = time.time()
        rows.append((t1 - t0, remote - (t0 + t1) / 2))
    rows.sort()
    rtts = [x[0] for x in rows]
    offs = [x[1] for x in rows]
    best = offs[: max(1, k // 10)]
    return {
        "rtt_min_ms": 1e3 * rtts[0],
        "rtt_med_ms": 1e3 * statistics.median(rtts),
        "rtt_p90_ms": 1e3 * rtts[int(0.9 * k)],
        "offset_at_min_rtt_ms": 1e3 * offs[0],
        "offset_best10pct_range_ms": 1e3 * (max(best) - min(best)),
        "offset_all_med_ms": 1e3 * statistics.median(offs),
        "uncertainty_ms": 1e3 * rtts[0] / 2,
    }


def main() -> None:
    engine, port = sys.argv[1], int(sys.argv[2])
    out: dict[str, Any] = {"engine": engine}
    with local_cluster(engine, threads_per_worker=2) as eng:
        if engine == "ray":
            cls = eng.remote(num_cpus=1)(Shard)
            shards = [cls.remote(f"s{i}") for i in range(2)]

            def send(a: Any, m: str, *x: Any) -> Any:
                return getattr(a, m).remote(*x)

            def get(ref: Any, timeout: float | None = 120) -> Any:
                return eng.get(ref, timeout=timeout)
        else:
            workers = sorted(eng.scheduler_info()["workers"])
            futs = [eng.submit(Shard, f"s{i}", actor=True, workers=[w], pure=False) for i, w in enumerate(workers)]
            shards = [f.result(timeout=120) for f in futs]

            def send(a: Any, m: str, *x: Any) -> Any:
                return getattr(a, m)(*x)

            def get(ref: Any, timeout: float | None = 120) -> Any:
                return ref.result(timeout=timeout)

        pids = [get(send(a, "pid")) for a in shards]
        out["shard_pids"] = pids
        out["clock_idle"] = pings(lambda m: get(send(shards[0], m)))
        print(json.dumps(out), file=sys.stderr, flush=True)
        for a in shards:
            get(send(a, "start", "127.0.0.1", port, N))
        time.sleep(2)
        out["clock_loaded_300"] = pings(lambda m: get(send(shards[0], m)))
        refs = [send(a, "measure", 12.0) for a in shards]
        time.sleep(4)
        tk = time.monotonic()
        os.kill(pids[1], signal.SIGKILL)
        res: dict[int, Any] = {}
        pending = dict(enumerate(refs))
        while pending and time.monotonic() - tk < 60:
            for i, ref in list(pending.items()):
                try:
                    v = get(ref, timeout=0.05)
                    res[i] = {"ok": True, "after_kill_s": time.monotonic() - tk, "alive": v["alive"]}
                    del pending[i]
                except Exception as e:
                    if "Timeout" in type(e).__name__:
                        continue
                    res[i] = {
                        "ok": False,
                        "after_kill_s": time.monotonic() - tk,
                        "exc": f"{type(e).__module__}.{type(e).__name__}",
                        "msg": str(e)[:600],
                    }
                    del pending[i]
        for i in pending:
            res[i] = {"ok": None, "note": "no answer in 60 s"}
        out["kill"] = res
        t = time.monotonic()
        try:
            get(send(shards[1], "pid"), timeout=30)
            out["call_after"] = "answered (a new process?)"
        except Exception as e:
            out["call_after"] = {
                "exc": f"{type(e).__module__}.{type(e).__name__}",
                "s": time.monotonic() - t,
                "msg": str(e)[:300],
            }
        if engine == "dask":
            time.sleep(3)
            out["workers_after"] = len(eng.scheduler_info()["workers"])
        else:
            out["ray_nodes_alive"] = sum(n["Alive"] for n in eng.nodes())
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
