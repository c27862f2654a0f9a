"""report.html without a browser: the page is self-contained, rebuilt by `deadair report RUN` from
the run's folder alone, names the listeners that missed, says the verdict in plain words, and
refuses bad input with a located error (exit 2) instead of a traceback.
(tests/integration/test_report_browser.py opens a real run's report in Chromium.)"""

from __future__ import annotations

import html
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from synthetic_run import write_judged_run

from chaos.checkers.history import History, Window
from chaos.checkers.verdicts import check
from chaos.cli import main
from chaos.report.charts import timeline_figure
from chaos.report.html import render_html
from chaos.report.misses import choose_lanes, misses
from chaos.report.runfiles import RunNotFound, find_run, load_run
from chaos.report.story import plain_verdict, verdict_key
from chaos.timeline import Event

FLAGSHIP = Path(__file__).resolve().parents[1] / "data" / "runs" / "flagship-20261130-074937-ac9830"

pytest_plugins = ["pytester"]


class _Resources(HTMLParser):
    """Every URL the page would fetch: script src, link href, img/iframe/source src."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("src", "href"):
            if a.get(key) and tag in ("script", "link", "img", "iframe", "source", "embed", "object"):
                self.urls.append(str(a[key]))
        if tag == "script" and not a.get("src"):
            self.inline_scripts += 1


@pytest.fixture
def flagship(tmp_path) -> Path:
    run = tmp_path / "runs" / "20261130-074937-ac9830"
    shutil.copytree(FLAGSHIP, run)
    return run


def test_deadair_report_rebuilds_a_self_contained_page_from_the_run_folder(flagship, capsys):
    assert main(["report", str(flagship)]) == 0
    page = flagship / "report.html"
    assert f"report: {page}" in capsys.readouterr().out
    text = page.read_text()
    parser = _Resources()
    parser.feed(text)
    assert [u for u in parser.urls if not u.startswith("data:")] == []  # nothing fetched: offline
    assert parser.inline_scripts >= 2  # Plotly itself, and the figure
    assert "plotly.js v" in text or "Plotly" in text
    size = page.stat().st_size
    print(f"flagship report.html: {size} bytes ({size / 1e6:.2f} MB)")
    assert 'id="plain-verdict"' in text and "The system held up: all 5 goals were met." in text
    assert "cut the speaker&#x27;s microphone connection for 8.00 s" in text


def test_a_run_is_found_by_folder_journal_or_run_id(flagship, tmp_path):
    journal = flagship / "journal.jsonl"
    assert find_run(str(flagship), tmp_path) == journal
    assert find_run(str(journal), tmp_path) == journal
    assert find_run("20261130-074937-ac9830", flagship.parent) == journal
    out = tmp_path / "elsewhere.html"
    assert main(["report", "20261130-074937-ac9830", "--journal-dir", str(flagship.parent), "-o", str(out)]) == 0
    assert out.read_text().startswith("<!doctype html>") and not (flagship / "report.html").exists()


def test_bad_runs_are_located_errors_with_exit_2_never_a_traceback(tmp_path, capsys):
    assert main(["report", "no-such-run", "--journal-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no run 'no-such-run'" in err and "Traceback" not in err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "journal.jsonl").write_text(
        '{"t": 0, "kind": "run.origin", "src": "runner"}\n{"t": 1, "kind": "x"}\nnot json\n'
    )
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert f"{bad / 'journal.jsonl'}:3: not a deadair journal event" in err and "Traceback" not in err
    (bad / "journal.jsonl").write_text('{"t": 1, "kind": "listener.join", "src": "L0"}\n')
    with pytest.raises(RunNotFound, match="no run.origin line"):
        load_run(bad / "journal.jsonl")


def test_the_chart_holds_the_fault_windows_and_the_per_second_listener_states(flagship):
    rec = load_run(flagship / "journal.jsonl")
    fig = timeline_figure(rec, choose_lanes(rec.history, rec.states, {}))
    (fault,) = rec.history.faults.values()
    bands = {(s.name, s.x0, s.x1) for s in fig.layout.shapes if s.name and s.name.startswith("fault ")}
    m0 = rec.history.method_start  # drawn on the method's clock (tests/unit/test_report_clock.py)
    assert m0 is not None
    assert bands == {("fault 0.0 mic.cut mic", fault.start - m0, fault.end - m0)}
    counts = rec.states.counts()
    series = {t.meta["state"]: list(t.y) for t in fig.data if t.meta and t.meta.get("deadair") == "states"}
    assert set(series) == set(counts)
    for state, ys in series.items():
        assert ys[:-1] == counts[state]  # one step per second (the last repeated to close its second)
    assert series["hold"][12:18] == [20] * 6 and series["live"][12:18] == [0] * 6


# -- a synthetic run that failed: who missed, in the table and in plain words ---------------------


def _failed_run(folder: Path, title: str = "Mic cut <script>alert(1)</script>") -> Path:
    """Three listeners and an 5 s mic cut: L0 hears hold music after 0.5 s, L1 after 3 s, L2 never
    (it lost its connection and sat in dead air for a second)."""

    def ev(t, kind, src, **data):
        return Event(t, kind, src, data)

    events = [ev(0.5, "run.phase", "runner", name="before", start=0.5, end=5.0)]
    for i, hold_at in enumerate((5.5, 8.0, None)):
        lid = f"L{i}"
        events += [
            ev(0.1, "listener.join", lid, attempt=0),
            ev(0.2, "listener.connected", lid, attempt=0, status=200, server="edge-1" if i < 2 else "edge-2"),
            ev(0.3, "listener.stream", lid, title="live", serial=1, played_at=0.3),
            ev(0.3, "listener.first_audio", lid, attempt=0, title="live"),
        ]
        if hold_at:
            events.append(ev(hold_at, "listener.stream", lid, title="hold", serial=2, played_at=hold_at))
    events += [
        ev(6.0, "listener.disconnect", "L2", reason="reset", attempt=0),
        ev(6.0, "listener.stall_start", "L2"),
        ev(7.0, "listener.first_audio", "L2", attempt=1, title="live"),
        ev(7.0, "listener.stall_end", "L2", duration=1.0, open=False),
        ev(5.0, "fault.start", "runner", step=0, occurrence="0.0", fault="mic.cut", target="mic"),
        ev(10.0, "fault.end", "runner", step=0, occurrence="0.0", fault="mic.cut", target="mic"),
        ev(3.0, "probe.sample", "api health", phase="during", elapsed=0.004, output={"status": 200, "body": "ok"}),
        ev(7.0, "probe.sample", "api health", phase="during", error="timed out after 2s"),
        ev(12.0, "run.end", "runner"),
        ev(12.5, "rollback.action", "notify", output={"status": 0, "stdout": ""}),
    ]
    history = History(events)
    (span,) = history.faults.values()
    verdict = check(history, "hold_music.onset", "p95 < 2s", Window(5.0, 10.0), "step", fault=span, step=0)
    assert verdict.outcome == "fail"
    return write_judged_run(folder, events, verdict, title, 3)


def test_the_listeners_that_missed_are_named_missing_first_then_the_slowest(tmp_path):
    rec = load_run(_failed_run(tmp_path / "run"))
    (v,) = rec.verdicts
    assert v["missing"] == ["L2"]
    named = [(m.subject, m.value, m.served_by) for m in misses(rec.history, v)]
    assert named == [("L2", None, "edge-2"), ("L1", pytest.approx(3.0), "edge-1")]  # L0 (0.5 s) met the bound
    lanes = choose_lanes(rec.history, rec.states, {"hold_music.onset": misses(rec.history, v)})
    assert [(lane.listener, lane.why) for lane in lanes][:2] == [
        ("L2", "missed hold_music.onset"),
        ("L1", "missed hold_music.onset"),
    ]
    text = plain_verdict(rec, {verdict_key(v): misses(rec.history, v)})
    assert text.startswith("The system did not hold up: 1 of 1 goals were missed.")
    assert (
        "1 of 3 listeners never heard hold music (goal: under 2.00 s; MISSED); missed by L2 on edge-2, L1 on edge-1"
        in text
    )
    assert "In all, 1 of 3 listeners heard some dead air; the longest silence was 1.00 s (L2 on edge-2)." in text


def test_the_failed_run_page_names_them_and_escapes_what_the_run_wrote(tmp_path):
    page = render_html(load_run(_failed_run(tmp_path / "run")))
    assert "L2 (edge-2): never; L1 (edge-1): 3.00 s" in page
    assert '<td class="fail">FAIL</td>' in page
    assert ">p95=never</td>" in page  # infinite (a listener never got there), not "n/a"
    assert "<script>alert(1)</script>" not in page and "Mic cut &lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_run_without_a_summary_claims_no_verdict(tmp_path):
    journal = _failed_run(tmp_path / "run")
    (journal.parent / "summary.json").unlink()
    page = render_html(load_run(journal))
    assert "This run left no summary, so no goal can be reported as met." in page
    assert ">UNKNOWN</span>" in page and "PASSED" not in page and "no verdicts: no summary" in page


# -- after every run: the CLI's and the pytest plugin's ---------------------------------------------


def _result(journal: Path | None):
    from chaos.language.loader import load_experiment
    from chaos.runner.model import RunResult

    exp = load_experiment(Path(__file__).resolve().parents[2] / "experiments" / "mic-cut-hold-music.yaml")
    summary = journal.parent / "summary.json" if journal else None
    return RunResult(exp, "r1", "passed", 0, journal=journal, summary=summary)


def test_after_run_writes_the_report_beside_the_journal_and_a_failure_changes_nothing(flagship):
    from chaos.report.html import after_run

    result = _result(flagship / "journal.jsonl")
    assert after_run(result) == flagship / "report.html" == result.report
    assert (flagship / "report.html").stat().st_size > 1_000_000
    said: list[str] = []
    (flagship / "journal.jsonl").write_text("garbage\n")
    broken = _result(flagship / "journal.jsonl")
    assert after_run(broken, said.append) is None and broken.report is None and broken.exit_code == 0
    assert said and "could not write the report" in said[0] and f"deadair report {flagship}" in said[0]
    assert after_run(_result(None)) is None  # a run that left no journal has no report


def test_the_pytest_plugin_writes_each_items_report(pytester, monkeypatch, flagship):
    import chaos.pytest_plugin as plugin

    root = Path(__file__).resolve().parents[2]
    text = (root / "experiments" / "mic-cut-hold-music.yaml").read_text()
    pytester.makeini("[pytest]\ndeadair_paths = experiments\n")
    pytester.mkdir("experiments")
    (pytester.path / "experiments" / "cut.yaml").write_text(
        text.replace("stack: audio-room", f"stack: {root / 'compose' / 'audio-room'}")
    )
    monkeypatch.setattr(plugin, "run", lambda experiment, options: _result(flagship / "journal.jsonl"))
    monkeypatch.setattr(plugin._Stacks, "get", lambda self, name="audio-room", near=None: None)
    result = pytester.runpytest_inprocess(
        "-q", "-p", "no:cacheprovider", "-rA", "--deadair-results", str(pytester.path / "results.sqlite")
    )
    assert result.ret == 0, result.stdout.str()
    assert (flagship / "report.html").is_file()
    result.stdout.fnmatch_lines([f"*report: {flagship / 'report.html'}*"])


def test_a_repeated_runs_report_shows_the_flaky_verdicts_apart(flagship):
    """With --repeat N, chaos.results writes the series' summary beside the runs; the report shows
    each verdict across the repeats and says which were flaky, in the table and in plain words."""
    from chaos.report.html import after_run
    from chaos.results import repeats

    first = json.loads((flagship / "summary.json").read_text())
    second = json.loads(json.dumps(first))
    second["run_id"] = "20261130-075100-bbbbbb"
    onset = next(v for v in second["verdicts"] if v["measure"] == "hold_music.onset")
    onset.update(value=2.5, passed=False, outcome="fail")
    second.update(status="failed", exit_code=1)
    other = flagship.parent / second["run_id"]
    other.mkdir()
    (other / "summary.json").write_text(json.dumps(second))
    series = repeats.summarize([first, second], [flagship / "summary.json", other / "summary.json"], 2)
    repeats.write(series, flagship.parent)
    after_run(_result(flagship / "journal.jsonl"))  # as `deadair run --repeat` does once the series is over
    page = (flagship / "report.html").read_text()
    assert 'id="repeats-table"' in page and "FLAKY (1 OF 2)" in page
    assert "This was run 1 of 2 of the same test; across them, 1 goal(s) came out differently" in page


def test_probe_samples_are_drawn_and_rollback_actions_listed(tmp_path):
    rec = load_run(_failed_run(tmp_path / "run"))
    fig = timeline_figure(rec, [])
    (probe,) = [t for t in fig.data if t.meta and t.meta.get("deadair") == "probe"]
    assert list(probe.x) == [3.0, 7.0] and list(probe.marker.symbol) == ["circle", "x"]
    assert "api health (during): timed out after 2s" in probe.hovertext[1]
    page = render_html(rec)
    assert "rollback action notify at 12.50s into the run: status 0" in page  # no run.method: the run's clock


def test_a_dry_runs_story_never_says_the_fault_goals_were_met(flagship):
    """`--dry faults`: nothing injected, the fault's goals judged but not counted; the paragraph
    says so first and never that the system held up."""
    s = json.loads((flagship / "summary.json").read_text())
    for v in s["verdicts"]:
        if v["phase"] == "step":
            v["skipped"] = True
    s["dry"] = "faults"
    (flagship / "summary.json").write_text(json.dumps(s))
    rec = load_run(flagship / "journal.jsonl")
    text = plain_verdict(rec, {})
    assert text.startswith(
        "Dry run: no fault was injected; the 3 goal(s) judged without faults were met; "
        "2 goal(s) about the faults were not counted."
    )
    assert "held up" not in text and "hold music within" not in text  # no fault goal is claimed met
    page = render_html(rec)
    assert 'id="dry-run"' in page and "DRY RUN (--dry faults)" in page


def _series(flagship: Path, **record) -> None:
    """The flagship run as run 1 of a 2-run series whose other run also passed, with the series'
    summary changed by `record` (as chaos.results records a regression or a flaky outcome)."""
    from chaos.results import repeats

    first = json.loads((flagship / "summary.json").read_text())
    second = {**first, "run_id": "20261130-075100-bbbbbb"}
    other = flagship.parent / second["run_id"]
    other.mkdir()
    (other / "summary.json").write_text(json.dumps(second))
    series = repeats.summarize([first, second], [flagship / "summary.json", other / "summary.json"], 2)
    repeats.write({**series, **record}, flagship.parent)


def test_a_passed_run_of_a_regressed_series_does_not_say_held_up(flagship):
    message = "hold_music.onset.p95: 0.49 s -> 0.80 s (+63%), beyond +20%"
    _series(
        flagship,
        status="regressed",
        exit_code=6,
        regression={"baseline": "r0", "baseline_ref": "last-pass", "regressions": [{"message": message}]},
    )
    rec = load_run(flagship / "journal.jsonl")
    text = plain_verdict(rec, {})
    assert "held up" not in text
    assert text.startswith("This run met all 5 goals, but the series of runs it belongs to regressed")
    assert f"the series REGRESSED against its baseline: {message}" in text
    page = render_html(rec)
    assert 'id="series-outcome"' in page and "belongs to REGRESSED (exit 6)" in page
    assert html.escape(message) in page


def test_a_passed_run_of_a_flaky_series_does_not_say_held_up(flagship):
    _series(flagship, status="flaky", exit_code=7)  # the runs' exit codes differed, every verdict alike
    rec = load_run(flagship / "journal.jsonl")
    text = plain_verdict(rec, {})
    assert "held up" not in text and "was flaky: its runs disagreed" in text
    assert "the series was FLAKY" in text
    assert "belongs to FLAKY (exit 7)" in render_html(rec)


@pytest.mark.parametrize(
    "change, where",
    [
        ({"rollback": "all good"}, "rollback: expected an object or null, not a string"),
        ({"verdicts": [1, 2]}, "verdicts[0]: expected an object, not a number"),
        ({"verdicts": "abc"}, "verdicts: expected a list of objects, not a string"),
        ({"rollback": {"failed": ["mic.cut"]}}, "rollback.failed: expected a list of objects"),
        ({"abort": "x"}, "abort: expected an object or null"),
    ],
)
def test_a_summary_of_the_wrong_shape_is_a_located_error_not_a_traceback(flagship, capsys, change, where):
    s = json.loads((flagship / "summary.json").read_text())
    (flagship / "summary.json").write_text(json.dumps({**s, **change}))
    assert main(["report", str(flagship)]) == 2
    err = capsys.readouterr().err
    assert f"{flagship / 'summary.json'}: not a deadair summary: {where}" in err and "Traceback" not in err


def test_a_verdict_summary_that_is_not_an_object_is_refused(flagship):
    s = json.loads((flagship / "summary.json").read_text())
    s["verdicts"][1]["summary"] = [0.5]
    (flagship / "summary.json").write_text(json.dumps(s))
    with pytest.raises(RunNotFound, match=r"verdicts\[1\]\.summary: expected an object or null, not a list"):
        load_run(flagship / "journal.jsonl")
