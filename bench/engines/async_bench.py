"""The same comparison as bench.py with the listeners on the engine's own event loop (a Ray async
actor; Dask async actor methods, which run on the worker's loop) instead of a thread of ours.

    pip install 'dask[distributed]'     # for ENGINE dask only (not a deadair dependency)
    python bench/engines/server.py 8790 &
    python bench/engines/async_bench.py ray|dask 8790 [--count 2000] [--seconds 10] [--reps 3] \
        [--plain-loop uvloop|asyncio] > async_ENGINE.jsonl

Alternates a plain process (shard_async.py under asyncio.run, or uvloop with --plain-loop uvloop:
use the loop type the engine runs, as reported in each line's `loop`) and one engine shard, 3 s
warm-up, `--seconds` measured; the shard process's own CPU (getrusage) per listener-second and the
worst loop lag. One JSON line per run, with the 1-minute load average. About 2 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import local_cluster
from shard_async import AsyncShard

HERE = Path(__file__).resolve().parent
CALL_TIMEOUT = 180.0

PLAIN = """
import asyncio, json, sys
sys.path.insert(0, {here!r})
from shard_async import AsyncShard

async def main():
    s = AsyncShard()
    await s.astart("127.0.0.1", {port}, {n})
    await asyncio.sleep(3)
    r = await s.ameasure({secs})
    await s.astop()
    print(json.dumps(r))

if {loop!r} == "uvloop":
    import uvloop
    uvloop.run(main())
else:
    asyncio.run(main())
"""


def plain(port: int, n: int, secs: float, loop: str) -> dict[str, Any]:
    code = PLAIN.format(here=str(HERE), port=port, n=n, secs=secs, loop=loop)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=CALL_TIMEOUT + secs)
    return json.loads(out.stdout.strip().splitlines()[-1])


def engine_run(engine: str, eng: Any, port: int, n: int, secs: float) -> dict[str, Any]:
    if engine == "ray":
        actor = eng.remote(num_cpus=1)(AsyncShard).remote()
        try:
            eng.get(actor.astart.remote("127.0.0.1", port, n), timeout=CALL_TIMEOUT)
            time.sleep(3)
            r = eng.get(actor.ameasure.remote(secs), timeout=CALL_TIMEOUT + secs)
            eng.get(actor.astop.remote(), timeout=CALL_TIMEOUT)
        finally:
            eng.kill(actor)
        return r
    fut = eng.submit(AsyncShard, actor=True, pure=False)
    try:
        actor = fut.result(timeout=CALL_TIMEOUT)
        actor.astart("127.0.0.1", port, n).result(timeout=CALL_TIMEOUT)
        time.sleep(3)
        r = actor.ameasure(secs).result(timeout=CALL_TIMEOUT + secs)
        actor.astop().result(timeout=CALL_TIMEOUT)
        del actor
    finally:
        fut.release()
    return r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("engine", choices=["ray", "dask"])
    p.add_argument("port", type=int)
    p.add_argument("--count", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--plain-loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = p.parse_args()
    with local_cluster(args.engine) as eng:
        time.sleep(3)
        for rep in range(args.reps):
            order = ("plain", args.engine) if rep % 2 == 0 else (args.engine, "plain")
            for kind in order:
                load1 = os.getloadavg()[0]
                if kind == "plain":
                    r = plain(args.port, args.count, args.seconds, args.plain_loop)
                else:
                    r = engine_run(args.engine, eng, args.port, args.count, args.seconds)
                r.update(kind=kind, rep=rep, load1=load1, us_per_ls=1e6 * r["cpu"] / (r["alive"] * r["wall"]))
                print(json.dumps(r), flush=True)
                time.sleep(2)


if __name__ == "__main__":
    main()
