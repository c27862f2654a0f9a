"""Steady-state hypotheses: measures (SLIs) computed from the recorded history, and checks.

Like Jepsen's checkers, nothing here talks to the stack: every measure is a function of
the timeline (which a journal on disk reproduces), so a run can be judged again later.

A measure yields a distribution (one sample per listener, or per dead-air span); an
expectation compares one statistic of it with a bound: `< 2s`, `p95 < 3s`, `>= 0.99`,
`between 1s and 3s`. A listener that never reached the state a measure waits for
(never heard hold music, never reconnected) is a missing sample, counted as infinity.
"""
from __future__ import annotations

import math
import operator
import re
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from .timeline import Event
from .units import format_duration

INF = math.inf

# ---------------------------------------------------------------------------------------------
# expectations

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne,
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


# ---------------------------------------------------------------------------------------------
# distributions


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
        out: dict[str, Any] = {"count": self.count, "missing": self.missing, "basis": self.basis,
                               "p50": self.stat("p50"), "p95": self.stat("p95"), "p99": self.stat("p99"),
                               "max": self.stat("max")}
        if self.spans is not None:
            out["spans"] = self.spans
        if self.no_data:
            out["no_data"] = self.no_data
        return out


# ---------------------------------------------------------------------------------------------
# history


@dataclass(frozen=True)
class Window:
    start: float
    end: float

    @property
    def length(self) -> float:
        return max(0.0, self.end - self.start)


@dataclass(frozen=True)
class FaultSpan:
    """A fault as it happened: from the moment it was applied to the moment it was reverted."""

    step: int
    occurrence: str  # "step.n"
    fault: str
    target: str | None
    start: float
    end: float


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
        starts: dict[str, Event] = {}
        self.faults: dict[str, FaultSpan] = {}
        self.end = self.events[-1].t if self.events else 0.0
        for ev in self.events:
            if ev.kind.startswith("listener."):
                self.by_listener[ev.src].append(ev)
            elif ev.kind == "probe.sample":
                self.probes[ev.src].append(ev)
            elif ev.kind.startswith("ear."):
                self.ears[ev.src].append(ev)
            if ev.kind == "listener.join" and ev.data.get("ear"):
                self.ears.setdefault(ev.src, [])  # a golden ear, even one that never heard a thing
            elif ev.kind == "server.sample":
                self.server.append(ev)
            elif ev.kind == "swarm.health":
                self.health.append(ev)
            elif ev.kind.startswith("harness."):
                self.harness.append(ev)
            elif ev.kind == "run.phase":
                self.phases[ev.data["name"]] = Window(float(ev.data["start"]), float(ev.data["end"]))
            elif ev.kind == "fault.start":
                starts[str(ev.data["occurrence"])] = ev
            elif ev.kind == "fault.end":
                s = starts.pop(str(ev.data["occurrence"]), None)
                if s is not None:
                    self.faults[str(s.data["occurrence"])] = FaultSpan(
                        int(s.data["step"]), str(s.data["occurrence"]), s.data["fault"], s.data.get("target"), s.t, ev.t)
            elif ev.kind == "run.end":
                self.end = ev.t
        if end is not None:
            self.end = end
        for key, s in starts.items():  # applied and never reverted (yet)
            self.faults[key] = FaultSpan(int(s.data["step"]), key, s.data["fault"], s.data.get("target"), s.t, self.end)
        self._spans: dict[str, list[tuple[float, float]]] | None = None
        self.widen = 0.0  # > 0: every dead-air span grown by this at both ends; < 0: shrunk

    def adjusted(self, delta: float) -> "History":
        """The same history with every dead-air span grown (delta > 0) or shrunk by |delta| in all:
        what could have happened for listeners whose clock is late by up to |delta|. A late clock
        never records early: what it recorded at t happened between t - |delta| and t, so each end
        of a span truly lies up to |delta| before where it was recorded. Grown, a span starts
        |delta| earlier; shrunk, it ends |delta| earlier. (Moving an end later would invent dead
        air, e.g. at the start of a window that opens as the last listener's audio arrives.)"""
        other = History.__new__(History)
        other.__dict__.update(self.__dict__)
        lag = abs(delta)

        def moved(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
            return [(s - lag, e) for s, e in spans] if delta > 0 else [(s, e - lag) for s, e in spans if e - s > lag]

        other._spans = {lid: _merge(moved(spans)) for lid, spans in self.dead_air_spans().items()}
        return other

    def spans_of_step(self, step: int) -> list[FaultSpan]:
        return sorted((f for f in self.faults.values() if f.step == step), key=lambda f: f.start)

    @property
    def listeners(self) -> list[str]:
        return sorted(self.by_listener)

    def listeners_by(self, t: float) -> list[str]:
        """Listeners that had started to join by t (those a window ending at t is about)."""
        return sorted(lid for lid, evs in self.by_listener.items()
                      if any(e.kind == "listener.join" and e.t <= t for e in evs))

    def served_by(self, lid: str) -> str | None:
        """The node that last served a listener (lb's X-Served-By), to name it when it is missing."""
        for e in reversed(self.by_listener.get(lid, ())):
            if e.kind == "listener.connected" and e.data.get("server"):
                return str(e.data["server"])
        return None

    def lag(self, w: Window) -> float:
        """The swarm's worst event-loop lag over a window: how late any listener's clock may be."""
        return max((float(e.data.get("lag_max", 0.0)) for e in self.health
                    if e.t >= w.start and float(e.data.get("since", e.t - 1.0)) <= w.end), default=0.0)

    def dead_air_spans(self) -> dict[str, list[tuple[float, float]]]:
        """Per listener, the spans with nothing to play: stalls and slips however short, digital
        silence a golden ear played, and the wait from its join to its first audio (to the end,
        if it never heard anything)."""
        if self._spans is None:
            spans: dict[str, list[tuple[float, float]]] = {}
            for lid, evs in self.by_listener.items():
                out: list[tuple[float, float]] = []
                first_join = next((e.t for e in evs if e.kind == "listener.join"), None)
                first_audio = next((e.t for e in evs if e.kind == "listener.first_audio"), None)
                if first_join is not None:  # silence from the join to the first audio, or on
                    out.append((first_join, self.end if first_audio is None else first_audio))
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
                    out.append((open_at, self.end))
                spans[lid] = _merge(out + self.silence_spans(lid))
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
        if start is not None:
            out.append((start, self.end))
        return out

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


# ---------------------------------------------------------------------------------------------
# measures
#
# Every measure is defined per subject first (a listener, an ear), then a statistic runs across
# subjects: `dead_air p95 < 1s` is "95 % of listeners had no dead-air span longer than 1 s", and
# n counts listeners. The `definition` of each is what the README's measure table and
# `deadair list --measures` print, and what the code below does.


@dataclass(frozen=True)
class Measure:
    name: str
    unit: str  # "duration", "ratio" or "count"
    better: str  # "lower" or "higher": decides the default statistic (the worst case)
    scope: str  # "window"; "fault_start" / "fault_end": measured from a step's fault
    compute: Callable[["History", Window, "FaultSpan | None"], Distribution]
    doc: str  # one line
    definition: str = ""  # per subject, window rule
    no_data: str = ""  # when there is nothing to judge (the verdict fails, saying so)
    timed: bool = True  # computed from listeners' clocks: the swarm's own lag can blur it
    ears: bool = False  # needs golden ears

    @property
    def default_stat(self) -> str:
        return "max" if self.better == "lower" else "min"


def _merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(spans):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _overlaps(span: tuple[float, float], w: Window) -> bool:
    return span[1] > w.start and span[0] < w.end


def _clip(spans: Iterable[tuple[float, float]], w: Window) -> list[float]:
    return [min(e, w.end) - max(s, w.start) for s, e in spans if _overlaps((s, e), w)
            and min(e, w.end) > max(s, w.start)]


def _listening(h: History, lid: str, w: Window) -> float:
    """Time in the window from the listener's first join on (what its stall ratio divides by)."""
    join = next((e.t for e in h.by_listener.get(lid, ()) if e.kind == "listener.join"), None)
    return 0.0 if join is None else max(0.0, w.end - max(w.start, join))


def _per_listener(h: History, w: Window, value: Callable[[str], float | None]) -> Distribution:
    d = Distribution()
    for lid in h.listeners_by(w.end):
        v = value(lid)
        if v is not None:
            d.add(lid, v)
    if not d.ids:
        d.no_data = "no listeners"
    return d


def _dead_air(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
    spans = h.dead_air_spans()
    d = _per_listener(h, w, lambda lid: max((e - s for s, e in spans.get(lid, ()) if _overlaps((s, e), w)),
                                            default=0.0))
    d.spans = sum(1 for lid in d.ids for sp in spans.get(lid, ()) if _overlaps(sp, w))
    return d


def _dead_air_total(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
    spans = h.dead_air_spans()
    d = _per_listener(h, w, lambda lid: sum(_clip(spans.get(lid, ()), w)))
    d.spans = sum(1 for lid in d.ids for sp in spans.get(lid, ()) if _overlaps(sp, w))
    return d


def _stall_ratio(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
    spans = h.dead_air_spans()

    def ratio(lid: str) -> float | None:
        listening = _listening(h, lid, w)
        return sum(_clip(spans.get(lid, ()), w)) / listening if listening > 0 else None

    d = _per_listener(h, w, ratio)
    d.spans = sum(1 for lid in d.ids for sp in spans.get(lid, ()) if _overlaps(sp, w))
    return d


def _connected_ratio(h: History, w: Window, _f: FaultSpan | None, step: float = 0.1) -> Distribution:
    """Share of listeners with audio to play, sampled every 100 ms over the window."""
    d = Distribution(basis="samples (100 ms)")
    joins = sorted(t for lid in h.by_listener
                   if (t := next((e.t for e in h.by_listener[lid] if e.kind == "listener.join"), None)) is not None)
    if not joins or w.length <= 0 or joins[0] > w.end:
        d.no_data = "no listeners" if not joins or joins[0] > w.end else "an empty window"
        return d
    boundaries: list[tuple[float, int]] = []
    for lid, spans in h.dead_air_spans().items():
        for s, e in spans:
            boundaries += [(s, 1), (e, -1)]
    boundaries.sort()
    times = [b[0] for b in boundaries]
    prefix = []
    acc = 0
    for _, delta in boundaries:
        acc += delta
        prefix.append(acc)
    t = w.start
    while t <= w.end + 1e-9:
        n = bisect_right(joins, t)  # the listeners that had joined by t
        if n:
            i = bisect_right(times, t)
            silent = prefix[i - 1] if i else 0
            d.samples.append(1.0 - silent / n)
        t += step
    return d


def _time_to_first_audio(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
    d = Distribution()
    prejoin = h.prejoin()
    for lid, evs in sorted(h.by_listener.items()):
        join = next((e.t for e in evs if e.kind == "listener.join"), None)
        if join is None or not w.start <= join <= w.end:
            continue
        if lid in prejoin:
            d.add(lid, prejoin[lid][1] - join)
        else:
            d.miss(lid)
    if not d.count:
        d.no_data = "no listener joined in the window"
    return d


def _reconnect_time(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
    """Per listener that lost its connection in the window: its longest loss, from the loss seen by
    the client to the first audio on a new connection (backoff included)."""
    d = Distribution()
    for lid, evs in sorted(h.by_listener.items()):
        lost_at, worst, lost_any, pending = None, 0.0, False, False
        for e in evs:
            if e.kind == "listener.disconnect" and e.data.get("reason") != "closed":
                if lost_at is None and w.start <= e.t <= w.end:
                    lost_at, lost_any, pending = e.t, True, True
            elif e.kind == "listener.first_audio" and lost_at is not None:
                worst, lost_at, pending = max(worst, e.t - lost_at), None, False
        if pending:
            d.miss(lid)
        elif lost_any:
            d.add(lid, worst)
    if not d.count:
        d.no_data = "no listener lost its connection in the window"
    return d


def _time_to_title(title: str, anchor: str, played: bool) -> Callable[[History, Window, FaultSpan | None], Distribution]:
    """Onset (anchor start): from the fault's start to the first time the listener hears `title`
    (0 if it already does). Resume (anchor end): from the fault's end to when it hears `title`
    for good: after the last other stream that still reached it after the end (a buffered fault
    plays out late), 0 only if it hears `title` at the end and nothing else comes after."""
    def compute(h: History, w: Window, fault: FaultSpan | None) -> Distribution:
        d = Distribution()
        t0 = (fault.start if anchor == "start" else fault.end) if fault else w.start
        for lid in h.listeners_by(t0):
            streams = [(h.stream_time(e, played), e.data.get("title")) for e in h.by_listener[lid]
                       if e.kind == "listener.stream"]
            after = sorted((t, ti) for t, ti in streams if t0 <= t <= w.end)
            start = t0
            if anchor == "end":
                others = [t for t, ti in after if ti != title]
                start = max(others) if others else t0
            if start == t0 and h.title_at(lid, t0, played) == title:
                d.add(lid, 0.0)
                continue
            hit = min((t for t, ti in after if ti == title and t >= start), default=None)
            if hit is None:
                d.miss(lid)
            else:
                d.add(lid, hit - t0)
        if not d.count:
            d.no_data = "no listeners"
        return d

    return compute


def _in(w: Window, t: float) -> bool:
    return w.start <= t <= w.end


def _per_ear(field_name: str) -> Callable[[History, Window, FaultSpan | None], Distribution]:
    """Per golden ear: its worst beep in the window (an ear that heard none is missing)."""
    def compute(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
        d = Distribution(basis="ears")
        for lid, evs in sorted(h.ears.items()):
            values = [float(e.data[field_name]) for e in evs if e.kind == "ear.beep" and field_name in e.data
                      and _in(w, e.t)]
            if values:
                d.add(lid, max(values))
            elif any(e.t <= w.end for e in h.by_listener.get(lid, ())):
                d.miss(lid)
        if not h.ears:
            d.no_data = "no golden ears (listeners.ears)"
        elif not d.count:
            d.no_data = "no ear was listening in the window"
        return d
    return compute


def _silence(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
    d = Distribution(basis="ears")
    for lid in sorted(h.ears):
        spans = [sp for sp in h.silence_spans(lid) if _overlaps(sp, w)]
        d.add(lid, max((e - s for s, e in spans), default=0.0))
    d.spans = sum(1 for lid in h.ears for sp in h.silence_spans(lid) if _overlaps(sp, w))
    if not h.ears:
        d.no_data = "no golden ears (listeners.ears)"
    return d


def _join_latency(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
    d = Distribution()
    for lid, evs in sorted(h.by_listener.items()):
        values = [float(e.data["latency"]) for e in evs if e.kind in ("listener.joined", "listener.join_failed")
                  and _in(w, e.t) and "latency" in e.data]
        if values:
            d.add(lid, max(values))
    if not d.count:
        d.no_data = "no join answered or failed in the window"
    return d


def _join_success_ratio(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
    ok = failed = 0
    for evs in h.by_listener.values():
        for e in evs:
            if e.kind == "listener.joined" and _in(w, e.t):
                ok += 1
            elif e.kind == "listener.join_failed" and _in(w, e.t):
                failed += 1
    d = Distribution([ok / (ok + failed)] if ok + failed else [], basis="joins (one ratio)")
    if not ok + failed:
        d.no_data = "no join in the window"
    return d


def _server(field_name: str, kind: str, combine: Callable[[list[float]], float]):
    """Per sampling round (server.sample events share a `round`), combine one field over nodes."""
    def compute(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
        rounds: dict[int, list[float]] = defaultdict(list)
        for e in h.server:
            if e.data.get("probe") == kind and _in(w, e.t) and field_name in e.data:
                rounds[int(e.data["round"])].append(float(e.data[field_name]))
        d = Distribution([combine(v) for v in rounds.values()], basis="rounds (1 s)")
        if not rounds:
            d.no_data = f"no {kind} sample in the window"
        return d
    return compute


_SPANS = ("Dead-air spans: every gap in the listener's playout however short (a stall, or a slip "
          "under one Opus frame), digital silence a golden ear played, and from its join on if it "
          "never heard anything.")
MEASURES: dict[str, Measure] = {m.name: m for m in [
    Measure("dead_air", "duration", "lower", "window", _dead_air,
            "per listener: its longest dead-air span that overlaps the window (full length)",
            "Per listener, the longest dead-air span overlapping the window, counted at its full length "
            "in every window it overlaps (a 1.8 s span across the end of a fault is 1.8 s there and "
            "after). 0 for a listener with none. " + _SPANS, "no listeners"),
    Measure("dead_air.total", "duration", "lower", "window", _dead_air_total,
            "per listener: all its dead air inside the window, every slip included",
            "Per listener, the sum of its dead-air spans clipped to the window. " + _SPANS, "no listeners"),
    Measure("stall_ratio", "ratio", "lower", "window", _stall_ratio,
            "per listener: dead_air.total / its listening time in the window",
            "Per listener, its dead air inside the window divided by the time in the window since it "
            "first joined. Note: the `during` window is the whole method; to judge a fault, put the "
            "expectation under its step.", "no listeners"),
    Measure("listeners.connected_ratio", "ratio", "higher", "window", _connected_ratio,
            "share of listeners with audio to play, sampled every 100 ms",
            "Every 100 ms of the window, the share of listeners not in dead air and not waiting for "
            "their first audio; one sample per instant.", "no listeners"),
    Measure("time_to_first_audio", "duration", "lower", "window", _time_to_first_audio,
            "per listener joining in the window: join sent -> first audio page",
            "Per listener whose first join was sent in the window: seconds to its first audio page; "
            "one that never heard any is missing (infinite) and named.", "no listener joined in the window"),
    Measure("reconnect_time", "duration", "lower", "window", _reconnect_time,
            "per listener that lost its connection in the window: its longest loss -> audio again",
            "Per listener that lost its connection in the window (the client saw a close, reset or "
            "timeout): its longest time from a loss to the first audio on a new connection, backoff "
            "included; one still without audio is missing and named.",
            "no listener lost its connection in the window"),
    Measure("hold_music.onset", "duration", "lower", "fault_start", _time_to_title("hold", "start", True),
            "per listener: fault start -> its player plays hold music (0 if it already did)",
            "Per listener, from the fault's start to when its player reaches the first hold-music audio "
            "(after what it still had buffered); missing (named) if that never happens in the window.",
            "no listeners"),
    Measure("hold_music.arrival", "duration", "lower", "fault_start", _time_to_title("hold", "start", False),
            "per listener: fault start -> hold music's first page arrives",
            "As hold_music.onset, at the arrival of the page instead of its playback.", "no listeners"),
    Measure("live.resume", "duration", "lower", "fault_end", _time_to_title("live", "end", True),
            "per listener: fault end -> its player plays the live speaker again (0 if it never left)",
            "Per listener, from the fault's end to when its player reaches live audio again; missing "
            "(named) if never in the window.", "no listeners"),
    Measure("live.arrival", "duration", "lower", "fault_end", _time_to_title("live", "end", False),
            "per listener: fault end -> the live stream's first page arrives again",
            "As live.resume, at the arrival of the page instead of its playback.", "no listeners"),
    Measure("e2e_latency", "duration", "lower", "window", _per_ear("latency"),
            "per golden ear: its worst beep, mic -> played", "Per golden ear, the largest delay between a "
            "beep leaving the microphone and the ear playing it, over the beeps it played in the window; "
            "an ear that played none is missing.", "no golden ears, or none listening", ears=True),
    Measure("delivery_latency", "duration", "lower", "window", _per_ear("delivery"),
            "per golden ear: its worst beep, mic -> received", "As e2e_latency, to the beep's arrival "
            "(network and servers only).", "no golden ears, or none listening", ears=True),
    Measure("silence", "duration", "lower", "window", _silence,
            "per golden ear: its longest digital silence (< -50 dBFS) overlapping the window",
            "Per golden ear, its longest span of played digital silence overlapping the window, full "
            "length; 0 for an ear with none. Silence is dead air too.", "no golden ears", ears=True),
    Measure("join_latency", "duration", "lower", "window", _join_latency,
            "per listener: its slowest join answer in the window",
            "Per listener, its slowest join request answered (or refused) in the window.",
            "no join answered or failed in the window"),
    Measure("join_success_ratio", "ratio", "higher", "window", _join_success_ratio,
            "joins answered with a stream URL / joins sent", "All joins answered with a stream URL in "
            "the window over all joins answered or failed in it (one sample).", "no join in the window"),
    Measure("server.icecast_listeners", "count", "higher", "window", _server("listeners", "icecast", sum),
            "listeners Icecast reports on all its nodes, per sample (once a second)",
            "Per sampling round, the listeners every Icecast node reports, summed.", "no Icecast sample",
            timed=False),
    Measure("server.slow_listeners", "count", "lower", "window", _server("slow_listeners", "icecast", sum),
            "listeners Icecast counts as slow (lagging its queue), per sample",
            "Per sampling round, Icecast's slow listeners, summed over nodes.", "no Icecast sample", timed=False),
    Measure("server.lb_servers_up", "count", "higher", "window", _server("up", "haproxy", sum),
            "edges HAProxy considers up, per sample", "Per sampling round, HAProxy's servers up.",
            "no HAProxy sample", timed=False),
]}
STATS = ("max", "min", "mean", "count", "p50", "p90", "p95", "p99")


def resolve_measure(name: str) -> tuple[Measure, str | None]:
    """`dead_air.max` -> (dead_air, "max"); `hold_music.onset` -> (hold_music.onset, None)."""
    if name in MEASURES:
        return MEASURES[name], None
    base, _, stat = name.rpartition(".")
    if base in MEASURES and (stat in STATS or re.fullmatch(r"p\d{1,2}", stat)):
        return MEASURES[base], stat
    raise KeyError(name)


# ---------------------------------------------------------------------------------------------
# verdicts


@dataclass
class Verdict:
    """One expectation judged over one window: pass, fail, or unknown (Jepsen's three values).

    Unknown is for what cannot be told apart from the instrument's own error: the swarm's event
    loop lagged more than the margin between the value and its bound, or deadair itself disturbed
    the stack (a Toxiproxy restart) and the expectation failed. No data is not unknown: it fails."""

    phase: str  # before, during, after, or step
    measure: str
    expect: str
    stat: str
    value: float
    passed: bool
    window: Window
    unit: str
    summary: dict[str, Any]
    step: int | None = None
    note: str = ""
    outcome: str = ""  # pass, fail, unknown (derived from `passed` unless set)
    missing_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.outcome:
            self.outcome = "pass" if self.passed else "fail"

    def make_unknown(self, why: str) -> None:
        self.outcome, self.passed = "unknown", False
        self.note = f"{self.note}; {why}" if self.note else why

    def describe_value(self, value: float | None = None) -> str:
        v = self.value if value is None else value
        if self.unit == "duration":
            return format_duration(v)
        if math.isnan(v):
            return "n/a"
        return f"{v:.4g}"

    def to_json(self) -> dict:
        def clean(x):
            return None if isinstance(x, float) and (math.isinf(x) or math.isnan(x)) else x
        return {"phase": self.phase, "step": self.step, "measure": self.measure, "expect": self.expect,
                "stat": self.stat, "value": clean(self.value), "passed": self.passed, "outcome": self.outcome,
                "window": [self.window.start, self.window.end], "unit": self.unit,
                "summary": {k: clean(v) for k, v in self.summary.items()}, "missing": self.missing_ids,
                "note": self.note}


_NEVER = {"hold_music.onset": "never heard hold music", "hold_music.arrival": "never received hold music",
          "live.resume": "never heard the live speaker again", "live.arrival": "never received the live stream again",
          "reconnect_time": "never reconnected", "time_to_first_audio": "never heard any audio",
          "e2e_latency": "played no beep", "delivery_latency": "received no beep"}


def _margin(exp: Expectation, value: float) -> float:
    """How far a value is from flipping its expectation (INF for a missing sample: no clock error
    makes a listener that never reconnected reconnect)."""
    if math.isinf(value) or math.isnan(value):
        return INF
    if exp.op == "between":
        return min(abs(value - exp.low), abs(exp.high - value))
    return abs(value - exp.low)


SPAN_MEASURES = ("dead_air", "dead_air.total", "stall_ratio", "listeners.connected_ratio", "silence")


def _lag_window(h: History, measure: Measure, windows: list[Window]) -> Window:
    """The stretch whose lag can move this verdict: its windows, and for dead-air measures the
    whole of every span overlapping them (a span counts whole)."""
    start, end = min(w.start for w in windows), max(w.end for w in windows)
    if measure.name in ("dead_air", "silence"):
        for spans in h.dead_air_spans().values():
            for s, e in spans:
                if any(_overlaps((s, e), w) for w in windows):
                    start, end = min(start, s), max(end, e)
    return Window(start, end)


def check(h: History, measure_name: str, expect: str, window: Window, phase: str,
          fault: FaultSpan | None = None, step: int | None = None,
          more: list[tuple[FaultSpan, Window]] | None = None, lag_rule: bool = True) -> Verdict:
    """Judge one expectation over one window of the history (or, for a repeating step, over the
    windows of all its occurrences, their samples pooled; an occurrence with no data fails it).

    With `lag_rule`, a verdict the swarm's own timing error could flip is unknown: for measures
    of dead-air spans, judged again with every span grown and shrunk by the worst event-loop lag
    of the stretch; for the others, when the value is within that lag of its bound. Guardrails
    judge without it (they act on what they see)."""
    measure, name_stat = resolve_measure(measure_name)
    exp = parse_expectation(expect)
    stat = exp.stat or name_stat or measure.default_stat
    occurrences = [(fault, window)] + list(more or [])

    def judge_on(hist: History) -> tuple[Distribution, list[str]]:
        dist, empty = None, []
        for i, (f, w) in enumerate(occurrences):
            part = measure.compute(hist, w, f)
            if part.no_data and len(occurrences) > 1:
                empty.append(f"occurrence {f.occurrence if f else i}: {part.no_data}")
            if dist is None:
                dist = part
                continue
            dist.samples += part.samples
            dist.ids += part.ids
            dist.missing += part.missing
            dist.missing_ids += part.missing_ids
            if part.spans is not None:
                dist.spans = (dist.spans or 0) + part.spans
            if dist.no_data and not part.no_data:
                dist.no_data = None
        assert dist is not None
        if len(occurrences) > 1:
            dist.basis = f"{dist.basis} x occurrences"
            if empty and not dist.no_data:
                dist.no_data = "; ".join(empty)  # every occurrence must have something to judge
        return dist, empty

    dist, _ = judge_on(h)
    value = dist.stat(stat)
    passed = exp.holds(value)
    notes = []
    if dist.no_data:
        notes.append(f"no data: {dist.no_data}")
    if dist.missing:
        named_ids = list(dict.fromkeys(dist.missing_ids))
        named = ", ".join(f"{lid} ({h.served_by(lid)})" if h.served_by(lid) else lid for lid in named_ids[:10])
        more_ids = f" and {len(named_ids) - 10} more" if len(named_ids) > 10 else ""
        notes.append(f"{dist.missing} of {dist.count} {dist.basis} {_NEVER.get(measure.name, 'gave no sample')}: "
                     f"{named}{more_ids}")
    v = Verdict(phase, measure_name, exp.text, stat, value, passed, window, measure.unit, dist.summary(),
                step, "; ".join(notes), missing_ids=list(dict.fromkeys(dist.missing_ids)))
    if not (lag_rule and measure.timed and not dist.no_data):
        return v
    lag = h.lag(_lag_window(h, measure, [w for _, w in occurrences]))
    if lag <= 0:
        return v
    if measure.name in SPAN_MEASURES:
        flips = {exp.holds(judge_on(h.adjusted(d))[0].stat(stat)) for d in (-lag, lag)} != {passed}
        margin = None
    else:
        margin = _margin(exp, value)
        flips = margin <= lag
    if flips:
        why = f"as much as the margin ({format_duration(margin)}) between the value and its bound" if margin is not None \
            else "enough that the listeners' dead air, shifted by that much, judges otherwise"
        v.make_unknown(f"unknown: the listeners' event loop lagged up to {format_duration(lag)} here, {why}: "
                       "the load generator, not the system, may decide this verdict")
    return v


def check_probe(h: History, name: str, tolerance, window: Window, phase: str) -> Verdict:
    """A probe check holds in a window when it was sampled there and every sample was within tolerance.

    The tolerance is applied again to each recorded output, so a journal can be re-judged."""
    from .probes import within_tolerance

    eps = 0.05
    samples = [e for e in h.probes.get(name, []) if window.start - eps <= e.t <= window.end + eps
               and e.data.get("phase") == phase]
    ok = [("output" in e.data and within_tolerance(tolerance, e.data["output"])) for e in samples]
    failed = ok.count(False)
    note = ""
    if not samples:
        note = "no sample taken"
    elif failed:
        bad = next(e for e, good in zip(samples, ok) if not good)
        detail = bad.data.get("error") or _short_output(bad.data.get("output"))
        note = f"{failed} of {len(samples)} samples outside tolerance; first at t={bad.t:.2f}s: {detail}"
    import json as _json

    return Verdict(phase, f"probe {name}", f"tolerance {_json.dumps(tolerance)}", "failed", float(failed),
                   bool(samples) and not failed, window, "probe", {"count": len(samples), "missing": 0,
                                                                    "p50": float("nan"), "p95": float("nan"),
                                                                    "p99": float("nan"), "max": float(failed)}, None, note)


def _short_output(output) -> str:
    if isinstance(output, dict):
        parts = [f"status {output.get('status')}"]
        body = output.get("body", output.get("stdout"))
        if body not in (None, ""):
            parts.append(str(body)[:80].replace("\n", " "))
        return ", ".join(parts)
    return str(output)[:80]
