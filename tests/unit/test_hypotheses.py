import math

import pytest

from chaos.checkers.history import Distribution, History, Window
from chaos.checkers.measures import resolve_measure
from chaos.checkers.verdicts import check
from chaos.language.expectations import parse_expectation
from chaos.timeline import Event


@pytest.mark.parametrize(
    "text,stat,op,low,high,unit",
    [
        ("< 2s", None, "<", 2.0, math.inf, "duration"),
        ("p95 < 300ms", "p95", "<", 0.3, math.inf, "duration"),
        (">= 0.99", None, ">=", 0.99, math.inf, None),
        (">= 99%", None, ">=", 0.99, math.inf, "ratio"),
        ("between 1s and 3s", None, "between", 1.0, 3.0, "duration"),
        ("median <= 1m", "p50", "<=", 60.0, math.inf, "duration"),
    ],
)
def test_expectations(text, stat, op, low, high, unit):
    e = parse_expectation(text)
    assert (e.stat, e.op, e.low, e.high, e.unit) == (stat, op, pytest.approx(low), high, unit)


@pytest.mark.parametrize("bad", ["2s", "less than 2s", "p95 < ", "between 3s and 1s", "p100 < 1s", "< 2 parsecs"])
def test_bad_expectations(bad):
    with pytest.raises(ValueError):
        parse_expectation(bad)


def test_between_and_nan():
    e = parse_expectation("between 1s and 3s")
    assert e.holds(1.0) and e.holds(3.0) and not e.holds(3.01)
    assert not parse_expectation("< 1s").holds(float("nan"))


def test_nearest_rank_percentiles_and_missing_are_infinite():
    d = Distribution(samples=[float(i) for i in range(1, 101)])
    assert d.stat("p50") == 50 and d.stat("p95") == 95 and d.stat("p99") == 99 and d.stat("max") == 100
    d = Distribution(samples=[0.1] * 19, missing=1)
    assert d.stat("p95") == pytest.approx(0.1)  # 19/20 = 95 %
    assert d.stat("p99") == math.inf
    assert math.isnan(Distribution().stat("max"))  # no data never passes


def test_measure_names():
    assert resolve_measure("dead_air.max")[1] == "max"
    assert resolve_measure("hold_music.onset")[1] is None
    assert resolve_measure("reconnect_time.p95")[1] == "p95"
    with pytest.raises(KeyError):
        resolve_measure("dead_air.loudness")


def ev(t, kind, src="L1", **data):
    return Event(t, kind, src, data)


def _history():
    """Two listeners; a mic cut from 10 to 18; L2 never hears hold music and is silent 10..18.5."""
    evs = [
        ev(0.0, "listener.join", "L1"),
        ev(0.2, "listener.first_audio", "L1"),
        ev(0.2, "listener.stream", "L1", title="live"),
        ev(0.0, "listener.join", "L2"),
        ev(0.3, "listener.first_audio", "L2"),
        ev(0.3, "listener.stream", "L2", title="live"),
        ev(10.0, "fault.start", "runner", step=0, occurrence="0.0", fault="mic.cut", target="mic"),
        ev(10.2, "listener.stream", "L1", title="hold"),
        ev(10.0, "listener.disconnect", "L2", reason="eof"),
        ev(10.4, "listener.stall_start", "L2"),
        ev(18.0, "fault.end", "runner", step=0, occurrence="0.0", fault="mic.cut", target="mic"),
        ev(18.5, "listener.first_audio", "L2"),
        ev(18.5, "listener.stream", "L2", title="live"),
        ev(18.5, "listener.stall_end", "L2", duration=8.1),
        ev(18.6, "listener.stream", "L1", title="live"),
        ev(20.0, "run.phase", "runner", name="after", start=18.0, end=23.0),
        ev(25.0, "run.end", "runner"),
    ]
    return History(evs)


def test_dead_air_onset_resume_reconnect_from_history():
    h = _history()
    fault = h.faults["0.0"]
    assert (fault.start, fault.end) == (10.0, 18.0)
    v = check(h, "dead_air.max", "< 1.5s", Window(5, 25), "during")
    assert not v.passed and v.value == pytest.approx(8.1)
    onset = check(h, "hold_music.onset", "p95 < 2s", Window(10, 18), "step", fault=fault)
    assert not onset.passed and onset.summary["missing"] == 1 and "never heard hold music" in onset.note
    assert onset.stat == "p95" and onset.value == math.inf
    resume = check(h, "live.resume", "max < 1s", Window(18, 23), "step", fault=fault)
    assert resume.passed and resume.value == pytest.approx(0.6)
    rt = check(h, "reconnect_time", "< 10s", Window(0, 25), "during")
    assert rt.value == pytest.approx(8.5) and rt.passed


def test_connected_ratio_dips_while_silent():
    h = _history()
    v = check(h, "listeners.connected_ratio", ">= 0.99", Window(5, 25), "during")
    assert v.stat == "min" and v.value == pytest.approx(0.5) and not v.passed
    assert check(h, "listeners.connected_ratio", ">= 0.99", Window(1, 9), "before").passed


def test_a_listener_that_never_hears_anything_is_dead_air():
    h = History([ev(0.0, "listener.join", "L1"), ev(10.0, "run.end", "runner")])
    # the span from its join on overlaps the window: counted at its full length (10 s)
    assert check(h, "dead_air.max", "< 1s", Window(2, 10), "before").value == pytest.approx(10.0)
    assert check(h, "dead_air.total", "< 1s", Window(2, 10), "before").value == pytest.approx(8.0)
