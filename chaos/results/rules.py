"""`--fail-on` rules: how much worse than its baseline a measure may get before the run fails.

    --fail-on "hold_music.onset.p95:+20%"     fails if p95 rose more than 20 % over the baseline's
    --fail-on "dead_air.max:+200ms"           fails if it rose more than 200 ms
    --fail-on "dead_air.max@during:+0.5s"     only the verdict judged during the method
    --fail-on "listeners.connected_ratio.min:-0.02"   a ratio that may fall by at most 0.02

`MEASURE[.STAT][@WINDOW]:(+|-)AMOUNT`. The sign says which way is worse (+: a rise, -: a fall).
AMOUNT is a percentage of the baseline's value, or an absolute amount in the measure's unit: a
duration with its unit for durations (`200ms`, `1.5s`), a number for ratios and counts. STAT is
any statistic the verdict recorded (p50, p95, p99, max, count, and the one it judged); without
it, the statistic the verdict judged. WINDOW is before, during, after, abort or stepN; without
it, the rule applies to every verdict of that measure. A percentage of a baseline of 0 allows
no change at all: give an absolute amount for measures that are often 0 (dead air).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from chaos.checkers.names import split_measure, window_label
from chaos.language.model import Experiment
from chaos.language.registry import MEASURES, STATS
from chaos.language.units import format_duration, parse_duration
from chaos.results.store import ResultsError

_RULE = re.compile(r"^\s*(?P<measure>[a-z0-9_.]+)(?:@(?P<window>[a-z0-9]+))?\s*:\s*(?P<amount>[+-]\S+)\s*$")
_WINDOW = re.compile(r"^(before|during|after|abort|step\d+)$")
_STATS = set(STATS)


@dataclass(frozen=True)
class FailOn:
    text: str
    measure: str  # the measure's own name (hold_music.onset)
    stat: str | None  # None: the statistic each verdict judged
    window: str | None  # None: every window
    direction: int  # +1: a rise is worse; -1: a fall is worse
    amount: float  # seconds, a ratio, a count; or a fraction of the baseline when relative
    relative: bool
    unit: str  # the measure's unit: duration, ratio, count

    def describe_tolerance(self) -> str:
        sign = "+" if self.direction > 0 else "-"
        if self.relative:
            return f"{sign}{self.amount * 100:g}%"
        return sign + (format_duration(self.amount) if self.unit == "duration" else f"{self.amount:g}")

    def allowed(self, baseline: float) -> float:
        """The worst value the rule lets pass."""
        step = abs(baseline) * self.amount if self.relative else self.amount
        return baseline + self.direction * step

    def matches(self, verdict: dict[str, Any]) -> bool:
        if verdict.get("unit") == "probe" or verdict.get("skipped"):
            return False  # a probe has no number; a skipped fault's verdict measured no fault
        base, _ = split_measure(str(verdict.get("measure", "")))
        return base == self.measure and (self.window is None or window_label(verdict) == self.window)

    def value_of(self, verdict: dict[str, Any]) -> float | None:
        """The rule's statistic in a verdict (inf for a listener that never got there); None if
        the verdict did not record it."""
        stat = self.stat or str(verdict.get("stat"))
        if stat == verdict.get("stat"):
            raw = verdict.get("value")
        elif stat in (verdict.get("summary") or {}):
            raw = verdict["summary"][stat]
        else:
            return None
        if raw is None:  # summary.json writes inf and nan as null: a missing listener is inf
            return math.inf if (verdict.get("summary") or {}).get("missing") else math.nan
        return float(raw)


def parse_fail_on(text: str) -> FailOn:
    """One `--fail-on` rule; a ResultsError (exit 2) saying what is wrong and what was expected."""
    where = f"--fail-on {text!r}"
    m = _RULE.match(text)
    if not m:
        raise ResultsError(
            f"{where}: expected MEASURE[.STAT][@WINDOW]:(+|-)AMOUNT, such as hold_music.onset.p95:+20% "
            "or dead_air.max@during:+200ms"
        )
    name, window, amount = m.group("measure"), m.group("window"), m.group("amount")
    try:
        measure, stat = split_measure_strict(name)
    except KeyError:
        known = ", ".join(sorted(MEASURES))
        raise ResultsError(f"{where}: unknown measure {name!r}; expected one of: {known}") from None
    if window is not None and not _WINDOW.match(window):
        raise ResultsError(f"{where}: unknown window {window!r}; expected before, during, after, abort or stepN")
    unit = str(MEASURES[measure].unit)
    direction = 1 if amount[0] == "+" else -1
    body = amount[1:]
    try:
        if body.endswith("%"):
            value, relative = float(body[:-1]) / 100, True
        elif unit == "duration":
            value, relative = parse_duration(body), False
        else:
            value, relative = float(body), False
    except (ValueError, TypeError) as exc:
        what = "a duration with a unit (200ms, 1.5s) or a percentage" if unit == "duration" else "a number or a %"
        raise ResultsError(f"{where}: {amount!r} is not a tolerance ({exc}); expected {what}") from None
    if not math.isfinite(value) or value < 0:
        raise ResultsError(f"{where}: the tolerance must be a finite amount, 0 or more, after its sign")
    return FailOn(text, measure, stat, window, direction, value, relative, unit)


def split_measure_strict(name: str) -> tuple[str, str | None]:
    """`hold_music.onset.p95` -> (hold_music.onset, p95); KeyError for an unknown measure."""
    from chaos.language.registry import resolve_measure

    measure, stat = resolve_measure(name)
    if stat is not None and stat not in _STATS and not re.fullmatch(r"p\d{1,2}", stat):
        raise KeyError(name)
    return measure.name, stat


def check_rules(rules: list[FailOn], exp: Experiment) -> None:
    """Refuse, before anything runs, a rule for a measure the experiment never judges."""
    judged: dict[str, set[str]] = {}
    for c in [*exp.steady_state, *exp.abort_when]:
        if c.measure:
            base, _ = split_measure(c.measure)
            windows = {"abort"} if c in exp.abort_when else set(c.when)
            judged.setdefault(base, set()).update(windows)
    for step in exp.method:
        for c in step.expect:
            if c.measure:
                judged.setdefault(split_measure(c.measure)[0], set()).add(f"step{step.index}")
    for r in rules:
        if r.measure not in judged:
            measured = ", ".join(sorted(judged)) or "none"
            raise ResultsError(f"--fail-on {r.text!r}: the experiment judges no {r.measure}; it judges: {measured}")
        if r.window and r.window not in judged[r.measure]:
            raise ResultsError(
                f"--fail-on {r.text!r}: {r.measure} is not judged {r.window}; it is judged: "
                + ", ".join(sorted(judged[r.measure]))
            )
