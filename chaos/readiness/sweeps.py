"""Capacity sweeps as readiness sees them: the capacity.json files they leave
(`.deadair/capacity/<sweep_id>/capacity.json`, beside the journals' folder).

A sweep's file belongs to a scenario when its `experiment` is the scenario's experiment id, or
names the same file; the newest (by `finished`, else `started`) is the scenario's result.
"""

from __future__ import annotations

import calendar
import json
import time
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


def when(data: dict[str, Any]) -> float | None:
    """A sweep's wall-clock time: when it finished (else started), UTC."""
    for key in ("finished", "started"):
        text = data.get(key)
        if isinstance(text, str):
            try:
                return float(calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S")))
            except ValueError:
                continue
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


def newest_capacity(scenario: Scenario, root: Path) -> Evidence | str:
    """The scenario's newest capacity.json under `root`, or why there is none."""
    found = []
    for path in sorted(root.glob("*/capacity.json")) if root.is_dir() else []:
        data = read_capacity(path)
        if data is not None and belongs(data, scenario) and when(data) is not None:
            found.append(evidence(path, data))
    if not found:
        return f"no capacity.json of this experiment under {root}"
    return max(found, key=lambda e: e.started)
