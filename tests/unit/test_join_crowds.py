"""Join steps: a crowd that arrives during the method. The language (valid and invalid steps,
located errors), the rising arrival shape (known answers from the rate's integral), the plan,
the swarm taking a crowd while it runs, and the measures on a history with late joiners."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path

import pytest
from stream_server import StreamServer

from chaos.checkers.history import History, Window
from chaos.checkers.verdicts import check
from chaos.errors import ExperimentError
from chaos.language.arrival import Arrival, arrival_offsets, rising_offsets
from chaos.language.loader import load_experiment
from chaos.language.plan import method_length, plan
from chaos.listen.listener import ListenerSettings, StreamAddress
from chaos.listen.swarm import Swarm
from chaos.runner.judging import judge
from chaos.timeline import Event, Timeline

BASE = """\
title: a join storm while the room is on hold
vars: {joins: 2000}
listeners: {count: 10}
method:
  - at: 0s
    fault: mic.cut
    for: 10s
    expect:
      - {measure: hold_music.onset, expect: "max < 5s"}
  - at: 2s
    join: {count: "${joins}", arrival: {rising: 20/s to 200/s}}
    expect:
      - {measure: time_to_first_audio, expect: "p99 < 5s"}
      - {measure: join_success_ratio, expect: ">= 0.99"}
"""


def load(tmp_path: Path, text: str, **overrides: str):
    f = tmp_path / "e.yaml"
    f.write_text(text)
    return load_experiment(f, overrides=overrides)


def problems(tmp_path: Path, text: str, **overrides: str) -> list[str]:
    with pytest.raises(ExperimentError) as info:
        load(tmp_path, text, **overrides)
    return [str(p).replace(str(tmp_path / "e.yaml"), "F") for p in info.value.problems]


# -- the rising shape: known answers -------------------------------------------------------------


def test_rising_offsets_are_where_the_rates_integral_reaches_each_arrival():
    # 1/s rising to 3/s over 5 arrivals: T = 2 * 4 / (1 + 3) = 2 s, k = 1/s^2, N(t) = t + t^2/2,
    # so arrival i is at sqrt(1 + 2i) - 1
    assert rising_offsets(5, 1.0, 3.0) == pytest.approx(
        [0.0, math.sqrt(3) - 1, math.sqrt(5) - 1, math.sqrt(7) - 1, 2.0]
    )
    # equal rates: a constant rate
    assert rising_offsets(4, 10.0, 10.0) == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert rising_offsets(1, 20.0, 200.0) == [0.0] and rising_offsets(0, 20.0, 200.0) == []


def test_a_rising_crowd_spans_2_n_minus_1_over_the_sum_of_its_rates_and_speeds_up():
    offsets = arrival_offsets("rising", 2000, rate=20.0, rate_to=200.0)
    assert offsets[-1] == pytest.approx(2 * 1999 / 220)
    gaps = [b - a for a, b in zip(offsets, offsets[1:])]
    assert all(later < earlier for earlier, later in zip(gaps, gaps[1:]))
    # the first gap is about 1/20 s, the last about 1/200 s: the rates it rises between
    assert gaps[0] == pytest.approx(1 / 20, rel=0.06) and gaps[-1] == pytest.approx(1 / 200, rel=0.01)


# -- the language ------------------------------------------------------------------------------------


def test_a_join_step_loads_with_a_variable_count_and_the_plan_says_what_it_does(tmp_path):
    exp = load(tmp_path, BASE)
    step = exp.method[1]
    assert step.kind == "join" and step.join is not None and step.join.count == 2000
    assert step.join.arrival == Arrival("rising", rate=20.0, rate_to=200.0)
    occ = [o for o in plan(exp) if o.step.kind == "join"][0]
    assert occ.describe() == "join 2000 listeners, rising 20/s to 200/s over 18.2s"
    assert len(occ.offsets) == 2000 and occ.offsets[-1] == pytest.approx(2 * 1999 / 220)
    # the method lasts until the last listener of the crowd has arrived (2 s + 18.17 s > the 10 s cut)
    assert method_length(plan(exp)) == pytest.approx(2 + 2 * 1999 / 220)
    assert load(tmp_path, BASE, joins="40").method[1].join.count == 40  # type: ignore[union-attr]


def test_a_poisson_crowd_is_seeded_and_the_same_in_every_plan(tmp_path):
    text = BASE.replace("{rising: 20/s to 200/s}", "{poisson: 100/s}")
    a, b = plan(load(tmp_path, text)), plan(load(tmp_path, text))
    ja = [o for o in a if o.step.join][0]
    assert ja.offsets == [o for o in b if o.step.join][0].offsets and ja.offsets[0] == 0.0
    assert ja.describe().startswith("join 2000 listeners, poisson 100/s over ")


def test_the_rising_shape_works_under_listeners_arrival(tmp_path):
    exp = load(
        tmp_path, BASE.replace("listeners: {count: 10}", "listeners: {count: 10, arrival: {rising: 1/s to 3/s}}")
    )
    spec = exp.listeners
    assert (spec.arrival, spec.arrival_rate, spec.arrival_rate_to) == ("rising", 1.0, 3.0)
    assert spec.arrival_span == pytest.approx(2 * 9 / 4)


def test_bad_join_steps_are_refused_with_located_errors(tmp_path):
    assert problems(tmp_path, BASE, joins="-3") == [
        "F:11:19: method[1].join.count: -3 is not valid; expected a whole number of joining listeners, 1 to 100000"
    ]
    assert problems(tmp_path, BASE.replace("20/s to 200/s", "20/s to 0/s")) == [
        "F:11:40: both rates of a rising arrival must be above 0, such as {rising: 20/s to 200/s}"
    ]
    assert problems(tmp_path, BASE.replace("20/s to 200/s", "200/s to 20/s")) == [
        "F:11:40: a rising arrival's second rate (20/s) is below its first (200/s); expected {rising: LOW/s to HIGH/s}"
    ]
    fast = problems(tmp_path, BASE.replace("20/s to 200/s", "fast"))
    assert len(fast) == 1 and fast[0].startswith(
        "F:11:40: method[1].join.arrival: a mapping is not valid; expected all,"
    )
    assert problems(tmp_path, BASE.replace("    join: {count", "    fault: mic.cut\n    join: {count")) == [
        "F:10:5: a step has exactly one of fault, probe, action or join"
    ]
    assert problems(tmp_path, BASE.replace("    join: {count", "    for: 5s\n    join: {count")) == [
        "F:11:5: 'for' is not allowed on a join step: a join step happens once and its crowd stays until the run ends"
    ]
    every = problems(tmp_path, BASE.replace("    join: {count", "    every: 5s\n    times: 2\n    join: {count"))
    assert every[0].startswith("F:11:5: 'every' is not allowed on a join step")
    # every measure from a fault's start or end belongs under the fault's step
    for measure in ("live.resume", "live.arrival", "hold_music.onset", "hold_music.arrival"):
        assert problems(tmp_path, BASE.replace("time_to_first_audio, expect", f"{measure}, expect")) == [
            f"F:13:19: {measure} is measured from a fault's start or end and a join step has none; expected it "
            "under the fault's step (where it counts the crowd that joined during the fault)"
        ]
    no_count = problems(tmp_path, BASE.replace('count: "${joins}", ', ""))
    assert no_count == ["F:11:11: method[1].join: 'count' is required"]


def test_a_join_step_alone_is_enough_listeners_for_listener_measures(tmp_path):
    exp = load(tmp_path, BASE.replace("listeners: {count: 10}", "listeners: {count: 0}"))
    assert exp.listeners.count == 0 and exp.method[1].join is not None


# -- the swarm takes a crowd while it runs ---------------------------------------------------------


def test_a_running_swarm_takes_a_crowd_with_its_own_ids_and_stops_it():
    async def main(port: int) -> tuple[Swarm, Timeline]:
        tl = Timeline()
        swarm = Swarm(ListenerSettings(count=2, stream=StreamAddress("127.0.0.1", port, "/live")), tl)
        await swarm.start()
        crowd = swarm.add_crowd(3, [0.0, 0.05, 0.1])
        assert crowd.task is not None
        await crowd.task  # it ends once the last one's join is recorded (the method waits for it)
        assert [lst.lid for lst in crowd.listeners] == ["J3-0000", "J3-0001", "J3-0002"]
        assert {e.src for e in tl.events if e.kind == "listener.join" and e.src.startswith("J3-")} == {
            "J3-0000",
            "J3-0001",
            "J3-0002",
        }
        while swarm.hearing() < 5:  # every one of them joins and hears audio (no time is asserted)
            await asyncio.sleep(0.05)
        await swarm.stop()
        return swarm, tl

    with StreamServer(interval=0.05, burst_pages=4) as server:
        swarm, tl = asyncio.run(asyncio.wait_for(main(server.port), 30))
    joined = {e.src for e in tl.events if e.kind == "listener.join"}
    assert joined == {"L0000", "L0001", "J3-0000", "J3-0001", "J3-0002"}
    assert all(lst.stopped for lst in swarm.listeners) and len(swarm.listeners) == 5


# -- measures on a history with a late joiner ------------------------------------------------------


def ev(t: float, kind: str, src: str = "runner", **data) -> Event:
    return Event(t, kind, src, data)


def _history() -> History:
    """Two listeners from 0 s; the mic is cut 10-20 s; the first plays hold music at 10.5 s. A join
    step at 12 s: J1-0000 joins at 12 s, first audio (hold) at 12.4 s, played at once. The second
    original listener stalls 14-15 s."""
    evs = []
    for lid in ("L0", "L1"):
        evs += [
            ev(0.0, "listener.join", lid),
            ev(0.2, "listener.first_audio", lid),
            ev(0.2, "listener.stream", lid, title="live", played_at=0.2),
            ev(10.3, "listener.stream", lid, title="hold", played_at=10.5),
        ]
    evs += [
        ev(14.0, "listener.stall_start", "L1"),
        ev(15.0, "listener.stall_end", "L1", duration=1.0),
        ev(5.0, "run.phase", name="before", start=0.0, end=5.0),
        ev(10.0, "fault.start", step=0, occurrence="0.0", fault="mic.cut", target="mic"),
        ev(12.0, "step.join", step=1, occurrence="1.0", count=1, arrival="all", span=0.0),
        ev(12.0, "listener.join", "J1-0000"),
        ev(12.1, "listener.joined", "J1-0000", status=200, latency=0.1),
        ev(12.4, "listener.first_audio", "J1-0000"),
        ev(12.4, "listener.stream", "J1-0000", title="hold", played_at=12.4),
        ev(20.0, "fault.end", step=0, occurrence="0.0", fault="mic.cut", target="mic"),
        ev(30.0, "run.phase", name="during", start=5.0, end=30.0),
        ev(35.0, "run.phase", name="after", start=30.0, end=35.0),
        ev(35.0, "run.end"),
    ]
    return History(evs)


def test_hold_music_onset_of_a_late_joiner_runs_from_its_first_join():
    h = _history()
    v = check(h, "hold_music.onset", "max < 1s", Window(10.0, 20.0), "step", fault=h.faults["0.0"])
    # L0 and L1: 10 s -> 10.5 s; J1-0000: from its join at 12 s (not the fault's start) -> 12.4 s
    assert v.summary["count"] == 3 and v.summary["missing"] == 0
    assert v.value == pytest.approx(0.5) and v.passed
    assert v.summary["p50"] == pytest.approx(0.5) and sorted(h.joins) == ["1.0"]


def test_connected_ratio_counts_a_late_joiner_from_its_join_only():
    h = _history()
    # 11.0 .. 13.0 s in 100 ms instants: 2 listeners until 12 s (all hearing), then 3 with the
    # joiner waiting for its first audio in [12.0, 12.4): 2/3 for 4 instants, 1 after
    v = check(h, "listeners.connected_ratio", ">= 0.5", Window(11.0, 13.0), "during", lag_rule=False)
    assert v.summary["count"] == 21 and v.value == pytest.approx(2 / 3) and v.passed
    before = check(h, "listeners.connected_ratio", ">= 1", Window(11.0, 11.9), "during", lag_rule=False)
    assert before.value == 1.0  # the joiner is not counted before it joined
    # its wait for its first audio is `joining`, not dead air (time_to_first_audio measures it)
    dead = check(h, "dead_air", "< 1s", Window(11.0, 13.0), "during", lag_rule=False)
    assert dead.summary["count"] == 3 and dead.value == 0.0 and dead.summary["spans"] == 0


def test_a_join_steps_expectations_are_judged_from_its_start_to_the_end_of_the_method_and_recovery(tmp_path):
    text = BASE.replace("for: 10s", "for: 20s").replace("at: 2s", "at: 12s")
    exp = load(tmp_path, text.replace('"${joins}"', "1").replace("{rising: 20/s to 200/s}", "all"))
    verdicts = [v for v in judge(exp, _history()) if v.phase == "step" and v.step == 1]
    assert [v.measure for v in verdicts] == ["time_to_first_audio", "join_success_ratio"]
    ttfa, ratio = verdicts
    assert (ttfa.window.start, ttfa.window.end) == (12.0, 35.0)  # the method ends at 30 s; recovery 5 s
    assert ttfa.summary["count"] == 1 and ttfa.value == pytest.approx(0.4)  # only the joiner joined then
    assert ratio.value == 1.0 and ratio.passed
    # the cut's onset (under the fault's step) counts the joiner too (from its own join: 0.4 s)
    [onset] = [v for v in judge(exp, _history()) if v.phase == "step" and v.step == 0]
    assert onset.summary["count"] == 3 and onset.value == pytest.approx(0.5) and onset.passed


def test_a_perfect_join_success_ratio_is_not_made_unknown_by_the_swarms_lag():
    # the lag rule compares a value's margin to its bound with the lag in seconds: for a ratio of
    # joins (1.0 against >= 0.99, margin 0.01) a 50 ms lag made every perfect crowd "unknown"
    evs = [ev(12.0 + i / 10, "listener.joined", f"J1-{i:04d}", status=200, latency=0.1) for i in range(20)]
    evs += [ev(13.0, "swarm.health", "swarm", lag_max=0.05, cpu=0.5, listeners=20, since=12.0), ev(20.0, "run.end")]
    v = check(History(evs), "join_success_ratio", ">= 0.99", Window(12.0, 20.0), "step")
    assert v.value == 1.0 and v.outcome == "pass"


# -- the review's findings (each test fails without its fix) -----------------------------------------


def _heard(lid: str, t: float, wait: float, title: str = "live") -> list[Event]:
    """A listener that joins at t and hears `title` `wait` seconds later."""
    return [
        ev(t, "listener.join", lid),
        ev(t + wait, "listener.first_audio", lid),
        ev(t + wait, "listener.stream", lid, title=title, played_at=t + wait),
    ]


def test_a_joiners_wait_for_its_first_audio_is_not_dead_air_but_never_hearing_is():
    # 20 joiners ramp in over 10-20 s, each hearing audio 0.5 s after its join; nobody stalls; the
    # method ends at the last arrival (20 s). J0-0099 never hears anything: dead air from its join.
    evs = [e for i in range(2) for e in _heard(f"L{i:04d}", 0.0, 0.2)]
    evs += [e for i in range(20) for e in _heard(f"J0-{i:04d}", 10 + i * 10 / 19, 0.5)]
    evs += [
        ev(10.0, "step.join", step=0, occurrence="0.0", count=20, arrival="ramp", span=10.0),
        ev(5.0, "run.phase", name="before", start=0.0, end=5.0),
        ev(20.0, "run.phase", name="during", start=6.0, end=20.0),
        ev(25.0, "run.phase", name="after", start=20.0, end=25.0),
        ev(25.0, "run.end"),
    ]
    h = History(evs)
    for phase in ("during", "after"):
        for measure, expect in (("stall_ratio", "max < 0.05"), ("dead_air", "max < 300ms")):
            v = check(h, measure, expect, h.phases[phase], phase, lag_rule=False)
            assert v.outcome == "pass" and v.value == 0.0, (phase, measure, v.value)
    never = History([*evs, ev(22.0, "listener.join", "J0-0099")])
    assert never.dead_air_spans()["J0-0099"] == [(22.0, 25.0)]  # from its join to the end
    v = check(never, "dead_air", "max < 300ms", never.phases["after"], "after", lag_rule=False)
    assert v.value == pytest.approx(3.0) and not v.passed
    # connected_ratio keeps its definition: a joiner waiting for its first audio is not connected
    ratio = check(h, "listeners.connected_ratio", ">= 1", Window(10.0, 10.4), "during", lag_rule=False)
    assert ratio.value == pytest.approx(2 / 3)


def _hold_history() -> History:
    """Two listeners hear hold music from 10.5 s (mic cut 10-20 s). A join step at 12 s: J1-0000
    joins at 12 (hears hold at 12.5), J1-0001 at 19.8 (first audio, live, at 20.3: after the cut),
    J1-0002 at 20.0 (first audio at 20.5)."""
    evs = [e for i in range(2) for e in _heard(f"L{i:04d}", 0.0, 0.2)]
    evs += [ev(10.3, "listener.stream", f"L{i:04d}", title="hold", played_at=10.5) for i in range(2)]
    evs += [
        ev(10.0, "fault.start", step=0, occurrence="0.0", fault="mic.cut", target="mic"),
        ev(12.0, "step.join", step=1, occurrence="1.0", count=3, arrival="ramp", span=8.0),
        *_heard("J1-0000", 12.0, 0.5, "hold"),
        *_heard("J1-0001", 19.8, 0.5),
        *_heard("J1-0002", 20.0, 0.5),
        ev(20.0, "fault.end", step=0, occurrence="0.0", fault="mic.cut", target="mic"),
        ev(20.0, "run.phase", name="during", start=5.0, end=20.0),
        ev(25.0, "run.end"),
    ]
    return History(evs)


def test_hold_music_leaves_out_and_names_a_listener_whose_first_audio_came_after_the_fault():
    h = _hold_history()
    for measure in ("hold_music.onset", "hold_music.arrival"):
        v = check(h, measure, "max < 5s", Window(10.0, 20.0), "step", fault=h.faults["0.0"], lag_rule=False)
        assert v.outcome == "pass" and v.summary["count"] == 3 and v.summary["missing"] == 0, v.note
        assert v.note == (
            "joined too late to hear hold music: J1-0001 (first audio 0.3 s after the fault's end), "
            "J1-0002 (first audio 0.5 s after the fault's end)"
        )


def test_a_dry_run_of_the_readme_join_example_counts_no_fault_measure(tmp_path):
    # the README's join example: hold_music.onset under the cut's step, which a dry run skips
    text = BASE.replace("listeners: {count: 10}", "listeners: {count: 2}").replace('"${joins}"', "3")
    exp = load(tmp_path, text)
    evs = [e for i in range(2) for e in _heard(f"L{i:04d}", -6.0, 0.2)]
    evs += [
        ev(-5.0, "run.phase", name="before", start=-5.0, end=0.0),
        ev(0.0, "fault.skipped", step=0, occurrence="0.0", fault="mic.cut", target="mic", end=10.0, reason="dry run"),
        ev(2.0, "step.join", step=1, occurrence="1.0", count=3, arrival="rising", span=0.018),
    ]
    for i, t in enumerate((2.0, 2.01, 2.018)):
        evs += [*_heard(f"J1-{i:04d}", t, 0.4), ev(t + 0.1, "listener.joined", f"J1-{i:04d}", status=200, latency=0.1)]
    evs += [ev(12.0, "run.phase", name="during", start=0.0, end=12.0), ev(17.0, "run.end")]
    verdicts = judge(exp, History(evs))
    counted = {v.measure: v.outcome for v in verdicts if not v.skipped}
    assert counted == {"time_to_first_audio": "pass", "join_success_ratio": "pass"}
    assert [v.measure for v in verdicts if v.skipped] == ["hold_music.onset"]


def _timeouts(lag: float, timeout: float | None = 5.0) -> History:
    """100 joins at 12 s: 95 answered in 0.3 s, 5 timed out after 5 s while the loop lagged `lag`."""
    evs = [ev(12.0, "step.join", step=1, occurrence="1.0", count=100, arrival="all", span=0.0)]
    for i in range(100):
        lid = f"J1-{i:04d}"
        evs.append(ev(12.0, "listener.join", lid))
        if i < 95:
            evs.append(ev(12.3, "listener.joined", lid, status=200, latency=0.3))
        else:
            extra = {} if timeout is None else {"timeout": timeout}
            evs.append(ev(17.05, "listener.join_failed", lid, status=0, reason="timeout", latency=5.05, **extra))
    evs += [ev(13.0, "swarm.health", "swarm", lag_max=lag, cpu=1.0, listeners=110, since=12.0), ev(25.0, "run.end")]
    return History(evs)


def test_join_timeouts_the_swarms_lag_may_have_caused_make_join_success_ratio_unknown():
    h = _timeouts(lag=4.8)
    v = check(h, "join_success_ratio", ">= 0.99", Window(12.0, 25.0), "step", fault=h.joins["1.0"])
    assert v.value == pytest.approx(0.95) and v.outcome == "unknown"
    assert "5 join(s) timed out while the listeners' event loop lagged" in v.note and "min=1" in v.note
    # a lag smaller than how far past the timeout they were answered (0.05 s) could not have caused them
    calm = _timeouts(lag=0.04)
    v = check(calm, "join_success_ratio", ">= 0.99", Window(12.0, 25.0), "step", fault=calm.joins["1.0"])
    assert v.outcome == "fail"
    # a journal without the join timeout: any lag may have caused a timeout
    old = _timeouts(lag=0.04, timeout=None)
    v = check(old, "join_success_ratio", ">= 0.99", Window(12.0, 25.0), "step", fault=old.joins["1.0"])
    assert v.outcome == "unknown"


def test_under_a_join_step_the_measures_of_joins_count_only_its_crowd():
    evs = [e for i in range(2) for e in _heard(f"L{i:04d}", 0.0, 0.2)]
    evs += [
        ev(2.0, "step.join", step=1, occurrence="1.0", count=10, arrival="all", span=0.0),
        ev(30.0, "step.join", step=2, occurrence="2.0", count=10, arrival="all", span=0.0),
    ]
    for i in range(10):  # step 1: a calm crowd (0.3 s to audio); step 2: a storm (8 s)
        evs += [*_heard(f"J1-{i:04d}", 2.0, 0.3), ev(2.1, "listener.joined", f"J1-{i:04d}", status=200, latency=0.1)]
        evs += [*_heard(f"J2-{i:04d}", 30.0, 8.0), ev(34.0, "listener.joined", f"J2-{i:04d}", status=200, latency=4)]
        evs.append(ev(35.0, "listener.join_failed", f"J2-{i:04d}", status=503, reason="full", latency=0.1))
    evs += [ev(40.0, "run.phase", name="during", start=0.0, end=40.0), ev(45.0, "run.end")]
    h = History(evs)
    one, two = h.joins["1.0"], h.joins["2.0"]
    w = Window(one.start, one.end + 5)
    ttfa = check(h, "time_to_first_audio", "p99 < 1s", w, "step", fault=one, lag_rule=False)
    assert ttfa.passed and ttfa.summary["count"] == 10 and ttfa.value == pytest.approx(0.3)
    latency = check(h, "join_latency", "max < 0.5s", w, "step", fault=one, lag_rule=False)
    assert latency.passed and latency.summary["count"] == 10
    ratio = check(h, "join_success_ratio", ">= 0.99", w, "step", fault=one, lag_rule=False)
    assert ratio.value == 1.0
    ratio2 = check(h, "join_success_ratio", ">= 0.99", Window(two.start, two.end + 5), "step", fault=two)
    assert ratio2.value == 0.5  # its own crowd: 10 answered, 10 refused
    # in a steady-state window (no join step), every listener counts as before
    assert check(h, "time_to_first_audio", "max < 10s", w, "during", lag_rule=False).summary["count"] == 20


def test_listener_measures_before_the_method_with_only_a_crowd_listening_are_refused(tmp_path):
    text = BASE.replace("listeners: {count: 10}", "listeners: {count: 0}").replace(
        "method:\n",
        "steady_state:\n"
        '  - {measure: dead_air.max, expect: "< 1.5s"}\n'
        '  - {measure: stall_ratio, expect: "max < 0.05", when: [before, during]}\n'
        '  - {measure: server.lb_servers_up, expect: ">= 1"}\n'
        '  - {measure: dead_air.total, expect: "max < 1s", when: [during, after]}\n'
        "method:\n",
    )
    why = (
        "is measured from listeners but listeners.count is 0: before the method, only a join step's crowd "
        "could listen and it has not joined yet, so the gate could never pass; expected when: [during, after]"
    )
    assert problems(tmp_path, text) == [f"F:5:5: dead_air.max {why}", f"F:6:56: stall_ratio {why}"]


def _walk():
    """A swarm with no stream (`_connect` replaced: it records the join, as the real one does at
    its first step); returns (swarm, timeline)."""
    tl = Timeline()
    swarm = Swarm(ListenerSettings(count=0, stream=StreamAddress("127.0.0.1", 9, "/live")), tl)

    async def no_connect(listener) -> None:
        tl.record("listener.join", listener.lid, attempt=0)

    swarm._connect = no_connect  # type: ignore[method-assign]
    return swarm, tl


def test_a_crowd_is_made_as_it_arrives_in_batches_not_all_at_once():
    from chaos.listen.swarm import CROWD_BATCH

    async def main() -> list[int]:
        swarm, tl = _walk()
        await swarm.start()
        crowd = swarm.add_crowd(1, [0.0] * (3 * CROWD_BATCH + 7))
        made = [len(crowd.listeners)]  # add_crowd itself makes none
        for _ in range(4):
            await asyncio.sleep(0)
            made.append(len(crowd.listeners))
        assert crowd.task is not None
        await crowd.task
        made.append(len({e.src for e in tl.events if e.kind == "listener.join"}))
        await swarm.stop()
        return made

    made = asyncio.run(asyncio.wait_for(main(), 30))
    assert made[0] == 0 and made[-1] == 3 * CROWD_BATCH + 7  # every join recorded when the task ends
    assert all(b - a <= CROWD_BATCH for a, b in zip(made[:-1], made[1:-1]))  # a batch per turn at most


def test_a_crowd_arrives_on_the_clock_it_is_given_and_waits_while_it_stands_still():
    async def main() -> tuple[list[int], Timeline]:
        swarm, tl = _walk()
        await swarm.start()
        release = asyncio.Event()

        async def until(offset: float) -> float:  # a method clock held by the operator after 1 listener
            if offset > 0:
                await release.wait()
            return offset

        crowd = swarm.add_crowd(2, [0.0, 1.0, 2.0], until)
        for _ in range(5):
            await asyncio.sleep(0)
        seen = [len(crowd.listeners)]
        release.set()
        assert crowd.task is not None
        await crowd.task
        seen.append(len(crowd.listeners))
        await swarm.stop()
        return seen, tl

    seen, _ = asyncio.run(asyncio.wait_for(main(), 30))
    assert seen == [1, 3]


def test_a_crowd_cancelled_early_says_how_many_never_joined_and_its_verdicts_say_so(tmp_path):
    async def main() -> Timeline:
        swarm, tl = _walk()
        await swarm.start()
        swarm.add_crowd(1, [0.0, 0.0, 3600.0, 3600.0, 3600.0], key="1.0")
        while len(tl.of_kind("listener.join")) < 2:
            await asyncio.sleep(0)
        tl.record("step.join", "runner", t=0.0, step=1, occurrence="1.0", count=5, arrival="all", span=0)
        assert swarm.cancel_crowds("the guardrail tripped") == 3
        assert swarm.cancel_crowds("again") == 0  # recorded once
        await swarm.stop()  # nothing left pending: stop records nothing more
        return tl

    tl = asyncio.run(asyncio.wait_for(main(), 30))
    [cut] = tl.of_kind("step.join_cancelled")
    assert (cut.data["joined"], cut.data["cancelled"], cut.data["reason"]) == (2, 3, "the guardrail tripped")
    assert {e.src for e in tl.events if e.kind == "listener.join"} == {"J1-0000", "J1-0001"}
    exp = load(tmp_path, BASE.replace('"${joins}"', "5"))
    end = max(e.t for e in tl.events) + 1
    h = History([*tl.events, Event(end, "run.phase", "runner", {"name": "during", "start": 0.0, "end": end})])
    [ttfa, _ratio] = [v for v in judge(exp, h) if v.step == 1]
    assert ttfa.note.endswith(
        "3 of 5 listeners of the crowd never joined: their arrivals were cancelled when the guardrail tripped"
    )

    async def stopped() -> Timeline:
        swarm, tl = _walk()
        await swarm.start()
        swarm.add_crowd(4, [3600.0] * 4)
        await asyncio.sleep(0)
        await swarm.stop()  # a signal: the run ends with arrivals pending
        return tl

    [cut] = asyncio.run(asyncio.wait_for(stopped(), 30)).of_kind("step.join_cancelled")
    assert (cut.data["step"], cut.data["cancelled"], cut.data["reason"]) == (4, 4, "the run ended")


def test_the_report_labels_a_join_steps_verdicts_and_draws_its_crowd(tmp_path):
    from chaos.report.charts import timeline_figure
    from chaos.report.html import verdict_table
    from chaos.report.runfiles import RunRecord

    h = _history()
    shape = "join 1 listener, all at once"
    events = [
        ev(e.t, e.kind, e.src, **{**e.data, **({"shape": shape} if e.kind == "step.join" else {})}) for e in h.events
    ]
    verdict = check(h, "time_to_first_audio", "max < 1s", Window(12.0, 35.0), "step", fault=h.joins["1.0"], step=1)
    rec = RunRecord(tmp_path / "journal.jsonl", {}, events, {"verdicts": [verdict.to_json()]})
    assert "<td>step 1: join 1 listener, all at once</td>" in verdict_table(rec, {})
    fig = timeline_figure(rec, [])
    bands = [s for s in fig.layout.shapes if str(s.name).startswith("join 1.0")]
    assert len(bands) == 1 and bands[0].x0 == 12.0 and bands[0].x1 == pytest.approx(12.1)


JOIN_METHOD = """\
title: a crowd in the method
stack: {stack}
listeners: {{count: 1}}
steady_state:
  - {{measure: dead_air.max, expect: "< 1.5s"}}
method:
  - at: 100ms
    join: {{count: {count}, arrival: {{ramp: {ramp}}}}}
    expect:
      - {{measure: time_to_first_audio, expect: "max < 1s"}}
"""


def _method_context(tmp_path: Path, count: int, ramp: str):
    from chaos.runner.context import RunContext
    from chaos.runner.model import RunOptions

    f = tmp_path / "m.yaml"
    f.write_text(
        JOIN_METHOD.format(stack=Path(__file__).resolve().parents[2] / "compose" / "audio-room", count=count, ramp=ramp)
    )
    ctx = RunContext(load_experiment(f), RunOptions(journal_dir=tmp_path, progress=lambda m: None))
    swarm, _ = _walk()
    swarm.timeline = ctx.timeline

    async def record_join(listener) -> None:  # as the real one: its join recorded at its first step
        ctx.timeline.record("listener.join", listener.lid, attempt=0)

    swarm._connect = record_join  # type: ignore[method-assign]
    ctx.swarm = swarm
    return ctx, swarm


def test_the_method_ends_after_the_crowds_last_join_is_recorded(tmp_path):
    from chaos.runner.method import run_method

    ctx, swarm = _method_context(tmp_path, 300, "300ms")

    async def main() -> None:
        ctx.stage, ctx.loop = "live", asyncio.get_running_loop()
        await swarm.start()
        await asyncio.wait_for(run_method(ctx, {}), 30)
        await swarm.stop()

    try:
        asyncio.run(main())
    finally:
        ctx.pool.shutdown()
        ctx.ledger.close()
    joins = [e.t for e in ctx.timeline.of_kind("listener.join")]
    [during] = [e for e in ctx.timeline.of_kind("run.phase") if e.data["name"] == "during"]
    assert len(joins) == 300 and max(joins) <= during.data["end"]
    assert not ctx.timeline.of_kind("step.join_cancelled")


def test_the_kill_switch_cancels_a_crowds_pending_arrivals(tmp_path):
    from chaos.runner.method import run_method

    ctx, swarm = _method_context(tmp_path, 100, "600s")  # one every 6 s: most are still to come

    async def main() -> None:
        ctx.stage, ctx.loop = "live", asyncio.get_running_loop()
        await swarm.start()
        method = asyncio.ensure_future(run_method(ctx, {}))
        while not ctx.timeline.of_kind("listener.join"):
            await asyncio.sleep(0.01)
        ctx.request_kill({"by": "alice", "how": "key"})
        await asyncio.wait_for(method, 30)
        await swarm.stop()

    try:
        asyncio.run(main())
    finally:
        ctx.pool.shutdown()
        ctx.ledger.close()
    [cut] = ctx.timeline.of_kind("step.join_cancelled")
    assert (cut.data["joined"], cut.data["cancelled"]) == (1, 99)
    assert cut.data["reason"] == "the kill switch was pulled"
    assert len(ctx.timeline.of_kind("listener.join")) == 1
