"""The incident library's files, without an engine: each loads (its targets checked against the
stack's compose file), describes itself, and falls in a readiness category; the
melting-edge variant differs from its original in the retry schedule only, so that comparing the
two measures backoff and nothing else."""

from __future__ import annotations

from dataclasses import fields, is_dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from chaos.language.loader import load_experiment
from chaos.readiness.policy import UNCATEGORISED, load_policy

LIBRARY = Path(__file__).resolve().parents[2] / "experiments" / "incidents"
SCENARIOS = sorted(f for f in LIBRARY.glob("*.yaml") if "capacity" not in (yaml.safe_load(f.read_text()) or {}))


def test_the_library_has_the_room_scenarios():
    names = {f.stem for f in SCENARIOS}
    assert {"late-start", "melting-edge", "melting-edge-no-backoff", "rolling-restart"} <= names


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_a_scenario_loads_replays_a_failure_and_has_a_category(path: Path):
    exp = load_experiment(path)
    assert len(exp.description) > 200, exp.description  # what it replays, its timeline, its hypotheses
    assert load_policy(None).category_of(exp.tags) != UNCATEGORISED, exp.tags
    assert exp.method and any(s.expect for s in exp.method)  # hypotheses under its faults or crowds


def test_the_no_backoff_variant_differs_in_its_retry_schedule_only():
    default = load_experiment(LIBRARY / "melting-edge.yaml")
    at_once = load_experiment(LIBRARY / "melting-edge-no-backoff.yaml")
    assert default.listeners.backoff == (0.0, 0.3, 1.2, 2.7, 4.8, 7.0, 7.0, 7.0, 7.0, 7.0)
    assert at_once.listeners.backoff == (0.0,) * 10  # as many tries, none delayed
    assert replace(at_once.listeners, backoff=default.listeners.backoff) == default.listeners
    same = {"path", "title", "description", "tags", "listeners"}
    for f in fields(default):
        if f.name not in same:
            a, b = getattr(default, f.name), getattr(at_once, f.name)
            assert unplaced(a) == unplaced(b), f.name


def unplaced(value: Any) -> Any:
    """A model value with its line and column numbers zeroed: the same checks and steps, wherever
    they stand in their file."""
    if isinstance(value, (list, tuple)):
        return type(value)(unplaced(v) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        changes = {f.name: unplaced(getattr(value, f.name)) for f in fields(value)}
        changes.update({k: 0 for k in ("line", "column") if k in changes})
        return replace(value, **changes)
    return value
