"""Listeners the load generator lost (listener.lost): left out of the windows their loss fell in,
named, and a verdict they could have changed is unknown in either direction; guardrails act on
what they see. Synthetic histories: the loss itself is tested on real shards in
tests/unit/test_shard_fleet.py and on a real Ray cluster in tests/integration/test_swarm_cluster.py."""

from __future__ import annotations

from chaos.checkers.history import History, Window
from chaos.checkers.verdicts import check
from chaos.timeline import Event


def history(heard_dead_air: float, heard: int = 4, lost: int = 4) -> History:
    events = [Event(0.0, "run.phase", "runner", {"name": "during", "start": 0.0, "end": 20.0})]
    for i in range(heard + lost):
        lid = f"L{i:04d}"
        events += [Event(0.1, "listener.join", lid, {}), Event(0.2, "listener.first_audio", lid, {"title": "live"})]
        if i < heard and heard_dead_air:
            events += [
                Event(5.0, "listener.stall_start", lid, {}),
                Event(5.0 + heard_dead_air, "listener.stall_end", lid, {"duration": heard_dead_air, "open": False}),
            ]
        if i >= heard:
            events += [
                Event(3.0, "listener.stall_start", lid, {}),  # open when its shard died: not the system's
                Event(4.0, "listener.lost", lid, {"shard": 1, "why": "ActorDiedError"}),
            ]
    events += [
        Event(
            4.5, "swarm.shard_lost", "swarm/1", {"shard": 1, "node": "n1", "why": "ActorDiedError", "listeners": lost}
        ),
        Event(20.0, "run.end", "runner", {}),
    ]
    return History(events)


W = Window(0.0, 20.0)


def test_a_fail_the_lost_could_not_change_stands_and_one_they_could_is_unknown():
    h = history(heard_dead_air=2.0)
    v = check(h, "dead_air", "max < 1s", W, "during")  # the max of the heard already fails
    assert v.outcome == "fail" and "4 listener(s) lost by the load generator" in v.note
    v = check(h, "dead_air", "p50 < 1s", W, "during")  # 4 heard at 2 s, 4 unknown: the median could be 0
    assert v.outcome == "unknown", v.note
    assert v.summary["count"] == 4 and "L0004" in v.note


def test_a_pass_the_lost_could_change_is_unknown_and_their_open_stall_is_not_dead_air():
    h = history(heard_dead_air=0.0)
    assert all(sum(e - s for s, e in h.dead_air_spans()[f"L{i:04d}"]) == 1.0 for i in range(4, 8))  # to the loss only
    v = check(h, "dead_air", "max < 1s", W, "during")
    assert v.outcome == "unknown" and "shard 1 (n1: ActorDiedError)" in v.note
    before = check(h, "dead_air", "max < 1s", Window(0.0, 2.5), "before")  # over before the loss
    assert before.outcome == "pass" and "lost" not in before.note


def test_guardrails_act_on_the_listeners_they_still_hear():
    h = history(heard_dead_air=12.0)
    v = check(h, "dead_air", "max > 10s", W, "abort", lag_rule=False)
    assert v.passed and v.outcome == "pass" and "lost by the load generator" in v.note
