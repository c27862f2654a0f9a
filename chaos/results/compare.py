"""One run against another: measure by measure deltas, and the `--fail-on` rules judged on them.

Verdicts are paired by their stable name (chaos.checkers.names), so the same experiment's runs
line up even when one was judged with different variables. A baseline that ran on a different
stack (another fingerprint) is still compared, and every message says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from chaos.checkers.names import display_keys, named, window_label
from chaos.language.units import format_duration
from chaos.results.rules import FailOn
from chaos.stack.fingerprint import differences


@dataclass
class Regression:
    """A rule broken: which measure, in which window, by how much."""

    rule: FailOn
    key: str  # the measure and statistic, with the window: hold_music.onset.p95 (step 0)
    base: float
    value: float
    allowed: float
    unit: str
    why: str = "not judged, or no data"  # when there is no value now

    def describe(self) -> str:
        rule = f"--fail-on {self.rule.text}"
        if math.isnan(self.value):
            return (
                f"{self.key} was {fmt(self.base, self.unit)} in the baseline and has no value now "
                f"({self.why}; no data never passes): {rule}"
            )
        if math.isinf(self.value):
            return (
                f"{self.key} is infinite now (a listener never got there), {fmt(self.base, self.unit)} before: {rule}"
            )
        moved = "rose" if self.value > self.base else "fell"
        return (
            f"{self.key} {moved} to {fmt(self.value, self.unit)} from {fmt(self.base, self.unit)}: "
            f"{fmt_delta(self.value - self.base, self.unit)}{_percent(self.base, self.value)}, beyond "
            f"--fail-on {self.rule.text} (at most {fmt(self.allowed, self.unit)})"
        )


@dataclass
class Judgement:
    """The rules judged against one baseline."""

    baseline_run: str
    baseline_ref: str  # how it was chosen: last-pass, a tag, a run id
    regressions: list[Regression] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be compared, and why
    stack_changes: list[str] = field(default_factory=list)  # empty: the same stack fingerprint

    def lines(self) -> list[str]:
        stack = (
            f"; the baseline ran on a different stack ({'; '.join(self.stack_changes)} changed)"
            if self.stack_changes
            else ""
        )
        head = f"baseline {self.baseline_run} ({self.baseline_ref}){stack}"
        if not self.regressions:
            return [f"no regression against {head}"] + [f"  {n}" for n in self.notes]
        return (
            [f"REGRESSED against {head}:"]
            + [f"  {r.describe()}" for r in self.regressions]
            + [f"  {n}" for n in self.notes]
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline_run,
            "baseline_ref": self.baseline_ref,
            "stack_changes": self.stack_changes,
            "regressions": [
                {
                    "rule": r.rule.text,
                    "measure": r.key,
                    "baseline": _finite(r.base),
                    "value": _finite(r.value),
                    "allowed": _finite(r.allowed),
                    "message": r.describe(),
                }
                for r in self.regressions
            ],
            "notes": self.notes,
        }


def judge(rules: list[FailOn], current: dict[str, Any], baseline: dict[str, Any], ref: str) -> Judgement:
    """Each rule against each verdict it matches, paired with the baseline's verdict of that name."""
    out = Judgement(str(baseline.get("run_id")), ref)
    out.stack_changes = differences(baseline.get("stack_fingerprint"), current.get("stack_fingerprint"))
    cur, base = _by_name(current), _by_name(baseline)
    for rule in rules:
        now = [v for v in cur.values() if rule.matches(v)]
        then = [v for v in base.values() if rule.matches(v)]
        if not now and not then:
            out.notes.append(f"--fail-on {rule.text}: judged in neither run; nothing compared")
            continue
        for old in then:
            gone = cur.get(old["name"])
            if gone is None or gone.get("skipped"):  # measured then, not now: no data never passes
                was = _value(rule, old)
                why = "its fault was not injected: skipped" if gone is not None else "not judged, or no data"
                out.regressions.append(
                    Regression(rule, _key(rule, old), was, math.nan, rule.allowed(was), rule.unit, why)
                )
        for v in now:
            paired = base.get(v["name"])
            if paired is None or paired.get("skipped"):
                what = "no" if paired is None else "a skipped (not injected)"
                out.notes.append(f"--fail-on {rule.text}: the baseline has {what} {_key(rule, v)}; not compared")
                continue
            value, then_value = rule.value_of(v), rule.value_of(paired)
            if value is None or then_value is None:
                out.notes.append(f"--fail-on {rule.text}: {_key(rule, v)} did not record {rule.stat}; not compared")
                continue
            if _worse(rule, value, then_value):
                out.regressions.append(
                    Regression(rule, _key(rule, v), then_value, value, rule.allowed(then_value), rule.unit)
                )
    return out


def _worse(rule: FailOn, value: float, base: float) -> bool:
    if math.isnan(value):
        return not math.isnan(base)  # gave a value before, none now: no data never passes
    if math.isnan(base):
        return False
    if math.isinf(value) or math.isinf(base):
        return (value > base) if rule.direction > 0 else (value < base)
    limit = rule.allowed(base)
    return value > limit + 1e-12 if rule.direction > 0 else value < limit - 1e-12


def deltas(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, float | None, float | None]]:
    """(measure key, unit, A's judged value, B's) for every verdict in either run, B's order first."""
    va, vb = named(list(a.get("verdicts") or [])), named(list(b.get("verdicts") or []))
    keys = {v["name"]: k for v, k in zip(va, display_keys(va))}
    keys.update({v["name"]: k for v, k in zip(vb, display_keys(vb))})
    by_a, by_b = {v["name"]: v for v in va}, {v["name"]: v for v in vb}
    order = list(by_b) + [n for n in by_a if n not in by_b]
    rows = []
    for name in order:
        v = by_b.get(name) or by_a[name]
        rows.append((keys[name], str(v.get("unit")), _judged(by_a.get(name)), _judged(by_b.get(name))))
    return rows


def render_compare(a: dict[str, Any], b: dict[str, Any], ref_a: str, ref_b: str) -> str:
    """The two runs side by side, with each measure's change."""
    lines = [f"A {a.get('run_id')} ({ref_a}): {a.get('status')}" + (f", {a['started']}" if a.get("started") else "")]
    lines.append(
        f"B {b.get('run_id')} ({ref_b}): {b.get('status')}" + (f", {b['started']}" if b.get("started") else "")
    )
    if a.get("experiment_id") != b.get("experiment_id"):
        lines.append(f"  different experiments: {a.get('experiment_id')} / {b.get('experiment_id')}")
    changes = differences(a.get("stack_fingerprint"), b.get("stack_fingerprint"))
    fa, fb = (a.get("stack_fingerprint") or {}).get("id"), (b.get("stack_fingerprint") or {}).get("id")
    if not changes:
        lines.append(f"  stack: same ({fb})" if fb else "  stack: not recorded in either run")
    else:
        lines.append(f"  stack: DIFFERENT {fa or 'not recorded'} -> {fb or 'not recorded'}: " + "; ".join(changes))
    if a.get("variables") != b.get("variables"):
        lines.append(f"  variables: {a.get('variables')} -> {b.get('variables')}")
    lines.append(f"  {'measure':<40} {'A':>10} {'B':>10}  change")
    for key, unit, x, y in deltas(a, b):
        if unit == "probe":
            change = "" if x == y else "changed"
            lines.append(f"  {key:<40} {_probe(x):>10} {_probe(y):>10}  {change}")
            continue
        if x is None or y is None:
            change = "not in A" if x is None else "not in B"
        else:
            change = fmt_delta(y - x, unit) + _percent(x, y)
        lines.append(f"  {key:<40} {fmt(x, unit):>10} {fmt(y, unit):>10}  {change}")
    return "\n".join(lines)


def fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "never"
    if math.isnan(value):
        return "n/a"
    return format_duration(value) if unit == "duration" else f"{value:.4g}"


def fmt_delta(d: float, unit: str) -> str:
    if math.isnan(d):
        return "n/a"
    if math.isinf(d):
        return "+never" if d > 0 else "-never"
    sign = "+" if d >= 0 else "-"
    return sign + (format_duration(abs(d)) if unit == "duration" else f"{abs(d):.4g}")


def _percent(base: float, value: float) -> str:
    if not (math.isfinite(base) and math.isfinite(value)) or base == 0:
        return ""
    return f" ({(value - base) / abs(base) * 100:+.0f}%)"


def _probe(x: float | None) -> str:
    return "-" if x is None else ("ok" if x == 0 else f"{x:g} failed")


def _judged(v: dict[str, Any] | None) -> float | None:
    if v is None:
        return None
    raw = v.get("value")
    if raw is None:
        return math.inf if (v.get("summary") or {}).get("missing") else math.nan
    return float(raw)


def _by_name(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in named(list(summary.get("verdicts") or []))}


def _key(rule: FailOn, v: dict[str, Any]) -> str:
    stat = rule.stat or v.get("stat")
    where = window_label(v)
    return f"{rule.measure}.{stat} ({'step ' + where[4:] if where.startswith('step') else where})"


def _value(rule: FailOn, v: dict[str, Any]) -> float:
    x = rule.value_of(v)
    return math.nan if x is None else x


def _finite(x: float) -> float | None:
    return x if math.isfinite(x) else None
