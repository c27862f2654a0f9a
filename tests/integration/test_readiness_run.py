"""`deadair readiness` on the real stack: a suite of two (the flagship and a variant whose hold
music must start within 50 ms, which it cannot: a listener first plays the ~0.45 s it has
buffered), shortened with --var. It prints a scorecard, writes scorecard.json and .html, and
exits 1 (NO-GO, the variant failed); then --from-results with a policy that waives the variant
exits 0 (GO) and runs nothing (the results store holds no new run)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import FLAGSHIP, deadair

from chaos.stack.compose import Stack

SHORT = ["--var", "method.0.at=1s", "--var", "method.0.for=3s", "--var", "listeners.count=4"]
SHORT += ["--var", "windows.gate=1s", "--var", "windows.recovery=2s"]


def run_ids(store: Path) -> list[str]:
    with sqlite3.connect(store) as db:
        return [r[0] for r in db.execute("SELECT run_id FROM runs ORDER BY run_id")]


def test_readiness_runs_the_suite_says_no_go_then_go_from_results_with_a_waiver(stack: Stack, tmp_path, state_dir):
    suite = tmp_path / "suite"
    suite.mkdir()
    text = FLAGSHIP.read_text()
    (suite / "mic-cut-hold-music.yaml").write_text(text)
    (suite / "hold-music-at-once.yaml").write_text(
        text.replace("title: Hold music covers a microphone-path cut", "title: Hold music within 50 ms").replace(
            'hold_music.onset, expect: "p95 < 2s"', 'hold_music.onset, expect: "p95 < 50ms"'
        )
    )
    runs, store = tmp_path / "runs", tmp_path / "results.sqlite"
    common = ["--journal-dir", str(runs), "--results", str(store), "--project", stack.project]
    policy = tmp_path / "policy.yaml"
    policy.write_text("slo: {hold_music.onset: 3s, dead_air: 2s}\nmax_age: 1h\n")

    first = deadair("readiness", str(suite), "--policy", str(policy), *SHORT, *common, "--out", str(tmp_path / "card1"))
    print(first.stdout)
    assert first.returncode == 1, first.stdout + first.stderr[-3000:]
    assert "\nREADINESS: NO-GO" in first.stdout  # after each run's own report, as deadair run prints it
    card = json.loads((tmp_path / "card1" / "scorecard.json").read_text())
    status = {r["scenario"]: r for r in card["scenarios"]}
    assert status["mic-cut-hold-music"]["status"] == "pass", status["mic-cut-hold-music"]
    assert status["hold-music-at-once"]["status"] == "fail"
    assert [r["kind"] for r in card["reasons"]] == ["fail"], card["reasons"]
    assert "required scenario 'hold-music-at-once' failed" in first.stdout
    assert status["mic-cut-hold-music"]["category"] == "microphone-path"  # tag `mic`
    onset = next(v for v in status["hold-music-at-once"]["slo"] if v["measure"] == "hold_music.onset")
    assert onset["value"] > 0.05 and onset["margin"] == (0.05 - onset["value"]) / 0.05 < 0
    assert {lim["key"]: lim["status"] for lim in card["limits"]} == {"hold_music.onset": "held", "dead_air": "held"}
    assert all(lim["checked"] > 0 for lim in card["limits"])
    page = (tmp_path / "card1" / "scorecard.html").read_text()
    assert "<script" not in page and "NO-GO" in page
    recorded = run_ids(store)
    assert sorted(recorded) == sorted(card["recorded"]) and len(recorded) == 2
    for r in card["scenarios"]:  # each run's folder as deadair run leaves it
        assert (runs / r["run_id"] / "summary.json").is_file() and (runs / r["run_id"] / "report.html").is_file()

    policy.write_text(policy.read_text() + "waive: {hold-music-at-once: 'hold music plays what is buffered first'}\n")
    second = deadair(
        "readiness", str(suite), "--policy", str(policy), "--from-results", *common, "--out", str(tmp_path / "card2")
    )
    print(second.stdout)
    assert second.returncode == 0, second.stdout + second.stderr[-3000:]
    assert second.stdout.startswith("READINESS: GO")
    assert run_ids(store) == recorded  # nothing ran
    again = json.loads((tmp_path / "card2" / "scorecard.json").read_text())
    assert again["ran"] is False and again["recorded"] == []
    assert {r["scenario"]: r["run_id"] for r in again["scenarios"]} == {r: s["run_id"] for r, s in status.items()}
    assert {r["scenario"]: r["status"] for r in again["scenarios"]} == {
        "mic-cut-hold-music": "pass",
        "hold-music-at-once": "waived",
    }
