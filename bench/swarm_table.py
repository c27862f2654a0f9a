"""The README's swarm benchmark table, from the newest bench/results/swarm-*.json that bench/swarm.py
wrote in its current format (repeats, the worst listener, whole-process memory).

    .venv/bin/python bench/swarm_table.py [FILE]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def newest() -> Path:
    files = [p for p in sorted(RESULTS.glob("swarm-*.json")) if json.loads(p.read_text()).get("benchmark") == "swarm"]
    if not files:
        raise SystemExit("no swarm results in the current format; run bench/swarm.py")
    return files[-1]


def m(d: dict, k: str, scale: float = 1.0, digits: int = 0) -> str:
    v = d[k]
    return f"{v['median'] * scale:.{digits}f} ({v['min'] * scale:.{digits}f} to {v['max'] * scale:.{digits}f})"


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else newest()
    doc = json.loads(path.read_text())
    print(
        f"`{path.relative_to(RESULTS.parent.parent)}`: commit `{doc['commit'][:7]}`, {doc['cores']} cores, "
        f"{doc['time']}, median of {doc['repeats']} runs (min to max), {doc['seconds']:g} s measured each.\n"
    )
    print(
        "| listeners | loop | CPU µs per listener-second | worst listener's stall ratio | false dead air (all listeners) "
        "| memory growth per listener | the swarm's worst loop lag |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in doc["swarm"]:
        print(
            f"| {r['count']:,} | {r['loop']} | {m(r, 'us_per_listener_s')} | {m(r, 'worst_listener_stall_ratio', 100, 2)} % "
            f"| {m(r, 'false_dead_air', 100, 2)} % | {m(r, 'rss_kb_per_listener', 1, 1)} KB | {m(r, 'lag_max_s', 1000)} ms |"
        )
    same, curl, s = doc["swarm_same_count_as_curl"], doc["curl"], doc["summary"]
    print()
    print(
        "| 200 listeners, like for like (whole processes) | CPU µs per listener-second | RSS per listener | PSS per listener |"
    )
    print("|---|---|---|---|")
    print(
        f"| the swarm (one process) | {m(same, 'us_per_listener_s')} | {m(same, 'process_rss_kb_per_listener', 1, 1)} KB "
        f"| {m(same, 'process_pss_kb_per_listener', 1, 1)} KB |"
    )
    print(
        f"| curl (a process each) | {m(curl, 'us_per_listener_s')} | {m(curl, 'rss_kb_per_listener')} KB "
        f"| {m(curl, 'pss_kb_per_listener')} KB |"
    )
    print(
        f"| ratio curl / swarm (medians) | {s['cpu_ratio_curl_over_swarm_same_count']:.1f}x "
        f"| {s['rss_ratio_curl_over_swarm_same_count']:.1f}x | {s['pss_ratio_curl_over_swarm_same_count']:.1f}x |"
    )
    cap = s["capacity_worst_listener_under_1pct"]
    print(
        f"\nCapacity by the worst listener (every listener hears, and the worst one's stall ratio stays under 1 % "
        f"in every run): **{f'{cap:,} listeners' if cap else 'none of the counts measured'}**."
    )


if __name__ == "__main__":
    main()
