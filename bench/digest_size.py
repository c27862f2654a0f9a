"""Benchmark: what per-listener digests save, and what they cost the runner.

    .venv/bin/python bench/digest_size.py [--listeners 100000] [--repeats 3]

For N listeners with the events a listener records in a steady run (join, joined, connect,
connected, first audio, stream, switch: as the flagship's sampled listeners record them) and in a
stuttering one (the same plus 10 slips and 2 stalls), built by chaos's own Swarm event kinds:
the bytes a shard ships per listener as full events and as digests (pickled, as Ray ships
them), and the runner's memory per listener for the events decoded from digests (tracemalloc).
Medians of `--repeats`, min-max. Writes bench/results/digest-size-<time>.json.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from results import provenance  # noqa: E402

from chaos.listen.shards.digest import Digester, Undigester  # noqa: E402
from chaos.timeline import Event  # noqa: E402


def life(lid: str, t: float, stutter: bool) -> list[Event]:
    out = [
        Event(t, "listener.join", lid, {"attempt": 0}),
        Event(t + 0.01, "listener.joined", lid, {"status": 200, "latency": 0.0102}),
        Event(t + 0.011, "listener.connect", lid, {"attempt": 0}),
        Event(t + 0.02, "listener.connected", lid, {"attempt": 0, "status": 200, "server": "edge-1", "port": 52766}),
        Event(t + 0.2, "listener.stream", lid, {"title": "live", "serial": 2682681397, "played_at": t + 0.2}),
        Event(t + 0.2, "listener.switch", lid, {"from": None, "to": "live"}),
        Event(t + 0.2, "listener.first_audio", lid, {"attempt": 0, "title": "live"}),
    ]
    if stutter:
        for i in range(10):
            out.append(Event(t + 1 + i, "listener.slip", lid, {"duration": 0.012}))
        for i in range(2):
            out.append(Event(t + 12 + i, "listener.stall_start", lid, {}))
            out.append(Event(t + 12.3 + i, "listener.stall_end", lid, {"duration": 0.3, "open": False}))
    return out


def once(n: int, stutter: bool) -> dict:
    events = [e for i in range(n) for e in life(f"L{i:06d}", i * 1e-4, stutter)]
    full = len(pickle.dumps([(e.t, e.kind, e.src, e.data) for e in events], protocol=5))
    d = Digester()
    for e in events:
        d.add(e)
    names, records = d.take()
    digest = len(pickle.dumps((names, records), protocol=5))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    decoded = Undigester().events(names, records)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return {
        "events_per_listener": len(events) / n,
        "decoded_events_per_listener": len(decoded) / n,
        "full_bytes_per_listener": full / n,
        "digest_bytes_per_listener": digest / n,
        "ratio_digest_to_full": digest / full,
        "runner_bytes_per_listener": (after - before) / n,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listeners", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    out = {"provenance": provenance(), "listeners": args.listeners, "cases": {}}
    for case in ("steady", "stutter"):
        runs = [once(args.listeners, case == "stutter") for _ in range(args.repeats)]
        out["cases"][case] = {
            k: {
                "median": statistics.median(r[k] for r in runs),
                "min": min(r[k] for r in runs),
                "max": max(r[k] for r in runs),
            }
            for k in runs[0]
        }
        c = out["cases"][case]
        print(
            f"{case}: {c['events_per_listener']['median']:.0f} events/listener; full {c['full_bytes_per_listener']['median']:.0f} B, "
            f"digest {c['digest_bytes_per_listener']['median']:.0f} B ({c['ratio_digest_to_full']['median']:.2f}x); "
            f"runner {c['runner_bytes_per_listener']['median'] / 1024:.2f} KB per listener"
        )
    path = ROOT / "bench" / "results" / f"digest-size-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(path)


if __name__ == "__main__":
    main()
