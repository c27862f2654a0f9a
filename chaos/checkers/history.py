"""The history a run recorded, read the way the measures need it: per listener, per window.

Like Jepsen's history, it is only data: the timeline's events (which a journal on disk
reproduces), so a run can be judged again later; nothing here talks to the stack. A
Distribution is what a measure yields: one sample per subject, missing subjects named.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chaos.timeline import Event

INF = math.inf


@dataclass
class Distribution:
    """Samples of a measure, one per subject (a listener, an ear, a sampling round, ...).

    Per-listener measures name their subjects (`ids`); a subject that never reached the awaited
    state (never heard hold music, never reconnected) is `missing`, counted as infinity, and
    named in `missing_ids`. With nothing to judge (`no_data` says why) every statistic is NaN,
    and NaN never satisfies an expectation: no data never passes.
    """

    samples: list[float] = field(default_factory=list)
    missing: int = 0
    # subjects a measure's definition leaves out, each with why (e.g. joined too late to hear hold
    # music); the verdict names them under `left_out_why`
    left_out: list[str] = field(default_factory=list)
    left_out_why: str = ""
    basis: str = "listeners"  # what one sample is: listeners, ears, samples (100 ms), joins, rounds
    ids: list[str] = field(default_factory=list)
    missing_ids: list[str] = field(default_factory=list)
    spans: int | None = None  # dead-air spans behind the samples (dead-air measures)
    no_data: str | None = None

    def add(self, subject: str, value: float) -> None:
        self.samples.append(value)
        self.ids.append(subject)

    def miss(self, subject: str) -> None:
        self.missing += 1
        self.missing_ids.append(subject)

    @property
    def count(self) -> int:
        return len(self.samples) + self.missing

    def _all(self) -> list[float]:
        return sorted(self.samples) + [INF] * self.missing

    def stat(self, name: str) -> float:
        values = self._all()
        if not values or self.no_data:
            return float("nan")
        if name == "count":
            return float(self.count)  # the missing are subjects too
        if name == "max":
            return values[-1]
        if name == "min":
            return values[0]
        if name == "mean":
            return sum(values) / len(values)
        if name.startswith("p"):
            q = float(name[1:]) / 100.0
            rank = max(1, math.ceil(q * len(values)))  # nearest rank: always an observed value
            return values[rank - 1]
        raise ValueError(f"unknown statistic {name}")

    def worst(self) -> str | None:
        """The subject of the largest sample (to name the worst listener)."""
        if self.missing_ids:
            return self.missing_ids[0]
        if not self.ids:
            return None
        return self.ids[max(range(len(self.samples)), key=self.samples.__getitem__)]

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "count": self.count,
            "missing": self.missing,
            "basis": self.basis,
            "p50": self.stat("p50"),
            "p95": self.stat("p95"),
            "p99": self.stat("p99"),
            "max": self.stat("max"),
        }
        if self.spans is not None:
            out["spans"] = self.spans
        if self.no_data:
            out["no_data"] = self.no_data
        return out


@dataclass(frozen=True)
class Window:
    start: float
    end: float

    @property
    def length(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass(frozen=True)
class FaultSpan:
    """A fault as it happened: from the moment it was applied to the moment it was reverted. A
    fault not injected (a dry run, a step the operator skipped) is its would-be window, `skipped`
    saying why (`fault.skipped` on the timeline)."""

    step: int
    occurrence: str  # "step.n"
    fault: str
    target: str | None
    start: float
    end: float
    skipped: str = ""


def _moved(spans: list[tuple[float, float]], delta: float, early: float) -> list[tuple[float, float]]:
    """Spans grown (delta > 0: start |delta| earlier, end `early` later) or shrunk (start `early`
    later, end |delta| earlier; a span that vanishes is dropped): History.adjusted."""
    lag = abs(delta)
    if delta > 0:
        return [(s - lag, e + early) for s, e in spans]
    return [(s + early, e - lag) for s, e in spans if e - s > lag + early]


class History:
    """The timeline, indexed for measures: per-listener events, faults, probe samples, phases.

    `end` closes what is still open (a stall, a fault): the run's end, or `now` for a history
    of a run still going (guardrails).
    """

    def __init__(self, events: Iterable[Event], end: float | None = None):
        self.events = sorted(events, key=lambda e: e.t)
        self.by_listener: dict[str, list[Event]] = defaultdict(list)
        self.probes: dict[str, list[Event]] = defaultdict(list)
        self.ears: dict[str, list[Event]] = defaultdict(list)
        self.server: list[Event] = []
        self.health: list[Event] = []  # swarm.health: the load generator's own timing error
        self.harness: list[Event] = []  # harness.*: deadair itself disturbed the stack
        self.phases: dict[str, Window] = {}
        self.method_start: float | None = None  # run.method: where the method's clock (t+) starts
        # listener.lost: the load generator lost the listener (its shard's worker died or went
        # silent) at t, the last moment its events are known; swarm.shard_lost says why
        self.lost: dict[str, float] = {}
        self.shards_lost: dict[int, Event] = {}
        self.limits: list[Event] = []  # swarm.limit: a worker received more than its bandwidth budget
        starts: dict[str, Event] = {}
        self.faults: dict[str, FaultSpan] = {}
        joins: list[Event] = []  # step.join: a crowd joining during the method
        self.end = self.events[-1].t if self.events else 0.0
        for ev in self.events:
            if ev.kind.startswith("listener."):
                self.by_listener[ev.src].append(ev)
            elif ev.kind == "probe.sample":
                self.probes[ev.src].append(ev)
            elif ev.kind.startswith("ear."):
                self.ears[ev.src].append(ev)
            if ev.kind == "listener.lost":
                self.lost.setdefault(ev.src, ev.t)
            elif ev.kind == "swarm.shard_lost":
                self.shards_lost[int(ev.data.get("shard", -1))] = ev
            elif ev.kind == "swarm.limit":
                self.limits.append(ev)
            if ev.kind == "listener.join" and ev.data.get("ear"):
                self.ears.setdefault(ev.src, [])  # a golden ear, even one that never heard a thing
            elif ev.kind == "server.sample":
                self.server.append(ev)
            elif ev.kind == "swarm.health":
                self.health.append(ev)
            elif ev.kind.startswith("harness."):
                self.harness.append(ev)
            elif ev.kind == "run.method":
                self.method_start = float(ev.data.get("start", ev.t))
            elif ev.kind == "run.phase":
                self.phases[ev.data["name"]] = Window(float(ev.data["start"]), float(ev.data["end"]))
            elif ev.kind == "fault.start":
                starts[str(ev.data["occurrence"])] = ev
            elif ev.kind == "fault.skipped":
                occ = str(ev.data["occurrence"])
                end = float(ev.data.get("end", ev.t))
                reason = str(ev.data.get("reason") or "skipped")
                self.faults[occ] = FaultSpan(
                    int(ev.data["step"]), occ, ev.data["fault"], ev.data.get("target"), ev.t, end, reason
                )
            elif ev.kind == "fault.end":
                s = starts.pop(str(ev.data["occurrence"]), None)
                if s is not None:
                    self.faults[str(s.data["occurrence"])] = FaultSpan(
                        int(s.data["step"]), str(s.data["occurrence"]), s.data["fault"], s.data.get("target"), s.t, ev.t
                    )
            elif ev.kind == "step.join":
                joins.append(ev)
            elif ev.kind == "run.end":
                self.end = ev.t
        if end is not None:
            self.end = end
        for key, s in starts.items():  # applied and never reverted (yet)
            self.faults[key] = FaultSpan(int(s.data["step"]), key, s.data["fault"], s.data.get("target"), s.t, self.end)
        # a join step's span: from its start to the method's end (its crowd stays to the end)
        method_end = self.phases["during"].end if "during" in self.phases else self.end
        self.joins: dict[str, FaultSpan] = {
            str(e.data["occurrence"]): FaultSpan(
                int(e.data["step"]), str(e.data["occurrence"]), "join", None, e.t, max(e.t, method_end)
            )
            for e in joins
        }
        self.join_events: dict[str, Event] = {str(e.data["occurrence"]): e for e in joins}  # step.join, as recorded
        # step.join_cancelled: the method stopped before a crowd had all arrived (how many never joined)
        self.join_cancelled: dict[str, Event] = {
            str(e.data["occurrence"]): e for e in self.events if e.kind == "step.join_cancelled"
        }
        self._spans: dict[str, list[tuple[float, float]]] | None = None
        self._shift: tuple[float, float] = (0.0, 0.0)  # adjusted(): (delta, early) applied to silence spans

    def adjusted(self, delta: float, early: float = 0.0) -> History:
        """The same history with every dead-air span (digital silence included) grown (delta > 0)
        or shrunk by |delta| in all: what could have happened for listeners whose clock is late by
        up to |delta|. A late clock never records early: what it recorded at t happened between
        t - |delta| and t, so each end of a span truly lies up to |delta| before where it was
        recorded. Grown, a span starts |delta| earlier; shrunk, it ends |delta| earlier. (Moving an
        end later for lag would invent dead air, e.g. at the start of a window that opens as the
        last listener's audio arrives.) `early`: a shard's clock may also be ahead of the run's by
        its uncertainty, so each end may lie that much later too: grown, a span also ends `early`
        later; shrunk, it also starts `early` later."""
        other = History.__new__(History)
        other.__dict__.update(self.__dict__)
        other._shift = (delta, early)
        other._spans = {lid: merge_spans(_moved(spans, delta, early)) for lid, spans in self.dead_air_spans().items()}
        return other

    def without(self, lids: set[str]) -> History:
        """The same history without these listeners (the load generator lost them: what they heard
        is not known, so they are not judged)."""
        other = History.__new__(History)
        other.__dict__.update(self.__dict__)
        other.by_listener = defaultdict(list, {k: v for k, v in self.by_listener.items() if k not in lids})
        other.ears = defaultdict(list, {k: v for k, v in self.ears.items() if k not in lids})
        if self._spans is not None:
            other._spans = {k: v for k, v in self._spans.items() if k not in lids}
        return other

    def unlost(self, lids: set[str]) -> History:
        """The same history as if these listeners had not been lost: a span open at their loss runs
        to the end of the run (the longest it could have been, as far as the run can tell)."""
        other = History.__new__(History)
        other.__dict__.update(self.__dict__)
        other.lost = {k: t for k, t in self.lost.items() if k not in lids}
        other._spans = None
        return other

    def spans_of_step(self, step: int) -> list[FaultSpan]:
        return sorted((f for f in self.faults.values() if f.step == step), key=lambda f: f.start)

    def joins_of_step(self, step: int) -> list[FaultSpan]:
        """A join step's occurrences as spans (fault "join"): its start to the method's end."""
        return sorted((f for f in self.joins.values() if f.step == step), key=lambda f: f.start)

    def crowd(self, span: FaultSpan | None) -> str | None:
        """The id prefix of a join step's crowd (`J<step>-`) when `span` is a join step's, else None."""
        return f"J{span.step}-" if span is not None and span.fault == "join" else None

    def first_audio(self, lid: str) -> float | None:
        """When a listener first heard audio (None: never, as of this history)."""
        return next((e.t for e in self.by_listener.get(lid, ()) if e.kind == "listener.first_audio"), None)

    def first_join(self, lid: str) -> float | None:
        """When a listener first asked to join (None: it never did, as of this history)."""
        return next((e.t for e in self.by_listener.get(lid, ()) if e.kind == "listener.join"), None)

    @property
    def listeners(self) -> list[str]:
        return sorted(self.by_listener)

    def listeners_by(self, t: float) -> list[str]:
        """Listeners that had started to join by t (those a window ending at t is about)."""
        return sorted(
            lid for lid, evs in self.by_listener.items() if any(e.kind == "listener.join" and e.t <= t for e in evs)
        )

    def served_by(self, lid: str) -> str | None:
        """The node that last served a listener (lb's X-Served-By), to name it when it is missing."""
        for e in reversed(self.by_listener.get(lid, ())):
            if e.kind == "listener.connected" and e.data.get("server"):
                return str(e.data["server"])
        return None

    def lag(self, w: Window) -> float:
        """The swarm's worst event-loop lag over a window: how late any listener's clock may be
        (a shard's clock's uncertainty against the run's added: chaos.listen.shards.fleet)."""
        return max(
            (
                float(e.data.get("lag_max", 0.0)) + float(e.data.get("clock_uncertainty", 0.0))
                for e in self.health
                if e.t >= w.start and float(e.data.get("since", e.t - 1.0)) <= w.end
            ),
            default=0.0,
        )

    def dead_air_spans(self) -> dict[str, list[tuple[float, float]]]:
        """Per listener, the spans with nothing to play: stalls and slips however short, digital
        silence a golden ear played, and, if it never heard anything, from its join on. The wait
        from a join to the first audio is not dead air: it is `joining` (chaos.checkers.states),
        and time_to_first_audio measures it (`prejoin`)."""
        if self._spans is None:
            spans: dict[str, list[tuple[float, float]]] = {}
            for lid, evs in self.by_listener.items():
                out: list[tuple[float, float]] = []
                end = min(self.end, self.lost.get(lid, self.end))  # a lost listener is known until its loss
                first_join = next((e.t for e in evs if e.kind == "listener.join"), None)
                first_audio = next((e.t for e in evs if e.kind == "listener.first_audio"), None)
                if first_join is not None and first_audio is None:  # never heard anything: from its join on
                    out.append((first_join, end))
                open_at = None
                for e in evs:
                    if e.kind == "listener.stall_start":
                        open_at = e.t if open_at is None else open_at
                    elif e.kind in ("listener.stall_end", "listener.slip"):
                        start = e.t - float(e.data.get("duration", 0.0))
                        out.append((start, e.t))
                        if e.kind == "listener.stall_end":
                            open_at = None
                if open_at is not None:
                    out.append((open_at, end))
                spans[lid] = merge_spans(out + self.silence_spans(lid))
            self._spans = spans
        return self._spans

    def silence_spans(self, lid: str) -> list[tuple[float, float]]:
        """Digital silence a golden ear heard (playout time): dead air even while pages arrive."""
        out, start = [], None
        for e in self.ears.get(lid, ()):
            if e.kind == "ear.silence_start":
                start = e.t
            elif e.kind == "ear.silence_end":
                out.append((e.t - float(e.data.get("duration", 0.0)), e.t))
                start = None
        if start is not None:  # still silent at the end, or when the load generator lost the ear
            out.append((start, min(self.end, self.lost.get(lid, self.end))))
        return _moved(out, *self._shift) if self._shift != (0.0, 0.0) else out

    def clock_uncertainty(self, w: Window) -> float:
        """The largest clock uncertainty of a shard over a window (0 for one process)."""
        return max(
            (
                float(e.data.get("clock_uncertainty", 0.0))
                for e in self.health
                if e.t >= w.start and float(e.data.get("since", e.t - 1.0)) <= w.end
            ),
            default=0.0,
        )

    def prejoin(self) -> dict[str, tuple[float, float]]:
        """Per listener, [first join, first audio): not dead air, but not listening either."""
        out = {}
        for lid, evs in self.by_listener.items():
            first_join = next((e.t for e in evs if e.kind == "listener.join"), None)
            first_audio = next((e.t for e in evs if e.kind == "listener.first_audio"), None)
            if first_join is not None and first_audio is not None:
                out[lid] = (first_join, first_audio)
        return out

    def stream_time(self, e: Event, played: bool) -> float:
        """When a new logical stream starts to be heard (played: its `played_at`, moved to the end
        of a dead-air span it falls in, such as a rebuffering player's) or arrives (its t)."""
        if not played:
            return e.t
        at = float(e.data.get("played_at", e.t))
        for s, end in self.dead_air_spans().get(e.src, ()):
            if s <= at < end:
                return end
        return at

    def in_dead_air(self, lid: str, t: float) -> bool:
        return any(s <= t < e for s, e in self.dead_air_spans().get(lid, ()))

    def title_at(self, lid: str, t: float, played: bool = True) -> str | None:
        """What the listener was hearing at t (played: what its player played, None in dead air;
        else what was arriving, None while disconnected)."""
        if played and self.in_dead_air(lid, t):
            return None
        title, when = None, -INF
        for e in self.by_listener.get(lid, ()):
            if e.t > t:
                break
            if e.kind == "listener.stream":
                at = self.stream_time(e, played)
                if at <= t and at >= when:
                    title, when = e.data.get("title"), at
            elif e.kind == "listener.disconnect" and not played:
                title = None
        return title


# -- spans ------------------------------------------------------------------------------------


def merge_spans(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def overlaps(span: tuple[float, float], w: Window) -> bool:
    return span[1] > w.start and span[0] < w.end


def clip(spans: Iterable[tuple[float, float]], w: Window) -> list[float]:
    return [
        min(e, w.end) - max(s, w.start) for s, e in spans if overlaps((s, e), w) and min(e, w.end) > max(s, w.start)
    ]
