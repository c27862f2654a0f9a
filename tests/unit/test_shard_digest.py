"""Per-listener digests (chaos.listen.shards.digest) keep every fact a measure reads: every
registered measure yields the same distribution, over any window and fault span, from a history
of full events and from the same history shipped as digests (connection attempts, retries and
title switches dropped). Generated histories: Hypothesis."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from chaos.checkers.history import FaultSpan, History, Window
from chaos.checkers.measures import measures
from chaos.listen.shards.digest import NOT_SHIPPED, Digester, Undigester
from chaos.timeline import Event

REASONS = ["eof", "reset", "timeout", "refused", "closed", "http_404"]


@st.composite
def listener_events(draw, lid: str) -> list[Event]:
    """One listener's life: join (through room-api or not), answers, connections, audio, stalls,
    slips, stream switches, disconnects and retries, in time order."""
    t = draw(st.floats(0, 5))
    out = [Event(t, "listener.join", lid, {"attempt": 0, **({"ear": True} if lid.startswith("E") else {})})]
    for _ in range(draw(st.integers(1, 8))):
        t += draw(st.floats(0.001, 3))
        kind = draw(
            st.sampled_from(
                [
                    "joined",
                    "join_failed",
                    "connect",
                    "connected",
                    "first_audio",
                    "stall",
                    "slip",
                    "stream",
                    "disconnect",
                    "reconnect",
                    "switch",
                    "gave_up",
                    "lost_pages",
                ]
            )
        )
        if kind == "joined":
            out.append(Event(t, "listener.joined", lid, {"status": 200, "latency": draw(st.floats(0, 2))}))
        elif kind == "join_failed":
            out.append(
                Event(
                    t,
                    "listener.join_failed",
                    lid,
                    {
                        "status": draw(st.sampled_from([0, 503])),
                        "reason": draw(st.sampled_from(["timeout", "full", ""])),
                        "latency": draw(st.floats(0, 6)),
                        "timeout": 5.0,
                    },
                )
            )
        elif kind == "connect":
            out.append(Event(t, "listener.connect", lid, {"attempt": 1}))
        elif kind == "connected":
            out.append(
                Event(
                    t,
                    "listener.connected",
                    lid,
                    {"attempt": 1, "status": 200, "server": draw(st.sampled_from(["", "edge-1", "edge-2"]))},
                )
            )
        elif kind == "first_audio":
            out.append(
                Event(t, "listener.first_audio", lid, {"attempt": 0, "title": draw(st.sampled_from(["live", "hold"]))})
            )
        elif kind == "stall":
            out.append(Event(t, "listener.stall_start", lid, {}))
            d = draw(st.floats(0.02, 4))
            if draw(st.booleans()):
                t += d
                out.append(Event(t, "listener.stall_end", lid, {"duration": d, "open": False}))
        elif kind == "slip":
            out.append(Event(t, "listener.slip", lid, {"duration": draw(st.floats(0.001, 0.02))}))
        elif kind == "stream":
            out.append(
                Event(
                    t,
                    "listener.stream",
                    lid,
                    {
                        "title": draw(st.sampled_from(["live", "hold"])),
                        "serial": 1,
                        "played_at": t + draw(st.floats(0, 2)),
                    },
                )
            )
        elif kind == "disconnect":
            out.append(Event(t, "listener.disconnect", lid, {"reason": draw(st.sampled_from(REASONS)), "attempt": 1}))
        elif kind == "reconnect":
            out.append(Event(t, "listener.reconnect", lid, {"attempt": 2, "delay": 0.25}))
        elif kind == "switch":
            out.append(Event(t, "listener.switch", lid, {"from": "live", "to": "hold"}))
        elif kind == "gave_up":
            out.append(Event(t, "listener.gave_up", lid, {"attempts": 5}))
        else:
            out.append(Event(t, "listener.lost_pages", lid, {"count": 2}))
    return out


@st.composite
def runs(draw) -> tuple[list[Event], list[tuple[Window, FaultSpan | None]]]:
    lids = [f"E{i:04d}" for i in range(draw(st.integers(0, 2)))]
    lids += [f"L{i:04d}" for i in range(draw(st.integers(1, 5)))]
    lids += [f"J3-{i:04d}" for i in range(draw(st.integers(0, 3)))]
    events = [e for lid in lids for e in draw(listener_events(lid))]
    events += [
        Event(0.5 * i, "swarm.health", "swarm", {"lag_max": draw(st.floats(0, 0.05)), "since": 0.5 * i - 0.5})
        for i in range(1, 40)
    ]
    # a run's history ends at run.end (or the `end` a live judgement gives), never at whichever
    # event came last: a dropped connection attempt must not move it
    events.append(Event(max(e.t for e in events) + draw(st.floats(0, 3)), "run.end", "runner", {}))
    cases = []
    for _ in range(3):
        a = draw(st.floats(0, 15))
        b = a + draw(st.floats(0.1, 10))
        fault = draw(
            st.sampled_from(
                [None, FaultSpan(3, "3.0", "join", None, a, b), FaultSpan(1, "1.0", "mic.cut", "mic", a, b)]
            )
        )
        cases.append((Window(a, b), fault))
    return events, cases


def shipped(events: list[Event]) -> list[Event]:
    """The events as a shard ships them for unsampled listeners: digests, decoded by the runner."""
    digester, out = Digester(), []
    for e in events:
        if not digester.add(e):
            out.append(e)
    names, records = digester.take()
    return out + Undigester().events(names, records)


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@settings(max_examples=300, deadline=None)
@given(runs())
def test_every_measure_is_the_same_from_digests_as_from_full_events(run):
    events, cases = run
    digested = shipped(events)
    assert not any(e.kind in NOT_SHIPPED for e in digested)
    full, small = History(events), History(digested)
    checked = 0
    for name, measure in measures().items():
        for w, fault in cases:
            a, b = measure.compute(full, w, fault), measure.compute(small, w, fault)
            assert sorted(zip(a.ids, a.samples)) == sorted(zip(b.ids, b.samples)), name
            assert a.missing_ids == b.missing_ids and a.left_out == b.left_out and a.no_data == b.no_data, name
            assert a.spans == b.spans, name
            for stat in ("p50", "p95", "max", "min", "mean", "count"):
                assert same(a.stat(stat), b.stat(stat)), (name, stat)
            checked += 1
    assert checked == 3 * len(measures())
    assert full.served_by != small.served_by or all(
        full.served_by(lid) == small.served_by(lid) for lid in full.listeners
    )


def test_the_digest_drops_only_what_no_measure_reads():
    events = [
        Event(1.0, "listener.connect", "L0001", {"attempt": 0}),
        Event(1.1, "listener.connected", "L0001", {"attempt": 0, "status": 200, "server": ""}),
        Event(1.2, "listener.first_audio", "L0001", {"attempt": 0, "title": "live"}),
        Event(1.3, "ear.tone", "E0000", {"tone": "live"}),
    ]
    out = shipped(events)
    assert [(e.kind, e.src) for e in sorted(out, key=lambda e: e.t)] == [
        ("listener.first_audio", "L0001"),
        ("ear.tone", "E0000"),
    ]
    assert out[-1].data == {"title": "live"}  # the attempt number is not shipped: no measure reads it


def test_a_missing_batch_is_refused_not_decoded_onto_the_wrong_listeners():
    import pytest

    d, u = Digester(), Undigester()
    d.add(Event(1.0, "listener.join", "L0001", {}))
    first = d.take()
    d.add(Event(2.0, "listener.join", "L0002", {}))
    second = d.take()
    with pytest.raises(ValueError, match="out of step"):
        u.events(*second, names_from=d.named - len(second[0]))  # the first never arrived
    assert [e.src for e in u.events(*first, names_from=0)] == ["L0001"]
