"""Writes bench/results/engines-<time>.json: the engine-choice measurements (issue 17's research,
/work/research17.md) with the provenance of each part, so the README can cite them.

    python bench/engines/collect.py --research DIR [--fresh DIR]

--research DIR: the raw outputs of the research's runs of these scripts (made before they moved
into the repo; the script names below are the bench/engines ones). Each part keeps the output as
measured (JSON parsed; text Ray printed into the same file before it kept as `text_before_json`),
with: time = the file's modification time (when the script finished), host (`uname -n`), cores,
the load averages the output recorded itself (else null), and commit = the main branch's commit at
that time (`git log --until=TIME -1`: the prototypes used no code of the repo; it dates them).
Parts whose output was not kept say so (`kept: false`) and carry no figures.

--fresh DIR: re-runs made from the repo (NAME.json or NAME.jsonl, NAME.start = start time and
/proc/loadavg, NAME.rc = exit code, end time and /proc/loadavg), with tests/results.py's
provenance plus the interpreter and library versions.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tests"))

# raw file in the research directory -> (the bench/engines command that produced it, what it measured)
RESEARCH: dict[str, tuple[str, str]] = {
    "ray_smoke.json": (
        "bench.py ray PORT --seconds 5 --counts 300 --reps 1",
        "smoke run: start-up, idle footprint, one pair at 300",
    ),
    "dask_smoke.json": (
        "bench.py dask PORT --seconds 5 --counts 300 --reps 1",
        "smoke run: start-up, idle footprint, one pair at 300",
    ),
    "ray_bench.json": (
        "bench.py ray PORT",
        "start-up, idle footprint; CPU per listener-second, plain vs Ray actor, 500 and 2,000, 3 repeats, 10 s",
    ),
    "dask_bench.json": ("bench.py dask PORT", "the same for a Dask actor (worker profiler on, Dask's default)"),
    "daskprof_bench.json": (
        "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False bench.py dask PORT",
        "the same for a Dask actor with the worker's 10 ms profiler off",
    ),
    "ray_faults.json": (
        "faults.py ray PORT",
        "clock offset by actor pings (idle, 300 listeners); a shard's process SIGKILLed mid-run",
    ),
    "dask_faults.json": ("faults.py dask PORT", "the same on Dask"),
    "ray_multinode.json": (
        "multinode_driver.py ray 127.0.0.1:6390 PORT",
        "two Ray nodes on one host, one shard each; the second node (raylet + shard) SIGKILLed",
    ),
    "ray_multinode_stop.json": (
        "MODE=stop WAIT=60 multinode_driver.py ray 127.0.0.1:6390 PORT",
        "the same, the second node frozen (SIGSTOP): whether and when Ray notices (waited 60 s)",
    ),
    "dask_multinode.json": (
        "multinode_driver.py dask tcp://127.0.0.1:8796 PORT",
        "two Dask workers as nodes; the second SIGKILLed",
    ),
    "dask_multinode_stop.json": (
        "MODE=stop WAIT=75 multinode_driver.py dask tcp://127.0.0.1:8796 PORT",
        "the same, the second frozen (SIGSTOP), waited 75 s",
    ),
    "async_ray.jsonl": (
        "async_bench.py ray PORT --plain-loop uvloop",
        "listeners on a Ray async actor's own loop vs a plain uvloop process, 2,000, 3 repeats",
    ),
    "async_dask.jsonl": (
        "async_bench.py dask PORT",
        "listeners on Dask async actor methods (the worker's asyncio loop) vs plain asyncio, 2,000, 3 repeats",
    ),
}
NOT_KEPT = {
    "startup.py ray / dask (research run, 16:18-16:23 UTC)": "stdout was not saved; the research's table quotes it. Re-run: see the fresh parts.",
    "sketches.py (research run, ~16:02 UTC)": "stdout was not saved. Re-run (ddsketch, hdrhistogram): see the fresh parts.",
    "sketch_acc.py (research run, ~16:18 UTC)": "stdout was not saved. Re-run (seeded, deterministic): see the fresh parts.",
}


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def commit_at(when: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(ROOT), "log", f"--until={when}", "-1", "--format=%H"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return out.stdout.strip()


def parse(text: str, lines: bool) -> tuple[Any, str]:
    """(data, text before it): Ray prints raylet warnings into the driver's output."""
    if lines:
        return [json.loads(x) for x in text.splitlines() if x.startswith("{")], ""
    start = text.index("\n{") + 1 if not text.startswith("{") else 0
    return json.loads(text[start:]), text[:start]


def recorded_load(data: Any) -> dict[str, float] | None:
    rows = data if isinstance(data, list) else data.get("runs", []) if isinstance(data, dict) else []
    loads = [r["load1"] for r in rows if isinstance(r, dict) and "load1" in r]
    if not loads:
        return None
    return {"load1_min": round(min(loads), 2), "load1_max": round(max(loads), 2), "runs": len(loads)}


def research_parts(directory: Path) -> dict[str, Any]:
    host, cores = os.uname().nodename, 2
    parts: dict[str, Any] = {}
    for name, (command, what) in RESEARCH.items():
        f = directory / name
        when = iso(f.stat().st_mtime)
        data, before = parse(f.read_text(), name.endswith(".jsonl"))
        part: dict[str, Any] = {
            "kept": True,
            "measured_by": f"bench/engines/{command}",
            "what": what,
            "raw_file": name,
            "time": when,
            "time_is": "the raw file's modification time (when the script finished)",
            "host": host,
            "cores": cores,
            "load_average_recorded": recorded_load(data),
            "commit": commit_at(when),
            "data": data,
        }
        if before:
            part["text_before_json"] = before
        parts[name.rsplit(".", 1)[0]] = part
    for name, why in NOT_KEPT.items():
        parts[f"research: {name}"] = {"kept": False, "why": why}
    return parts


def fresh_parts(directory: Path) -> dict[str, Any]:
    from results import provenance  # tests/results.py

    parts: dict[str, Any] = {}
    versions = {}
    for lib in ("ray", "distributed", "ddsketch", "hdrhistogram", "uvloop", "psutil"):
        try:
            versions[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            versions[lib] = None
    for out in sorted([*directory.glob("*.json"), *directory.glob("*.jsonl")]):
        name = out.name.rsplit(".", 1)[0]
        start = (directory / f"{name}.start").read_text().split("\n")
        rc = (directory / f"{name}.rc").read_text().split("\n") if (directory / f"{name}.rc").exists() else []
        data, _ = parse(out.read_text(), out.suffix == ".jsonl")
        prov = provenance()
        prov["time"] = start[0].strip()
        prov.pop("load_average", None)
        parts[f"fresh: {name}"] = {
            "kept": True,
            **prov,
            "time_is": "when the run started",
            "ended": rc[1].strip() if len(rc) > 1 else iso(out.stat().st_mtime),
            "exit": int(rc[0]) if rc and rc[0].strip() else 0,
            "loadavg_at_start": start[1].split()[:3] if len(start) > 1 else None,
            "loadavg_at_end": rc[2].split()[:3] if len(rc) > 2 else None,
            "python": sys.version.split()[0],
            "versions": versions,
            "data": data,
        }
    return parts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--research", type=Path, required=True)
    p.add_argument("--fresh", type=Path)
    p.add_argument("--note", action="append", default=[], help="a sentence for the file's notes (repeatable)")
    args = p.parse_args()
    result = {
        "benchmark": "engines",
        "notes": [
            "The engine choice for the distributed swarm (issue 17): Ray vs Dask distributed, measured with the "
            "bench/engines/ scripts before they moved into the repo (research parts: raw outputs kept as measured, "
            "provenance per part), and fresh re-runs of the cheap ones from the repo (fresh parts).",
            "The research machine was shared: load average 4 to 12 during every research measurement "
            "(research17.md); per-part load where the script recorded it.",
            "The scripts were edited during the research (e.g. bench_impl.py at 16:17 after ray_bench at 16:06); "
            "bench/engines holds their last versions, cleaned (paths, imports, arguments, timeouts), same measurements.",
            *args.note,
        ],
        "parts": {**research_parts(args.research), **(fresh_parts(args.fresh) if args.fresh else {})},
    }
    out = ROOT / "bench" / "results" / f"engines-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
