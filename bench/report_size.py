"""Benchmark: the size and build time of a run's report.html (the README's figure under Reports).

    .venv/bin/python bench/report_size.py [--runs 3]

Rebuilds the report of the flagship run committed under tests/data (the same journal and summary
every time, so only the build varies) and writes bench/results/report-<time>.json with the commit,
host, cores and time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))
RUN = ROOT / "tests" / "data" / "runs" / "flagship-20261130-074937-ac9830"


def main() -> None:
    from results import provenance  # tests/results.py: commit, host, cores, time

    from chaos.report.html import write_report

    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    sizes, seconds = [], []
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / RUN.name
        shutil.copytree(RUN, run)
        for i in range(args.runs):
            t0 = time.perf_counter()
            out = write_report(run / "journal.jsonl", run / f"report-{i}.html")
            seconds.append(time.perf_counter() - t0)
            sizes.append(out.stat().st_size)
            print(f"run {i + 1}: {sizes[-1] / 1e6:.2f} MB in {seconds[-1]:.2f}s", flush=True)
    result = {
        **provenance(),
        "run": str(RUN.relative_to(ROOT)),
        "runs": args.runs,
        "bytes": sizes,
        "seconds": [round(s, 3) for s in seconds],
        "bytes_median": statistics.median(sizes),
        "seconds_median": round(statistics.median(seconds), 3),
    }
    out = HERE / "results" / f"report-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(
        f"report.html: median {result['bytes_median'] / 1e6:.2f} MB, built in median {result['seconds_median']:.2f}s "
        f"(min {min(seconds):.2f}s, max {max(seconds):.2f}s); results: {out}"
    )


if __name__ == "__main__":
    main()
