"""One clock in everything a user reads: the method's, on which the experiment's `at:` and the
progress lines (`t+ 2.0s ... applied`) count. The journal keeps the run's clock."""

from __future__ import annotations

from pathlib import Path

from chaos.checkers.history import History, Window
from chaos.checkers.verdicts import check_probe
from chaos.language.loader import load_experiment
from chaos.report.text import stopped_line
from chaos.runner.context import RunContext
from chaos.runner.run import RunOptions
from chaos.timeline import Event, method_time

FLAGSHIP = Path(__file__).resolve().parents[2] / "experiments" / "mic-cut-hold-music.yaml"


def ev(t: float, kind: str, src: str = "runner", **data) -> Event:
    return Event(t, kind, src, data)


def test_method_time_counts_from_the_method_start_both_ways():
    assert method_time(21.76, 10.0) == "t+11.76s"
    assert method_time(8.5, 10.0) == "t-1.50s"
    assert method_time(9.999, 10.0) == "t+0.00s"  # never "t-0.00s"
    assert method_time(3.2, None) == "3.20s into the run (before the method)"


def test_a_failing_probe_names_its_first_bad_sample_on_the_method_clock():
    events = [
        ev(0.0, "run.origin"),
        ev(10.0, "run.method", start=10.0, length=6.0),
        ev(11.0, "probe.sample", "home", phase="during", output={"status": 200}),
        ev(21.76, "probe.sample", "home", phase="during", error="timed out after 1.00s"),
        ev(22.0, "run.end"),
    ]
    v = check_probe(History(events), "home", 200, Window(10.0, 22.0), "during")
    assert v.outcome == "fail"
    assert "first at t+11.76s: timed out" in v.note, v.note
    assert "t=21.76" not in v.note


def test_the_kill_switch_is_reported_on_the_method_clock(tmp_path):
    ctx = RunContext(load_experiment(FLAGSHIP), RunOptions(journal_dir=tmp_path, progress=lambda m: None))
    ctx.stage = "startup"  # not live: request_kill only records (nothing to cancel)
    ctx.method_start = 30.0
    ctx.timeline.clock.origin -= 41.25  # the run's clock reads about 41.25 s
    ctx.request_kill({"by": "alice", "how": "key", "key": "k"})
    assert ctx.stopped is not None
    assert abs(ctx.stopped["method_t"] - 11.25) < 1.0
    line = stopped_line(ctx.stopped)
    assert " at t+11." in line and "t=" not in line


def test_a_kill_before_the_method_says_so():
    line = stopped_line({"by": "bob", "how": "signal", "signal": "SIGTERM", "t": 4.0, "stage": "startup"})
    assert "4.0s into the run (before the method)" in line


def test_the_kill_line_never_says_t_minus_zero():
    line = stopped_line({"by": "bob", "how": "key", "t": 9.96, "method_t": -0.04, "stage": "live"})
    assert " at t+0.0s" in line, line
