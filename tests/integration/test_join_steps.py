"""A join step on the real stack: a crowd arrives while the room is on hold music (the speaker's
uplink cut), and every joiner hears audio, hold music first. About 30 s on an idle machine."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from conftest import ROOT, deadair

from chaos.listen.listener import LAG_TICK
from chaos.stack.compose import Stack

STACK = str(ROOT / "compose" / "audio-room")
JOINERS = 40

EXPERIMENT = {
    "title": "a crowd joins while the room is on hold",
    "stack": STACK,
    "seed": 3,
    "listeners": {"count": 10},
    "windows": {"gate": "1s", "recovery": "2s"},
    "method": [
        {
            "at": "0s",
            "fault": "mic.cut",
            "for": "10s",
            # the crowd joins during the cut: counted here, each joiner from its own join (under the
            # join step a measure from a fault's start is refused)
            "expect": [{"measure": "hold_music.onset", "expect": "max < 5s"}],
        },
        {
            "at": "1s",
            # 5/s rising to 15/s: the 40 arrive over 2 * 39 / 20 = 3.9 s, all inside the cut
            "join": {"count": JOINERS, "arrival": {"rising": "5/s to 15/s"}},
            "expect": [
                {"measure": "time_to_first_audio", "expect": "max < 5s"},
                {"measure": "join_success_ratio", "expect": ">= 0.99"},
            ],
        },
    ],
}


def test_a_crowd_joining_during_a_mic_cut_hears_hold_music_first(stack: Stack, tmp_path: Path, state_dir: Path):
    f = tmp_path / "join.yaml"
    f.write_text(yaml.safe_dump(EXPERIMENT, sort_keys=False))
    proc = deadair("run", str(f), "--journal-dir", str(tmp_path / "runs"), timeout=180)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "join 40 listeners, rising 5/s to 15/s over 3.9s" in out

    [run] = list((tmp_path / "runs").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    events = [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]

    verdicts = {(v["step"], v["measure"]): v for v in summary["verdicts"] if v["phase"] == "step"}
    assert {k: v["outcome"] for k, v in verdicts.items()} == {
        (0, "hold_music.onset"): "pass",
        (1, "time_to_first_audio"): "pass",
        (1, "join_success_ratio"): "pass",
    }, out
    ttfa = verdicts[(1, "time_to_first_audio")]["summary"]
    assert ttfa["count"] == JOINERS and ttfa["missing"] == 0  # every joiner, and only the joiners
    # the cut's onset counts the joiners too (from their own join): 10 + 40 listeners
    assert verdicts[(0, "hold_music.onset")]["summary"]["count"] == 10 + JOINERS

    # the method ends once the crowd's last join is recorded (the `during` window holds every join)
    [during] = [e for e in events if e["kind"] == "run.phase" and e["name"] == "during"]
    last_join = max(e["t"] for e in events if e["kind"] == "listener.join" and e["src"].startswith("J1-"))
    assert last_join <= during["end"], (last_join, during["end"])
    assert not [e for e in events if e["kind"] == "step.join_cancelled"]
    # the report names the step by its crowd, and draws its arrivals
    page = (run / "report.html").read_text()
    assert "step 1: join 40 listeners, rising 5/s to 15/s over 3.9s" in page

    [join] = [e for e in events if e["kind"] == "step.join"]
    assert join["count"] == JOINERS and join["arrival"] == "rising"
    first_stream: dict[str, str] = {}
    joined_at: dict[str, float] = {}
    for e in events:
        if e["src"].startswith("J1-") and e["kind"] == "listener.join":
            joined_at.setdefault(e["src"], e["t"])
        if e["src"].startswith("J1-") and e["kind"] == "listener.stream":
            first_stream.setdefault(e["src"], e["title"])
    assert sorted(first_stream) == [f"J1-{n:04d}" for n in range(JOINERS)]
    assert set(first_stream.values()) == {"hold"}, first_stream  # a joiner's first audio was hold music
    # they joined at their planned offsets from the step's start: first to last 3.9 s, each end
    # late by at most the swarm's event-loop lag (its watchdog's worst, or one tick it cannot see)
    lag = max(e["lag_max"] for e in events if e["kind"] == "swarm.health") + LAG_TICK
    spread = max(joined_at.values()) - min(joined_at.values())
    assert min(joined_at.values()) >= join["t"] and abs(spread - 3.9) <= 2 * lag, (spread, lag)
