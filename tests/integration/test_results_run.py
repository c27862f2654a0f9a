"""History, regressions, flakes and JUnit with real runs against the real stack: a run made worse on
purpose fails its baseline with the measure named; a verdict that passes on odd runs and fails on
even ones is reported flaky; pytest's --junitxml and the CLI's --junit-xml carry the numbers of
the summary.json they came from. Short runs, few listeners."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import yaml
from conftest import ROOT, deadair

from chaos.checkers.names import named
from chaos.language.units import format_duration
from chaos.stack.compose import Stack

STACK = str(ROOT / "compose" / "audio-room")


def write(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"stack": STACK, "seed": 1, **doc}, sort_keys=False))
    return path


def summaries(journal_dir: Path) -> dict[str, dict]:
    return {f.parent.name: json.loads(f.read_text()) for f in sorted(journal_dir.glob("*/summary.json"))}


def verdict(s: dict, name: str) -> dict:
    return next(v for v in named(s["verdicts"]) if v["name"] == name)


def junit_cases(path: Path) -> list[dict[str, str]]:
    root = ET.parse(path).getroot()
    return [
        {str(p.get("name")): str(p.get("value")) for p in case.findall("properties/property")}
        for case in root.iter("testcase")
    ]


def assert_carries_the_numbers(props: dict[str, str], s: dict) -> None:
    """Every verdict of the run's summary.json is a property with the same value and outcome."""
    assert s["verdicts"]
    for v in named(s["verdicts"]):
        value = props[v["name"]]
        if v["value"] is None:
            assert value in ("inf", "nan"), (v["name"], value)
        else:
            assert float(value) == v["value"], (v["name"], value, v["value"])
        assert props[f"{v['name']}_outcome"] == ("skipped" if v.get("skipped") else v["outcome"])
    assert props["deadair_run_id"] == s["run_id"]
    assert props["deadair_stack_fingerprint"] == s["stack_fingerprint"]["id"]
    assert Path(props["deadair_journal"]).name == "journal.jsonl" and Path(props["deadair_journal"]).exists()
    assert props["deadair_report"] == str(Path(props["deadair_journal"]).parent / "report.html")


def test_a_worse_fault_fails_the_baseline_naming_the_measure(stack: Stack, tmp_path, state_dir):
    """No hold music at the origin: a mic cut is dead air for about the cut. The same experiment
    with a longer cut (--var) is a regression of dead_air.max during the method; --fail-on with
    the last passed run as the baseline fails it (exit 6) and says which measure and by how much."""
    exp = write(
        tmp_path / "regress.yaml",
        {
            "title": "results: a longer cut is a regression",
            "vars": {"cut": "2s"},
            "listeners": {"count": 4, "join": "direct", "via": "entry-origin", "backoff": ["100ms"] * 100},
            "windows": {"gate": "1s", "recovery": "2s"},
            "steady_state": [{"measure": "dead_air.max", "expect": "< 30s"}],
            "method": [
                {"at": "0s", "fault": "node.stop", "target": "hold-music", "for": "8s"},
                {"at": "1s", "fault": "mic.cut", "for": "${cut}"},
            ],
        },
    )
    runs = tmp_path / "runs"
    rule = ["--fail-on", "dead_air.max:+1s", "--journal-dir", str(runs)]
    first = deadair("run", str(exp), *rule)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "deadair: warning: no baseline:" in first.stderr
    [(first_id, s1)] = summaries(runs).items()
    junit = tmp_path / "junit.xml"
    second = deadair("run", str(exp), "--var", "cut=5s", *rule, "--junit-xml", str(junit))
    assert second.returncode == 6, second.stdout + second.stderr
    [(second_id, s2)] = [(k, v) for k, v in summaries(runs).items() if k != first_id]
    assert s2["status"] == "passed"  # every hypothesis held: only the baseline fails it
    before, after = verdict(s1, "during_dead_air_max_s")["value"], verdict(s2, "during_dead_air_max_s")["value"]
    assert after > before + 1.0, (before, after)
    assert f"REGRESSED against baseline {first_id} (last-pass):" in second.stdout
    [line] = [x for x in second.stdout.splitlines() if "dead_air.max (during) rose to" in x]
    assert f"from {format_duration(before)}: +{format_duration(after - before)}" in line, line
    assert line.endswith(f"beyond --fail-on dead_air.max:+1s (at most {format_duration(before + 1.0)})"), line
    assert "different stack" not in second.stdout  # the same images and files: the same fingerprint
    assert s1["stack_fingerprint"]["id"] == s2["stack_fingerprint"]["id"] != "unknown"
    assert set(s2["stack_fingerprint"]["images"]) >= {"origin", "lb", "toxiproxy"}

    [props] = junit_cases(junit)
    assert_carries_the_numbers(props, s2)
    failure = next(ET.parse(junit).getroot().iter("failure"))
    assert failure.get("type") == "regression" and "dead_air.max (during)" in str(failure.get("message"))

    history = deadair("history", str(exp), "--journal-dir", str(runs))
    assert history.returncode == 0, history.stderr
    print(f"\n--- deadair run --var cut=5s --fail-on dead_air.max:+1s\n{second.stdout}\n--- history\n{history.stdout}")
    assert first_id in history.stdout and second_id in history.stdout and "vars: cut=5s" in history.stdout
    assert f"{first_id}  passed " in history.stdout and f"{second_id}  regressed " in history.stdout
    tag = deadair("baseline", "tag", first_id, "two-second-cut", "--journal-dir", str(runs))
    assert tag.returncode == 0, tag.stderr
    compare = deadair("compare", "two-second-cut", second_id, "--journal-dir", str(runs))
    assert compare.returncode == 0 and "dead_air.max@during" in compare.stdout, compare.stdout + compare.stderr
    print(f"--- compare\n{compare.stdout}")
    again = deadair(
        "compare", "two-second-cut", second_id, "--fail-on", "dead_air.max@during:+1s", "--journal-dir", str(runs)
    )
    assert again.returncode == 6 and "dead_air.max (during) rose to" in again.stdout


def test_a_verdict_that_passes_on_odd_runs_and_fails_on_even_ones_is_flaky(stack: Stack, tmp_path, state_dir):
    """A process probe reads a counter that the experiment's rollback action bumps once per run:
    even (pass) in the first run, odd (fail) in the second. --repeat 2 reports it flaky (1 of 2)
    in the terminal, the repeat summary and JUnit, and exits 7."""
    counter = tmp_path / "counter"
    counter.write_text("")
    exp = write(
        tmp_path / "flaky.yaml",
        {
            "title": "results: a flaky probe",
            "listeners": {"count": 2},
            "windows": {"gate": "1s", "recovery": "1s"},
            "steady_state": [
                {"measure": "dead_air.max", "expect": "< 5s"},
                {
                    "probe": "counter is even",
                    "process": {"path": "sh", "arguments": ["-c", f'test $(( $(wc -l < "{counter}") % 2 )) -eq 0']},
                    "tolerance": 0,
                    "when": ["after"],
                },
            ],
            "method": [
                {"at": "0s", "fault": "link.latency", "target": "relay-1", "with": {"latency": "20ms"}, "for": "1s"}
            ],
            "rollbacks": [
                {"action": "count this run", "process": {"path": "sh", "arguments": ["-c", f'echo run >> "{counter}"']}}
            ],
        },
    )
    runs, junit = tmp_path / "runs", tmp_path / "junit.xml"
    proc = deadair("run", str(exp), "--repeat", "2", "--journal-dir", str(runs), "--junit-xml", str(junit))
    assert proc.returncode == 7, proc.stdout + proc.stderr
    assert counter.read_text().count("run") == 2
    assert "Repeated 2 time(s): FLAKY (exit 7)" in proc.stdout
    print(f"\n--- deadair run --repeat 2\n{proc.stdout}")
    [line] = [x for x in proc.stdout.splitlines() if "probe counter is even" in x and "across" not in x and "<-" in x]
    assert "flaky (1 of 2)" in line
    [repeat_file] = runs.glob("repeat-*.json")
    repeat = json.loads(repeat_file.read_text())
    probe = next(v for v in repeat["verdicts"] if v["name"] == "probe_counter_is_even_failed")
    assert (probe["label"], probe["outcomes"], repeat["status"]) == ("flaky (1 of 2)", ["pass", "fail"], "flaky")
    dead_air = next(v for v in repeat["verdicts"] if v["name"] == "during_dead_air_max_s")
    assert dead_air["label"] == "pass (2 of 2)" and dead_air["min"] <= dead_air["median"] <= dead_air["max"]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    suite_props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert suite_props["probe_counter_is_even_failed_repeats"] == "flaky (1 of 2)"
    runs_by_id = summaries(runs)
    cases = junit_cases(junit)
    assert [c["probe_counter_is_even_failed_outcome"] for c in cases] == ["pass", "fail"]
    for props in cases:
        assert_carries_the_numbers(props, runs_by_id[props["deadair_run_id"]])
        assert props["probe_counter_is_even_failed_repeats"] == "flaky (1 of 2)"


def test_pytest_junitxml_and_the_cli_junit_carry_the_run_numbers(stack: Stack, tmp_path, state_dir):
    """The same experiment as a pytest item (--junitxml) and with `deadair run --junit-xml`; both
    files read back with xml.etree hold every verdict of the summary.json each run wrote."""
    project = tmp_path / "project"
    exp = write(
        project / "experiments" / "cut.yaml",
        {
            "title": "results: junit numbers",
            "listeners": {"count": 4},
            "windows": {"gate": "1s", "recovery": "1s"},
            "steady_state": [{"measure": "dead_air.max", "expect": "< 1.5s"}],
            "method": [
                {
                    "at": "0s",
                    "fault": "mic.cut",
                    "for": "2s",
                    "expect": [{"measure": "hold_music.onset", "expect": "p95 < 3s"}],
                }
            ],
        },
    )
    (project / "pytest.ini").write_text("[pytest]\ndeadair_paths = experiments\n")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "--junitxml=out.xml",
            "--deadair-journal-dir=runs",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [(run_id, s)] = summaries(project / "runs").items()
    [props] = junit_cases(project / "out.xml")
    assert_carries_the_numbers(props, s)
    onset = float(props["hold_music_onset_p95_s"])
    assert math.isfinite(onset) and onset == verdict(s, "hold_music_onset_p95_s")["value"]
    assert props["deadair_experiment_id"].endswith("experiments/cut.yaml::results: junit numbers")
    assert (project / "results.sqlite").is_file()  # the run is in the store beside the journals

    cli = deadair(
        "run", str(exp), "--journal-dir", str(tmp_path / "cli-runs"), "--junit-xml", str(tmp_path / "cli.xml")
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    [(_, s_cli)] = summaries(tmp_path / "cli-runs").items()
    [cli_props] = junit_cases(tmp_path / "cli.xml")
    assert_carries_the_numbers(cli_props, s_cli)
    assert set(cli_props) == set(props)  # the same names from either entry point
    print("\n--- JUnit properties (pytest --junitxml)\n" + "\n".join(f"{k} = {v}" for k, v in props.items()))
