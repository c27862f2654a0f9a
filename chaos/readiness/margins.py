"""Margins: how far a value is from breaking its bound, relative to the bound.

`< B` or `<= B`: (B - value) / |B|; `> B` or `>= B`: (value - B) / |B|; `between L and H`: the
smaller of the two sides' margins. Positive: that much room left (0.25: the value may worsen by
25 % of the bound before it breaks); 0: at the bound; negative: broken by that much. A bound of 0
has no relative scale: the margin is then the plain difference in the measure's unit (marked
`absolute`). A listener that never got there (an infinite value) is -inf; no data has no margin
(None), and no data never passes. `==` and `!=` have no margin.
"""

from __future__ import annotations

import math
from typing import Any

from chaos.language.expectations import Expectation
from chaos.language.units import format_duration


def margin(value: float, expect: Expectation) -> float | None:
    """The relative margin of `value` to `expect`'s bound (see the module's docstring)."""
    if math.isnan(value):
        return None
    if expect.op in ("<", "<="):
        return _relative(expect.low - value, expect.low)
    if expect.op in (">", ">="):
        return _relative(value - expect.low, expect.low)
    if expect.op == "between":
        return min(_relative(value - expect.low, expect.low), _relative(expect.high - value, expect.high))
    return None


def is_absolute(expect: Expectation) -> bool:
    """The margin is a plain difference (a bound of 0), not a fraction of the bound."""
    if expect.op == "between":
        return expect.low == 0 or expect.high == 0
    return expect.low == 0


def bound_of(expect: Expectation) -> float | list[float]:
    return [expect.low, expect.high] if expect.op == "between" else expect.low


def _relative(diff: float, bound: float) -> float:
    if math.isnan(diff):  # inf - inf: a bound of inf is never broken by inf
        return 0.0
    return diff / abs(bound) if bound else diff


def verdict_value(v: dict[str, Any], stat: str | None = None) -> float | None:
    """A recorded verdict's value (or its statistic `stat`), as a number: a null written with
    listeners missing is infinite (they never got there); a null with none missing is no data
    (NaN). None: the verdict did not record that statistic."""
    if stat is None or stat == v.get("stat"):
        raw = v.get("value")
    else:
        summary = v.get("summary") or {}
        if stat not in summary:
            return None
        raw = summary[stat]
    if raw is None:
        missing = (v.get("summary") or {}).get("missing") or len(v.get("missing") or [])
        return math.inf if missing else math.nan
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def clean(x: float | None) -> float | None:
    """JSON has no infinity and no NaN: null (the text beside it says which)."""
    if x is None or math.isinf(x) or math.isnan(x):
        return None
    return x


def value_text(value: float | None, unit: str | None) -> str:
    if value is None or math.isnan(value):
        return "no data"
    if math.isinf(value):
        return "inf (never got there)" if value > 0 else "-inf"
    if unit == "duration":
        return format_duration(value)
    return f"{value:.4g}"


def margin_text(m: float | None, absolute: bool = False, unit: str | None = None) -> str:
    if m is None:
        return "n/a"
    if math.isinf(m):
        return "-inf" if m < 0 else "+inf"
    if absolute:
        return ("+" if m >= 0 else "") + (format_duration(m) if unit == "duration" else f"{m:.4g}")
    return f"{m * 100:+.0f}%"
