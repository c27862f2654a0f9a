"""The walking skeleton end to end: the flagship experiment, its negative control, and rollback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import FLAGSHIP, ROOT, deadair

from chaos.stack.compose import Stack
from chaos.stack.engine import list_containers


def test_stack_status_from_the_cli(stack: Stack):
    proc = deadair("stack", "status")
    assert proc.returncode == 0, proc.stderr
    assert "link mic" in proc.stdout and "healthy" in proc.stdout


def _summary(tmp_path: Path) -> dict:
    [summary] = list(tmp_path.glob("runs/*/summary.json"))
    return json.loads(summary.read_text())


def test_flagship_passes_and_prints_onset_and_resume(stack, tmp_path, state_dir):
    proc = deadair("run", str(FLAGSHIP), "--journal-dir", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASSED" in proc.stdout
    assert "hold_music.onset p95 < 2s" in proc.stdout and "live.resume p95 < 3s" in proc.stdout
    summary = _summary(tmp_path)
    by = {(v["phase"], v["measure"]): v for v in summary["verdicts"]}
    assert set(by) == {
        ("before", "dead_air.max"),
        ("during", "dead_air.max"),
        ("after", "dead_air.max"),
        ("step", "hold_music.onset"),
        ("step", "live.resume"),
    }
    onset, resume = by[("step", "hold_music.onset")], by[("step", "live.resume")]
    assert onset["summary"]["count"] == 20 and onset["summary"]["missing"] == 0
    assert 0 < onset["value"] < 2.0 and 0 < resume["value"] < 3.0
    assert summary["versions"]["toxiproxy"] == "2.12.0"
    journal = (tmp_path / "runs" / summary["run_id"] / "journal.jsonl").read_text().splitlines()
    kinds = {json.loads(line)["kind"] for line in journal}
    assert {"fault.start", "fault.end", "listener.first_audio", "listener.switch", "run.phase"} <= kinds
    assert not list(state_dir.glob("ledgers/*.json"))  # a clean run leaves no ledger


def test_negative_control_without_hold_music_fails_with_dead_air(stack, tmp_path, state_dir):
    """The same experiment with the hold-music source stopped must fail: a check that cannot fail is not one."""
    doc = yaml.safe_load(FLAGSHIP.read_text())
    doc["stack"] = str(ROOT / "compose" / "audio-room")
    doc["method"].insert(0, {"at": "0s", "fault": "node.stop", "target": "hold-music", "for": "16s"})
    exp = tmp_path / "no-hold.yaml"
    exp.write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = deadair("run", str(exp), "--journal-dir", str(tmp_path / "runs"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAILED" in proc.stdout
    verdicts = _summary(tmp_path)["verdicts"]
    during = next(v for v in verdicts if v["phase"] == "during" and v["measure"] == "dead_air.max")
    assert not during["passed"] and during["value"] > 5.0  # about the length of the cut
    onset = next(v for v in verdicts if v["measure"] == "hold_music.onset")
    assert not onset["passed"] and onset["summary"]["missing"] == 20
    assert stack.container("hold-music").status == "running"  # rolled back


def _start_and_wait_for_cut(tmp_path: Path, env: dict) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "chaos", "run", str(FLAGSHIP), "--journal-dir", str(tmp_path / "runs")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    deadline = time.monotonic() + 120
    assert proc.stderr is not None
    for line in proc.stderr:
        if "mic.cut mic applied" in line:
            return proc
        if time.monotonic() > deadline:
            break
    proc.kill()
    pytest.fail("the run never applied the cut")


@pytest.mark.rollback
@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_the_cut_rolls_back_before_exit(stack, tmp_path, state_dir, signum, code):
    proc = _start_and_wait_for_cut(tmp_path, {"DEADAIR_STATE": str(state_dir)})
    assert stack.toxiproxy().proxy("mic").enabled is False  # the cut is in effect
    time.sleep(1.0)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, out + err
    assert stack.toxiproxy().proxy("mic").enabled is True
    assert "INTERRUPTED" in out
    assert not list(state_dir.glob("ledgers/*.json"))


def test_invalid_experiment_exits_2_and_starts_nothing(stack, tmp_path, state_dir):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        FLAGSHIP.read_text()
        .replace("for: 8s", "for: 8 seconds")
        .replace("  join: room-api", "  colour: red\n  join: room-api")
    )
    project = "deadair-invalid-probe"
    proc = deadair("run", str(bad), "--project", project, "--journal-dir", str(tmp_path / "runs"))
    assert proc.returncode == 2
    text = bad.read_text().splitlines()
    colour = next(i for i, line in enumerate(text, 1) if "colour" in line)
    duration = next(i for i, line in enumerate(text, 1) if "8 seconds" in line)
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith(f"{bad}:{colour}:3: unknown key 'colour'")
    assert lines[1].startswith(f"{bad}:{duration}:10: method[0].for: '8 seconds' is not valid")
    assert not list_containers(stack.docker, all=True, filters={"label": f"com.docker.compose.project={project}"})
    assert not (tmp_path / "runs").exists() and not state_dir.exists()


def test_target_outside_the_stack_is_refused_before_anything_starts(stack, tmp_path, state_dir):
    bad = tmp_path / "outside.yaml"
    doc = yaml.safe_load(FLAGSHIP.read_text())
    doc["stack"] = str(ROOT / "compose" / "audio-room")
    doc["method"][0]["target"] = "db-primary"
    bad.write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = deadair("run", str(bad), "--journal-dir", str(tmp_path / "runs"))
    assert proc.returncode == 2
    assert "'db-primary' is not a link of stack audio-room" in proc.stderr
    assert stack.toxiproxy().proxy("mic").enabled


@pytest.mark.rollback
def test_sigterm_while_the_stack_starts_leaves_nothing_behind(stack, tmp_path, state_dir):
    """A run that started its own stack takes it down on every exit path, even mid-start."""
    project = "deadair-sigterm-probe"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chaos",
            "run",
            str(FLAGSHIP),
            "--project",
            project,
            "--journal-dir",
            str(tmp_path / "runs"),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    label = {"label": f"com.docker.compose.project={project}"}
    deadline = time.monotonic() + 60
    while not list_containers(stack.docker, all=True, filters=label):
        assert time.monotonic() < deadline, "the run never started its stack"
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, out + err
    assert not list_containers(stack.docker, all=True, filters=label)
    assert not stack.docker.networks.list(filters=label)
