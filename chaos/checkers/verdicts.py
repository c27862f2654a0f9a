"""Verdicts: an expectation judged over a window of the history (Jepsen's checkers).

Pass, fail, or unknown: unknown is how "no data" and "the instrument's own error could flip
this" are said; neither ever passes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chaos.checkers.history import INF, Distribution, FaultSpan, History, Window, overlaps
from chaos.checkers.measures import Measure, resolve_measure
from chaos.language.expectations import Expectation, parse_expectation
from chaos.language.probes import within_tolerance
from chaos.language.units import format_duration
from chaos.timeline import method_time


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
    # Judged over the would-be window of a fault that was not injected (a dry run, a step the
    # operator skipped): reported, never counted in the run's outcome.
    skipped: bool = False

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

        return {
            "phase": self.phase,
            "step": self.step,
            "measure": self.measure,
            "expect": self.expect,
            "stat": self.stat,
            "value": clean(self.value),
            "passed": self.passed,
            "outcome": self.outcome,
            "window": [self.window.start, self.window.end],
            "unit": self.unit,
            "summary": {k: clean(v) for k, v in self.summary.items()},
            "missing": self.missing_ids,
            "note": self.note,
            "skipped": self.skipped,
        }


_NEVER = {
    "hold_music.onset": "never heard hold music",
    "hold_music.arrival": "never received hold music",
    "live.resume": "never heard the live speaker again",
    "live.arrival": "never received the live stream again",
    "reconnect_time": "never reconnected",
    "time_to_first_audio": "never heard any audio",
    "e2e_latency": "played no beep",
    "silence": "played no audio",
    "delivery_latency": "received no beep",
}


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
                if any(overlaps((s, e), w) for w in windows):
                    start, end = min(start, s), max(end, e)
    return Window(start, end)


def check(
    h: History,
    measure_name: str,
    expect: str,
    window: Window,
    phase: str,
    fault: FaultSpan | None = None,
    step: int | None = None,
    more: list[tuple[FaultSpan, Window]] | None = None,
    lag_rule: bool = True,
) -> Verdict:
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
    # Listeners the load generator lost before a window ended are not judged: what they heard
    # from their loss on is not known (it is neither the system's dead air nor silence)
    ends = max(w.end for _, w in occurrences)
    lost = lost_for(h, ends)
    if lost:
        h = h.without(lost)
    cut_short = open_at_loss(h, measure.name, [w for _, w in occurrences])

    def judge_on(hist: History, compute=measure.compute) -> tuple[Distribution, list[str]]:
        dist, empty = None, []
        for i, (f, w) in enumerate(occurrences):
            part = compute(hist, w, f)
            if part.no_data and len(occurrences) > 1:
                empty.append(f"occurrence {f.occurrence if f else i}: {part.no_data}")
            if dist is None:
                dist = part
                continue
            dist.samples += part.samples
            dist.ids += part.ids
            dist.missing += part.missing
            dist.missing_ids += part.missing_ids
            dist.left_out += part.left_out
            dist.left_out_why = dist.left_out_why or part.left_out_why
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
        notes.append(
            f"{dist.missing} of {dist.count} {dist.basis} {_NEVER.get(measure.name, 'gave no sample')}: "
            f"{named}{more_ids}"
        )
    if dist.left_out and dist.left_out_why:
        more_out = f" and {len(dist.left_out) - 10} more" if len(dist.left_out) > 10 else ""
        notes.append(f"{dist.left_out_why}: {', '.join(dist.left_out[:10])}{more_out}")
    v = Verdict(
        phase,
        measure_name,
        exp.text,
        stat,
        value,
        passed,
        window,
        measure.unit,
        dist.summary(),
        step,
        "; ".join(notes),
        missing_ids=list(dict.fromkeys(dist.missing_ids)),
    )
    if lost:
        _say_lost(v, h, lost, dist, stat, exp, decide=lag_rule)
    if cut_short and lag_rule and v.outcome != "unknown":
        _say_cut_short(v, h, cut_short, judge_on, stat, exp)
    over = [
        e for e in h.limits if any(float(e.data.get("since", e.t)) < w.end and e.t > w.start for _, w in occurrences)
    ]
    if over and v.outcome == "fail":  # a full link on the load generator's side is heard as dead air too
        e = max(over, key=lambda e: float(e.data.get("rx_bps", 0)))
        v.make_unknown(
            f"unknown: shard {e.data.get('shard', '?')} received {float(e.data.get('rx_bps', 0)) / 1e6:.1f} Mbit/s "
            f"at {method_time(e.t, h.method_start)}, over its budget of {float(e.data.get('budget_bps', 0)) / 1e6:.1f} "
            "Mbit/s (listeners.bandwidth): the load generator's own link may decide this verdict"
        )
    if lag_rule and measure.lag_alternative is not None and not dist.no_data:
        alt, _ = judge_on(h, measure.lag_alternative)
        alt_value = alt.stat(stat)
        if exp.holds(alt_value) != passed:
            v.make_unknown(
                f"unknown: {len(alt.left_out)} join(s) timed out while the listeners' event loop lagged "
                f"enough to have caused it; counted as answered, {stat}={alt_value:.4g} judges otherwise: "
                "the load generator, not the system, may decide this verdict"
            )
        return v
    if not (lag_rule and measure.timed and not dist.no_data):
        return v
    lag = h.lag(_lag_window(h, measure, [w for _, w in occurrences]))
    if lag <= 0:
        return v
    if measure.name in SPAN_MEASURES:
        early = h.clock_uncertainty(_lag_window(h, measure, [w for _, w in occurrences]))
        flips = {exp.holds(judge_on(h.adjusted(d, early))[0].stat(stat)) for d in (-lag, lag)} != {passed}
        margin = None
    else:
        margin = _margin(exp, value)
        flips = margin <= lag
    if flips:
        why = (
            f"as much as the margin ({format_duration(margin)}) between the value and its bound"
            if margin is not None
            else "enough that the listeners' dead air, shifted by that much, judges otherwise"
        )
        v.make_unknown(
            f"unknown: the listeners' event loop lagged up to {format_duration(lag)} here, {why}: "
            "the load generator, not the system, may decide this verdict"
        )
    return v


def _say_lost(
    v: Verdict, h: History, lost: set[str], dist: Distribution, stat: str, exp: Expectation, decide: bool
) -> None:
    """Name the listeners the load generator lost. A verdict they could have changed is unknown:
    judged again with each of them at its best (the lowest value seen, or 0) and at its worst
    (missing: infinity), and for `between` at values inside the range, it must come out the same
    (a `max` that fails stays failed, a p50 that fails may not). Measures whose samples are not one
    per listener cannot be bounded so. Without `decide` (guardrails: they act on what they see),
    only named."""
    shards = sorted(
        {
            f"shard {k} ({e.data.get('node') or e.data.get('host') or '?'}: {e.data.get('why', 'lost')})"
            for k, e in h.shards_lost.items()
        }
    )
    ids = sorted(lost)
    named = ", ".join(ids[:10]) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")
    text = (
        f"{len(ids)} listener(s) lost by the load generator, not judged in this window "
        f"(not the system's dead air){': ' + '; '.join(shards) if shards else ''}: {named}"
    )
    v.summary["lost_by_load_generator"] = len(ids)
    if decide and (dist.no_data or _lost_could_flip(dist, stat, exp, len(ids))):
        v.make_unknown(f"unknown: {text}")
    else:
        v.note = f"{v.note}; {text}" if v.note else text


def _lost_could_flip(dist: Distribution, stat: str, exp: Expectation, k: int) -> bool:
    if dist.basis not in ("listeners", "ears"):
        return True
    best = min([0.0, *dist.samples])
    tries = [Distribution(dist.samples + [best] * k, dist.missing), Distribution(list(dist.samples), dist.missing + k)]
    if exp.op == "between":  # a value inside the range may pass where both extremes fail
        middle = (exp.low + exp.high) / 2
        values = [exp.low, exp.high, middle]
        if stat == "mean" and k:  # the value that puts the mean mid-range
            values.append((middle * (len(dist.samples) + k) - sum(dist.samples)) / k)
        tries += [Distribution(dist.samples + [max(best, x)] * k, dist.missing) for x in values]
    return len({exp.holds(d.stat(stat)) for d in tries}) > 1


def _say_cut_short(
    v: Verdict,
    h: History,
    cut: dict[str, float],
    judge_on: Callable[[History], tuple[Distribution, list[str]]],
    stat: str,
    exp: Expectation,
) -> None:
    """Listeners lost later, in a span (dead air, or an ear's silence) that began in the window and
    was still open at the loss, are judged with the span known up to the loss (a lower bound of its
    full length); judged again with it running to the end of the run, the verdict must come out the
    same (and a range bound cannot be decided on a lower bound), else it is unknown."""
    worst, _ = judge_on(h.unlost(set(cut)))
    if exp.op != "between" and exp.holds(worst.stat(stat)) == v.passed:
        return
    ids = sorted(cut)
    named = ", ".join(f"{lid} (lost at {method_time(cut[lid], h.method_start)})" for lid in ids[:10])
    more = f" and {len(ids) - 10} more" if len(ids) > 10 else ""
    v.make_unknown(
        f"unknown: {len(ids)} listener(s) were in dead air begun in this window when the load generator "
        f"lost them, known only up to the loss: {named}{more}"
    )


KNOWN_BEFORE_LOSS = 0.3
"""s: how long before its last batch a lost listener's events may still be incomplete: a stall
begun there is recorded when the swarm's watchdog (every 0.25 s) sees it one Opus frame (20 ms)
dry; the event loop's lag adds to it."""


def lost_for(h: History, ends: float) -> set[str]:
    """The lost listeners a window ending at `ends` cannot judge: lost before it ended, or within
    KNOWN_BEFORE_LOSS plus the swarm's lag after it (what happened just before a loss may not have
    reached the last batch)."""
    if not h.lost:
        return set()
    margin = KNOWN_BEFORE_LOSS + h.lag(Window(max(0.0, ends - 1.0), ends))
    return {lid for lid, t in h.lost.items() if t - margin < ends}


FULL_LENGTH = ("dead_air", "silence")  # measures whose span is counted at its full length, past the window


def open_at_loss(h: History, measure: str, windows: list[Window]) -> dict[str, float]:
    """For the measures that count a span at its full length (dead_air, silence): the listeners
    lost later while in such a span overlapping one of the windows, with when. History ends their
    span at the loss: its length so far is a lower bound."""
    if measure not in FULL_LENGTH or not h.lost:
        return {}
    out = {}
    for lid, t in h.lost.items():
        spans = h.silence_spans(lid) if measure == "silence" else h.dead_air_spans().get(lid, [])
        if any(end >= t and any(overlaps((start, end), w) for w in windows) for start, end in spans):
            out[lid] = t
    return out


def check_probe(h: History, name: str, tolerance, window: Window, phase: str) -> Verdict:
    """A probe check holds in a window when it was sampled there and every sample was within tolerance.

    The tolerance is applied again to each recorded output, so a journal can be re-judged."""

    eps = 0.05
    samples = [
        e
        for e in h.probes.get(name, [])
        if window.start - eps <= e.t <= window.end + eps and e.data.get("phase") == phase
    ]
    ok = [("output" in e.data and within_tolerance(tolerance, e.data["output"])) for e in samples]
    failed = ok.count(False)
    note = ""
    if not samples:
        note = "no sample taken"
    elif failed:
        bad = next(e for e, good in zip(samples, ok) if not good)
        detail = bad.data.get("error") or _short_output(bad.data.get("output"))
        note = f"{failed} of {len(samples)} samples outside tolerance; first at {method_time(bad.t, h.method_start)}: {detail}"
    import json as _json

    return Verdict(
        phase,
        f"probe {name}",
        f"tolerance {_json.dumps(tolerance)}",
        "failed",
        float(failed),
        bool(samples) and not failed,
        window,
        "probe",
        {
            "count": len(samples),
            "missing": 0,
            "p50": float("nan"),
            "p95": float("nan"),
            "p99": float("nan"),
            "max": float(failed),
        },
        None,
        note,
    )


def _short_output(output) -> str:
    if isinstance(output, dict):
        parts = [f"status {output.get('status')}"]
        body = output.get("body", output.get("stdout"))
        if body not in (None, ""):
            parts.append(str(body)[:80].replace("\n", " "))
        return ", ".join(parts)
    return str(output)[:80]
