"""Measures (SLIs): functions of the history, each defined per listener (or ear) first.

A measure yields a distribution (one sample per listener, or per dead-air span); an
expectation compares one statistic of it with a bound. A listener that never reached the state
a measure waits for (never heard hold music, never reconnected) is a missing sample, counted as
infinity. Each measure registers its name with the language (chaos.language.registry), which
is how experiments may name it without importing this module.

About 500 lines on purpose: each measure's written definition (what the README's table and
`deadair list --measures` print) sits in the table at the end beside the function that
computes it, so a reader checks the one against the other in one file.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from chaos.checkers.history import Distribution, FaultSpan, History, Window, clip, merge_spans, overlaps
from chaos.language import registry

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
    compute: Callable[[History, Window, FaultSpan | None], Distribution]
    doc: str  # one line
    definition: str = ""  # per subject, window rule
    no_data: str = ""  # when there is nothing to judge (the verdict fails, saying so)
    timed: bool = True  # computed from listeners' clocks: the swarm's own lag can blur it
    ears: bool = False  # needs golden ears
    # what the measure would be had the swarm's lag not decided some samples (join_success_ratio:
    # timeouts the lag may have caused counted as answered); the verdict is unknown if it flips
    lag_alternative: Callable[[History, Window, FaultSpan | None], Distribution] | None = None

    @property
    def default_stat(self) -> str:
        return "max" if self.better == "lower" else "min"


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
    d = _per_listener(h, w, lambda lid: max((e - s for s, e in spans.get(lid, ()) if overlaps((s, e), w)), default=0.0))
    d.spans = sum(1 for lid in d.ids for sp in spans.get(lid, ()) if overlaps(sp, w))
    return d


def _dead_air_total(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
    spans = h.dead_air_spans()
    d = _per_listener(h, w, lambda lid: sum(clip(spans.get(lid, ()), w)))
    d.spans = sum(1 for lid in d.ids for sp in spans.get(lid, ()) if overlaps(sp, w))
    return d


def _stall_ratio(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
    spans = h.dead_air_spans()

    def ratio(lid: str) -> float | None:
        listening = _listening(h, lid, w)
        return sum(clip(spans.get(lid, ()), w)) / listening if listening > 0 else None

    d = _per_listener(h, w, ratio)
    d.spans = sum(1 for lid in d.ids for sp in spans.get(lid, ()) if overlaps(sp, w))
    return d


def _connected_ratio(h: History, w: Window, _f: FaultSpan | None, step: float = 0.1) -> Distribution:
    """Share of listeners with audio to play, sampled every 100 ms over the window."""
    d = Distribution(basis="samples (100 ms)")
    joins = sorted(
        t
        for lid in h.by_listener
        if (t := next((e.t for e in h.by_listener[lid] if e.kind == "listener.join"), None)) is not None
    )
    if not joins or w.length <= 0 or joins[0] > w.end:
        d.no_data = "no listeners" if not joins or joins[0] > w.end else "an empty window"
        return d
    boundaries: list[tuple[float, int]] = []
    prejoin = h.prejoin()  # waiting for its first audio: not dead air, but nothing to play either
    for lid, spans in h.dead_air_spans().items():
        for s, e in merge_spans(spans + ([prejoin[lid]] if lid in prejoin else [])):
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


def _crowd_only(h: History, f: FaultSpan | None) -> Callable[[str], bool]:
    """Under a join step, only its crowd (ids J<step>-) counts for the measures of joins."""
    prefix = h.crowd(f)
    return (lambda lid: lid.startswith(prefix)) if prefix else (lambda lid: True)


def _time_to_first_audio(h: History, w: Window, f: FaultSpan | None) -> Distribution:
    d = Distribution()
    prejoin = h.prejoin()
    counts = _crowd_only(h, f)
    for lid, evs in sorted(h.by_listener.items()):
        join = next((e.t for e in evs if e.kind == "listener.join"), None)
        if join is None or not w.start <= join <= w.end or not counts(lid):
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


def _time_to_title(
    title: str, anchor: str, played: bool
) -> Callable[[History, Window, FaultSpan | None], Distribution]:
    """Onset (anchor start): from the fault's start, or from the listener's first join if that
    came later (a listener that joined during the fault waited for nothing before it), to the
    first time the listener hears `title` (0 if it already does); every listener that joined by
    the window's end. Resume (anchor end): from the fault's end to when it hears `title` for
    good: after the last other stream that still reached it after the end (a buffered fault
    plays out late), 0 only if it hears `title` at the end and nothing else comes after; the
    listeners that joined by the fault's end. Onset under a fault: a listener whose first audio
    came after the fault's end could not hear it in the fault, and is left out (named)."""

    def compute(h: History, w: Window, fault: FaultSpan | None) -> Distribution:
        d = Distribution()
        anchor_t = (fault.start if anchor == "start" else fault.end) if fault else w.start
        for lid in h.listeners_by(w.end if anchor == "start" else anchor_t):
            first_audio = h.first_audio(lid)
            if anchor == "start" and fault is not None and first_audio is not None and first_audio > fault.end:
                d.left_out.append(f"{lid} (first audio {first_audio - fault.end:.1f} s after the fault's end)")
                d.left_out_why = f"joined too late to hear {'hold music' if title == 'hold' else title}"
                continue
            t0 = anchor_t
            joined = h.first_join(lid)
            if anchor == "start" and joined is not None:
                t0 = max(anchor_t, joined)
            streams = [
                (h.stream_time(e, played), e.data.get("title"))
                for e in h.by_listener[lid]
                if e.kind == "listener.stream"
            ]
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
            d.no_data = "no listeners" if not d.left_out else "every listener joined too late to hear it"
        return d

    return compute


def _in(w: Window, t: float) -> bool:
    return w.start <= t <= w.end


def _per_ear(field_name: str) -> Callable[[History, Window, FaultSpan | None], Distribution]:
    """Per golden ear: its worst beep in the window (an ear that heard none is missing)."""

    def compute(h: History, w: Window, _f: FaultSpan | None) -> Distribution:
        d = Distribution(basis="ears")
        for lid, evs in sorted(h.ears.items()):
            values = [
                float(e.data[field_name]) for e in evs if e.kind == "ear.beep" and field_name in e.data and _in(w, e.t)
            ]
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
    """Per golden ear that joined by the window's end: its longest played silence overlapping the
    window; 0 if it played audio by then and none of it was silence; missing (named) if it played
    no audio by the window's end: an ear that heard nothing heard no silence either, and 0 would
    pass on no data."""
    d = Distribution(basis="ears")
    for lid in sorted(h.ears):
        if not any(e.kind == "listener.join" and e.t <= w.end for e in h.by_listener.get(lid, ())):
            continue  # not listening yet
        first = h.first_audio(lid)
        if first is None or first > w.end:
            d.miss(lid)
            continue
        spans = [sp for sp in h.silence_spans(lid) if overlaps(sp, w)]
        d.add(lid, max((e - s for s, e in spans), default=0.0))
    d.spans = sum(1 for lid in h.ears for sp in h.silence_spans(lid) if overlaps(sp, w))
    if not h.ears:
        d.no_data = "no golden ears (listeners.ears)"
    elif not d.count:
        d.no_data = "no ear was listening in the window"
    return d


def _join_latency(h: History, w: Window, f: FaultSpan | None) -> Distribution:
    d = Distribution()
    counts = _crowd_only(h, f)
    for lid, evs in sorted(h.by_listener.items()):
        if not counts(lid):
            continue
        values = [
            float(e.data["latency"])
            for e in evs
            if e.kind in ("listener.joined", "listener.join_failed") and _in(w, e.t) and "latency" in e.data
        ]
        if values:
            d.add(lid, max(values))
    if not d.count:
        d.no_data = "no join answered or failed in the window"
    return d


def _join_success(excuse_lag: bool) -> Callable[[History, Window, FaultSpan | None], Distribution]:
    """Joins answered / joins answered or failed in the window (under a join step, its crowd's).
    With `excuse_lag`: what it would be if every timeout the swarm's lag may have caused had been
    answered: a timeout whose latency minus the worst lag around it is under the join timeout
    (recorded with it; a journal without it: any lag excuses it). Those are `left_out`."""

    def compute(h: History, w: Window, f: FaultSpan | None) -> Distribution:
        ok = failed = 0
        excused: list[str] = []
        counts = _crowd_only(h, f)
        for lid, evs in h.by_listener.items():
            if not counts(lid):
                continue
            for e in evs:
                if e.kind == "listener.joined" and _in(w, e.t):
                    ok += 1
                elif e.kind == "listener.join_failed" and _in(w, e.t):
                    latency = float(e.data.get("latency", 0.0))
                    timeout = float(e.data.get("timeout", latency))
                    lag = h.lag(Window(e.t - latency, e.t)) if excuse_lag and e.data.get("reason") == "timeout" else 0
                    if lag > 0 and latency - lag < timeout:
                        ok += 1
                        excused.append(lid)
                    else:
                        failed += 1
        d = Distribution([ok / (ok + failed)] if ok + failed else [], basis="joins (one ratio)", left_out=excused)
        if not ok + failed:
            d.no_data = "no join in the window"
        return d

    return compute


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


_SPANS = (
    "Dead-air spans: every gap in the listener's playout however short (a stall, or a slip "
    "under one Opus frame), digital silence a golden ear played, and from its join on if it "
    "never heard anything."
)
BUILTIN: dict[str, Measure] = {
    m.name: m
    for m in [
        Measure(
            "dead_air",
            "duration",
            "lower",
            "window",
            _dead_air,
            "per listener: its longest dead-air span that overlaps the window (full length)",
            "Per listener, the longest dead-air span overlapping the window, counted at its full length "
            "in every window it overlaps (a 1.8 s span across the end of a fault is 1.8 s there and "
            "after). 0 for a listener with none. " + _SPANS,
            "no listeners",
        ),
        Measure(
            "dead_air.total",
            "duration",
            "lower",
            "window",
            _dead_air_total,
            "per listener: all its dead air inside the window, every slip included",
            "Per listener, the sum of its dead-air spans clipped to the window. " + _SPANS,
            "no listeners",
        ),
        Measure(
            "stall_ratio",
            "ratio",
            "lower",
            "window",
            _stall_ratio,
            "per listener: dead_air.total / its listening time in the window",
            "Per listener, its dead air inside the window divided by the time in the window since it "
            "first joined. Note: the `during` window is the whole method; to judge a fault, put the "
            "expectation under its step.",
            "no listeners",
        ),
        Measure(
            "listeners.connected_ratio",
            "ratio",
            "higher",
            "window",
            _connected_ratio,
            "share of listeners with audio to play, sampled every 100 ms",
            "Every 100 ms of the window, the share of listeners not in dead air and not waiting for "
            "their first audio; one sample per instant.",
            "no listeners",
        ),
        Measure(
            "time_to_first_audio",
            "duration",
            "lower",
            "window",
            _time_to_first_audio,
            "per listener joining in the window: join sent -> first audio heard",
            "Per listener whose first join was sent in the window (under a join step, its crowd's "
            "listeners only): seconds to the first audio it hears: its first audio page, or with "
            "`listeners.prebuffer`, the page that fills the prebuffer and starts playback; one that never "
            "heard any is missing (infinite) and named.",
            "no listener joined in the window",
        ),
        Measure(
            "reconnect_time",
            "duration",
            "lower",
            "window",
            _reconnect_time,
            "per listener that lost its connection in the window: its longest loss -> audio again",
            "Per listener that lost its connection in the window (the client saw a close, reset or "
            "timeout): its longest time from a loss to the first audio on a new connection, backoff "
            "included; one still without audio is missing and named.",
            "no listener lost its connection in the window",
        ),
        Measure(
            "hold_music.onset",
            "duration",
            "lower",
            "fault_start",
            _time_to_title("hold", "start", True),
            "per listener: fault start (or its later first join) -> its player plays hold music",
            "Per listener, from the fault's start (or from its first join, if it joined later) to when "
            "its player reaches the first hold-music audio (after what it still had buffered); every "
            "listener that joined by the window's end; missing (named) if that never happens in the window. "
            "A listener whose first audio came after the fault's end is left out (it could not hear hold "
            "music in the fault) and named in the verdict's note. Only under a fault's step.",
            "no listeners",
        ),
        Measure(
            "hold_music.arrival",
            "duration",
            "lower",
            "fault_start",
            _time_to_title("hold", "start", False),
            "per listener: fault start -> hold music's first page arrives",
            "As hold_music.onset, at the arrival of the page instead of its playback (the same listeners left out).",
            "no listeners",
        ),
        Measure(
            "live.resume",
            "duration",
            "lower",
            "fault_end",
            _time_to_title("live", "end", True),
            "per listener: fault end -> its player plays the live speaker again (0 if it never left)",
            "Per listener, from the fault's end to when its player reaches live audio again; missing "
            "(named) if never in the window. Only under a fault's step.",
            "no listeners",
        ),
        Measure(
            "live.arrival",
            "duration",
            "lower",
            "fault_end",
            _time_to_title("live", "end", False),
            "per listener: fault end -> the live stream's first page arrives again",
            "As live.resume, at the arrival of the page instead of its playback.",
            "no listeners",
        ),
        Measure(
            "e2e_latency",
            "duration",
            "lower",
            "window",
            _per_ear("latency"),
            "per golden ear: its worst beep, mic -> played",
            "Per golden ear, the largest delay between a "
            "beep leaving the microphone and the ear playing it, over the beeps it played in the window; "
            "an ear that played none is missing.",
            "no golden ears, or none listening",
            ears=True,
        ),
        Measure(
            "delivery_latency",
            "duration",
            "lower",
            "window",
            _per_ear("delivery"),
            "per golden ear: its worst beep, mic -> received",
            "As e2e_latency, to the beep's arrival (network and servers only).",
            "no golden ears, or none listening",
            ears=True,
        ),
        Measure(
            "silence",
            "duration",
            "lower",
            "window",
            _silence,
            "per golden ear: its longest digital silence (< -50 dBFS) overlapping the window",
            "Per golden ear that joined by the window's end, its longest span of played digital silence "
            "overlapping the window, full length; 0 for an ear that played audio by then and no silence; "
            "an ear that played no audio by the window's end is missing (infinite) and named. Silence is "
            "dead air too.",
            "no golden ears, or none listening",
            ears=True,
        ),
        Measure(
            "join_latency",
            "duration",
            "lower",
            "window",
            _join_latency,
            "per listener: its slowest join answer in the window",
            "Per listener, its slowest join request answered (or refused) in the window (under a join "
            "step, its crowd's listeners only).",
            "no join answered or failed in the window",
        ),
        Measure(
            "join_success_ratio",
            "ratio",
            "higher",
            "window",
            _join_success(False),
            "joins answered with a stream URL / joins sent",
            "All joins answered with a stream URL in the window over all joins answered or failed in it "
            "(one sample); under a join step, its crowd's joins only. Unknown if counting every timeout "
            "the swarm's lag may have caused (latency minus the worst lag around it under the join "
            "timeout) as answered flips the verdict.",
            "no join in the window",
            # a ratio of counts: the lag rule's margin (value to bound, in seconds) means nothing here,
            # and made a perfect 1.0 against ">= 0.99" unknown whenever the swarm lagged 10 ms; the
            # lag is judged on the timeouts instead (lag_alternative)
            timed=False,
            lag_alternative=_join_success(True),
        ),
        Measure(
            "server.icecast_listeners",
            "count",
            "higher",
            "window",
            _server("listeners", "icecast", sum),
            "listeners Icecast reports on all its nodes, per sample (once a second)",
            "Per sampling round, the listeners every Icecast node reports, summed.",
            "no Icecast sample",
            timed=False,
        ),
        Measure(
            "server.slow_listeners",
            "count",
            "lower",
            "window",
            _server("slow_listeners", "icecast", sum),
            "listeners Icecast counts as slow (lagging its queue), per sample",
            "Per sampling round, Icecast's slow listeners, summed over nodes.",
            "no Icecast sample",
            timed=False,
        ),
        Measure(
            "server.lb_servers_up",
            "count",
            "higher",
            "window",
            _server("up", "haproxy", sum),
            "edges HAProxy considers up, per sample",
            "Per sampling round, HAProxy's servers up.",
            "no HAProxy sample",
            timed=False,
        ),
    ]
}
for _m in BUILTIN.values():
    registry.MEASURES.register(_m.name, _m)


def measures() -> dict[str, Measure]:
    """Every registered measure (the built-in ones and any plugin's), in registration order."""
    return {name: cast(Measure, m) for name, m in registry.MEASURES.items()}


def resolve_measure(name: str) -> tuple[Measure, str | None]:
    """`dead_air.max` -> (dead_air, "max"); KeyError for a name no measure has."""
    measure, stat = registry.resolve_measure(name)
    return cast(Measure, measure), stat
