"""The README's known-answer table, from what the known-answer tests recorded.

    .venv/bin/python bench/known_answers_table.py

Each known-answer test appends its measured values to bench/results/known-answer-*.jsonl, with
the commit, host, cores and time. This prints, per case, the median of the runs recorded at the
newest commit that has at least three (min to max), the number of runs and the commit.
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

CASES = [  # file stem, case, known answer, the swarm's field, the independent field, unit
    (
        "known-answer-mic-cut-hold",
        "mic cut 8 s, hold music on",
        "no dead air (at most a page)",
        "swarm_max_s",
        "reference_s",
        "s",
    ),
    (
        "known-answer-mic-cut-8s-origin",
        "mic cut 8 s, no hold music, listeners at the origin",
        "the cut, less the buffer, plus a retry",
        "swarm_median_s",
        "reference_s",
        "s",
    ),
    (
        "known-answer-mic-cut-4s-origin",
        "the same, a 4 s cut",
        "the cut, less the buffer, plus a retry",
        "swarm_median_s",
        "reference_s",
        "s",
    ),
    (
        "known-answer-edges-8s",
        "mic cut 8 s, no hold music, behind the edges",
        "the cut plus up to one relay retry (2 s)",
        "swarm_median_s",
        "reference_s",
        "s",
    ),
    (
        "known-answer-edges-4s",
        "the same, a 4 s cut",
        "the cut plus up to one relay retry (2 s)",
        "swarm_median_s",
        "reference_s",
        "s",
    ),
    (
        "known-answer-mic-stall",
        "mic stall (bandwidth 0, connection open)",
        "source-timeout (2 s) to 3 s, less the buffer",
        "swarm_median_s",
        "reference_s",
        "s",
    ),
    (
        "known-answer-stutter",
        "7 KB/s on entry-lb for 12 s (stutter), share of silence over its last 8 s",
        "1 - (bytes through the cap / the stream's bytes)",
        "swarm_median_share",
        "reference_share",
        "",
    ),
]


def load(stem: str) -> list[dict]:
    path = RESULTS / f"{stem}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def fmt(values: list[float], unit: str) -> str:
    med = statistics.median(values)
    digits = 3
    return f"{med:.{digits}f}{unit} ({min(values):.{digits}f} to {max(values):.{digits}f})"


def main() -> None:
    print("| case | known answer | deadair (median listener) | reference listener | runs, commit |")
    print("|---|---|---|---|---|")
    for stem, case, known, mine, theirs, unit in CASES:
        rows = [r for r in load(stem) if not r.get("dirty")]
        by_commit: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            by_commit[r["commit"]].append(r)
        usable = [c for c, rs in by_commit.items() if len(rs) >= 3]
        if not usable:
            print(f"| {case} | {known} | (fewer than 3 clean runs in {stem}.jsonl) | | |")
            continue
        commit = max(usable, key=lambda c: max(r["time"] for r in by_commit[c]))
        rs = by_commit[commit]
        extra = ""
        if "expected_share" in rs[0]:
            extra = f"; known {statistics.median(r['expected_share'] for r in rs):.3f}"
        print(
            f"| {case} | {known}{extra} | {fmt([r[mine] for r in rs], unit)} | {fmt([r[theirs] for r in rs], unit)} "
            f"| {len(rs)}, `{commit[:7]}` (`bench/results/{stem}.jsonl`) |"
        )


if __name__ == "__main__":
    main()
