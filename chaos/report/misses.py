"""Who missed a verdict, and which listeners get a lane of their own in the report.

A verdict judges a statistic across listeners; a person reviewing it wants names. A listener
"missed" when its own value breaks the verdict's bound (it heard hold music after 2 s when the
expectation was `p95 < 2s`) or it never reached the awaited state at all (the summary's
`missing`): recomputed from the journal with the verdict's own measure and windows, so the
names agree with the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chaos.checkers.history import FaultSpan, History, Window
from chaos.checkers.measures import resolve_measure
from chaos.checkers.states import ListenerStates
from chaos.language.expectations import parse_expectation

PER_SUBJECT = ("listeners", "ears")  # bases whose samples are named subjects
COMPARE_UP_TO = 4  # ordinary listeners are added for comparison until there are this many lanes


@dataclass(frozen=True)
class Miss:
    subject: str  # a listener id
    value: float | None  # its own value; None: it never reached the state (missing)
    served_by: str | None


def _windows(h: History, v: dict[str, Any], scope: str) -> list[tuple[FaultSpan | None, Window]]:
    """The windows the verdict was judged over: its own, and for a repeating step each
    occurrence's, placed the way the runner's judging places them."""
    w0 = Window(*v["window"])
    if v.get("phase") != "step" or v.get("step") is None:
        return [(None, w0)]
    spans = h.spans_of_step(int(v["step"]))
    if not spans:
        return [(None, w0)]
    s0 = spans[0]
    if scope == "fault_end":
        return [(s, Window(s.end, s.end + (w0.end - s0.end))) for s in spans]
    if scope == "fault_start":
        if abs(w0.end - s0.end) < 1e-6:
            return [(s, Window(s.start, s.end)) for s in spans]
        return [(s, Window(s.start, s.start + (w0.end - s0.start))) for s in spans]
    return [(s, Window(s.start, s.end + (w0.end - s0.end))) for s in spans]


def misses(h: History, v: dict[str, Any]) -> list[Miss]:
    """The listeners (or ears) that missed a verdict: missing ones first, then by how far off."""
    if v.get("unit") == "probe" or v.get("phase") == "abort":
        return []
    try:
        measure, _ = resolve_measure(v["measure"])
        exp = parse_expectation(v["expect"])
    except (KeyError, ValueError):
        return []
    higher_is_worse = exp.op in ("<", "<=", "between", "==", "!=")
    out: dict[str, Miss] = {lid: Miss(lid, None, h.served_by(lid)) for lid in v.get("missing") or []}
    for fault, w in _windows(h, v, measure.scope):
        dist = measure.compute(h, w, fault)
        if dist.basis not in PER_SUBJECT:
            continue
        for lid in dist.missing_ids:
            out[lid] = Miss(lid, None, h.served_by(lid))
        for lid, value in zip(dist.ids, dist.samples):
            if exp.holds(value):
                continue
            had = out.get(lid)
            if had is None or (had.value is not None and (value > had.value) == higher_is_worse):
                out[lid] = Miss(lid, value, h.served_by(lid))
    return sorted(
        out.values(),
        key=lambda m: (m.value is not None, -(m.value or 0.0) if higher_is_worse else (m.value or 0.0), m.subject),
    )


@dataclass(frozen=True)
class Lane:
    listener: str
    why: str


def choose_lanes(h: History, states: ListenerStates, missed: dict[str, list[Miss]], limit: int = 8) -> list[Lane]:
    """A few listeners worth a lane: golden ears first, then those that missed a verdict, then the
    most silent (dead air, reconnecting, gone), then ordinary ones for comparison, one per server."""
    lanes: dict[str, str] = {}
    for lid in sorted(h.ears):
        lanes.setdefault(lid, "golden ear")
    for name, ms in missed.items():
        for m in ms:
            lanes.setdefault(m.subject, f"missed {name}")
    silent = {
        lid: sum(states.time_in(lid, s) for s in ("dead_air", "reconnecting", "gone")) for lid in states.stretches
    }
    for lid in sorted(silent, key=lambda lid: (-silent[lid], lid)):
        if silent[lid] > 0:
            lanes.setdefault(lid, f"most silent ({silent[lid]:.2f} s without audio)")
    servers: set[str | None] = set()
    for lid in sorted(states.stretches):  # a few ordinary listeners, one per server that served them
        server = h.served_by(lid)
        if len(lanes) >= min(limit, COMPARE_UP_TO) or server in servers:
            continue
        servers.add(server)
        lanes.setdefault(lid, "for comparison" + (f" (served by {server})" if server else ""))
    return [Lane(lid, why) for lid, why in list(lanes.items())[:limit]]
