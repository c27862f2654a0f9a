"""The knee rule, the capacity, the breakpoint and the headroom: numbers in, numbers out.

Written down (the README's "Capacity" says the same):
  - Per SLO, the margin used at step i is u_i = (value_i - value_1) / (bound - value_1), where
    value_1 is the SLO's value at the first step. For a lower bound (`>`, `>=`) the same formula
    is the mirror image: both differences change sign. u_1 = 0; u = 1 is the bound itself (when
    value_1 is on the bound, a value no worse than it has used 0, a worse one all); an SLO
    that failed has used more than all of its margin (u = inf), whatever its value (a listener
    that never heard audio is an infinite value, not a number to divide).
  - The knee is the first step where some SLO has used more than half its margin (u_i > 0.5;
    `knee: {used: X}` changes the half).
  - The capacity is the last step where every SLO held; the breakpoint the first step where one
    failed, or whose own run failed, was aborted or was not steady (it is then its knee too, and
    `run <status>` is in broken_by). The sweep runs no step after it. Either is None when there is none.
  - The headroom at a target is capacity / target - 1 (None without a target or a capacity); the
    target holds when capacity >= target x (1 + the section's `headroom`, default 25%).
The rule measures from the first step, not from zero load: if the first step is already
degraded, the knee shows late. It is the rule the issue asked for; the first step should be
light.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

INF = math.inf
UPPER = ("<", "<=")


def margin_used(value: float, first: float, bound: float, passed: bool = True, op: str = "<") -> float:
    """u_i: the share of the SLO's margin at the first step that this step has used."""
    if not passed:
        return INF
    if not (math.isfinite(value) and math.isfinite(first)):
        return INF
    room = bound - first
    if room == 0:  # the first step sat on the bound: no worse than it is no margin used
        worse = value > first if op in UPPER else value < first
        return INF if worse else 0.0
    return (value - first) / room


def margin_left(value: float, bound: float, op: str) -> float | None:
    """The margin still left to the bound, as a share of the bound (0.9: the value is a tenth of an
    upper bound; negative: beyond it); None for a bound of 0 or a value that is not a number."""
    if bound == 0 or not math.isfinite(value):
        return None
    left = (bound - value) if op in UPPER else (value - bound)
    return round(left / abs(bound), 4)


@dataclass
class Point:
    """One SLO at one step."""

    measure: str
    expect: str
    value: float
    bound: float
    op: str
    outcome: str  # pass, fail, unknown


@dataclass
class StepPoints:
    load: float
    status: str  # passed, failed, unknown, error
    slo: list[Point] = field(default_factory=list)
    run_status: str = "passed"  # the step's run: a step whose run failed, was aborted or not steady failed


@dataclass
class Analysis:
    knee: float | None
    capacity: float | None
    breakpoint: float | None
    broken_by: list[str]
    headroom: float | None
    used: list[dict[str, float]]  # per step, per SLO (measure + expect): u_i (inf as None in JSON)


def slo_key(p: Point) -> str:
    return f"{p.measure} {p.expect}"


def analyse(steps: list[StepPoints], target: float | None, knee_used: float = 0.5) -> Analysis:
    """Knee, capacity, breakpoint and headroom of the steps that ran, in order."""
    first: dict[str, float] = {}
    used: list[dict[str, float]] = []
    knee = capacity = breakpoint = None
    broken_by: list[str] = []
    for i, st in enumerate(steps):
        if i == 0:
            first = {slo_key(p): p.value for p in st.slo}
        us = {
            slo_key(p): margin_used(p.value, first.get(slo_key(p), p.value), p.bound, p.outcome != "fail", p.op)
            for p in st.slo
        }
        used.append(us)
        if knee is None and st.status in ("passed", "failed") and any(u > knee_used for u in us.values()):
            knee = st.load
        if knee is None and st.status == "failed":  # its run failed: it has used all its margin
            knee = st.load
        if st.status == "passed" and breakpoint is None:
            capacity = st.load
        elif st.status == "failed":
            breakpoint = st.load
            broken_by = [slo_key(p) for p in st.slo if p.outcome == "fail"]
            if st.run_status not in ("passed", "inconclusive"):
                broken_by.append(f"run {st.run_status}")
            break
        else:  # unknown or error: the sweep stopped here, nothing decided beyond
            break
    return Analysis(knee, capacity, breakpoint, broken_by, headroom(capacity, target), used)


def headroom(capacity: float | None, target: float | None) -> float | None:
    if capacity is None or not target:
        return None
    return round(capacity / target - 1.0, 4)


def holds(capacity: float | None, target: float | None, headroom: float = 0.0) -> bool:
    """The target holds: the capacity reaches target x (1 + headroom) (no target: some step passed).
    readiness applies the same rule (chaos.readiness.decision, rule 4)."""
    return capacity is not None and (target is None or capacity >= target * (1.0 + headroom))


def exit_code(
    a: Analysis, target: float | None, stopped: str | None, load_generator_bound: bool, headroom: float = 0.0
) -> int:
    """0: the target holds with its headroom (or, with no target, some step passed); 1: it does not; 4: the instrument
    bound it (a verdict the swarm's own lag decided, or a breakpoint where the load generator was the
    binding resource or other work on the machine was: chaos.capacity.binding)."""
    if stopped == "unknown":
        return 4
    if holds(a.capacity, target, headroom):
        return 0
    if a.breakpoint is not None and load_generator_bound:
        return 4
    return 1


def finite(x: float) -> Any:
    """A number for JSON: None for inf and NaN."""
    return x if isinstance(x, (int, float)) and math.isfinite(x) else None


def number(x: float | None) -> int | float | None:
    """A load as written: 400, not 400.0."""
    return int(x) if isinstance(x, float) and x.is_integer() else x
