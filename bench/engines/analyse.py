"""The research's CPU tables from bench.py's output: per count and kind, µs of CPU per
listener-second (median, min-max) for the shard process and the whole cluster, worst loop lag,
load; the paired engine/plain ratio (same repeat, back to back); the marginal cost 500 -> 2,000.

    python bench/engines/analyse.py ray_bench.json [dask_bench.json ...]
    python bench/engines/analyse.py bench/results/engines-<time>.json     # every bench part in it

Prints; measures nothing.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any


def benches(path: Path) -> list[tuple[str, dict[str, Any]]]:
    d = json.loads(path.read_text())
    if "parts" in d:  # a results file written by collect.py
        return [
            (name, p["data"])
            for name, p in d["parts"].items()
            if isinstance(p.get("data"), dict) and "runs" in p["data"] and "idle" in p["data"]
        ]
    return [(path.name, d)]


def spread(rows: list[dict[str, Any]], key: str, scale: float = 1.0) -> str:
    v = [r[key] * scale for r in rows]
    return f"{statistics.median(v):.1f} ({min(v):.1f}-{max(v):.1f})"


def report(name: str, d: dict[str, Any]) -> None:
    eng = d["engine"]
    idle = d["idle"]
    print(
        f"== {name} ({eng}): startup {d['startup_s']:.2f}s teardown {d['teardown_s']:.2f}s, idle {idle['nprocs']} "
        f"processes, RSS {idle['rss_mb']:.0f} MB, PSS {idle['pss_mb']:.0f} MB, CPU {idle['cpu_pct_10s']:.1f}% of a core; "
        f"left over {d['leftover_procs']}"
    )
    runs = d["runs"]
    counts = sorted({r["N"] for r in runs})
    for n in counts:
        for kind in ("plain", eng):
            rs = [r for r in runs if r["N"] == n and r["kind"] == kind]
            print(
                f"N={n:5d} {kind:6s} shard process µs/ls {spread(rs, 'us_per_ls')}  whole {spread(rs, 'total_us_per_ls')}  "
                f"lag ms {spread(rs, 'lag_max', 1000)}  load1 {spread(rs, 'load1')}  alive {[r['alive'] for r in rs]}"
            )
        plain = {r["rep"]: r for r in runs if r["N"] == n and r["kind"] == "plain"}
        mine = [r for r in runs if r["N"] == n and r["kind"] == eng and r["rep"] in plain]
        ratios = [r["us_per_ls"] / plain[r["rep"]]["us_per_ls"] for r in mine]
        whole = [r["total_us_per_ls"] / plain[r["rep"]]["us_per_ls"] for r in mine]
        print(
            f"   paired ratio engine/plain: shard process {[round(x, 2) for x in ratios]} median "
            f"{statistics.median(ratios):.2f}; whole cluster median {statistics.median(whole):.2f}"
        )
    if {500, 2000} <= set(counts):
        for kind in ("plain", eng):
            per_s = {}
            for n in (500, 2000):
                rs = [r for r in runs if r["N"] == n and r["kind"] == kind]
                per_s[n] = statistics.median(r["cpu"] / r["wall"] for r in rs)
            slope = (per_s[2000] - per_s[500]) / 1500
            print(
                f"   {kind}: marginal µs/ls 500->2000 {1e6 * slope:.1f}; fixed {100 * (per_s[500] - 500 * slope):.1f}% of a core"
            )


def main() -> None:
    for arg in sys.argv[1:]:
        for name, d in benches(Path(arg)):
            report(name, d)


if __name__ == "__main__":
    main()
