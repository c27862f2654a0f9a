"""Arrival shapes: when each of a crowd of listeners joins, as offsets from the crowd's start.

One pure function for the swarm's own listeners (`listeners.arrival`) and for a `join` step's
crowd, so that `deadair plan` states the same times the run uses.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from typing import Any

from chaos.language.units import parse_duration, parse_rate

ARRIVALS = ("all", "ramp", "poisson", "rising")


@dataclass(frozen=True)
class Arrival:
    """How a crowd arrives: all at once, a ramp over `over` seconds, a seeded Poisson process at
    `rate` per second, or a rate rising linearly from `rate` to `rate_to` per second."""

    kind: str = "all"
    over: float = 0.0  # ramp
    rate: float = 0.0  # poisson; rising: the first rate
    rate_to: float = 0.0  # rising: the last rate

    def offsets(self, n: int, rng: random.Random | None = None) -> list[float]:
        return arrival_offsets(self.kind, n, self.over, self.rate, self.rate_to, rng)

    def describe(self, span: float | None = None) -> str:
        """`rising 20/s to 200/s over 18.2s`; span: the crowd's actual span, if known."""
        over = f" over {span:.1f}s" if span is not None and self.kind != "all" else ""
        if self.kind == "ramp":
            return f"ramp over {self.over:g}s"
        if self.kind == "poisson":
            return f"poisson {self.rate:g}/s{over}"
        if self.kind == "rising":
            return f"rising {self.rate:g}/s to {self.rate_to:g}/s{over}"
        return "all at once"


def parse_arrival(value: Any) -> Arrival:
    """From the schema-checked YAML value: `all`, {ramp: 20s}, {poisson: 100/s}, {rising: 20/s to 200/s}."""
    if isinstance(value, dict) and "ramp" in value:
        return Arrival("ramp", over=parse_duration(value["ramp"]))
    if isinstance(value, dict) and "poisson" in value:
        return Arrival("poisson", rate=parse_rate(value["poisson"]))
    if isinstance(value, dict) and "rising" in value:
        first, last = re.split(r"\s+to\s+", str(value["rising"]).strip(), maxsplit=1)
        return Arrival("rising", rate=parse_rate(first), rate_to=parse_rate(last))
    return Arrival()


def arrival_problem(arrival: Arrival) -> str | None:
    """What is wrong with a parsed arrival's numbers (the schema checked their form), or None."""
    if arrival.kind == "poisson" and arrival.rate <= 0:
        return "a Poisson arrival needs a rate above 0, such as 50/s"
    if arrival.kind == "rising":
        if arrival.rate <= 0 or arrival.rate_to <= 0:
            return "both rates of a rising arrival must be above 0, such as {rising: 20/s to 200/s}"
        if arrival.rate_to < arrival.rate:
            return (
                f"a rising arrival's second rate ({arrival.rate_to:g}/s) is below its first "
                f"({arrival.rate:g}/s); expected {{rising: LOW/s to HIGH/s}}"
            )
    return None


def rising_offsets(n: int, r0: float, r1: float) -> list[float]:
    """Arrivals at a rate rising linearly from r0 to r1 (per second) over the crowd.

    The rate is r(t) = r0 + k t, with k = (r1 - r0) / T; its integral N(t) = r0 t + k t^2 / 2
    counts arrivals. Arrival i (i = 0 .. n-1) is when N(t) reaches i: the first at 0, the last
    at T, where the rate has reached r1. So N(T) = (r0 + r1) T / 2 = n - 1, and the span is

        T = 2 (n - 1) / (r0 + r1)

    and arrival i is the root of k t^2 / 2 + r0 t - i = 0, written without cancellation as

        t_i = 2 i / (r0 + sqrt(r0^2 + 2 k i))

    (with r0 = r1, k = 0 and t_i = i / r0: a constant rate).
    """
    if n <= 0:
        return []
    span = 2.0 * (n - 1) / (r0 + r1)
    k = (r1 - r0) / span if span > 0 else 0.0
    return [2.0 * i / (r0 + math.sqrt(r0 * r0 + 2.0 * k * i)) for i in range(n)]


def arrival_offsets(
    kind: str, n: int, over: float = 0.0, rate: float = 0.0, rate_to: float = 0.0, rng: random.Random | None = None
) -> list[float]:
    """When each of n listeners joins, from the crowd's start (seeded: the same rng, the same times)."""
    if kind == "ramp" and n > 1:
        return [i * over / (n - 1) for i in range(n)]
    if kind == "poisson" and rate > 0:
        rng = rng or random.Random(0)
        t, out = 0.0, []
        for _ in range(n):
            out.append(t)
            t += rng.expovariate(rate)
        return out
    if kind == "rising" and rate > 0 and rate_to > 0:
        return rising_offsets(n, rate, rate_to)
    return [0.0] * n
