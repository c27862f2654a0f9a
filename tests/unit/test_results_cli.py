"""`deadair run` with --results, --baseline, --fail-on, --repeat and --junit-xml, and the commands
history, compare and baseline, through the real CLI with the runner replaced by one that writes
the summaries a real run would (no engine). The same flows against the real stack are in
tests/integration/test_results_run.py."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from results_data import summary, write_run

import chaos.runner.run as runner
from chaos.cli import main
from chaos.runner.model import RunResult

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = str(ROOT / "experiments" / "mic-cut-hold-music.yaml")


@pytest.fixture
def fake_runs(monkeypatch, tmp_path):
    """The runner replaced: each call writes the next of the queued summaries into the journal dir."""
    queue: list[dict] = []
    calls: list[str] = []

    def fake_run(experiment, options):
        s = queue.pop(0)
        calls.append(s["run_id"])
        path = write_run(options.journal_dir, s)
        return RunResult(
            experiment=experiment,
            run_id=s["run_id"],
            status=s["status"],
            exit_code=s["exit_code"],
            journal=path.parent / "journal.jsonl",
            summary=path,
        )

    monkeypatch.setattr(runner, "run", fake_run)
    monkeypatch.delenv("DEADAIR_RESULTS", raising=False)
    return queue, calls


def cli(tmp_path, *args: str) -> int:
    return main(["run", FLAGSHIP, "--journal-dir", str(tmp_path / "runs"), *args])


def test_a_run_that_regresses_beyond_a_rule_exits_6_naming_the_measure(fake_runs, tmp_path, capsys):
    queue, _ = fake_runs
    queue += [summary("20261130-010000-aaaaaa", onset=0.5), summary("20261130-020000-bbbbbb", onset=0.9)]
    assert cli(tmp_path, "--fail-on", "hold_music.onset.p95:+20%") == 0
    err = capsys.readouterr().err  # the first run has none: nothing compared, and said so on stderr
    assert "deadair: warning: no baseline: " in err and "--fail-on hold_music.onset.p95:+20% not judged" in err
    junit = tmp_path / "j.xml"
    code = cli(tmp_path, "--fail-on", "hold_music.onset.p95:+20%", "--junit-xml", str(junit))
    out = capsys.readouterr().out
    assert code == 6
    assert "REGRESSED against baseline 20261130-010000-aaaaaa (last-pass):" in out
    assert "hold_music.onset.p95 (step 0) rose to 900ms from 500ms: +400ms (+80%)" in out
    [case] = ET.parse(junit).getroot().iter("testcase")
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "regression"
    assert "hold_music.onset.p95 (step 0) rose to 900ms" in failure.get("message", "")
    assert (tmp_path / "results.sqlite").is_file()  # beside the journals' folder


def test_a_pinned_baseline_is_used_and_history_and_compare_read_the_store(fake_runs, tmp_path, capsys):
    queue, _ = fake_runs
    queue += [
        summary("20261130-010000-aaaaaa", onset=0.5, started="2026-11-30T01:00:00Z"),
        summary("20261130-020000-bbbbbb", onset=0.52, started="2026-11-30T02:00:00Z"),
        summary("20261130-030000-cccccc", onset=0.6, started="2026-11-30T03:00:00Z"),
    ]
    store = ["--results", f"sqlite:///{tmp_path}/store.sqlite"]
    assert cli(tmp_path, *store) == 0
    assert main(["baseline", "tag", "20261130-010000", "gold", *store]) == 0
    assert "baseline gold is run 20261130-010000-aaaaaa" in capsys.readouterr().out
    assert cli(tmp_path, *store) == 0
    capsys.readouterr()
    # against last-pass (0.52) 0.6 is within 20 %; against the pinned 0.5 it is not
    assert cli(tmp_path, *store, "--baseline", "gold", "--fail-on", "hold_music.onset.p95:+15%") == 6
    assert "against baseline 20261130-010000-aaaaaa (gold)" in capsys.readouterr().out
    assert main(["history", FLAGSHIP, *store]) == 0
    out = capsys.readouterr().out
    assert out.count("\n  2026-11-30 ") == 3 and "tags: gold" in out
    assert main(["compare", "gold", "20261130-03", *store]) == 0
    assert "hold_music.onset.p95" in capsys.readouterr().out
    folder = str(tmp_path / "runs" / "20261130-030000-cccccc")  # a run's folder works too
    assert main(["compare", "gold", folder, *store, "--fail-on", "hold_music.onset:+50ms"]) == 6
    assert main(["baseline", "list", *store]) == 0
    assert "gold" in capsys.readouterr().out


def test_repeats_report_spread_and_a_flaky_verdict_everywhere(fake_runs, tmp_path, capsys):
    queue, calls = fake_runs
    queue += [summary("20261130-010000-aaaaaa", probe_ok=True), summary("20261130-010100-bbbbbb", probe_ok=False)]
    junit = tmp_path / "junit.xml"
    assert cli(tmp_path, "--repeat", "2", "--junit-xml", str(junit)) == 7
    assert len(calls) == 2
    out = capsys.readouterr().out
    assert "Repeated 2 time(s): FLAKY (exit 7)" in out
    assert any("probe counter is even" in line and "flaky (1 of 2)" in line for line in out.splitlines())
    repeat = tmp_path / "runs" / "repeat-20261130-010000-aaaaaa.json"
    assert repeat.is_file() and '"label": "flaky (1 of 2)"' in repeat.read_text()
    root = ET.parse(junit).getroot()
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert props["probe_counter_is_even_failed_repeats"] == "flaky (1 of 2)"
    assert props["deadair_repeat_status"] == "flaky"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [
        "Hold music covers a microphone-path cut [run 1 of 2]",
        "Hold music covers a microphone-path cut [run 2 of 2]",
    ]
    assert cases[0].find("failure") is None and cases[1].find("failure") is not None


def test_a_series_stops_at_a_run_that_could_not_finish(fake_runs, tmp_path, capsys):
    queue, calls = fake_runs
    queue += [dict(summary("20261130-010000-aaaaaa"), status="error", exit_code=3), summary("x")]
    assert cli(tmp_path, "--repeat", "3") == 3
    assert calls == ["20261130-010000-aaaaaa"]
    assert "Repeated 1 time(s) of 3 (stopped after run 1): ERROR (exit 3)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fail-on", "hold_music.onset.p95"], "expected MEASURE[.STAT][@WINDOW]:(+|-)AMOUNT"),
        (["--fail-on", "reconnect_time:+1s"], "the experiment judges no reconnect_time"),
        (["--baseline", "no-such-tag"], "no run or tag 'no-such-tag'"),
        (["--results", "mysql://db/results"], "the store is SQLite"),
        (["--repeat", "0"], "--repeat 0: expected a number of runs, 1 or more"),
    ],
)
def test_bad_results_options_exit_2_before_anything_runs(fake_runs, tmp_path, capsys, args, message):
    _, calls = fake_runs
    assert cli(tmp_path, *args) == 2
    assert message in capsys.readouterr().err and calls == []


def test_history_of_an_empty_store_says_what_it_holds(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    assert main(["history", "anything", "--journal-dir", str(tmp_path / "runs")]) == 2
    assert "no results store at" in capsys.readouterr().err


def test_a_regressed_or_flaky_run_is_never_the_next_baseline_and_history_says_what_each_was(
    fake_runs, tmp_path, capsys
):
    queue, _ = fake_runs
    rule = ["--fail-on", "hold_music.onset.p95:+20%"]
    queue += [
        summary("20261130-010000-aaaaaa", onset=0.5, started="2026-11-30T01:00:00Z"),
        summary("20261130-020000-bbbbbb", onset=0.9, started="2026-11-30T02:00:00Z"),  # tonight regresses
        summary("20261130-030000-cccccc", onset=0.9, started="2026-11-30T03:00:00Z"),  # tomorrow: as bad
        summary("20261130-040000-dddddd", onset=0.5, started="2026-11-30T04:00:00Z", probe_ok=True),
        summary("20261130-040100-eeeeee", onset=0.5, started="2026-11-30T04:01:00Z", probe_ok=False),
        dict(summary("20261130-050000-ffffff", onset=0.5, started="2026-11-30T05:00:00Z"), dry="faults"),
        summary("20261130-060000-gggggg", onset=0.9, started="2026-11-30T06:00:00Z"),
    ]
    assert cli(tmp_path) == 0
    assert cli(tmp_path, *rule) == 6
    assert cli(tmp_path, *rule) == 6  # against aaaaaa still, not against last night's regressed run
    assert "REGRESSED against baseline 20261130-010000-aaaaaa (last-pass)" in capsys.readouterr().out
    assert cli(tmp_path, "--repeat", "2") == 7  # a flaky series: none of its runs is a baseline
    assert cli(tmp_path, "--dry", "faults") == 0  # a dry run is none either
    capsys.readouterr()
    assert cli(tmp_path, *rule) == 6
    assert "against baseline 20261130-010000-aaaaaa (last-pass)" in capsys.readouterr().out
    assert main(["history", FLAGSHIP, "--journal-dir", str(tmp_path / "runs")]) == 0
    status = {line.split()[2]: line.split()[3] for line in capsys.readouterr().out.splitlines()[1:] if "stack" in line}
    assert status == {
        "20261130-010000-aaaaaa": "passed",
        "20261130-020000-bbbbbb": "regressed",
        "20261130-030000-cccccc": "regressed",
        "20261130-040000-dddddd": "flaky",
        "20261130-040100-eeeeee": "flaky",
        "20261130-050000-ffffff": "dry",
        "20261130-060000-gggggg": "regressed",
    }


def test_require_baseline_makes_a_run_with_no_baseline_exit_3(fake_runs, tmp_path, capsys):
    queue, _ = fake_runs
    queue += [summary("20261130-010000-aaaaaa")]
    assert cli(tmp_path, "--fail-on", "hold_music.onset.p95:+20%", "--require-baseline") == 3
    assert "--require-baseline: no baseline to judge against" in capsys.readouterr().err


@pytest.mark.parametrize(
    "content, message",
    [
        ("[1, 2]", "not a run's summary: expected a JSON object, not a list"),
        (
            '{"run_id": "x", "verdicts": "none"}',
            "not a run's summary: verdicts: expected a list of objects, not a string",
        ),
        ('{"run_id": "x", "verdicts": [1]}', "not a run's summary: verdicts[0]: expected an object, not a number"),
    ],
)
def test_compare_refuses_a_summary_of_the_wrong_shape_naming_the_file(tmp_path, capsys, content, message):
    good = write_run(tmp_path / "runs", summary("20261130-010000-aaaaaa"))
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert main(["compare", str(good), str(bad), "--journal-dir", str(tmp_path / "runs")]) == 2
    assert f"{bad}: {message}" in capsys.readouterr().err


def test_history_refuses_a_negative_limit(fake_runs, tmp_path, capsys):
    queue, _ = fake_runs
    queue += [summary("20261130-010000-aaaaaa")]
    assert cli(tmp_path) == 0
    assert main(["history", FLAGSHIP, "--journal-dir", str(tmp_path / "runs"), "--limit", "-1"]) == 2
    assert "--limit -1: expected a number of runs, 0 (every run) or more" in capsys.readouterr().err
    assert main(["history", FLAGSHIP, "--journal-dir", str(tmp_path / "runs"), "--limit", "0"]) == 0
    assert "1 run(s)" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fail-on", "nonsense"], "expected MEASURE[.STAT][@WINDOW]:(+|-)AMOUNT"),
        (["--repeat", "0"], "--repeat 0: expected a number of runs, 1 or more"),
        (["--baseline", "nosuchtag"], "no results store at"),
        (["--results", "mysql://db/results"], "the store is SQLite"),
    ],
)
def test_dry_all_checks_the_results_options_as_a_run_would(fake_runs, tmp_path, capsys, args, message):
    _, calls = fake_runs
    assert cli(tmp_path, "--dry", "all", *args) == 2
    assert message in capsys.readouterr().err and calls == []
    assert not (tmp_path / "results.sqlite").exists()


def test_dry_all_looks_a_tag_up_read_only_and_says_no_file_is_written(fake_runs, tmp_path, capsys):
    queue, calls = fake_runs
    queue += [summary("20261130-010000-aaaaaa")]
    assert cli(tmp_path) == 0
    store = tmp_path / "results.sqlite"
    assert main(["baseline", "tag", "20261130-010000", "gold", "--journal-dir", str(tmp_path / "runs")]) == 0
    before = store.read_bytes()
    capsys.readouterr()
    junit = tmp_path / "j.xml"
    assert cli(tmp_path, "--dry", "all", "--baseline", "gold", "--junit-xml", str(junit)) == 0
    out = capsys.readouterr().out
    assert f"dry run (--dry all): no file is written: no journal or report; nothing in the results store {store}" in out
    assert f"no --junit-xml {junit}" in out
    assert cli(tmp_path, "--dry", "all", "--baseline", "silver") == 2
    assert "no run or tag 'silver'" in capsys.readouterr().err
    assert store.read_bytes() == before and not junit.exists() and calls == ["20261130-010000-aaaaaa"]
