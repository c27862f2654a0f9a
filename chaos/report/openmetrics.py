"""A run's numbers in the OpenMetrics text format, for the dashboards teams already have.

Built from what a run leaves on disk (summary.json and the journal), never from the live run, so
the same metrics can be made again later (`deadair metrics RUN`) and say exactly what the journal
says. Every family is a gauge, a stateset or an info: a run is a record, not a process that
counts, and these three map one to one onto the Prometheus text format that a Pushgateway takes
(`render(families, openmetrics=False)`).

Families (every sample also has the labels `experiment` (the experiment id) and `run`):
    deadair_run (info: title, seed, deadair_version), deadair_run_status (stateset),
    deadair_run_exit_code, deadair_run_dry (1: `--dry faults`, nothing injected),
    deadair_run_duration_seconds, deadair_run_timestamp_seconds,
    deadair_run_timing_seconds{part}
    deadair_verdict_value[_seconds|_ratio]{phase, step, measure, stat}: the judged value
    deadair_verdict_outcome{phase, step, measure, stat}: 1 pass, 0 fail, -1 unknown, -2 flaky,
        -3 not counted (judged over a fault that was not injected: a dry run, a skipped step)
    deadair_verdict_distribution[_seconds|_ratio]{phase, step, measure, stat}: p50, p95, p99, max
    deadair_verdict_sample_size{..., basis}, deadair_verdict_missing, deadair_verdict_dead_air_spans
    deadair_fault_start_seconds / deadair_fault_end_seconds{fault, target, step, occurrence}
A null value whose distribution has listeners missing (they never got there) is +Inf, as
compare and JUnit read it; a null with no data at all is NaN. `deadair run` adds
deadair_series_exit_code (chaos.report.metrics): the exit code of the whole series.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.errors import DeadairError
from chaos.runner.summary_shape import shape_problem

OUTCOME_VALUE = {"pass": 1, "fail": 0, "unknown": -1, "flaky": -2}
NOT_COUNTED = -3  # a verdict over a fault that was not injected (a dry run, a skipped step)
RUN_STATUSES = ("passed", "failed", "inconclusive", "flaky", "not_steady", "aborted", "interrupted", "error")
DISTRIBUTION_STATS = ("p50", "p95", "p99", "max", "min", "mean")
_UNITS = {"duration": "seconds", "ratio": "ratio"}  # a measure's unit -> the family's OpenMetrics unit
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


class MetricsError(DeadairError):
    """The run to make metrics of cannot be read: a path that holds no run, a damaged summary."""

    exit_code = 2


@dataclass
class Family:
    """One metric family: its metadata and its samples, in the order they are written."""

    name: str
    type: str  # gauge, stateset or info
    help: str
    unit: str = ""
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, labels: dict[str, Any], value: float) -> None:
        self.samples.append(({k: str(v) for k, v in labels.items() if v is not None}, value))


@dataclass
class RunRecord:
    """What the metrics are made of: the summary, the journal's first line, its fault events."""

    summary: dict[str, Any]
    origin: dict[str, Any]
    faults: list[dict[str, Any]]
    folder: Path


def experiment_id(summary: dict[str, Any]) -> str:
    """The experiment id the results store and pytest use (`<file>::<title>`): the Pushgateway's
    job and the `experiment` label. A summary older than that id gets it computed from its path."""
    if summary.get("experiment_id"):
        return str(summary["experiment_id"])
    from chaos.runner.outputs import experiment_id as computed  # here: it loads the Docker SDK

    return computed(Path(str(summary.get("experiment") or "experiment")), str(summary.get("title", "")))


def load_run(path: Path) -> RunRecord:
    """A run folder, or its summary.json or journal.jsonl: read both files, or say what is wrong."""
    folder = path if path.is_dir() else path.parent
    summary_path, journal_path = folder / "summary.json", folder / "journal.jsonl"
    if not summary_path.is_file():
        raise MetricsError(f"{path}: no run there (no summary.json in {folder})")
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError) as exc:
        raise MetricsError(f"{summary_path}: not a readable summary: {exc}") from None
    problem = shape_problem(summary)
    if problem:
        raise MetricsError(f"{summary_path}: not a deadair summary: {problem}")
    if "verdicts" not in summary or "run_id" not in summary:
        raise MetricsError(f"{summary_path}: not a deadair summary (no run_id or verdicts)")
    origin: dict[str, Any] = {}
    faults: list[dict[str, Any]] = []
    if journal_path.is_file():
        try:
            lines = journal_path.read_text().splitlines()
        except (OSError, ValueError) as exc:
            raise MetricsError(f"{journal_path}: cannot read the journal: {exc}") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                ev = json.loads(line)
            except ValueError as exc:
                raise MetricsError(f"{journal_path}:{n}: not a JSON line: {exc}") from None
            if not isinstance(ev, dict):
                raise MetricsError(f"{journal_path}:{n}: not a journal event (expected a JSON object)")
            if ev.get("kind") == "run.origin":
                origin = ev
            elif ev.get("kind") in ("fault.start", "fault.end"):
                faults.append(ev)
    return RunRecord(summary, origin, faults, folder)


def families(rec: RunRecord) -> list[Family]:
    """Every family of one run, in a stable order (run, verdicts, faults)."""
    s = rec.summary
    base = {"experiment": experiment_id(s), "run": s["run_id"]}
    return [*_run_families(rec, base), *_verdict_families(s.get("verdicts") or [], base), *_fault_families(rec, base)]


def _run_families(rec: RunRecord, base: dict[str, str]) -> list[Family]:
    s = rec.summary
    info = Family("deadair_run", "info", "The run: experiment title, seed and deadair version")
    info.add({**base, "title": s.get("title", ""), "seed": s.get("seed"), "deadair_version": _version(s)}, 1)
    status = Family("deadair_run_status", "stateset", "The run's status (passed, failed, inconclusive, aborted, ...)")
    current = str(s.get("status", "error"))
    for name in dict.fromkeys([*RUN_STATUSES, current]):
        status.add({**base, "deadair_run_status": name}, 1 if name == current else 0)
    code = Family(
        "deadair_run_exit_code",
        "gauge",
        "The exit code of deadair run (0 passed, 1 failed, 3 environment, 4 inconclusive)",
    )
    code.add(base, _num(s.get("exit_code", 3)))
    dry = Family("deadair_run_dry", "gauge", "1: a dry run (--dry faults), no fault was injected; 0: faults injected")
    dry.add(base, 1 if s.get("dry") else 0)
    out = [info, status, code, dry]
    timings = s.get("timings") or {}
    if "total" in timings:
        duration = Family("deadair_run_duration_seconds", "gauge", "The run from its start to its verdicts", "seconds")
        duration.add(base, _num(timings["total"]))
        out.append(duration)
    if "wall_time" in rec.origin:
        ts = Family(
            "deadair_run_timestamp_seconds",
            "gauge",
            "Wall-clock time (Unix seconds) of the run's clock's zero",
            "seconds",
        )
        ts.add(base, _num(rec.origin["wall_time"]))
        out.append(ts)
    if timings:
        parts = Family("deadair_run_timing_seconds", "gauge", "How long each part of the run took", "seconds")
        for part, secs in timings.items():
            parts.add({**base, "part": part}, _num(secs))
        out.append(parts)
    return out


def _verdict_families(verdicts: list[dict[str, Any]], base: dict[str, str]) -> list[Family]:
    fams: dict[str, Family] = {}

    def fam(name: str, help_: str, unit: str = "") -> Family:
        full = f"{name}_{unit}" if unit else name
        if full not in fams:
            fams[full] = Family(full, "gauge", help_, unit)
        return fams[full]

    seen: dict[tuple, int] = {}
    dists: dict[tuple, list[dict[str, Any]]] = {}
    for v in verdicts:
        unit = _UNITS.get(str(v.get("unit")), "")
        where = {**base, "phase": v.get("phase"), "step": v.get("step"), "measure": v.get("measure")}
        key = (v.get("phase"), v.get("step"), v.get("measure"), v.get("stat"))
        seen[key] = seen.get(key, 0) + 1  # two checks of one statistic in one window: told apart by `check`
        check = str(seen[key]) if seen[key] > 1 else None
        labels = {**where, "stat": v.get("stat"), "check": check}
        summary = v.get("summary") or {}
        missing = _num(summary.get("missing")) > 0  # null with listeners missing: they never got there
        fam(
            "deadair_verdict_value", "The value a verdict judged (its statistic over listeners, ears or samples)", unit
        ).add(labels, _num(v.get("value"), missing))
        fam(
            "deadair_verdict_outcome",
            "A verdict's outcome: 1 pass, 0 fail, -1 unknown, -2 flaky, -3 not counted (its fault was not injected)",
        ).add(labels, NOT_COUNTED if v.get("skipped") else OUTCOME_VALUE.get(str(v.get("outcome")), -1))
        dkey = (v.get("phase"), v.get("step"), v.get("measure"))
        same = dists.setdefault(dkey, [])
        if summary in same:
            continue  # two verdicts on one measure in one window share its distribution
        same.append(summary)
        dlabels = {**where, "check": str(len(same)) if len(same) > 1 else None}
        dist = fam(
            "deadair_verdict_distribution", "A measure's distribution over listeners in a verdict's window", unit
        )
        for stat in DISTRIBUTION_STATS:
            if stat in summary:
                dist.add({**dlabels, "stat": stat}, _num(summary[stat], missing))
        if "count" in summary:
            fam(
                "deadair_verdict_sample_size", "How many listeners, ears or samples a verdict's distribution holds"
            ).add({**dlabels, "basis": summary.get("basis", "")}, _num(summary["count"]))
        if "missing" in summary:
            fam(
                "deadair_verdict_missing",
                "Listeners (or ears) that never reached the awaited state, counted as infinite",
            ).add(dlabels, _num(summary["missing"]))
        if summary.get("spans") is not None:
            fam("deadair_verdict_dead_air_spans", "Dead-air spans behind a dead-air verdict").add(
                dlabels, _num(summary["spans"])
            )
    return list(fams.values())


def _fault_families(rec: RunRecord, base: dict[str, str]) -> list[Family]:
    if not rec.faults:
        return []
    start = Family(
        "deadair_fault_start_seconds",
        "gauge",
        "When a fault began, on the run's clock (seconds since its zero)",
        "seconds",
    )
    end = Family(
        "deadair_fault_end_seconds",
        "gauge",
        "When a fault was reverted, on the run's clock (seconds since its zero)",
        "seconds",
    )
    for ev in rec.faults:
        labels = {
            **base,
            "fault": ev.get("fault"),
            "target": ev.get("target"),
            "step": ev.get("step"),
            "occurrence": ev.get("occurrence"),
        }
        (start if ev["kind"] == "fault.start" else end).add(labels, _num(ev.get("t")))
    return [f for f in (start, end) if f.samples]


def _version(s: dict[str, Any]) -> str:
    versions = s.get("versions") or {}
    return str(versions.get("deadair", "")) if isinstance(versions, dict) else ""


def _num(x: Any, missing: bool = False) -> float:
    """A number from JSON. Null is +Inf when listeners are missing (they never got there: the
    statistic is infinite, as chaos.results and JUnit read it) and NaN otherwise (no data)."""
    if x is None:
        return math.inf if missing else math.nan
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


# -- rendering ---------------------------------------------------------------------------------


def render(fams: Iterable[Family], openmetrics: bool = True) -> str:
    """The exposition text: OpenMetrics 1.0 (UNIT lines, stateset and info types, `# EOF`), or,
    with openmetrics=False, the Prometheus text format 0.0.4 that a Pushgateway parses (every
    family a gauge, info samples named `<name>_info`, no UNIT, no EOF)."""
    lines: list[str] = []
    for f in fams:
        if not f.samples:
            continue
        sample_name = f"{f.name}_info" if f.type == "info" else f.name
        meta_name = f.name if openmetrics else sample_name
        lines.append(f"# TYPE {meta_name} {f.type if openmetrics else 'gauge'}")
        if openmetrics and f.unit:
            lines.append(f"# UNIT {meta_name} {f.unit}")
        lines.append(f"# HELP {meta_name} {_escape_help(f.help, openmetrics)}")
        for labels, value in f.samples:
            lines.append(f"{sample_name}{_labels(labels)} {_value(value)}")
    if openmetrics:
        lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    for name in labels:
        if not _LABEL_NAME.fullmatch(name):
            raise ValueError(f"invalid label name {name!r}")
    return "{" + ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items()) + "}"


def _escape_label(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(v: str, openmetrics: bool) -> str:
    v = v.replace("\\", "\\\\").replace("\n", "\\n")
    return v.replace('"', '\\"') if openmetrics else v


def _value(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "+Inf" if x > 0 else "-Inf"
    if x == int(x) and abs(x) < 2**53:
        return str(int(x))
    return repr(x)
