"""report.html on one clock: the method's, as the experiment's `at:`, the progress lines and the
failure messages count (`t+2.00s`). The journal records the run's clock; the report shifts every
time it draws or writes by the method's start (run.method), and keeps the run's clock, saying
so, for a run that never reached its method. Durations are not times: they do not move."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from synthetic_run import write_judged_run

from chaos.checkers.history import History, Window
from chaos.checkers.verdicts import check
from chaos.report.charts import timeline_figure
from chaos.report.html import render_html
from chaos.report.misses import Lane, choose_lanes
from chaos.report.runfiles import load_run
from chaos.report.story import plain_verdict
from chaos.timeline import Event

FLAGSHIP = Path(__file__).resolve().parents[1] / "data" / "runs" / "flagship-20261130-074937-ac9830"
M0 = 8.89  # the method's start on the run's clock: t+0


def ev(t: float, kind: str, src: str = "runner", **data) -> Event:
    return Event(t, kind, src, data)


def _run(folder: Path, method: bool = True) -> Path:
    """A run whose method starts at 8.89 s on the run's clock: a 4 s mic cut the journal records at
    10.89 s (the experiment's `at: 2s`), a crowd joining at 12.89 s, a probe sample at 12.89 s,
    one listener silent from 11.39 s to 12.39 s, a rollback action at 20.39 s. Without `method`,
    the same journal with no run.method event (a run stopped before its method)."""
    events = [ev(0.5, "run.phase", name="before", start=0.5, end=M0)]
    if method:
        events += [
            ev(M0, "run.phase", name="during", start=M0, end=16.89),
            ev(M0, "run.method", start=M0, length=8.0),
            ev(16.89, "run.phase", name="after", start=16.89, end=19.89),
        ]
    for lid, server in (("L0", "edge-1"), ("L1", "edge-2")):
        events += [
            ev(0.1, "listener.join", lid, attempt=0),
            ev(0.2, "listener.connected", lid, attempt=0, status=200, server=server),
            ev(0.3, "listener.stream", lid, title="live", serial=1, played_at=0.3),
            ev(0.3, "listener.first_audio", lid, attempt=0, title="live"),
        ]
    events += [
        ev(11.39, "listener.disconnect", "L1", reason="reset", attempt=0),
        ev(11.39, "listener.stall_start", "L1"),
        ev(12.39, "listener.first_audio", "L1", attempt=1, title="live"),
        ev(12.39, "listener.stall_end", "L1", duration=1.0, open=False),
        ev(10.89, "fault.start", step=0, occurrence="0.0", fault="mic.cut", target="mic"),
        ev(14.89, "fault.end", step=0, occurrence="0.0", fault="mic.cut", target="mic"),
        ev(12.89, "step.join", step=1, occurrence="1.0", count=5, span=2.0),
        ev(12.89, "probe.sample", "api health", phase="during", elapsed=0.004, output={"status": 200}),
        ev(9.89, "server.sample", "edge-1", probe="icecast", round=0, listeners=1),
        ev(10.89, "server.sample", "edge-1", probe="icecast", round=1, listeners=1),
        ev(19.89, "run.end"),
        ev(20.39, "rollback.action", "notify", output={"status": 0, "stdout": ""}),
    ]
    history = History(events)
    verdict = check(
        history, "dead_air", "max < 0.5s", Window(10.89, 14.89), "step", fault=history.faults["0.0"], step=0
    )
    assert verdict.outcome == "fail"  # L1's second of silence: judged on the run's clock
    return write_judged_run(folder, events, verdict, "clock", 1)


def _figure(journal: Path):
    rec = load_run(journal)
    return rec, timeline_figure(rec, [Lane("L1", "most silent")])


def _shape(fig, prefix: str):
    return next(s for s in fig.layout.shapes if s.name and s.name.startswith(prefix))


def _annotation(fig, hover: str):
    return next(a for a in fig.layout.annotations if a.hovertext and a.hovertext.startswith(hover))


def _trace(fig, kind: str):
    return next(t for t in fig.data if t.meta and t.meta.get("deadair") == kind)


def _axis_title(fig) -> str:
    return next(
        a["title"]["text"] for k, a in fig.layout.to_plotly_json().items() if k.startswith("xaxis") and "title" in a
    )


def test_a_fault_the_journal_records_at_10_89_is_drawn_at_t_plus_2(tmp_path):
    rec, fig = _figure(_run(tmp_path / "run"))
    assert rec.history.faults["0.0"].start == 10.89  # the journal and History keep the run's clock
    band = _shape(fig, "fault 0.0 mic.cut")
    assert (band.x0, band.x1) == (pytest.approx(2.0), pytest.approx(6.0))
    label = _annotation(fig, "cut the speaker's microphone connection")
    assert label.x == pytest.approx(4.0)
    assert label.hovertext == "cut the speaker's microphone connection from t+2.00s to t+6.00s (occurrence 0.0)"
    crowd = _shape(fig, "join 1.0")
    assert (crowd.x0, crowd.x1) == (pytest.approx(4.0), pytest.approx(6.0))
    assert "from t+4.00s to t+6.00s" in _annotation(fig, "a crowd joining").hovertext
    assert "10.89" not in label.hovertext and "12.89" not in _annotation(fig, "a crowd joining").hovertext


def test_phases_markers_and_every_row_share_the_methods_clock(tmp_path):
    _, fig = _figure(_run(tmp_path / "run"))
    assert _shape(fig, "phase before").x0 == pytest.approx(0.5 - M0)  # the gate: before t+0
    assert _shape(fig, "phase during").x0 == pytest.approx(0.0)
    assert _shape(fig, "phase after").x0 == pytest.approx(8.0)
    assert _annotation(fig, "method").hovertext == "method (phase during) from t+0.00s to t+8.00s"
    probe = _trace(fig, "probe")
    assert list(probe.x) == [pytest.approx(4.0)] and probe.hovertext[0].endswith("at t+4.00s")
    lanes = [t for t in fig.data if t.meta and t.meta.get("deadair") == "lanes"]
    silent = next(t for t in lanes if t.meta["state"] == "reconnecting")
    assert list(silent.base) == [pytest.approx(2.5)] and list(silent.x) == [pytest.approx(1.0)]  # a duration stays
    assert silent.hovertext[0].startswith("L1: ") and "from t+2.50s to t+3.50s" in silent.hovertext[0]
    server = _trace(fig, "server")
    assert list(server.x) == [pytest.approx(1.0), pytest.approx(2.0)]
    assert "t%{x:+.2f}s" in server.hovertemplate
    states = _trace(fig, "states")
    assert states.x[0] == pytest.approx(-M0) and states.x[1] == pytest.approx(1 - M0)  # the run's seconds, shifted
    assert "t%{x:+.2f}s" in states.hovertemplate
    assert _axis_title(fig) == "seconds from the method's start (t+0: the experiment's at: 0s)"


def test_the_page_writes_times_on_the_methods_clock_and_durations_as_durations(tmp_path):
    journal = _run(tmp_path / "run")
    page = render_html(load_run(journal))
    rollback = re.search(r'<ul id="rollback-ledger">(.*?)</ul>', page, re.S)
    assert rollback and "rollback action notify at t+11.50s: status 0" in rollback.group(1)
    assert "20.39" not in rollback.group(1)
    assert "19.9 s in all; the method (t+0) began 8.89 s in" in page and "on the run&#x27;s clock" not in page
    hint = re.search(r'<p class="hint" id="clock-hint">(.*?)</p>', page, re.S)
    assert hint and "the method&#x27;s clock" in hint.group(1)
    assert "for 4.00 s, 2.00 s after the method began" in page  # the story: a duration, then a time
    assert "L1 (edge-2): 1.00 s" in page  # who missed: judged on the run's clock, as the verdict was


def test_a_run_that_never_reached_its_method_keeps_the_runs_clock_and_says_so(tmp_path):
    journal = _run(tmp_path / "run", method=False)
    rec, fig = _figure(journal)
    assert rec.history.method_start is None
    band = _shape(fig, "fault 0.0 mic.cut")
    assert (band.x0, band.x1) == (pytest.approx(10.89), pytest.approx(14.89))
    assert "from 10.89s to 14.89s into the run" in _annotation(fig, "cut the speaker").hovertext
    assert "never reached its method" in _axis_title(fig)
    page = render_html(rec)
    assert "rollback action notify at 20.39s into the run: status 0" in page
    assert "the run never reached its method" in page
    assert "This run never reached its method (stopped, or not steady at the gate): times are seconds" in page
    assert "for 4.00 s, 10.9 s into the run" in plain_verdict(rec, {})


def test_the_recorded_flagship_run_draws_its_cut_where_the_experiment_put_it(tmp_path):
    """experiments/mic-cut-hold-music.yaml: `at: 5s`. The journal has it at 10.89 s on the run's
    clock (after a 5.9 s start-up and gate); the report at t+5.00s, as the progress line said."""
    run = tmp_path / "flagship"
    shutil.copytree(FLAGSHIP, run)
    rec = load_run(run / "journal.jsonl")
    (planned,) = rec.header["plan"]
    (fault,) = rec.history.faults.values()
    assert fault.start == pytest.approx(10.89, abs=0.01)
    fig = timeline_figure(rec, choose_lanes(rec.history, rec.states, {}))
    band = _shape(fig, "fault 0.0 mic.cut")
    assert band.x0 == pytest.approx(planned["at"], abs=0.05) and band.x1 == pytest.approx(13.0, abs=0.05)
    assert "from t+5.00s to t+13.00s" in _annotation(fig, "cut the speaker").hovertext
    for trace in fig.data:  # no hover writes a bare run-clock x any more
        assert "%{x}" not in str(trace.hovertemplate) and "%{x:.1f} s" not in str(trace.hovertemplate)
    page = render_html(rec)
    assert "for 8.00 s, 5.00 s after the method began" in page
    assert "seconds since the run began" not in page
