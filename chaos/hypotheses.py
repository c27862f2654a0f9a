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
from typing import Callable, Iterable

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
    """Samples of a measure; `missing` counts samples that never happened (infinite)."""

    samples: list[float] = field(default_factory=list)
    missing: int = 0
    empty_value: float = 0.0  # what max/percentiles are when nothing was sampled (0 dead air)

    @property
    def count(self) -> int:
        return len(self.samples) + self.missing

    def _all(self) -> list[float]:
        return sorted(self.samples) + [INF] * self.missing

    def stat(self, name: str) -> float:
        values = self._all()
        if name == "count":
            return float(len(self.samples))
        if not values:
            return self.empty_value
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

    def summary(self) -> dict[str, float | int]:
        return {"count": self.count, "missing": self.missing, "p50": self.stat("p50"), "p95": self.stat("p95"),
                "p99": self.stat("p99"), "max": self.stat("max")}


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
            elif ev.kind == "server.sample":
                self.server.append(ev)
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

    def spans_of_step(self, step: int) -> list[FaultSpan]:
        return sorted((f for f in self.faults.values() if f.step == step), key=lambda f: f.start)

    @property
    def listeners(self) -> list[str]:
        return sorted(self.by_listener)

    def dead_air_spans(self) -> dict[str, list[tuple[float, float]]]:
        """Per listener, the spans with nothing to play (stalls, and the wait before any audio)."""
        if self._spans is None:
            spans: dict[str, list[tuple[float, float]]] = {}
            for lid, evs in self.by_listener.items():
                out: list[tuple[float, float]] = []
                first_join = next((e.t for e in evs if e.kind == "listener.join"), None)
                first_audio = next((e.t for e in evs if e.kind == "listener.first_audio"), None)
                if first_join is not None and first_audio is None:
                    out.append((first_join, self.end))  # never heard a thing
                open_at = None
                for e in evs:
                    if e.kind == "listener.stall_start":
                        open_at = e.t if open_at is None else open_at
                    elif e.kind == "listener.stall_end":
                        start = e.t - float(e.data.get("duration", 0.0))
                        out.append((start, e.t))
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

    def title_at(self, lid: str, t: float) -> str | None:
        """What the listener was hearing at t: the title of its stream, None if disconnected."""
        title = None
        for e in self.by_listener.get(lid, ()):
            if e.t > t:
                break
            if e.kind == "listener.stream":
                title = e.data.get("title")
            elif e.kind == "listener.disconnect":
                title = None
        return title


# ---------------------------------------------------------------------------------------------
# measures


@dataclass(frozen=True)
class Measure:
    name: str
    unit: str  # "duration" or "ratio"
    better: str  # "lower" or "higher": decides the default statistic (the worst case)
    scope: str  # "window"; "fault_start" / "fault_end": measured from a step's fault
    compute: Callable[["History", Window, "FaultSpan | None"], Distribution]
    doc: str

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


def _clip(spans: Iterable[tuple[float, float]], w: Window) -> list[float]:
    return [min(e, w.end) - max(s, w.start) for s, e in spans if e > w.start and s < w.end and min(e, w.end) > max(s, w.start)]


def _dead_air(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
    d = Distribution()
    for spans in h.dead_air_spans().values():
        d.samples.extend(_clip(spans, w))
    return d


def _stall_ratio(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
    d = Distribution()
    if w.length <= 0:
        return d
    for lid, spans in h.dead_air_spans().items():
        d.samples.append(sum(_clip(spans, w)) / w.length)
    return d


def _connected_ratio(h: History, w: Window, _f: FaultSpan | None, step: float = 0.1) -> Distribution:
    """Share of listeners with audio to play, sampled every 100 ms over the window."""
    d = Distribution(empty_value=float("nan"))
    n = len(h.by_listener)
    if n == 0 or w.length <= 0:
        return d
    boundaries: list[tuple[float, int]] = []
    for lid, spans in h.dead_air_spans().items():
        for s, e in spans:
            boundaries += [(s, 1), (e, -1)]
    for lid, (s, e) in h.prejoin().items():
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
        i = bisect_right(times, t)
        silent = prefix[i - 1] if i else 0
        d.samples.append(1.0 - silent / n)
        t += step
    return d


def _time_to_first_audio(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
    d = Distribution()
    for lid, (join, first) in h.prejoin().items():
        if w.start <= join <= w.end:
            d.samples.append(first - join)
    for lid, evs in h.by_listener.items():
        if lid not in h.prejoin():
            join = next((e.t for e in evs if e.kind == "listener.join"), None)
            if join is not None and w.start <= join <= w.end:
                d.missing += 1
    return d


def _reconnect_time(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
    """Connection loss seen by the client -> first audio on a new connection (backoff included)."""
    d = Distribution()
    for evs in h.by_listener.values():
        lost_at = None
        for e in evs:
            if e.kind == "listener.disconnect" and e.data.get("reason") != "closed":
                if lost_at is None and w.start <= e.t <= w.end:
                    lost_at = e.t
            elif e.kind == "listener.first_audio" and lost_at is not None:
                d.samples.append(e.t - lost_at)
                lost_at = None
        if lost_at is not None:
            d.missing += 1
    return d


def _time_to_title(title: str, anchor: str) -> Callable[[History, Window, FaultSpan | None], Distribution]:
    def compute(h: History, w: Window, fault: FaultSpan | None) -> Distribution:
        d = Distribution()
        t0 = (fault.start if anchor == "start" else fault.end) if fault else w.start
        for lid, evs in h.by_listener.items():
            if h.title_at(lid, t0) == title:
                d.samples.append(0.0)
                continue
            hit = next((e.t for e in evs if e.kind == "listener.stream" and e.t >= t0
                        and e.t <= w.end and e.data.get("title") == title), None)
            if hit is None:
                d.missing += 1
            else:
                d.samples.append(hit - t0)
        return d

    return compute


def _in(w: Window, t: float) -> bool:
    return w.start <= t <= w.end


def _e2e_latency(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
    return Distribution([float(e.data["latency"]) for evs in h.ears.values() for e in evs
                         if e.kind == "ear.beep" and _in(w, e.t)], empty_value=float("nan"))


def _delivery_latency(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
    return Distribution([float(e.data["delivery"]) for evs in h.ears.values() for e in evs
                         if e.kind == "ear.beep" and "delivery" in e.data and _in(w, e.t)], empty_value=float("nan"))


def _silence(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
    d = Distribution()
    for lid in h.ears:
        d.samples.extend(_clip(h.silence_spans(lid), w))
    return d


def _join_latency(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
    return Distribution([float(e.data["latency"]) for evs in h.by_listener.values() for e in evs
                         if e.kind == "listener.joined" and _in(w, e.t)], empty_value=float("nan"))


def _join_success_ratio(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
    ok = failed = 0
    for evs in h.by_listener.values():
        for e in evs:
            if e.kind == "listener.joined" and _in(w, e.t):
                ok += 1
            elif e.kind == "listener.join_failed" and _in(w, e.t):
                failed += 1
    return Distribution([ok / (ok + failed)] if ok + failed else [], empty_value=float("nan"))


def _server(field: str, kind: str, combine: Callable[[list[float]], float]):
    """Per sampling round (server.sample events share a `round`), combine one field over nodes."""
    def compute(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
        rounds: dict[int, list[float]] = defaultdict(list)
        for e in h.server:
            if e.data.get("probe") == kind and _in(w, e.t) and field in e.data:
                rounds[int(e.data["round"])].append(float(e.data[field]))
        return Distribution([combine(v) for v in rounds.values()], empty_value=float("nan"))
    return compute


MEASURES: dict[str, Measure] = {m.name: m for m in [
    Measure("dead_air", "duration", "lower", "window", _dead_air,
            "spans in which a listener had nothing to play (one sample per span)"),
    Measure("stall_ratio", "ratio", "lower", "window", _stall_ratio,
            "dead air / window length, one sample per listener"),
    Measure("listeners.connected_ratio", "ratio", "higher", "window", _connected_ratio,
            "share of listeners with audio to play, sampled every 100 ms"),
    Measure("time_to_first_audio", "duration", "lower", "window", _time_to_first_audio,
            "join sent -> first audio page, for listeners that joined in the window"),
    Measure("reconnect_time", "duration", "lower", "window", _reconnect_time,
            "connection loss detected -> first audio after reconnecting (backoff included)"),
    Measure("hold_music.onset", "duration", "lower", "fault_start", _time_to_title("hold", "start"),
            "fault start -> listener hears hold music (0 if already on hold)"),
    Measure("live.resume", "duration", "lower", "fault_end", _time_to_title("live", "end"),
            "fault end -> listener hears the live speaker again (0 if never left)"),
    Measure("e2e_latency", "duration", "lower", "window", _e2e_latency,
            "a beep leaves the microphone -> a golden ear plays it (one sample per beep heard)"),
    Measure("delivery_latency", "duration", "lower", "window", _delivery_latency,
            "a beep leaves the microphone -> its audio reaches a golden ear (network and servers only)"),
    Measure("silence", "duration", "lower", "window", _silence,
            "digital silence (< -50 dBFS) golden ears played (one sample per span; also dead air)"),
    Measure("join_latency", "duration", "lower", "window", _join_latency,
            "join request sent -> room-api answered with a stream URL"),
    Measure("join_success_ratio", "ratio", "higher", "window", _join_success_ratio,
            "joins answered with a stream URL / joins sent"),
    Measure("server.icecast_listeners", "count", "higher", "window", _server("listeners", "icecast", sum),
            "listeners Icecast reports on all its nodes, per sample (once a second)"),
    Measure("server.slow_listeners", "count", "lower", "window", _server("slow_listeners", "icecast", sum),
            "listeners Icecast counts as slow (lagging its queue), per sample"),
    Measure("server.lb_servers_up", "count", "higher", "window", _server("up", "haproxy", sum),
            "edges HAProxy considers up, per sample"),
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
    """One expectation judged over one window."""

    phase: str  # before, during, after, or step
    measure: str
    expect: str
    stat: str
    value: float
    passed: bool
    window: Window
    unit: str
    summary: dict[str, float | int]
    step: int | None = None
    note: str = ""

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
                "stat": self.stat, "value": clean(self.value), "passed": self.passed,
                "window": [self.window.start, self.window.end], "unit": self.unit,
                "summary": {k: clean(v) for k, v in self.summary.items()}, "note": self.note}


def check(h: History, measure_name: str, expect: str, window: Window, phase: str,
          fault: FaultSpan | None = None, step: int | None = None,
          more: list[tuple[FaultSpan, Window]] | None = None) -> Verdict:
    """Judge one expectation over one window of the history (or, for a repeating step, over the
    windows of all its occurrences, their samples pooled)."""
    measure, name_stat = resolve_measure(measure_name)
    exp = parse_expectation(expect)
    stat = exp.stat or name_stat or measure.default_stat
    dist = measure.compute(h, window, fault)
    for f, w in more or []:
        extra = measure.compute(h, w, f)
        dist.samples.extend(extra.samples)
        dist.missing += extra.missing
    value = dist.stat(stat)
    passed = exp.holds(value)
    note = ""
    if dist.missing:
        what = {"hold_music.onset": "never heard hold music", "live.resume": "never heard the live speaker again",
                "reconnect_time": "never reconnected", "time_to_first_audio": "never heard any audio"}
        note = f"{dist.missing} of {dist.count} listeners {what.get(measure.name, 'gave no sample')}"
    return Verdict(phase, measure_name, exp.text, stat, value, passed, window, measure.unit, dist.summary(),
                   step, note)


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
