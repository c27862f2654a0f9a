"""Run summaries made by hand, in the format chaos.runner.outputs writes, for the results tests:
the flagship's verdicts (dead air before, during and after; hold music's onset and live's resume
under step 0) and an optional probe, with the numbers given."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXPERIMENT_ID = "experiments/mic-cut-hold-music.yaml::Hold music covers a microphone-path cut"


def verdict_record(phase, step, measure, stat, value, outcome, unit, summary, expect="< 1s") -> dict[str, Any]:
    """One verdict as summary.json holds it, with its distribution given whole."""
    return {
        "phase": phase,
        "step": step,
        "measure": measure,
        "expect": expect,
        "stat": stat,
        "value": value,
        "passed": outcome == "pass",
        "outcome": outcome,
        "window": [1.0, 2.0],
        "unit": unit,
        "summary": summary,
        "missing": [],
        "note": "",
    }


def verdict(phase, step, measure, stat, value, unit="duration", outcome=None, expect="< 1.5s", **summary) -> dict:
    """A verdict over 20 listeners that all had `value` (fields of the distribution may be given)."""
    dist = {"count": 20, "missing": 0, "basis": "listeners", "p50": value, "p95": value, "p99": value, "max": value}
    dist.update(summary)
    return verdict_record(phase, step, measure, stat, value, outcome or "pass", unit, dist, expect)


def summary(
    run_id: str,
    onset: float = 0.48,
    resume: float = 0.59,
    dead_air: float = 0.0,
    probe_ok: bool | None = None,
    status: str | None = None,
    fingerprint: dict | None = None,
    started: str = "2026-11-30T07:49:37Z",
    variables: dict | None = None,
) -> dict[str, Any]:
    verdicts = [
        verdict("before", None, "dead_air.max", "max", 0.0),
        verdict("during", None, "dead_air.max", "max", dead_air, outcome="pass" if dead_air < 1.5 else "fail"),
        verdict("after", None, "dead_air.max", "max", dead_air, outcome="pass" if dead_air < 1.5 else "fail"),
        verdict(
            "step", 0, "hold_music.onset", "p95", onset, expect="p95 < 2s", outcome="pass" if onset < 2 else "fail"
        ),
        verdict("step", 0, "live.resume", "p95", resume, expect="p95 < 3s"),
    ]
    if probe_ok is not None:
        verdicts.append(
            {
                **verdict("after", None, "probe counter is even", "failed", 0.0 if probe_ok else 1.0, unit="probe"),
                "expect": "tolerance 0",
                "outcome": "pass" if probe_ok else "fail",
                "passed": probe_ok,
            }
        )
    failed = any(v["outcome"] != "pass" for v in verdicts)
    return {
        "experiment": "/repo/experiments/mic-cut-hold-music.yaml",
        "title": "Hold music covers a microphone-path cut",
        "seed": 7,
        "run_id": run_id,
        "experiment_id": EXPERIMENT_ID,
        "started": started,
        "variables": variables or {},
        "versions": {"deadair": "0.1.0"},
        "stack_fingerprint": fingerprint or fp(),
        "plan": [],
        "status": status or ("failed" if failed else "passed"),
        "exit_code": 1 if (status or ("failed" if failed else "passed")) == "failed" else 0,
        "error": None,
        "abort": None,
        "timings": {"total": 12.5},
        "verdicts": verdicts,
        "rollback": {},
    }


def fp(origin: str = "sha256:aaa", haproxy: str = "h1") -> dict[str, Any]:
    from chaos.stack.fingerprint import fingerprint_id

    parts: dict[str, Any] = {
        "images": {"origin": origin, "lb": "sha256:bbb"},
        "compose_file": "c1",
        "files": {"config/haproxy.cfg": haproxy},
    }
    parts["id"] = fingerprint_id(parts)
    return parts


def write_run(journal_dir: Path, s: dict[str, Any]) -> Path:
    """A run's folder as the runner leaves it (summary.json and a journal)."""
    folder = journal_dir / s["run_id"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(s, indent=2))
    (folder / "journal.jsonl").write_text(json.dumps({"t": 0.0, "kind": "run.origin", "src": "runner"}) + "\n")
    return folder / "summary.json"
