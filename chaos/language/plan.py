"""The method as a schedule: every occurrence of every step, its time and its target.

Repeating steps (`every` with `times` or `until`) are expanded here, and `one_of` targets are
chosen here, with a random generator seeded by the experiment's seed: the same experiment
and seed always give the same plan, which `deadair plan` prints without touching anything and
the run records in its journal.

A join step's crowd gets its arrival offsets here too (a Poisson crowd from its own generator,
seeded by the experiment's seed and the occurrence), so the plan states when its last listener
arrives, and the method lasts at least that long.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from chaos.language.model import Experiment, Step


@dataclass(frozen=True)
class Occurrence:
    step: Step
    n: int  # 0 for the first occurrence of a step
    at: float  # seconds from the start of the method
    duration: float | None  # a join: the span of its arrivals (first to last)
    target: str | None
    offsets: tuple[float, ...] = field(default=(), repr=False)  # a join: each listener's, from `at`

    @property
    def end(self) -> float:
        return self.at + (self.duration or 0.0)

    @property
    def key(self) -> str:
        """Unique within a run; names what the fault creates (toxics) and its journal events."""
        return f"{self.step.index}.{self.n}"

    def describe(self) -> str:
        join = self.step.join
        if join is not None:
            return f"join {join.count} listener{'s' if join.count != 1 else ''}, " + join.arrival.describe(
                self.duration or 0.0
            )
        what = self.step.fault or f"{self.step.kind} {self.step.name}"
        target = f" {self.target}" if self.target else ""
        params = ", ".join(f"{k} {v}" for k, v in self.step.raw_params.items())
        length = f" for {self.duration:g}s" if self.duration else ""
        return f"{what}{target}{f' ({params})' if params else ''}{length}"


def plan(experiment: Experiment) -> list[Occurrence]:
    """Every occurrence, in time order; deterministic for a given seed."""
    rng = random.Random(experiment.seed)
    out: list[Occurrence] = []
    for step in experiment.method:
        times = [step.at]
        if step.every:
            if step.times:
                times = [step.at + i * step.every for i in range(step.times)]
            else:
                assert step.until is not None
                t, times = step.at, []
                while t <= step.until + 1e-9:
                    times.append(t)
                    t += step.every
        for n, at in enumerate(times):
            if step.join is not None:
                crowd = random.Random(f"{experiment.seed}:join:{step.index}.{n}")
                offsets = step.join.arrival.offsets(step.join.count, crowd)
                out.append(Occurrence(step, n, at, max(offsets, default=0.0), None, tuple(offsets)))
                continue
            target = rng.choice(step.one_of) if step.one_of else step.target
            out.append(Occurrence(step, n, at, step.duration, target))
    return sorted(out, key=lambda o: (o.at, o.step.index, o.n))


def method_length(occurrences: list[Occurrence]) -> float:
    return max((o.end for o in occurrences), default=0.0)
