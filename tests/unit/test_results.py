"""The results store, --fail-on rules, comparisons, history and repeats, on summaries made by hand
(tests/results_data.py) in the format a run writes. No engine needed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from results_data import EXPERIMENT_ID, fp, summary, write_run

from chaos.checkers.names import display_keys, verdict_names
from chaos.language.loader import load_experiment
from chaos.report.repeat_info import repeat_info
from chaos.results import EXIT_FLAKY, repeats
from chaos.results.compare import judge, render_compare
from chaos.results.history import find_experiment, render_history
from chaos.results.rules import check_rules, parse_fail_on
from chaos.results.store import ResultsError, ResultsStore, store_path
from chaos.runner.outputs import experiment_id

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = ROOT / "experiments" / "mic-cut-hold-music.yaml"


# -- names -------------------------------------------------------------------------------------


def test_verdict_names_carry_measure_statistic_unit_and_the_window_only_when_shared():
    s = summary("r1", probe_ok=True)
    names = verdict_names(s["verdicts"])
    assert names == [
        "before_dead_air_max_s",
        "during_dead_air_max_s",
        "after_dead_air_max_s",
        "hold_music_onset_p95_s",
        "live_resume_p95_s",
        "probe_counter_is_even_failed",
    ]
    assert display_keys(s["verdicts"])[:4] == [
        "dead_air.max@before",
        "dead_air.max@during",
        "dead_air.max@after",
        "hold_music.onset.p95",
    ]
    ratio = dict(s["verdicts"][0], measure="listeners.connected_ratio", stat="min", unit="ratio")
    count = dict(s["verdicts"][0], measure="server.lb_servers_up", stat="min", unit="count")
    twice = [s["verdicts"][3], dict(s["verdicts"][3], expect="p95 < 1s")]
    assert verdict_names([ratio, count]) == ["listeners_connected_ratio_min_ratio", "server_lb_servers_up_min"]
    assert verdict_names(twice) == ["step0_hold_music_onset_p95_s", "step0_hold_music_onset_p95_s_2"]


def test_experiment_id_is_the_file_from_the_repository_root_and_the_title():
    assert experiment_id(FLAGSHIP, "Hold music covers a microphone-path cut") == EXPERIMENT_ID


# -- store -------------------------------------------------------------------------------------


def test_store_location_default_env_and_sqlite_urls(monkeypatch, tmp_path):
    monkeypatch.delenv("DEADAIR_RESULTS", raising=False)
    assert store_path(None, Path(".deadair/runs")) == Path(".deadair/results.sqlite")
    assert store_path("sqlite:///rel/r.sqlite", None) == Path("rel/r.sqlite")
    assert store_path("sqlite:////abs/r.sqlite", None) == Path("/abs/r.sqlite")
    monkeypatch.setenv("DEADAIR_RESULTS", str(tmp_path / "env.sqlite"))
    assert store_path(None, Path(".deadair/runs")) == tmp_path / "env.sqlite"
    for bad in ("postgres://db/x", "sqlite://relative", "sqlite:///"):
        with pytest.raises(ResultsError, match="expected a path, or sqlite:///PATH") as exc:
            store_path(bad, None)
        assert exc.value.exit_code == 2
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database, but text " * 100)
    with pytest.raises(ResultsError, match=f"results store {junk}"):
        ResultsStore(junk)


def test_store_keeps_runs_in_order_finds_last_pass_prefixes_and_tags(tmp_path):
    with ResultsStore(tmp_path / "r.sqlite") as store:
        store.add(summary("20261130-010000-aaaaaa", started="2026-11-30T01:00:00Z"))
        store.add(summary("20261130-020000-bbbbbb", onset=2.5, started="2026-11-30T02:00:00Z"))  # failed
        store.add(summary("20261130-030000-cccccc", onset=0.7, started="2026-11-30T03:00:00Z"))
        runs = store.runs(EXPERIMENT_ID)
        assert [r.run_id[-6:] for r in runs] == ["aaaaaa", "bbbbbb", "cccccc"]
        assert [r.status for r in runs] == ["passed", "failed", "passed"]
        assert store.last_pass(EXPERIMENT_ID).run_id.endswith("cccccc")
        assert store.last_pass(EXPERIMENT_ID, exclude={"20261130-030000-cccccc"}).run_id.endswith("aaaaaa")
        assert store.get("20261130-02").run_id.endswith("bbbbbb")
        with pytest.raises(ResultsError, match="names 3 runs"):
            store.get("20261130")
        store.tag("20261130-010000-aaaaaa", "release-1")
        assert store.get("release-1", EXPERIMENT_ID).run_id.endswith("aaaaaa")
        store.tag("20261130-030000-cccccc", "release-1")  # a tag moves
        assert store.get("release-1").run_id.endswith("cccccc") and store.get("release-1").tags == ["release-1"]
        with pytest.raises(ResultsError, match="no run or tag 'nope'"):
            store.get("nope", EXPERIMENT_ID)
        with pytest.raises(ResultsError, match="cannot be a tag"):
            store.tag("20261130-010000-aaaaaa", "last-pass")
        rows = store.db.execute(
            "SELECT name, value, outcome FROM verdicts WHERE run_id = ? ORDER BY name", ("20261130-020000-bbbbbb",)
        ).fetchall()
        assert ("hold_music_onset_p95_s", 2.5, "fail") in rows and len(rows) == 5


def test_last_pass_takes_no_regressed_flaky_pending_dry_or_skipped_run_and_history_says_what_each_was(tmp_path):
    names = ["aaaaaa", "bbbbbb", "cccccc", "dddddd", "eeeeee", "ffffff"]
    with ResultsStore(tmp_path / "r.sqlite") as store:
        for i, n in enumerate(names):
            store.add(summary(f"20261130-0{i}0000-{n}", started=f"2026-11-30T0{i}:00:00Z"))
        store.set_series(["20261130-000000-aaaaaa"], "passed", 0)
        store.set_series(["20261130-010000-bbbbbb"], "regressed", 6)
        store.set_series(["20261130-020000-cccccc"], "flaky", 7)
        store.set_series(["20261130-030000-dddddd"], "pending", None)  # its series was never judged
        store.add(dict(summary("20261130-040000-eeeeee", started="2026-11-30T04:00:00Z"), dry="faults"))
        step = summary("20261130-050000-ffffff", started="2026-11-30T05:00:00Z")
        store.add(dict(step, skipped=[{"occurrence": "0", "by": "operator"}]))
        assert store.last_pass(EXPERIMENT_ID).run_id.endswith("aaaaaa")
        runs = store.runs(EXPERIMENT_ID)
        assert [r.shown_status for r in runs] == ["passed", "regressed", "flaky", "pending", "dry", "passed"]
        assert runs[1].series_exit_code == 6 and runs[1].status == "passed"  # its own status is kept
        text = render_history(runs, EXPERIMENT_ID)
        assert "bbbbbb  regressed" in text and "cccccc  flaky" in text and "eeeeee  dry " in text


# -- rules -------------------------------------------------------------------------------------


def test_fail_on_rules_parse_with_their_units_and_refuse_what_they_cannot_mean():
    r = parse_fail_on("hold_music.onset.p95:+20%")
    assert (r.measure, r.stat, r.window, r.direction, r.amount, r.relative) == (
        "hold_music.onset",
        "p95",
        None,
        1,
        0.2,
        True,
    )
    r = parse_fail_on("dead_air.max@during:+200ms")
    assert (r.measure, r.stat, r.window, r.amount, r.relative) == ("dead_air", "max", "during", 0.2, False)
    r = parse_fail_on("listeners.connected_ratio.min:-0.02")
    assert (r.direction, r.amount, r.unit) == (-1, 0.02, "ratio")
    assert parse_fail_on("live.resume:+1s").stat is None  # the statistic each verdict judged
    for text, why in [
        ("hold_music.onset.p95", "expected MEASURE"),
        ("hold_music.onst.p95:+20%", "unknown measure 'hold_music.onst.p95'; expected one of: "),
        ("dead_air.max:+200", "is not a tolerance"),
        ("dead_air.max:20%", "expected MEASURE"),
        ("dead_air.max@middle:+1s", "unknown window 'middle'"),
        ("listeners.connected_ratio:-2s", "is not a tolerance"),
    ]:
        with pytest.raises(ResultsError, match=why.replace("(", r"\(").replace(".", r"\.")) as exc:
            parse_fail_on(text)
        assert exc.value.exit_code == 2 and f"--fail-on {text!r}" in str(exc.value)


def test_a_rule_for_a_measure_the_experiment_never_judges_is_refused_before_the_run():
    exp = load_experiment(FLAGSHIP)
    check_rules([parse_fail_on("hold_music.onset.p95:+20%"), parse_fail_on("dead_air.max@after:+1s")], exp)
    with pytest.raises(ResultsError, match="judges no reconnect_time; it judges: dead_air, hold_music.onset, live"):
        check_rules([parse_fail_on("reconnect_time.max:+1s")], exp)
    with pytest.raises(ResultsError, match="hold_music.onset is not judged during; it is judged: step0"):
        check_rules([parse_fail_on("hold_music.onset@during:+1s")], exp)


# -- compare -----------------------------------------------------------------------------------


def test_a_regression_beyond_the_tolerance_names_the_measure_and_by_how_much():
    base, now = summary("A", onset=0.5), summary("B", onset=0.7)
    j = judge([parse_fail_on("hold_music.onset.p95:+20%")], now, base, "last-pass")
    [r] = j.regressions
    assert r.describe() == (
        "hold_music.onset.p95 (step 0) rose to 700ms from 500ms: +200ms (+40%), beyond "
        "--fail-on hold_music.onset.p95:+20% (at most 600ms)"
    )
    assert j.lines()[0] == "REGRESSED against baseline A (last-pass):"
    assert not j.stack_changes
    # within the tolerance; a better value; an absolute one
    assert not judge([parse_fail_on("hold_music.onset.p95:+50%")], now, base, "x").regressions
    assert not judge([parse_fail_on("hold_music.onset.p95:+20%")], base, now, "x").regressions
    assert not judge([parse_fail_on("hold_music.onset:+200ms")], now, base, "x").regressions
    assert judge([parse_fail_on("hold_music.onset:+199ms")], now, base, "x").regressions


def test_a_rule_on_a_shared_measure_judges_every_window_or_the_one_named():
    base, now = summary("A", dead_air=0.0), summary("B", dead_air=0.4)
    j = judge([parse_fail_on("dead_air.max:+200ms")], now, base, "t")
    assert [r.key for r in j.regressions] == ["dead_air.max (during)", "dead_air.max (after)"]
    j = judge([parse_fail_on("dead_air.max@after:+200ms")], now, base, "t")
    assert [r.key for r in j.regressions] == ["dead_air.max (after)"]
    # a percentage of a baseline of 0 allows nothing
    assert len(judge([parse_fail_on("dead_air.max:+20%")], now, base, "t").regressions) == 2


def test_a_listener_that_never_got_there_or_a_verdict_gone_is_a_regression():
    base = summary("A", onset=0.5)
    never = summary("B")
    never["verdicts"][3].update(value=None, summary={**never["verdicts"][3]["summary"], "missing": 1, "p50": None})
    [r] = judge([parse_fail_on("hold_music.onset.p95:+100%")], never, base, "t").regressions
    assert math.isinf(r.value) and "a listener never got there" in r.describe()
    gone = summary("C")
    gone["verdicts"] = gone["verdicts"][:3]  # not steady: no step verdicts
    [r] = judge([parse_fail_on("hold_music.onset.p95:+100%")], gone, base, "t").regressions
    assert "has no value now" in r.describe() and "no data never passes" in r.describe()


def test_a_baseline_verdict_now_skipped_is_no_data_and_a_regression_naming_it():
    now = summary("b")
    now["verdicts"][3].update(skipped=True)  # hold music's onset, its fault not injected (--dry faults)
    j = judge([parse_fail_on("hold_music.onset.p95:+20%")], now, summary("a"), "last-pass")
    [r] = j.regressions
    assert r.key == "hold_music.onset.p95 (step 0)" and math.isnan(r.value)
    assert "has no value now (its fault was not injected: skipped; no data never passes)" in r.describe()
    assert j.lines()[0].startswith("REGRESSED against baseline a (last-pass)")
    then = summary("a")
    then["verdicts"][3].update(skipped=True)  # a baseline that measured nothing: noted, not compared
    j = judge([parse_fail_on("hold_music.onset.p95:+20%")], summary("b", onset=5.0), then, "t")
    assert not j.regressions and "the baseline has a skipped (not injected) hold_music.onset.p95" in j.notes[0]


def test_a_baseline_from_another_stack_is_compared_and_flagged():
    base = summary("A", onset=0.5, fingerprint=fp(origin="sha256:old", haproxy="h0"))
    now = summary("B", onset=0.9)
    j = judge([parse_fail_on("hold_music.onset.p95:+20%")], now, base, "nightly")
    assert j.regressions and j.stack_changes == ["images: origin", "files: config/haproxy.cfg"]
    assert "the baseline ran on a different stack (images: origin; files: config/haproxy.cfg changed)" in j.lines()[0]
    text = render_compare(base, now, "nightly", "B")
    assert "stack: DIFFERENT" in text and "images: origin" in text
    assert any(line.split()[:4] == ["hold_music.onset.p95", "500ms", "900ms", "+400ms"] for line in text.splitlines())


# -- history -----------------------------------------------------------------------------------


def test_history_lists_runs_oldest_first_and_marks_where_the_stack_changed(tmp_path):
    with ResultsStore(tmp_path / "r.sqlite") as store:
        store.add(summary("20261130-010000-aaaaaa", started="2026-11-30T01:00:00Z"))
        store.add(summary("20261130-020000-bbbbbb", started="2026-11-30T02:00:00Z", onset=0.6))
        store.add(
            summary("20261130-030000-cccccc", started="2026-11-30T03:00:00Z", fingerprint=fp(origin="sha256:new"))
        )
        store.tag("20261130-010000-aaaaaa", "good")
        assert find_experiment(store, str(FLAGSHIP)) == EXPERIMENT_ID
        assert find_experiment(store, "mic-cut") == EXPERIMENT_ID
        with pytest.raises(ResultsError, match="no experiment 'edge'"):
            find_experiment(store, "edge")
        text = render_history(store.runs(EXPERIMENT_ID), EXPERIMENT_ID)
    lines = text.splitlines()
    assert lines[0].endswith("3 run(s), oldest first, times UTC")
    assert "2026-11-30 01:00:00  20261130-010000-aaaaaa  passed" in lines[1] and "tags: good" in lines[1]
    assert "hold_music.onset.p95=600ms" in lines[4]
    assert "stack changed" not in lines[3] and lines[5].endswith("* stack changed: images: origin")


# -- repeats -----------------------------------------------------------------------------------


def test_a_verdict_that_differs_across_repeats_is_flaky_with_its_counts_and_spread(tmp_path):
    runs = [summary("r1", onset=0.4, probe_ok=True), summary("r2", onset=0.6, probe_ok=False)]
    paths = [write_run(tmp_path, s) for s in runs]
    rep = repeats.summarize(runs, paths, 2)
    assert rep["status"] == "flaky" and rep["exit_code"] == EXIT_FLAKY == 7
    assert rep["flaky"] == ["probe_counter_is_even_failed"]
    by = {v["name"]: v for v in rep["verdicts"]}
    assert by["probe_counter_is_even_failed"]["label"] == "flaky (1 of 2)"
    assert by["probe_counter_is_even_failed"]["outcomes"] == ["pass", "fail"]
    assert by["hold_music_onset_p95_s"]["label"] == "pass (2 of 2)"
    assert (by["hold_music_onset_p95_s"]["median"], by["hold_music_onset_p95_s"]["min"]) == (0.5, 0.4)
    assert by["hold_music_onset_p95_s"]["max"] == 0.6
    path = repeats.write(rep, tmp_path)
    assert path == tmp_path / "repeat-r1.json"
    text = repeats.render(rep, path)
    assert "Repeated 2 time(s): FLAKY (exit 7)" in text
    line = next(x for x in text.splitlines() if "probe counter is even" in x)
    assert "flaky (1 of 2)" in line and line.endswith("<- FLAKY")
    info = repeat_info(tmp_path / "r2")  # what the HTML report and JUnit read
    assert info is not None and info["index"] == 2 and info["of"] == 2 and info["flaky"] == rep["flaky"]
    assert repeat_info(tmp_path / "elsewhere") is None


def test_the_exit_code_of_a_series():
    ok, bad = summary("a"), summary("b", onset=3.0)
    inconclusive = dict(summary("c"), status="inconclusive", exit_code=4)
    error = dict(summary("d"), status="error", exit_code=3)
    assert repeats.series_outcome([ok, ok]) == ("passed", 0)
    assert repeats.series_outcome([bad, bad]) == ("failed", 1)
    assert repeats.series_outcome([ok, bad]) == ("flaky", 7)
    assert repeats.series_outcome([ok, inconclusive]) == ("flaky", 7)
    assert repeats.series_outcome([ok, error]) == ("error", 3)


def test_a_repeated_run_is_compared_with_its_baseline_on_the_medians():
    runs = [summary(f"r{i}", onset=x) for i, x in enumerate([0.5, 0.9, 0.55])]
    med = repeats.median_summary(runs)
    onset = next(v for v in med["verdicts"] if v["name"] == "hold_music_onset_p95_s")
    assert onset["value"] == 0.55 and onset["summary"]["p95"] == 0.55
    assert not judge([parse_fail_on("hold_music.onset.p95:+20%")], med, summary("b", onset=0.5), "t").regressions


def test_summary_json_of_a_repeat_is_plain_json(tmp_path):
    never = summary("r1")
    never["verdicts"][3].update(value=None, summary={**never["verdicts"][3]["summary"], "missing": 2})
    rep = repeats.summarize([never, summary("r2")], [None, None], 2)
    by = {v["name"]: v for v in rep["verdicts"]}
    assert by["hold_music_onset_p95_s"]["values"] == ["inf", 0.48] and by["hold_music_onset_p95_s"]["max"] == "inf"
    json.loads(json.dumps(rep, allow_nan=False))


def test_medians_of_repeats_where_listeners_never_heard_hold_music_are_infinite():
    runs = [summary(f"r{i}", onset=0.5) for i in range(3)]
    for s in runs[:2]:  # as summary.json writes inf: null, with listeners missing
        s["verdicts"][3]["summary"].update(p99=None, missing=4)
    med = repeats.median_summary(runs)
    onset = next(v for v in med["verdicts"] if v["name"] == "hold_music_onset_p95_s")
    assert onset["summary"]["p99"] == math.inf
    [r] = judge([parse_fail_on("hold_music.onset.p99:+20%")], med, summary("base", onset=0.5), "t").regressions
    assert "hold_music.onset.p99 (step 0) is infinite now" in r.describe()
    runs[0]["verdicts"][3]["summary"].update(p50=None, missing=0)  # not recorded, nothing missing: left out
    assert repeats.median_summary(runs)["verdicts"][3]["summary"]["p50"] == 0.5


def test_a_skipped_verdict_makes_no_series_flaky():
    a, b = summary("r1", probe_ok=True), summary("r2", probe_ok=False)
    b.update(status="passed", exit_code=0)
    b["verdicts"][-1]["skipped"] = True  # judged over a fault the operator skipped: counted nowhere
    assert repeats.series_outcome([a, b]) == ("passed", 0)
    rep = repeats.summarize([a, b], [None, None], 2)
    by = {v["name"]: v for v in rep["verdicts"]}
    assert rep["flaky"] == [] and by["probe_counter_is_even_failed"]["state"] == "pass"
    assert by["probe_counter_is_even_failed"]["label"] == "pass (1 of 1), judged in 1 of 2 runs"
    assert by["probe_counter_is_even_failed"]["outcomes"] == ["pass", "skipped"]
    a["verdicts"][-1]["skipped"] = True
    rep = repeats.summarize([a, b], [None, None], 2)
    never = next(v for v in rep["verdicts"] if v["name"] == "probe_counter_is_even_failed")
    assert never["state"] == "skipped" and never["label"] == "skipped (not injected in 2 of 2 runs)"
