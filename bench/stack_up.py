"""Benchmark: `deadair stack up` to all healthy, with images built. Target: median under 15 s.

    .venv/bin/python bench/stack_up.py [--runs 5]

Each run starts from nothing (stack down) and ends when every node passes its healthcheck
and every link exists. Prints each time, the median, and the spread.
"""

from __future__ import annotations

import argparse
import statistics
import time

from chaos.stack.compose import Stack
from chaos.stack.definition import find_stack


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--stack", default="audio-room")
    args = p.parse_args()
    stack = Stack(find_stack(args.stack), "deadair-bench-stack")
    times = []
    try:
        for i in range(args.runs):
            stack.down()
            t0 = time.monotonic()
            stack.up()
            times.append(time.monotonic() - t0)
            print(f"run {i + 1}: {times[-1]:.2f}s", flush=True)
    finally:
        stack.down()
    print(
        f"stack up to all healthy: median {statistics.median(times):.2f}s "
        f"(min {min(times):.2f}s, max {max(times):.2f}s, n={len(times)}); target < 15 s"
    )


if __name__ == "__main__":
    main()
