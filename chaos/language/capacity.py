"""The `capacity:` section of an experiment: what a capacity sweep varies, its steps, its SLOs.

Checked when the experiment is loaded (after the schema), every problem located, so that a sweep
never starts on a section that cannot be run:
  - `vary` is a declared variable that the experiment uses, or a dotted key (as `--var` takes
    one) that, set to every step's value, leaves a valid experiment;
  - `steps` are positive and strictly increasing (a list, or a string "100, 200" so that a
    variable can hold them and CI can shorten them with `--var`);
  - each SLO is a window measure with a one-sided bound (`<`, `<=`, `>`, `>=`): the knee is
    measured as the share of the margin to that bound used (chaos.capacity.knee); one of them is
    on time_to_first_audio (a listener that never heard audio must break a step);
  - `unit` is `listeners` or `joins/s` (required: readiness judges the sweep against the
    policy's target of that unit only); `target`, `headroom` (default 25%) and `knee.used` are
    in range (the schema says so).
A plain run (`deadair run`) ignores the section and runs the experiment at its declared values.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from chaos.language.expectations import parse_expectation
from chaos.language.limits import one_process_problem
from chaos.language.meaning import Meaning
from chaos.language.model import Capacity, Check
from chaos.language.positions import Positions
from chaos.language.registry import resolve_measure
from chaos.language.schema import schema_problems
from chaos.language.variables import apply_overrides

ONE_SIDED = ("<", "<=", ">", ">=")
DEFAULT_HEADROOM = 0.25


def step_text(value: float) -> str:
    """A step's value as `--var` would be given it: 400, not 400.0."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def parse_steps(raw: Any) -> list[float]:
    """The steps as numbers: a list, or a string of comma-separated numbers (from a variable)."""
    if isinstance(raw, str):
        return [float(x) for x in re.split(r"\s*,\s*", raw.strip()) if x]
    return [float(x) for x in raw]


def parse_capacity(data: dict[str, Any], m: Meaning, raw_text: str) -> Capacity | None:
    """The section as a Capacity, or None (absent, or its problems added to `m.problems`)."""
    raw = data.get("capacity")
    if raw is None:
        return None
    base = ("capacity",)
    before = len(m.problems)
    steps = parse_steps(raw["steps"])
    for i, (a, b) in enumerate(zip(steps, steps[1:])):
        if b <= a:
            where = base + ("steps", i + 1) if isinstance(raw["steps"], list) else base + ("steps",)
            m.problem(where, f"capacity.steps must increase: {step_text(b)} comes after {step_text(a)}")
    vary = raw["vary"]
    variables = data.get("vars") if isinstance(data.get("vars"), dict) else {}
    if vary in (variables or {}):
        if not re.search(r"\$\{" + re.escape(vary) + r"\}", raw_text):
            m.problem(
                base + ("vary",),
                f"capacity.vary: the variable {vary!r} is declared but never used as ${{{vary}}}: "
                "the sweep would vary nothing",
            )
    elif vary == "capacity" or vary.startswith("capacity."):
        m.problem(base + ("vary",), "capacity.vary cannot vary the capacity section itself")
    else:
        for i, value in enumerate(steps):  # a step that makes the experiment invalid is refused now
            bad_key, msg = _override_problem(data, vary, value, m.file)
            if msg is None:
                continue
            if bad_key:
                m.problem(base + ("vary",), f"capacity.vary: {msg}")
            else:
                where = base + ("steps", i) if isinstance(raw["steps"], list) else base + ("steps",)
                m.problem(where, f"capacity.steps: {vary}={step_text(value)} makes the experiment invalid: {msg}")
            break
    slo: list[Check] = []
    for i, item in enumerate(raw["slo"]):
        path = base + ("slo", i)
        c = m.measure_check(item, path, "steady")
        if c is None:
            continue
        exp = parse_expectation(item["expect"])
        if exp.op not in ONE_SIDED:
            m.problem(
                path + ("expect",),
                f"an SLO needs a one-sided bound (<, <=, > or >=), not {item['expect']!r}: "
                "the knee is measured as the share of the margin to that bound",
            )
            continue
        slo.append(c)
    if slo and not any(resolve_measure(c.measure or "")[0].name == "time_to_first_audio" for c in slo):
        m.problem(
            base + ("slo",),
            'capacity.slo needs a time_to_first_audio SLO (such as "p95 < 3s"): a listener that never '
            "hears audio is the first thing more load breaks",
        )
    if len(m.problems) > before:
        return None
    return Capacity(
        vary=vary,
        steps=tuple(steps),
        slo=tuple(slo),
        target=float(raw["target"]) if "target" in raw else None,
        knee_used=float((raw.get("knee") or {}).get("used", 0.5)),
        line=m.pos.of(base)[0],
        unit=str(raw["unit"]),
        headroom=parse_headroom(raw.get("headroom", DEFAULT_HEADROOM)),
    )


def parse_headroom(raw: Any) -> float:
    """25% or 0.25 as a fraction (the schema has checked its form)."""
    if isinstance(raw, str):
        return float(raw.strip().rstrip("%").strip()) / 100.0
    return float(raw)


def _override_problem(data: dict[str, Any], key: str, value: float, file: str) -> tuple[bool, str | None]:
    """What is wrong once `key` is set to `value` as --var sets it: (True, why) when the key
    itself cannot be set, (False, why) when the value makes the experiment invalid, (False, None)."""
    trial = copy.deepcopy({k: v for k, v in data.items() if k != "capacity"})
    problems = apply_overrides(trial, {key: step_text(value)}, Positions())
    if problems:
        return True, problems[0].message
    problems = schema_problems(trial, Positions(), file)
    if problems:
        return (
            any(p.message.startswith("unknown key") for p in problems),
            "; ".join(p.message for p in problems[:2]),
        )
    return False, one_process_problem(trial.get("listeners"))
