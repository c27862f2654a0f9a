"""A run folder (summary.json and journal.jsonl, in the format chaos.runner.outputs writes) made
by hand, with the awkward cases a real run rarely shows at once: a listener that never came back
(a null value), two checks of one statistic in one window, an unknown verdict, a ratio, a probe,
a fault that never ended (the run died), and a title that needs escaping."""

from __future__ import annotations

import json
from pathlib import Path

from results_data import verdict_record as _verdict

TITLE = 'Mic "cut" \\ path\nsecond line'
RUN_ID = "20261201-010203-abc123"
EXPERIMENT_ID = "experiments/mic-cut.yaml::Mic cut"  # as chaos.runner.outputs.experiment_id makes them
WALL_TIME = 1796100000.5


ONSET = {"count": 20, "missing": 2, "basis": "listeners", "p50": 0.48, "p95": None, "p99": None, "max": None}
VERDICTS = [
    _verdict(
        "before",
        None,
        "dead_air.max",
        "max",
        0.0,
        "pass",
        "duration",
        {"count": 20, "missing": 0, "basis": "listeners", "p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "spans": 0},
    ),
    _verdict("step", 0, "hold_music.onset", "p95", None, "fail", "duration", ONSET, "p95 < 2s"),
    _verdict("step", 0, "hold_music.onset", "p95", None, "fail", "duration", ONSET, "p95 < 5s"),
    _verdict(
        "during",
        None,
        "listeners.connected_ratio",
        "min",
        0.875,
        "unknown",
        "ratio",
        {"count": 130, "missing": 0, "basis": "instants", "p50": 1.0, "p95": 1.0, "p99": 1.0, "max": 1.0},
        ">= 0.9",
    ),
    _verdict(
        "after",
        None,
        "probe room-api is healthy",
        "failed",
        1.0,
        "fail",
        "probe",
        {"count": 3, "missing": 0, "p50": None, "p95": None, "p99": None, "max": 1.0},
        "tolerance 200",
    ),
]
FAULTS = [
    {
        "t": 10.891295,
        "kind": "fault.start",
        "src": "runner",
        "step": 0,
        "occurrence": "0.0",
        "fault": "mic.cut",
        "target": "mic",
    },
    {
        "t": 18.891023,
        "kind": "fault.end",
        "src": "runner",
        "step": 0,
        "occurrence": "0.0",
        "fault": "mic.cut",
        "target": "mic",
    },
    {
        "t": 20.5,
        "kind": "fault.start",
        "src": "runner",
        "step": 1,
        "occurrence": "1.0",
        "fault": "link.down",
        "target": "relay-2",
    },
]


def make_run(
    folder: Path,
    experiment_id: str | None = EXPERIMENT_ID,
    run_id: str = RUN_ID,
    experiment: str = "/repo/experiments/mic-cut.yaml",
    **changes,
) -> Path:
    """Write the run folder; `changes` replace top-level summary fields; experiment_id=None: a
    summary from before runs carried their experiment id. Returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    header = {
        "experiment": experiment,
        "title": TITLE,
        "seed": 7,
        "run_id": run_id,
        **({"experiment_id": experiment_id} if experiment_id else {}),
        "variables": {},
        "versions": {"deadair": "0.1.0"},
        "plan": [],
    }
    summary = {
        **header,
        "status": "failed",
        "exit_code": 1,
        "error": None,
        "abort": None,
        "timings": {"warmup": 0.5, "total": 31.25},
        "verdicts": VERDICTS,
        "rollback": {},
        **changes,
    }
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    origin = {"t": 0.0, "kind": "run.origin", "src": "runner", "wall_time": WALL_TIME, "monotonic": 1.0, **header}
    lines = [origin, {"t": 0.3, "kind": "listener.join", "src": "L0000", "attempt": 0}, *FAULTS]
    (folder / "journal.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    return folder


def write_judged_run(folder: Path, events: list, verdict, title: str, seed: int) -> Path:
    """A run folder from hand-made events and one verdict judged on them (a failed run that rolled
    nothing back); returns its journal. For report tests that need exact times."""
    from chaos.timeline import Timeline

    tl = Timeline()
    tl.events = sorted(events, key=lambda e: e.t)
    journal = tl.write_journal(folder / "journal.jsonl", {"title": title, "run_id": folder.name, "seed": seed})
    summary = {
        "title": title,
        "status": "failed",
        "exit_code": 1,
        "verdicts": [verdict.to_json()],
        "rollback": {"reverted": [], "failed": [], "gone": [], "unsettled": [], "details": {}, "ledger": None},
    }
    (folder / "summary.json").write_text(json.dumps(summary))
    return journal
