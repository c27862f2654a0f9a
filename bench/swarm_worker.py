"""One swarm, in its own process, so its CPU time and memory are its own. Used by bench/swarm.py.

    python bench/swarm_worker.py --count N --seconds T --stream 127.0.0.1:PORT/live [...] --loop asyncio|uvloop

Prints one JSON object: listeners hearing, CPU seconds and listener-seconds in the measured
window, RSS growth per listener, and the false dead air (dead air while the stack is healthy).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chaos.checkers.history import History, Window
from chaos.checkers.verdicts import check
from chaos.listen.listener import ListenerSettings, StreamAddress
from chaos.listen.swarm import Swarm
from chaos.timeline import Timeline


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pss_kb() -> int:
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return rss_kb()


async def main(args) -> dict:
    tl = Timeline()
    streams = []
    for spec in args.stream:
        hostport, _, path = spec.partition("/")
        host, port = hostport.split(":")
        streams.append(StreamAddress(host, int(port), "/" + path))
    per = [args.count // len(streams) + (1 if i < args.count % len(streams) else 0) for i in range(len(streams))]
    rss0 = rss_kb()
    over = args.count / args.ramp if args.ramp else 0.0
    swarms = [
        Swarm(
            ListenerSettings(count=n, stream=s, arrival="ramp" if over else "all", arrival_over=over),
            tl,
            random.Random(i),
            prefix=f"L{i}-",
        )
        for i, (n, s) in enumerate(zip(per, streams))
        if n
    ]
    for sw in swarms:
        await sw.start()
    deadline = time.monotonic() + args.warmup + over
    while sum(sw.hearing() for sw in swarms) < args.count and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    hearing = sum(sw.hearing() for sw in swarms)
    await asyncio.sleep(2.0)  # let the connect burst settle
    rss1, pss1 = rss_kb(), pss_kb()
    disc0 = len([e for e in tl.events if e.kind == "listener.disconnect"])
    w0, c0 = tl.clock.now(), time.process_time()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    await asyncio.sleep(args.seconds)
    w1, c1 = tl.clock.now(), time.process_time()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    lag = tl.clock.now()
    await asyncio.sleep(0)
    lag = tl.clock.now() - lag
    for sw in swarms:
        await sw.stop()
    h = History(tl.events, end=w1)
    stall = check(h, "stall_ratio", "< 0.01", Window(w0, w1), "bench")
    total_dead = sum(
        d
        for spans in h.dead_air_spans().values()
        for d in [min(e, w1) - max(s, w0) for s, e in spans if e > w0 and s < w1]
    )
    return {
        "count": args.count,
        "loop": args.loop,
        "hearing": hearing,
        "seconds": w1 - w0,
        "cpu_s": c1 - c0,
        "user_s": ru1.ru_utime - ru0.ru_utime,
        "sys_s": ru1.ru_stime - ru0.ru_stime,
        "listener_seconds": args.count * (w1 - w0),
        "rss_kb_per_listener": (rss1 - rss0) / max(args.count, 1),
        "rss_mb": rss1 / 1024,
        # like for like with a curl process: the whole process, shared pages counted once (PSS)
        "process_rss_kb_per_listener": rss1 / max(args.count, 1),
        "process_pss_kb_per_listener": pss1 / max(args.count, 1),
        "false_dead_air": total_dead / (args.count * (w1 - w0)),
        "worst_listener_stall_ratio": stall.value,
        "lag_max_s": h.lag(Window(w0, w1)),
        "disconnects_while_measured": len(
            [e for e in tl.events if e.kind == "listener.disconnect" and w0 <= e.t <= w1]
        ),
        "disconnects_before": disc0,
    }


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--warmup", type=float, default=60.0)
    p.add_argument("--stream", action="append", required=True)
    p.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    p.add_argument("--ramp", type=float, default=250.0, help="joins per second (0: all at once)")
    a = p.parse_args()
    if a.loop == "uvloop":
        import uvloop

        uvloop.install()
    print(json.dumps(asyncio.run(main(a))))
