"""Expectations: the bound an experiment puts on one statistic of a measure.

`< 2s`, `p95 < 3s`, `>= 0.99`, `>= 99%`, `between 1s and 3s`. Parsed when the experiment is
loaded, judged by chaos.checkers against a measure's distribution.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

INF = math.inf

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}
_STAT = r"(?:(?P<stat>p\d{1,2}(?:\.\d+)?|max|min|mean|median|count)\s+)?"
_VALUE = r"(\d+(?:\.\d+)?)\s*(ms|s|m|%)?"
_CMP = re.compile(rf"^\s*{_STAT}(?P<op><=|>=|==|!=|<|>)\s*{_VALUE}\s*$")
_BETWEEN = re.compile(rf"^\s*{_STAT}between\s+{_VALUE}\s+and\s+{_VALUE}\s*$")
_UNIT_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0}

EXPECT_HELP = '"< 2s", "p95 < 3s", ">= 0.99", ">= 99%" or "between 1s and 3s"'


@dataclass(frozen=True)
class Expectation:
    """A bound on one statistic of a measure."""

    text: str
    stat: str | None  # p95, max, ...; None: the measure's default
    op: str  # an operator, or "between"
    low: float
    high: float = INF
    unit: str | None = None  # "duration", "ratio" or None (a plain number)

    def holds(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.op == "between":
            return self.low <= value <= self.high
        return _OPS[self.op](value, self.low)


def _value(number: str, unit: str | None) -> tuple[float, str | None]:
    x = float(number)
    if unit in _UNIT_SCALE:
        return x * _UNIT_SCALE[unit], "duration"
    if unit == "%":
        return x / 100.0, "ratio"
    return x, None


def parse_expectation(text: str) -> Expectation:
    """Parse an expectation string; ValueError with what was expected otherwise."""
    m = _CMP.match(text)
    if m:
        value, unit = _value(m.group(3), m.group(4))
        stat = _norm_stat(m.group("stat"))
        return Expectation(text.strip(), stat, m.group("op"), value, unit=unit)
    m = _BETWEEN.match(text)
    if m:
        low, u1 = _value(m.group(2), m.group(3))
        high, u2 = _value(m.group(4), m.group(5))
        if u1 != u2:
            raise ValueError(f"{text!r}: both bounds need the same kind of unit")
        if low > high:
            raise ValueError(f"{text!r}: the lower bound is above the upper bound")
        return Expectation(text.strip(), _norm_stat(m.group("stat")), "between", low, high, unit=u1)
    raise ValueError(f"{text!r} is not an expectation; expected one such as {EXPECT_HELP}")


def _norm_stat(stat: str | None) -> str | None:
    if stat == "median":
        return "p50"
    if stat and stat.startswith("p") and not 0 < float(stat[1:]) < 100:
        raise ValueError(f"percentile {stat} is outside p1..p99")
    return stat
