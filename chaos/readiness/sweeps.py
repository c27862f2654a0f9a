"""Capacity sweeps as readiness sees them: the capacity.json files they leave
(`.deadair/capacity/<sweep_id>/capacity.json`, beside the journals' folder).

A sweep's file belongs to a scenario when its `experiment` is the scenario's experiment id, or
names the same file; the newest (by `finished`, else `started`) of its version now
(chaos.readiness.versions) whose shape is sound (shape_problem: a damaged file is a reason, never
a traceback) is the scenario's result.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaos.readiness.decision import Evidence
from chaos.readiness.suite import Scenario


def capacity_root(journal_dir: Path) -> Path:
    """Where sweeps write: `capacity/` beside the journals' folder (.deadair/capacity)."""
    return journal_dir.parent / "capacity"


def read_capacity(path: Path) -> dict[str, Any] | None:
    """A capacity.json, or None when it is not one (unreadable, not JSON, not kind capacity)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("kind") == "capacity" else None


def _num(x: Any) -> bool:
    return x is None or (isinstance(x, (int, float)) and not isinstance(x, bool))


def shape_problem(data: dict[str, Any]) -> str | None:
    """What is wrong with a capacity.json's shape, for what readiness reads of it (None: nothing),
    so that a damaged or hand-made file is a reason, never a traceback."""
    if not isinstance(data.get("experiment"), str):
        return "experiment: expected a string"
    for key in ("capacity", "knee", "breakpoint", "target", "file_target", "headroom_required"):
        if not _num(data.get(key)):
            return f"{key}: expected a number or null, not {data.get(key)!r}"
    for key in ("vary", "unit", "started", "finished", "stopped", "verdict", "rule"):
        if data.get(key) is not None and not isinstance(data[key], str):
            return f"{key}: expected a string"
    if not isinstance(data.get("broken_by") or [], list):
        return "broken_by: expected a list"
    if data.get("binding") is not None and not isinstance(data["binding"], dict):
        return "binding: expected an object or null"
    steps = data.get("steps")
    if not isinstance(steps, list):
        return "steps: expected a list"
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            return f"steps[{i}]: expected an object"
        if not _num(step.get("load")):
            return f"steps[{i}].load: expected a number"
        if not isinstance(step.get("slo") or [], list) or not isinstance(step.get("distributions") or {}, dict):
            return f"steps[{i}]: slo must be a list and distributions an object"
        for j, v in enumerate(step.get("slo") or []):
            if not isinstance(v, dict) or not _num(v.get("value")):
                return f"steps[{i}].slo[{j}]: expected an object with a numeric value"
            if not all(isinstance(v.get(k), str) for k in ("measure", "expect")):
                return f"steps[{i}].slo[{j}]: measure and expect must be strings"
        for name, d in (step.get("distributions") or {}).items():
            if not isinstance(d, dict) or not all(_num(x) for k, x in d.items() if k not in ("unit", "basis")):
                return f"steps[{i}].distributions.{name}: expected an object of numbers"
    return None


def when(data: dict[str, Any]) -> float | None:
    """A sweep's wall-clock time: when it finished (else started), ISO-8601 with its offset (no
    offset: UTC)."""
    for key in ("finished", "started"):
        text = data.get(key)
        if isinstance(text, str):
            try:
                t = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                continue
            return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()
    return None


def belongs(data: dict[str, Any], scenario: Scenario) -> bool:
    named = str(data.get("experiment") or "")
    if named == scenario.experiment_id:
        return True
    file = named.split("::", 1)[0]
    if not file:
        return False
    try:
        return Path(file).resolve() == scenario.path.resolve()
    except OSError:
        return False


def evidence(path: Path, data: dict[str, Any]) -> Evidence:
    started = when(data)
    return Evidence(
        "capacity",
        str(data.get("sweep_id") or path.parent.name),
        started if started is not None else 0.0,
        data,
        str(path),
    )


def newest_capacity(
    scenario: Scenario, root: Path, why_not: Callable[[dict[str, Any], float], str | None] | None = None
) -> Evidence | str:
    """The scenario's newest capacity.json under `root` that `why_not` accepts (None: of this
    version), or why there is none. An undated one is stale: dated the epoch."""
    found = []
    damaged = []
    for path in sorted(root.glob("*/capacity.json")) if root.is_dir() else []:
        data = read_capacity(path)
        if data is None or not isinstance(data.get("experiment"), str) or not belongs(data, scenario):
            continue
        problem = shape_problem(data)
        if problem:
            damaged.append(f"{path}: not a capacity.json: {problem}")
        else:
            found.append(evidence(path, data))
    if not found:
        return "; ".join(damaged[:3]) or f"no capacity.json of this experiment under {root}"
    found.sort(key=lambda e: e.started, reverse=True)
    for ev in found:
        reason = why_not(ev.data, ev.started) if why_not else None
        if reason is None:
            return ev
    reason = why_not(found[0].data, found[0].started) if why_not else None
    return f"not run: the newest sweep ({found[0].ref}) is not this version: {reason}"
