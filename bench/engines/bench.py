"""CPU per listener-second of one shard inside an engine against the same shard in a plain process.

    pip install 'dask[distributed]' psutil     # not deadair's dependencies (Ray comes with deadair[cluster])
    python bench/engines/server.py 8790 &
    python bench/engines/bench.py ray|dask 8790 [--seconds 10] [--counts 500,2000] [--reps 3] > ENGINE_bench.json

Starts a local cluster (2 worker processes; start-up timed until workers answer), measures its idle
footprint (processes, RSS and PSS of the whole tree, 5 s after start-up; CPU over 10 s), then
ALTERNATES, per count and repeat, a plain process (plain_shard.py) and one engine shard (shard.py
as a Ray or Dask actor): connect, 3 s warm-up, `--seconds` measured. Two CPU figures per engine
run: the shard process's own (getrusage inside it, every thread) and the whole cluster's (psutil
CPU of this driver and all its descendants: GCS, raylet, agents, idle workers; Dask's scheduler and
nannies). At most two busy processes at a time: the server and one shard. The 1-minute load
average is recorded at each run. Also the pickled size of per-listener summaries and of the
shard's DDSketch. Progress on stderr, the result as one JSON document on stdout; analyse.py
prints the tables. `DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False` turns Dask's 10 ms worker
profiler off (the research's "profiler off" rows). About 4 minutes per engine at the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import cpu_of, local_cluster, memory_mb, tree
from shard import Shard

HERE = Path(__file__).resolve().parent
CALL_TIMEOUT = 180.0  # s for any one call to a shard (a start connects thousands on a busy host)


def run_plain(port: int, n: int, secs: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(HERE / "plain_shard.py"), str(port), str(n), str(secs)],
        capture_output=True,
        text=True,
        timeout=CALL_TIMEOUT + secs,
    )
    r = json.loads(out.stdout.strip().splitlines()[-1])
    r["total_cpu"] = r["cpu"]
    return r


def run_ray(ray: Any, port: int, n: int, secs: float) -> dict[str, Any]:
    actor = ray.remote(num_cpus=1)(Shard).remote("s0")
    try:
        ray.get(actor.start.remote("127.0.0.1", port, n), timeout=CALL_TIMEOUT)
        time.sleep(3)
        procs = tree()
        c0, w0 = cpu_of(procs), time.monotonic()
        r = ray.get(actor.measure.remote(secs), timeout=CALL_TIMEOUT + secs)
        c1, w1 = cpu_of(procs), time.monotonic()
        summ = ray.get(actor.summaries.remote(), timeout=CALL_TIMEOUT)
        sk = ray.get(actor.sketch_bytes.remote(), timeout=CALL_TIMEOUT)
        ray.get(actor.stop.remote(), timeout=CALL_TIMEOUT)
    finally:
        ray.kill(actor)
    return {**r, **_totals(r, c1 - c0, w1 - w0, summ, sk)}


def run_dask(client: Any, port: int, n: int, secs: float) -> dict[str, Any]:
    fut = client.submit(Shard, "s0", actor=True, pure=False)
    try:
        actor = fut.result(timeout=CALL_TIMEOUT)
        actor.start("127.0.0.1", port, n).result(timeout=CALL_TIMEOUT)
        time.sleep(3)
        procs = tree()
        c0, w0 = cpu_of(procs), time.monotonic()
        r = actor.measure(secs).result(timeout=CALL_TIMEOUT + secs)
        c1, w1 = cpu_of(procs), time.monotonic()
        summ = actor.summaries().result(timeout=CALL_TIMEOUT)
        sk = actor.sketch_bytes().result(timeout=CALL_TIMEOUT)
        actor.stop().result(timeout=CALL_TIMEOUT)
        del actor
    finally:
        fut.release()
    return {**r, **_totals(r, c1 - c0, w1 - w0, summ, sk)}


def _totals(r: dict[str, Any], cpu: float, wall: float, summ: list, sketch: bytes) -> dict[str, Any]:
    """The whole cluster's CPU over the shard's own window, and what a shard would ship."""
    return {
        "total_cpu": cpu * r["wall"] / wall,
        "summ_pickle_bytes": len(pickle.dumps(summ)),
        "sketch_bytes": len(sketch),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("engine", choices=["ray", "dask"])
    p.add_argument("port", type=int, help="server.py's port")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--counts", default="500,2000")
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    counts = [int(x) for x in args.counts.split(",")]
    out: dict[str, Any] = {"engine": args.engine, "runs": []}
    t0 = time.monotonic()
    with local_cluster(args.engine) as eng:
        if args.engine == "ray":

            @eng.remote
            def pid() -> int:
                return os.getpid()

            eng.get([pid.remote() for _ in range(8)], timeout=300)  # workers up and answering
        out["startup_s"] = time.monotonic() - t0
        time.sleep(5)
        procs = tree()
        rss, pss = memory_mb(procs)
        out["idle"] = {"nprocs": len(procs), "rss_mb": rss, "pss_mb": pss, "names": sorted(p.name() for p in procs)}
        c0 = cpu_of(procs)
        time.sleep(10)
        out["idle"]["cpu_pct_10s"] = 100 * (cpu_of(tree()) - c0) / 10
        print(json.dumps({k: out[k] for k in ("startup_s", "idle")}), file=sys.stderr, flush=True)
        for rep in range(args.reps):
            for n in counts:
                order = ("plain", args.engine) if rep % 2 == 0 else (args.engine, "plain")
                for kind in order:
                    load1 = os.getloadavg()[0]
                    if kind == "plain":
                        r = run_plain(args.port, n, args.seconds)
                    elif args.engine == "ray":
                        r = run_ray(eng, args.port, n, args.seconds)
                    else:
                        r = run_dask(eng, args.port, n, args.seconds)
                    r.update(kind=kind, N=n, rep=rep, load1=load1)
                    r["us_per_ls"] = 1e6 * r["cpu"] / (r["alive"] * r["wall"])
                    r["total_us_per_ls"] = 1e6 * r["total_cpu"] / (r["alive"] * r["wall"])
                    out["runs"].append(r)
                    print(json.dumps(r), file=sys.stderr, flush=True)
                    time.sleep(2)
        t1 = time.monotonic()
    out["teardown_s"] = time.monotonic() - t1
    time.sleep(2)
    out["leftover_procs"] = [p.name() for p in tree()[1:]]
    print(json.dumps(out))


if __name__ == "__main__":
    main()
