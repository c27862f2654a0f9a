"""Verdicts at the edges an adversarial review found: each case passed before, on data that
could not support a pass (a span cut short by a lost worker, an ear that heard nothing, the
lag rule skipping digital silence, clock uncertainty taken one way only, a `between` bound with
lost listeners). Synthetic histories: the events a swarm records, with known answers."""

from __future__ import annotations

from chaos.checkers.history import History, Window
from chaos.checkers.verdicts import check
from chaos.timeline import Event as E


def _room(n: int = 4) -> list[E]:
    ev = [E(0.0, "run.phase", "runner", {"name": "during", "start": 0.0, "end": 20.0})]
    for i in range(n):
        ev += [E(0.1, "listener.join", f"L{i}", {}), E(0.2, "listener.first_audio", f"L{i}", {"title": "live"})]
    return ev


def _lost(lid: str, t: float) -> list[E]:
    return [
        E(t, "listener.lost", lid, {"shard": 1, "why": "ActorDiedError"}),
        E(t + 0.1, "swarm.shard_lost", "swarm/1", {"shard": 1, "node": "n1", "why": "ActorDiedError", "listeners": 1}),
    ]


def _verdict(events: list[E], measure: str, expect: str, w: Window):
    return check(History(events + [E(30.0, "run.end", "runner", {})]), measure, expect, w, "during")


def test_a_listener_lost_just_after_the_window_in_a_stall_that_began_in_it_is_not_judged_on_the_cut_span():
    """Stall from 9.4 s, worker lost at 10.2 s, window [0, 10]: the span is at least 0.8 s and may be
    any longer; `max < 1s` passed on 0.8."""
    ev = _room() + [E(9.4, "listener.stall_start", "L3", {})] + _lost("L3", 10.2)
    v = _verdict(ev, "dead_air", "max < 1s", Window(0.0, 10.0))
    assert v.outcome == "unknown" and "L3" in v.note, (v.outcome, v.note)
    # a listener lost long after the window, with nothing open then, is judged as usual
    ev = _room() + [E(9.4, "listener.stall_start", "L3", {}), E(9.5, "listener.stall_end", "L3", {"duration": 0.1})]
    v = _verdict(ev + _lost("L3", 15.0), "dead_air", "max < 1s", Window(0.0, 10.0))
    assert v.outcome == "pass" and v.summary["count"] == 4


def test_a_span_still_open_at_a_later_loss_is_known_only_as_far_as_the_loss():
    """Stall from 9.4 s, lost at 11 s (beyond the watchdog's reach): at least 1.6 s, perhaps more.
    Under 2 s it may or may not be: unknown; over 1 s it is already: fail, at what is known.
    Before, the listener was judged on the cut span alone: 1.6 s passed `max < 2s`."""
    ev = _room() + [E(9.4, "listener.stall_start", "L3", {})] + _lost("L3", 11.0)
    assert _verdict(ev, "dead_air", "max < 2s", Window(0.0, 10.0)).outcome == "unknown"
    v = _verdict(ev, "dead_air", "max < 1s", Window(0.0, 10.0))
    assert (v.outcome, round(v.value, 6)) == ("fail", 1.6), (v.outcome, v.value, v.note)
    # a measure clipped to the window knows the span's part in it: judged as it was
    v = _verdict(ev, "dead_air.total", "max < 1s", Window(0.0, 10.0))
    assert (v.outcome, round(v.value, 6)) == ("pass", 0.6)


def test_a_listener_lost_long_after_a_failing_span_still_fails_the_verdict():
    """Stall from 5 s, lost at 15 s, window [0, 10]: 10 s of dead air are known. The first version
    of the rule above left the listener out and judged it at 0: unknown."""
    ev = _room() + [E(5.0, "listener.stall_start", "L3", {})] + _lost("L3", 15.0)
    v = _verdict(ev, "dead_air", "max < 1s", Window(0.0, 10.0))
    assert (v.outcome, v.value) == ("fail", 10.0), (v.outcome, v.value, v.note)
    ev = _room() + [E(0.1, "listener.join", "L9", {})] + _lost("L9", 25.0)  # never heard anything
    assert _verdict(ev, "time_to_first_audio", "max < 3s", Window(0.0, 20.0)).outcome == "fail"
    assert _verdict(ev, "dead_air", "max < 3s", Window(0.0, 20.0)).outcome == "fail"


def test_an_ears_silence_open_at_its_loss_ends_there_and_a_stall_is_not_silence():
    """An ear silent from 9.4 s and lost at 11 s: its silence ran to the end of the run (20.6 s,
    a sure fail); it is 1.6 s known, perhaps more: unknown under 5 s. A plain listener's stall
    open at a loss says nothing of `silence`."""
    ev = _room(2) + _ear("E0", 0.1, 0.2) + _ear("E1", 0.1, 0.2)
    ev += [E(9.4, "ear.silence_start", "E0", {})] + _lost("E0", 11.0)
    v = _verdict(ev, "silence", "max < 5s", Window(0.0, 10.0))
    assert v.outcome == "unknown" and "E0" in v.note, (v.outcome, v.value, v.note)
    ev = _room() + _ear("E1", 0.1, 0.2) + [E(9.4, "listener.stall_start", "L3", {})] + _lost("L3", 11.0)
    v = _verdict(ev, "silence", "max < 1s", Window(0.0, 10.0))
    assert (v.outcome, v.value) == ("pass", 0.0), (v.outcome, v.value, v.note)


def test_a_listener_lost_within_the_watchdogs_reach_of_the_window_end_is_not_judged():
    """A stall begun just before the last batch is recorded only when the watchdog (0.25 s) sees it."""
    v = _verdict(_room() + _lost("L3", 10.2), "dead_air", "max < 1s", Window(0.0, 10.0))
    assert v.outcome == "unknown", v.note
    v = _verdict(_room() + _lost("L3", 10.5), "dead_air", "max < 1s", Window(0.0, 10.0))
    assert v.outcome == "pass" and v.summary["count"] == 4


def test_a_joiner_that_never_heard_anything_before_its_loss_is_not_judged():
    ev = _room() + [E(9.5, "listener.join", "L9", {})] + _lost("L9", 10.4)
    v = _verdict(ev, "dead_air", "max < 1s", Window(0.0, 10.0))
    assert v.outcome == "unknown" and "L9" in v.note


def _ear(lid: str, join: float, heard: float | None) -> list[E]:
    ev = [E(join, "listener.join", lid, {"ear": True})]
    return ev + ([E(heard, "listener.first_audio", lid, {"title": "live"})] if heard is not None else [])


def test_silence_does_not_pass_on_ears_that_heard_nothing():
    ev = _room(2) + _ear("E0", 0.1, None) + _ear("E1", 0.1, None) + [E(0.5, "listener.disconnect", "E0", {})]
    ev += _ear("E2", 25.0, 25.2)  # joined after the window: not counted
    v = _verdict(ev, "silence", "max < 0.5s", Window(0.0, 20.0))
    assert v.outcome == "fail" and v.summary["count"] == 2 and "E0" in v.note and "E2" not in v.note
    v = _verdict(_room(2) + _ear("E2", 25.0, 25.2), "silence", "max < 0.5s", Window(0.0, 20.0))
    assert v.outcome == "fail" and "no ear was listening" in v.note
    v = _verdict(_room(2) + _ear("E0", 0.1, 0.3), "silence", "max < 0.5s", Window(0.0, 20.0))
    assert v.outcome == "pass" and v.value == 0.0


def test_the_lag_rule_moves_digital_silence_as_it_moves_stalls():
    """A 0.48 s silence under a 0.5 s bound with 200 ms of lag: the stall of the same length was
    unknown, the silence passed."""
    ev = _room(2) + _ear("E0", 0.1, 0.2)
    ev += [E(5.0, "ear.silence_start", "E0", {}), E(5.48, "ear.silence_end", "E0", {"duration": 0.48})]
    ev += [E(6.0, "swarm.health", "swarm", {"lag_max": 0.2, "since": 5.0})]
    v = _verdict(ev, "silence", "max < 0.5s", Window(0.0, 20.0))
    assert v.outcome == "unknown" and "lagged" in v.note, (v.outcome, v.note)


def test_clock_uncertainty_moves_span_ends_both_ways():
    """A span recorded ending 2 ms before the window, a shard clock uncertain by 5 ms: it may have
    ended 3 ms inside the window."""
    ev = _room() + [E(8.0, "listener.stall_start", "L2", {}), E(9.998, "listener.stall_end", "L2", {"duration": 1.998})]
    ev += [E(10.5, "swarm.health", "swarm/0", {"lag_max": 0.0, "since": 9.5, "clock_uncertainty": 0.005})]
    assert _verdict(ev, "dead_air", "max < 1s", Window(10.0, 20.0)).outcome == "unknown"
    far = [e if e.src != "L2" or e.kind != "listener.stall_end" else E(9.99, e.kind, e.src, e.data) for e in ev]
    assert _verdict(far, "dead_air", "max < 1s", Window(10.0, 20.0)).outcome == "pass"  # 10 ms away: out of reach


def test_lost_listeners_under_a_between_bound_could_land_inside_it():
    """Spans 0.5 s and 5 s, one listener lost: at 2 s it would make p50 pass `between 1s and 3s`,
    though at 0 and at infinity it fails."""
    ev = [E(0.0, "run.phase", "runner", {"name": "during", "start": 0.0, "end": 20.0})]
    for lid, d in (("L0", 0.5), ("L1", 5.0)):
        ev += [E(0.1, "listener.join", lid, {}), E(0.2, "listener.first_audio", lid, {})]
        ev += [E(3.0, "listener.stall_start", lid, {}), E(3.0 + d, "listener.stall_end", lid, {"duration": d})]
    ev += [E(0.1, "listener.join", "L2", {}), E(0.2, "listener.first_audio", "L2", {})] + _lost("L2", 1.0)
    assert _verdict(ev, "dead_air", "p50 between 1s and 3s", Window(0.0, 20.0)).outcome == "unknown"


def test_lost_listeners_under_a_mean_between_bound_could_pull_the_mean_into_it():
    """Three listeners at 0, one lost: at 6 s it makes the mean 1.5 s, inside `between 1s and 2s`."""
    ev = _room() + _lost("L3", 1.0)
    assert _verdict(ev, "dead_air", "mean between 1s and 2s", Window(0.0, 20.0)).outcome == "unknown"
