"""`deadair readiness` through the real CLI, with no engine: --from-results on a results store
filled by hand (a policy change flips the exit code), bad input (exit 2, located, nothing run),
and a run of the suite with the runner replaced by one that writes the summaries a real run
would (each run recorded in the store; --var goes to the experiments that declare it). The same
against the real stack: tests/integration/test_readiness_run.py."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml
from results_data import summary, write_run

import chaos.runner.run as runner
from chaos.cli import main
from chaos.results.store import ResultsStore
from chaos.runner.model import RunResult
from chaos.runner.outputs import experiment_id, experiment_sha256
from chaos.stack.definition import find_stack
from chaos.stack.fingerprint import fingerprint

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = (ROOT / "experiments" / "mic-cut-hold-music.yaml").read_text()
STRICT_ONSET = FLAGSHIP.replace("title: Hold music covers a microphone-path cut", "title: Hold music at once").replace(
    'expect: "p95 < 2s"}', 'expect: "p95 < ${onset}"}'
)


@pytest.fixture
def suite(tmp_path) -> Path:
    d = tmp_path / "suite"
    d.mkdir()
    (d / "mic-cut.yaml").write_text(FLAGSHIP)
    (d / "mic-cut-strict.yaml").write_text(STRICT_ONSET.replace("seed: 7", "seed: 7\nvars: {onset: 50ms}"))
    return d


def now_utc(ago: float = 60.0) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - ago))


def store_runs(store_file: Path, suite: Path, onset_strict: float = 0.48) -> None:
    with ResultsStore(store_file) as store:
        for stem, title, onset, status in (
            ("mic-cut", "Hold music covers a microphone-path cut", 0.48, None),
            ("mic-cut-strict", "Hold music at once", onset_strict, "failed"),
        ):
            s = summary(f"20261130-0{len(stem)}0000-aaaaaa", onset=onset, status=status, started=now_utc())
            s["experiment_id"] = experiment_id(suite / f"{stem}.yaml", title)
            s["experiment_sha256"] = experiment_sha256(suite / f"{stem}.yaml")
            s["variables"] = {"onset": "50ms"} if stem == "mic-cut-strict" else {}
            s["stack_fingerprint"] = fingerprint(find_stack("audio-room", near=suite), {"origin": "sha256:aaa"})
            store.add(s)


def readiness(suite: Path, tmp_path: Path, *args: str) -> int:
    return main(
        ["readiness", str(suite), "--journal-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "card"), *args]
    )


def test_from_results_a_policy_change_flips_the_exit_code(suite, tmp_path, capsys):
    store_runs(tmp_path / "results.sqlite", suite)
    strict = tmp_path / "strict.yaml"
    strict.write_text("slo: {hold_music.onset: 300ms}\n")
    assert readiness(suite, tmp_path, "--from-results", "--policy", str(strict)) == 1
    out = capsys.readouterr().out
    assert out.startswith("READINESS: NO-GO")
    assert "required scenario 'mic-cut-strict' failed" in out
    assert "launch limit hold_music.onset <= 300ms exceeded: worst 480ms in mic-cut" in out
    card = json.loads((tmp_path / "card" / "scorecard.json").read_text())
    assert card["decision"] == "NO-GO" and card["ran"] is False and card["recorded"] == []
    assert [r["status"] for r in card["scenarios"]] == ["fail", "pass"]  # mic-cut-strict sorts first
    page = (tmp_path / "card" / "scorecard.html").read_text()
    assert "<script" not in page and "NO-GO" in page and "mic-cut-strict" in page

    waived = tmp_path / "waived.yaml"
    waived.write_text("slo: {hold_music.onset: 1s}\nwaive: {mic-cut-strict: 'accepted for launch: OPS-12'}\n")
    assert readiness(suite, tmp_path, "--from-results", "--policy", str(waived)) == 0
    out = capsys.readouterr().out
    assert out.startswith("READINESS: GO") and "waived: accepted for launch: OPS-12 (it was fail)" in out


def test_from_results_takes_only_a_result_of_the_experiment_as_it_is_now(suite, tmp_path, capsys):
    """Review finding 3: an edited file, another variable, a future date or no sha256 recorded:
    not this version, so not run (with why); an undated run is stale."""
    store_file = tmp_path / "results.sqlite"
    store_runs(store_file, suite)
    assert readiness(suite, tmp_path, "--from-results") == 1  # strict failed, mic-cut passed
    card = json.loads((tmp_path / "card" / "scorecard.json").read_text())
    assert [r["status"] for r in card["scenarios"]] == ["fail", "pass"]
    (suite / "mic-cut.yaml").write_text(FLAGSHIP + "\n# edited\n")
    readiness(suite, tmp_path, "--from-results")
    card = json.loads((tmp_path / "card" / "scorecard.json").read_text())
    mic = card["scenarios"][1]
    assert mic["status"] == "not run" and "its experiment file has changed since (sha256 differs)" in mic["note"]
    (suite / "mic-cut.yaml").write_text(FLAGSHIP)
    with ResultsStore(store_file) as store:  # a newer run, dated an hour ahead; and one with no sha256
        s = summary("20261130-230000-cccccc", started=now_utc(-3600))
        s.update(experiment_id=experiment_id(suite / "mic-cut.yaml", "Hold music covers a microphone-path cut"))
        s.update(experiment_sha256=experiment_sha256(suite / "mic-cut.yaml"), variables={})
        store.add(s)
    readiness(suite, tmp_path, "--from-results")
    card = json.loads((tmp_path / "card" / "scorecard.json").read_text())
    mic = card["scenarios"][1]
    assert mic["status"] == "pass" and mic["run_id"] == "20261130-070000-aaaaaa"  # the future one passed over
    with ResultsStore(store_file) as store:  # a newer run on another stack definition
        s = summary("20261130-120000-dddddd", started=now_utc(30))  # its fingerprint: compose file "c1"
        s.update(experiment_id=mic["experiment_id"], experiment_sha256=experiment_sha256(suite / "mic-cut.yaml"))
        store.add(s)
    readiness(suite, tmp_path, "--from-results")
    mic = json.loads((tmp_path / "card" / "scorecard.json").read_text())["scenarios"][1]
    assert mic["run_id"] == "20261130-070000-aaaaaa"
    from chaos.results.store import started_of

    assert started_of({"run_id": "nodate"}) == 0.0  # undated: the epoch, so stale under any max_age


def test_from_results_with_no_store_is_no_go_with_every_scenario_not_run(suite, tmp_path, capsys):
    assert readiness(suite, tmp_path, "--from-results") == 1
    card = json.loads((tmp_path / "card" / "scorecard.json").read_text())
    assert [r["status"] for r in card["scenarios"]] == ["not run", "not run"]
    assert "no results store at" in card["scenarios"][0]["note"]


@pytest.mark.parametrize(
    "policy_text, args, message",
    [
        ("max_age: soon\n", [], "policy.yaml:1:10: max_age: 'soon' is not valid; expected a duration"),
        (
            "waive: {rolling-restart: 'later'}\n",
            [],
            "policy.yaml:1:9: waive.rolling-restart: no scenario 'rolling-restart'",
        ),
        (
            "{}\n",
            ["--var", "nobody=1"],
            "--var nobody=1: no experiment of the suite declares 'nobody'; expected a variable",
        ),
        ("{}\n", ["--target", "listeners=lots"], "--target listeners=lots: listeners 'lots'; expected a whole number"),
    ],
)
def test_bad_input_is_exit_2_located_and_nothing_runs(suite, tmp_path, capsys, monkeypatch, policy_text, args, message):
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("nothing may run on bad input"))
    pol = tmp_path / "policy.yaml"
    pol.write_text(policy_text)
    monkeypatch.chdir(tmp_path)
    assert readiness(suite, tmp_path, "--policy", "policy.yaml", "--keep-stack", *args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err
    assert not (tmp_path / "card").exists()


def test_an_invalid_experiment_in_the_suite_is_exit_2(suite, tmp_path, capsys):
    (suite / "broken.yaml").write_text(FLAGSHIP.replace("for: 8s", "for: 8 secs"))
    assert readiness(suite, tmp_path, "--from-results") == 2
    assert f"{suite / 'broken.yaml'}:17:10: method[0].for: '8 secs' is not valid" in capsys.readouterr().err


def test_running_the_suite_records_every_run_and_sends_each_var_where_it_is_declared(
    suite, tmp_path, monkeypatch, capsys
):
    seen: list[tuple[str, dict]] = []

    def fake_run(experiment, options):
        assert options.keep_stack  # every run on the same stack; the suite's ledger takes down what it started
        onset = 0.48
        seen.append((experiment.title, dict(experiment.variables)))
        s = summary(f"20261130-1{len(seen)}0000-bbbbbb", onset=onset, started=now_utc(5))
        strict = "onset" in experiment.variables
        if strict:
            s["verdicts"][3].update(expect=f"p95 < {experiment.variables['onset']}", outcome="fail", passed=False)
            s.update(status="failed", exit_code=1)
        s["experiment_id"] = experiment_id(experiment.path, experiment.title)
        s.update(experiment_sha256=experiment_sha256(experiment.path), variables=dict(experiment.variables))
        s["stack_fingerprint"] = fingerprint(find_stack("audio-room", near=experiment.path.parent), {"lb": "x"})
        path = write_run(options.journal_dir, s)
        return RunResult(
            experiment, s["run_id"], s["status"], s["exit_code"], journal=path.parent / "journal.jsonl", summary=path
        )

    monkeypatch.setattr(runner, "run", fake_run)
    monkeypatch.delenv("DEADAIR_RESULTS", raising=False)
    assert readiness(suite, tmp_path, "--keep-stack", "--var", "onset=100ms") == 1
    assert seen == [("Hold music at once", {"onset": "100ms"}), ("Hold music covers a microphone-path cut", {})]
    card = json.loads((tmp_path / "card" / "scorecard.json").read_text())
    assert card["ran"] is True and len(card["recorded"]) == 2
    strict = card["scenarios"][0]
    assert strict["status"] == "fail" and strict["run_id"] == "20261130-110000-bbbbbb"
    onset = next(v for v in strict["slo"] if v["measure"] == "hold_music.onset")
    assert onset["expect"] == "p95 < 100ms" and onset["margin"] == pytest.approx((0.1 - 0.48) / 0.1)
    with ResultsStore(tmp_path / "results.sqlite") as store:  # beside the journals' folder, as deadair run
        for r in card["scenarios"]:
            [stored] = store.runs(r["experiment_id"])
            assert stored.run_id == r["run_id"] and stored.series == stored.status
    # the same results, read back without running anything: the same decision
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("--from-results runs nothing"))
    assert readiness(suite, tmp_path, "--from-results", "--var", "onset=100ms") == 1
    again = json.loads((tmp_path / "card" / "scorecard.json").read_text())
    assert [r["run_id"] for r in again["scenarios"]] == [r["run_id"] for r in card["scenarios"]]
    # without the --var it ran with, the strict run is another version of the experiment: not run
    assert readiness(suite, tmp_path, "--from-results") == 1
    again = json.loads((tmp_path / "card" / "scorecard.json").read_text())
    assert again["scenarios"][0]["status"] == "not run"
    assert "its variables differ: onset='100ms' then, '50ms' now" in again["scenarios"][0]["note"]


CAPACITY = (ROOT / "experiments" / "incidents" / "capacity.yaml").read_text()


CAPACITY_VARS = yaml.safe_load(CAPACITY)["vars"]


def capacity_json(
    folder: Path, exp_id: str, sweep_id: str, capacity: float, finished: str, sha: str | None = None
) -> Path:
    steps = [
        {"load": load, "run_id": f"{sweep_id}-{load}", "status": "passed" if load <= capacity else "failed", "slo": [
            {"measure": "dead_air.total", "expect": "p95 < 1s", "value": value, "bound": 1.0,
             "passed": load <= capacity, "outcome": "pass" if load <= capacity else "fail"}],
         "distributions": {"dead_air.total": {"count": load, "missing": 0, "p95": value, "max": value + 0.1}}}
        for load, value in ((500, 0.1), (1000, 0.3), (2000, 0.7), (3000, 1.4))
    ]  # fmt: skip
    doc = {
        "kind": "capacity", "experiment": exp_id, "title": "t", "sweep_id": sweep_id, "started": finished,
        "finished": finished, "vary": "listeners.count", "target": 2000, "steps": steps,
        "slo": [{"measure": "dead_air.total", "expect": "p95 < 1s"}], "capacity": capacity,
        "knee": 1000, "breakpoint": 3000, "broken_by": ["dead_air.total p95 < 1s"],
        "binding": {"resource": "host CPU", "evidence": "at 3000: 97% of 2 cores", "load_generator": False},
        "headroom": capacity / 2000 - 1, "rule": "the knee rule",
        "experiment_sha256": sha, "variables": CAPACITY_VARS, "target_given": None, "file_target": 2000,
    }  # fmt: skip
    path = folder / sweep_id / "capacity.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(doc))
    return path


def test_from_results_takes_the_newest_capacity_json_and_judges_it_against_the_policy_target(tmp_path, capsys):
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "capacity.yaml").write_text(CAPACITY)
    exp_id = experiment_id(suite / "capacity.yaml", CAPACITY.splitlines()[0].removeprefix("title: "))
    caps = tmp_path / "capacity"  # beside the journals' folder tmp_path/runs
    sha = experiment_sha256(suite / "capacity.yaml")
    capacity_json(caps, exp_id, "old", 3000, now_utc(7200), sha)
    newest = capacity_json(caps, exp_id, "new", 2000, now_utc(600), sha)
    capacity_json(caps, "elsewhere.yaml::other", "other", 9000, now_utc(60), sha)  # another experiment's
    capacity_json(caps, exp_id, "edited", 9000, now_utc(30), "0" * 64)  # of the file before an edit
    pol = tmp_path / "policy.yaml"
    pol.write_text("targets: {listeners: 1500, headroom: 25%}\nslo: {dead_air.total: 1s}\n")
    assert readiness(suite, tmp_path, "--from-results", "--policy", str(pol)) == 0
    out = capsys.readouterr().out
    assert "capacity (sweep new, vary listeners.count): capacity 2000 >= 1875 (target 1500 + 25%)" in out
    assert "knee 1000, breakpoint 3000, bound by host CPU; headroom at the target +33% (required 25%)" in out
    card = json.loads((tmp_path / "card" / "scorecard.json").read_text())
    [cap] = card["capacity"]
    assert cap["source"] == str(newest) and cap["sweep_id"] == "new" and card["scenarios"][0]["category"] == "capacity"
    assert card["limits"][0]["checked"] == 2  # the steps at 500 and 1000: up to the launch's 1500 listeners
    assert readiness(suite, tmp_path, "--from-results", "--policy", str(pol), "--target", "listeners=1800") == 1
    assert "capacity 2000 < 2250 (target 1800 + 25%)" in capsys.readouterr().out
    pol.write_text("targets: {listeners: 1500}\nmax_age: 5m\n")
    assert readiness(suite, tmp_path, "--from-results", "--policy", str(pol)) == 1
    out = capsys.readouterr().out
    assert "required scenario 'capacity' is stale (run new): result 10 min old, older than max_age 5 min" in out
    assert (
        "capacity at the target of 1500 listeners not demonstrated: no fresh sweep varies listeners (capacity: stale)"
        in out
    )


def test_running_a_suite_sweeps_an_experiment_with_a_capacity_section_through_chaos_capacity(
    tmp_path, monkeypatch, capsys
):
    import chaos.capacity.sweep as sweeps
    from chaos.capacity.sweep import SweepResult

    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "capacity.yaml").write_text(CAPACITY)
    calls = []

    def fake_sweep(path, opt):
        calls.append((path, opt.overrides, opt.out_dir, opt.results))
        exp_id = experiment_id(path, CAPACITY.splitlines()[0].removeprefix("title: "))
        written = capacity_json(opt.out_dir, exp_id, "swept", 2000, now_utc(1))
        return SweepResult(json.loads(written.read_text()), written, 0)

    monkeypatch.setattr(sweeps, "run_sweep", fake_sweep)
    monkeypatch.setattr(runner, "run", lambda *a, **k: pytest.fail("a sweep is not a plain run"))
    code = readiness(
        suite, tmp_path, "--keep-stack", "--var", "steps=500,1000", "--var", "hold=2s", "--target", "listeners=1500"
    )
    card = json.loads((tmp_path / "card" / "scorecard.json").read_text())
    assert code == 0, card["reasons"]
    [(path, overrides, out_dir, results)] = calls
    assert path == suite / "capacity.yaml" and overrides == {"steps": "500,1000", "hold": "2s"}
    assert out_dir == tmp_path / "capacity" and results == str(tmp_path / "results.sqlite")
    card = json.loads((tmp_path / "card" / "scorecard.json").read_text())
    assert card["capacity"][0]["sweep_id"] == "swept" and card["recorded"] == [
        f"swept-{n}" for n in (500, 1000, 2000, 3000)
    ]


@pytest.mark.parametrize("case, code, kind", [("stop", 5, "stopped"), ("store", 3, "environment")])
def test_a_non_zero_exit_is_never_a_go_scorecard(suite, tmp_path, monkeypatch, case, code, kind):
    """Review finding 5: every scenario that ran passed, but the suite was stopped (or the store
    could not be written): the scorecard says NO-GO with that reason and records the exit code."""
    import chaos.results.store as storemod

    def fake_run(experiment, options):
        if case == "stop" and experiment.title != "Hold music at once":  # the second scenario
            return RunResult(experiment, "r-stopped", "stopped", 5)
        s = summary("20261130-120000-aaaaaa", started=now_utc(5))
        s["experiment_id"] = experiment_id(experiment.path, experiment.title)
        path = write_run(options.journal_dir, s)
        return RunResult(experiment, s["run_id"], "passed", 0, journal=path.parent / "journal.jsonl", summary=path)

    def no_store(*a, **k):
        raise storemod.ResultsError("disk full")

    monkeypatch.setattr(runner, "run", fake_run)
    if case == "store":
        monkeypatch.setattr(storemod.ResultsStore, "add", no_store)
    pol = tmp_path / "p.yaml"
    pol.write_text("required: [mic-cut-strict]\n")  # the stopped one is not required: nothing else says NO-GO
    assert readiness(suite, tmp_path, "--keep-stack", "--policy", str(pol)) == code
    card = json.loads((tmp_path / "card" / "scorecard.json").read_text())
    assert card["decision"] == "NO-GO" and card["exit_code"] == code
    assert [r["kind"] for r in card["reasons"]] == [kind]


@pytest.mark.parametrize(
    "extra, problem",
    [
        ({"steps": "x"}, "steps: expected a list"),
        ({"steps": [1, 2]}, "steps[0]: expected an object"),
        ({"steps": [{"load": 1, "slo": "abc"}]}, "steps[0]: slo must be a list"),
        ({"steps": [{"load": 1, "slo": [5]}]}, "steps[0].slo[0]: expected an object with a numeric value"),
        (
            {"steps": [{"load": 1, "slo": [{"measure": "dead_air.total", "expect": "p95 < 1s", "value": "fast"}]}]},
            "steps[0].slo[0]: expected an object with a numeric value",
        ),
        ({"capacity": True}, "capacity: expected a number or null, not True"),
    ],
)
def test_a_damaged_capacity_json_is_a_reason_not_a_traceback(tmp_path, capsys, extra, problem):
    """Review finding 10: each of these was a traceback (exit 1)."""
    suite = tmp_path / "suite"
    suite.mkdir()
    (suite / "capacity.yaml").write_text(CAPACITY)
    exp_id = experiment_id(suite / "capacity.yaml", CAPACITY.splitlines()[0].removeprefix("title: "))
    path = capacity_json(
        tmp_path / "capacity", exp_id, "bad", 2000, now_utc(60), experiment_sha256(suite / "capacity.yaml")
    )
    path.write_text(json.dumps({**json.loads(path.read_text()), **extra}))
    assert readiness(suite, tmp_path, "--from-results") == 1
    card = json.loads((tmp_path / "card" / "scorecard.json").read_text())
    [row] = card["scenarios"]
    assert row["status"] == "not run" and f"{path}: not a capacity.json: {problem}" in row["note"]


def test_a_sweeps_time_keeps_its_timezone_offset():
    """Review finding 16: `+09:00` was cut off, dating the sweep nine hours late."""
    from chaos.readiness.sweeps import when

    utc = when({"finished": "2026-11-30T12:00:00Z"})
    assert utc is not None and when({"finished": "2026-11-30T21:00:00+09:00"}) == utc
    assert when({"finished": "2026-11-30T12:00:00"}) == utc  # no offset: UTC
    assert when({"finished": "soon"}) is None
