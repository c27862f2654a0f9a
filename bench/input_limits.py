"""Benchmark: `deadair validate` on hostile experiment files (the README's "Limits of an experiment
file"): how long each takes and how much memory, and that each ends in exit 2 with a located error
and no traceback.

    .venv/bin/python bench/input_limits.py [--runs 3]

Each input is generated here (the shapes of issue 16 and of its reviews): a YAML alias bomb of nine
levels of nine aliases, 5,000 nested brackets, a 5,000-character stack name, variables that use
each other, 200,000 steps (2.2 MB), a 50,000-character string named by 15,000 aliases (under the
size limit: 750 MB once expanded), a Chaos Toolkit file
whose activities multiply a 100 KB configuration value, and a file just under the size limit full
of valid steps, and one of probes whose bodies nest as deep as allowed (the slowest honest
files). Each is run `--runs` times in a fresh process under
/usr/bin/time (wall seconds, peak RSS); writes bench/results/input-limits-<time>.json with the
commit, host, cores and time.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

HEAD = "title: t\nmethod:\n  - {at: 1s, fault: link.latency, target: entry-api, for: 1s, with: {latency: 10ms}}\n"
CHECK = "steady_state:\n  - {measure: dead_air.max, expect: '< 1s'}\n"


def alias_bomb() -> str:
    lines = ['a0: &a0 ["lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n" + HEAD + CHECK + "tags: *a9\n"


def brackets() -> str:
    return HEAD + CHECK + "tags: " + "[" * 5000 + "]" * 5000 + "\n"


def long_stack() -> str:
    return HEAD + CHECK + "stack: " + "s" * 5000 + "\n"


def variable_cycle() -> str:
    return HEAD.replace("for: 1s", 'for: "${a}"') + CHECK + 'vars: {a: "${b}", b: "${a}"}\n'


def many_steps() -> str:
    return "title: t\n" + CHECK + "method:\n" + "- {at: 1s}\n" * 200_000


def aliased_long_string() -> str:
    return "x: &s " + "D" * 50_000 + "\n" + HEAD + CHECK + "tags: [" + ", ".join(["*s"] * 15_000) + "]\n"


def ctk_multiplied() -> str:
    act = {
        "type": "action",
        "name": "a",
        "provider": {"type": "http", "url": "http://127.0.0.1:1/" + "${big}" * 100},
    }
    doc = {
        "title": "t",
        "description": "d",
        "configuration": {"big": "B" * 100_000},
        "steady-state-hypothesis": {"title": "h", "probes": []},
        "method": [act] + [{"ref": "a"}] * 300,
    }
    return json.dumps(doc)


def under_the_size_limit() -> str:
    from chaos.language.limits import MAX_FILE_BYTES

    step = "  - {at: 1s, fault: link.latency, target: entry-api, for: 1s, with: {latency: 10ms}}\n"
    head = "title: t\n" + CHECK + "method:\n"
    return head + step * ((MAX_FILE_BYTES - len(head) - 1) // len(step))


def nested_under_the_size_limit() -> str:
    """The slowest honest shape found by review: probes whose bodies nest as deep as allowed."""
    from chaos.language.limits import MAX_FILE_BYTES

    body = "[" * 56 + "1" + "]" * 56
    head = HEAD + "steady_state:\n"
    probe = "  - {probe: p%d, http: {url: 'http://127.0.0.1:9/', body: " + body + "}, tolerance: 200}\n"
    out, i = head, 0
    while len(out) + len(probe % i) < MAX_FILE_BYTES - 1:
        out += probe % i
        i += 1
    return out


INPUTS: dict[str, tuple[str, Callable[[], str]]] = {
    "alias bomb (9 levels of 9)": ("yaml", alias_bomb),
    "5,000 nested brackets": ("yaml", brackets),
    "5,000-character stack name": ("yaml", long_stack),
    "variables that use each other": ("yaml", variable_cycle),
    "200,000 steps": ("yaml", many_steps),
    "a 50,000-character string behind 15,000 aliases": ("yaml", aliased_long_string),
    "Chaos Toolkit: 100 KB value x 100 uses x 300 refs": ("json", ctk_multiplied),
    "valid steps just under the size limit": ("yaml", under_the_size_limit),
    "probes nested to the depth limit, just under the size limit": ("yaml", nested_under_the_size_limit),
}


def measure(path: Path) -> dict:
    cmd = ["/usr/bin/time", "-f", "%e %M", str(ROOT / ".venv" / "bin" / "deadair"), "validate", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    seconds, kib = proc.stderr.strip().splitlines()[-1].split()
    out = proc.stdout + proc.stderr
    first = next((line for line in out.splitlines() if line.startswith(str(path))), "")
    return {
        "exit": proc.returncode,
        "seconds": float(seconds),
        "peak_rss_mb": round(int(kib) / 1024, 1),
        "traceback": "Traceback" in out,
        "first_problem": first.replace(str(path), "FILE")[:200],
        "problems": sum(1 for line in out.splitlines() if line.startswith(str(path))),
    }


def main() -> None:
    from results import provenance  # tests/results.py: commit, host, cores, time

    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (ext, make) in INPUTS.items():
            f = Path(tmp) / f"input.{ext}"
            f.write_text(make())
            runs = [measure(f) for _ in range(args.runs)]
            secs = [r["seconds"] for r in runs]
            mem = [r["peak_rss_mb"] for r in runs]
            row = {
                "input": name,
                "bytes": f.stat().st_size,
                "runs": runs,
                "seconds_median": statistics.median(secs),
                "seconds_min": min(secs),
                "seconds_max": max(secs),
                "peak_rss_mb_median": statistics.median(mem),
                "exit_codes": sorted({r["exit"] for r in runs}),
                "any_traceback": any(r["traceback"] for r in runs),
            }
            rows.append(row)
            print(
                f"{name:<52} {row['bytes'] / 1024:8.1f} KiB  exit {row['exit_codes']}  "
                f"{row['seconds_median']:.2f}s ({row['seconds_min']:.2f}-{row['seconds_max']:.2f})  "
                f"{row['peak_rss_mb_median']:.0f} MB  {runs[0]['first_problem'][:90]}",
                flush=True,
            )
    load = Path("/proc/loadavg").read_text().split()[:3]
    result = {**provenance(), "runs": args.runs, "loadavg_at_end": load, "inputs": rows}
    out = HERE / "results" / f"input-limits-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
