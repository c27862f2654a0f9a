"""JUnit with the numbers: the CLI's file and pytest's --junitxml carry every verdict's value and
outcome, read back with xml.etree and checked against the summary.json they came from. (The same
against real runs: tests/integration/test_results_run.py.)"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from pathlib import Path

from results_data import summary, write_run

from chaos.checkers.names import named
from chaos.report.junit import Case, write_junit
from chaos.results.store import ResultsStore

ROOT = Path(__file__).resolve().parents[2]
VALID = (
    (ROOT / "experiments" / "mic-cut-hold-music.yaml")
    .read_text()
    .replace("stack: audio-room", f"stack: {ROOT / 'compose' / 'audio-room'}")
)

pytest_plugins = ["pytester"]


def properties_of(case: ET.Element) -> dict[str, str]:
    props = case.findall("properties/property")
    names = [p.get("name") for p in props]
    assert len(names) == len(set(names)), f"property names repeat: {names}"
    return {str(p.get("name")): str(p.get("value")) for p in props}


def assert_numbers_match(props: dict[str, str], summary_json: dict) -> None:
    """Every verdict of the summary is a property with its value and its outcome."""
    verdicts = named(summary_json["verdicts"])
    assert verdicts
    for v in verdicts:
        expected = v["value"]
        got = props[v["name"]]
        if expected is None:
            assert got in ("inf", "nan")
        else:
            assert math.isclose(float(got), expected, rel_tol=0, abs_tol=0), (v["name"], got, expected)
        assert props[f"{v['name']}_outcome"] == ("skipped" if v.get("skipped") else v["outcome"])
    assert props["deadair_run_id"] == summary_json["run_id"]
    assert props["deadair_status"] == summary_json["status"]


def test_the_cli_file_has_one_case_per_run_with_the_numbers_and_a_failure_with_the_verdicts(tmp_path):
    ok = summary("20261130-010000-aaaaaa", onset=0.4859527030014217)
    bad = summary("20261130-020000-bbbbbb", onset=2.25, resume=0.1 + 0.2)
    never = summary("20261130-030000-cccccc")
    never["verdicts"][4].update(value=None, outcome="fail", summary={**never["verdicts"][4]["summary"], "missing": 3})
    never.update(status="failed", exit_code=1)
    cases = [Case(s, write_run(tmp_path, s).parent, f"text of {s['run_id']}") for s in (ok, bad, never)]
    path = write_junit(tmp_path / "out" / "junit.xml", cases)
    suite = ET.parse(path).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "2", "0")
    xml_cases = suite.findall("testcase")
    for case, s in zip(xml_cases, (ok, bad, never)):
        props = properties_of(case)
        assert_numbers_match(props, json.loads(json.dumps(s)))
        folder = tmp_path / s["run_id"]
        assert props["deadair_journal"] == str(folder / "journal.jsonl")
        assert props["deadair_report"] == str(folder / "report.html")
        assert case.get("classname") == "experiments.mic-cut-hold-music.yaml"
    assert properties_of(xml_cases[0])["hold_music_onset_p95_s"] == "0.4859527030014217"
    assert properties_of(xml_cases[2])["live_resume_p95_s"] == "inf"
    assert xml_cases[0].find("failure") is None
    failure = xml_cases[1].find("failure")
    assert failure is not None and failure.get("message") == "FAILED (exit 1)"
    assert failure.text == "text of 20261130-020000-bbbbbb"


def test_a_skipped_verdict_is_marked_skipped_and_not_read_as_a_failure(tmp_path):
    s = summary("20261130-010000-aaaaaa", onset=2.5)  # judged over a fault not injected: would fail
    s["verdicts"][3]["skipped"] = True
    s.update(status="passed", exit_code=0, dry="faults")
    path = write_junit(tmp_path / "j.xml", [Case(s, write_run(tmp_path, s).parent, "")])
    [case] = ET.parse(path).getroot().iter("testcase")
    props = properties_of(case)
    assert props["hold_music_onset_p95_s_skipped"] == "true"
    assert props["hold_music_onset_p95_s_outcome"] == "skipped"
    assert props["hold_music_onset_p95_s"] == "2.5"  # the number is still there
    assert "live_resume_p95_s_skipped" not in props and props["live_resume_p95_s_outcome"] == "pass"
    assert case.find("failure") is None


def test_a_run_deadair_could_not_finish_is_an_error_not_a_failure(tmp_path):
    s = {"title": "t", "run_id": "r", "status": "error", "exit_code": 3, "error": "no engine"}
    suite = ET.parse(write_junit(tmp_path / "j.xml", [Case(s, None, "")])).getroot().find("testsuite")
    assert suite is not None and suite.get("errors") == "1"
    error = suite.find("testcase/error")
    assert error is not None and error.get("message") == "ERROR (exit 3): no engine"


def test_pytest_junitxml_carries_the_numbers_of_an_experiment_item_and_the_run_is_stored(pytester, monkeypatch):
    """The plugin's `run` replaced by one that writes a summary as a run does (no stack)."""
    import chaos.pytest_plugin as plugin
    from chaos.runner.run import RunResult

    written: list[Path] = []

    def fake_run(experiment, options):
        s = summary("20261130-040000-dddddd", onset=0.61803, dead_air=0.25)
        path = write_run(options.journal_dir, s)
        written.append(path)
        return RunResult(experiment, s["run_id"], "passed", 0, journal=path.parent / "journal.jsonl", summary=path)

    monkeypatch.setattr(plugin, "run", fake_run)
    monkeypatch.setattr(plugin._Stacks, "get", lambda self, name="audio-room", near=None: None)
    monkeypatch.delenv("DEADAIR_RESULTS", raising=False)
    pytester.makeini("[pytest]\ndeadair_paths = experiments\n")
    pytester.mkdir("experiments")
    (pytester.path / "experiments" / "cut.yaml").write_text(VALID)
    journal_dir = pytester.path / "journals" / "runs"
    result = pytester.runpytest_inprocess(
        "-p", "no:cacheprovider", "--junitxml=out.xml", f"--deadair-journal-dir={journal_dir}"
    )
    assert result.ret == 0
    [case] = ET.parse(pytester.path / "out.xml").getroot().iter("testcase")
    props = properties_of(case)
    [summary_path] = written
    assert_numbers_match(props, json.loads(summary_path.read_text()))
    assert props["hold_music_onset_p95_s"] == "0.61803" and props["during_dead_air_max_s"] == "0.25"
    assert props["deadair_journal"] == str(summary_path.parent / "journal.jsonl")
    assert props["deadair_report"] == str(summary_path.parent / "report.html")
    with ResultsStore(journal_dir.parent / "results.sqlite", create=False) as store:
        assert store.get("20261130-040000-dddddd").status == "passed"
