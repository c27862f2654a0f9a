"""Benchmark: the listener swarm against the real stack, and a baseline of curl processes.

    .venv/bin/python bench/swarm.py [--counts 1000,2000,3000,4000,4500,5000] [--seconds 15] [--curl 200]

Against the audio-room stack's two Icecast edges (their published ports: the swarm's capacity is
what is measured, not Toxiproxy's or HAProxy's on a 2-core machine), 64 kbit/s Opus in 100 ms Ogg
pages. For each listener count, in a worker process of its own (bench/swarm_worker.py): CPU
microseconds per listener-second (user + system, from the worker's own accounting), resident
memory per listener, and false dead air (dead air while nothing is faulted, as a share of
listening time). Then, in the same run, the same figures for N curl processes streaming the same
mounts, and the ratios at equal listener count. Results go to stdout (a table) and to
bench/results/swarm-<time>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chaos.stack import Stack, find_stack  # noqa: E402

HERE = Path(__file__).resolve().parent


def worker(count: int, seconds: float, streams: list[str], loop: str) -> dict:
    cmd = [sys.executable, str(HERE / "swarm_worker.py"), "--count", str(count), "--seconds", str(seconds),
           "--loop", loop, *[a for s in streams for a in ("--stream", s)]]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    d = json.loads(out.stdout)
    d["us_per_listener_s"] = d["cpu_s"] / d["listener_seconds"] * 1e6
    d["user_us"] = d["user_s"] / d["listener_seconds"] * 1e6
    d["sys_us"] = d["sys_s"] / d["listener_seconds"] * 1e6
    return d


def _proc_cpu(pid: int) -> float:
    """CPU seconds a process has run (the scheduler's own count, not tick samples)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9


def _proc_mem_kb(pid: int) -> tuple[int, int]:
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))
    pss = next((int(line.split()[1]) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
                if line.startswith("Pss:")), rss)
    return rss, pss


def curl_baseline(count: int, seconds: float, streams: list[str]) -> dict:
    procs = [subprocess.Popen(["curl", "-s", "-o", "/dev/null", "--max-time", str(seconds + 30), f"http://{streams[i % len(streams)]}"])
             for i in range(count)]
    try:
        time.sleep(5.0)
        alive = [p for p in procs if p.poll() is None]
        c0 = sum(_proc_cpu(p.pid) for p in alive)
        t0 = time.monotonic()
        time.sleep(seconds)
        c1 = sum(_proc_cpu(p.pid) for p in alive if p.poll() is None)
        elapsed = time.monotonic() - t0
        mem = [_proc_mem_kb(p.pid) for p in alive if p.poll() is None]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()
    return {"count": count, "alive": len(alive), "seconds": elapsed, "cpu_s": c1 - c0,
            "us_per_listener_s": (c1 - c0) / (len(alive) * elapsed) * 1e6,
            "rss_kb_per_listener": statistics.mean(m[0] for m in mem), "pss_kb_per_listener": statistics.mean(m[1] for m in mem)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--counts", default="1000,2000,3000,4000,4500,5000")
    p.add_argument("--seconds", type=float, default=15.0)
    p.add_argument("--curl", type=int, default=200)
    p.add_argument("--loops", default="uvloop,asyncio")
    args = p.parse_args()
    stack = Stack(find_stack("audio-room"))
    started = not stack.is_running()
    if started:
        stack.up()
    try:
        streams = [f"{h}:{port}/live" for h, port in (stack.published(e, 8000) for e in ("edge-1", "edge-2"))]
        loops = args.loops.split(",")
        rows = []
        for count in [int(c) for c in args.counts.split(",")]:
            for loop in loops if count <= 1000 else loops[:1]:
                d = worker(count, args.seconds, streams, loop)
                rows.append(d)
                print(f"swarm {loop:<7} {count:>6} listeners: {d['us_per_listener_s']:6.1f} us/listener-s "
                      f"(user {d['user_us']:.1f}, sys {d['sys_us']:.1f}), {d['rss_kb_per_listener']:5.1f} KB/listener, "
                      f"false dead air {d['false_dead_air'] * 100:.2f}%, hearing {d['hearing']}", flush=True)
        same = worker(args.curl, args.seconds, streams, loops[0])
        rows.append(same)
        curl = curl_baseline(args.curl, args.seconds, streams)
        print(f"swarm {loops[0]:<7} {args.curl:>6} listeners: {same['us_per_listener_s']:6.1f} us/listener-s, "
              f"{same['rss_kb_per_listener']:.1f} KB/listener")
        print(f"curl            {args.curl:>6} processes: {curl['us_per_listener_s']:6.1f} us/listener-s, "
              f"{curl['rss_kb_per_listener'] / 1024:.1f} MB RSS ({curl['pss_kb_per_listener'] / 1024:.2f} MB PSS) per listener")
        sustained = [r for r in rows if r["loop"] == loops[0] and r["false_dead_air"] < 0.01 and r["hearing"] == r["count"]]
        best = max(sustained, key=lambda r: r["count"]) if sustained else None
        summary = {
            "largest_count_under_1pct_false_dead_air": best["count"] if best else None,
            "at_that_count_us_per_listener_s": best["us_per_listener_s"] if best else None,
            "at_that_count_kb_per_listener": best["rss_kb_per_listener"] if best else None,
            "cpu_ratio_curl_over_swarm_same_count": curl["us_per_listener_s"] / same["us_per_listener_s"],
            "cpu_ratio_curl_over_swarm_at_scale": curl["us_per_listener_s"] / best["us_per_listener_s"] if best else None,
            "memory_ratio_curl_rss_over_swarm": curl["rss_kb_per_listener"] / max(same["rss_kb_per_listener"], 0.001),
        }
        print(json.dumps(summary, indent=2))
        out = HERE / "results" / f"swarm-{time.strftime('%Y%m%d-%H%M%S')}.json"
        out.parent.mkdir(exist_ok=True)
        out.write_text(json.dumps({"swarm": rows, "curl": curl, "summary": summary, "cpus": os.cpu_count()}, indent=2))
        print(f"results: {out}")
    finally:
        if started:
            stack.down()


if __name__ == "__main__":
    main()
