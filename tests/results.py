"""Measured values of known-answer tests and benchmarks, written under bench/results/ with what
produced them (commit, host, cores, time), so that every figure the README quotes has a file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def provenance() -> dict:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "chaos", "compose", "tests"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    )
    return {
        "commit": commit,
        "dirty": dirty,
        "host": platform.node(),
        "cores": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average": os.getloadavg(),
    }


def record(name: str, values: dict) -> Path:
    """Append one measurement to bench/results/<name>.jsonl (one JSON object per line)."""
    out = ROOT / "bench" / "results" / f"{name}.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as fh:
        fh.write(json.dumps({**provenance(), **values}) + "\n")
    return out
