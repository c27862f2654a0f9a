"""Start-up, tear-down and idle memory of a local engine cluster (2 worker processes), 3 times.

    pip install 'dask[distributed]' psutil   # not deadair's dependencies; Ray comes with deadair[cluster]
    python bench/engines/startup.py ray|dask [--reps 3] > startup-ENGINE.jsonl

Start-up: Ray `ray.init(address="local", num_cpus=2)` until 8 tiny tasks have answered (workers up
and answering); Dask `LocalCluster(n_workers=2, threads_per_worker=1)` + `Client` +
`wait_for_workers(2)` + one call on every worker. Then 5 s idle, the RSS and PSS of this process's
whole tree, and tear-down (`ray.shutdown()` / client and cluster closed). One JSON line per repeat,
with the 1-minute load average (the machine is shared: read the figures with it). About a minute
for Ray. bench/engines/collect.py puts the lines in a results file with their provenance.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from common import WORKERS, local_cluster, memory_mb, tree


def once(engine: str, rep: int) -> dict:
    t0 = time.monotonic()
    if engine == "ray":
        import ray

        with local_cluster("ray") as r:

            @r.remote
            def pid() -> int:
                return os.getpid()

            r.get([pid.remote() for _ in range(8)], timeout=300)
            up = time.monotonic() - t0
            time.sleep(5)
            procs = tree()
            rss, pss = memory_mb(procs)
            t1 = time.monotonic()
        assert not ray.is_initialized()
    else:
        with local_cluster("dask") as client:
            client.run(os.getpid)
            up = time.monotonic() - t0
            time.sleep(5)
            procs = tree()
            rss, pss = memory_mb(procs)
            t1 = time.monotonic()
    down = time.monotonic() - t1
    time.sleep(2)
    left = [p.name() for p in tree()[1:]]
    return {
        "engine": engine,
        "rep": rep,
        "workers": WORKERS,
        "startup_s": round(up, 2),
        "teardown_s": round(down, 2),
        "nprocs": len(procs),
        "rss_mb": round(rss),
        "pss_mb": round(pss),
        "driver_rss_mb": round(procs[0].memory_info().rss / 2**20),
        "load1": round(os.getloadavg()[0], 2),
        "left": left,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("engine", choices=["ray", "dask"])
    p.add_argument("--reps", type=int, default=3)
    args = p.parse_args()
    for rep in range(args.reps):
        print(json.dumps(once(args.engine, rep)), flush=True)


if __name__ == "__main__":
    main()
