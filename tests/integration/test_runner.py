"""Every exit path of a run against the real stack; each test ends (fixture) with the stack clean:
no toxic, no link down, no paused or stopped container."""

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

from chaos.language.loader import load_experiment
from chaos.language.plan import plan
from chaos.stack.compose import Stack
from chaos.stack.engine import list_containers

pytestmark = pytest.mark.rollback
STACK = str(ROOT / "compose" / "audio-room")


def write(tmp_path: Path, doc: dict, name: str = "exp.yaml") -> Path:
    f = tmp_path / name
    f.write_text(yaml.safe_dump({"stack": STACK, **doc}, sort_keys=False))
    return f


def quick(method: list, **extra) -> dict:
    return {
        "title": "exit path",
        "listeners": {"count": 4},
        "windows": {"gate": "1s", "recovery": "1s"},
        "steady_state": [{"measure": "dead_air.max", "expect": "< 5s"}],
        "method": method,
        **extra,
    }


def summary(tmp_path: Path) -> dict:
    [f] = list(tmp_path.glob("runs/*/summary.json"))
    return json.loads(f.read_text())


def test_hung_toxiproxy_cannot_hang_the_run_and_sweep_finishes_the_job(stack: Stack, tmp_path, state_dir):
    exp = write(
        tmp_path,
        quick([{"at": "1s", "fault": "link.latency", "target": "relay-1", "with": {"latency": "50ms"}, "for": "4s"}]),
    )
    tox = stack.container("toxiproxy")
    proc = subprocess.Popen(
        [sys.executable, "-m", "chaos", "run", str(exp), "--journal-dir", str(tmp_path / "runs")],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in proc.stderr:  # type: ignore[union-attr]
            if "link.latency relay-1 (latency 50ms) applied" in line:
                break
        tox.pause()  # the fault is in place; every Toxiproxy call from now on hangs, the revert too
        t0 = time.monotonic()
        out, err = proc.communicate(timeout=120)
        elapsed = time.monotonic() - t0
    finally:
        tox.reload()
        if tox.status == "paused":
            tox.unpause()
    assert proc.returncode == 3, out + err
    assert "rollback failed" in err and "deadair sweep" in err
    assert elapsed < 60, f"the run took {elapsed:.0f}s to give up"
    assert list(state_dir.glob("ledgers/*.json"))  # kept for sweep
    proc = deadair("sweep", env={"DEADAIR_STATE": str(state_dir)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reverted 1" in proc.stdout
    assert not stack.toxiproxy().proxy("relay-1").toxics
    assert not list(state_dir.glob("ledgers/*.json"))


def test_unreachable_toxiproxy_from_the_start_exits_3_and_applies_nothing(stack: Stack, tmp_path, state_dir):
    tox = stack.container("toxiproxy")
    tox.pause()
    try:
        t0 = time.monotonic()
        proc = deadair(
            "run", str(FLAGSHIP), "--journal-dir", str(tmp_path / "runs"), env={"DEADAIR_STATE": str(state_dir)}
        )
        elapsed = time.monotonic() - t0
    finally:
        tox.unpause()
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Toxiproxy" in proc.stderr and "did not answer" in proc.stderr
    assert elapsed < 30
    assert not list(state_dir.glob("ledgers/*.json"))


def _start_and_kill_after_cut(args: list[str], env: dict) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "chaos", "run", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    for line in proc.stderr:  # type: ignore[union-attr]
        if "mic.cut mic applied" in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_sigkill_leaves_a_ledger_that_sweep_reverts_including_the_stack_it_started(stack: Stack, tmp_path, state_dir):
    project = "deadair-kill-probe"
    label = {"label": f"com.docker.compose.project={project}"}
    _start_and_kill_after_cut(
        [str(FLAGSHIP), "--project", project, "--journal-dir", str(tmp_path / "runs")],
        {"DEADAIR_STATE": str(state_dir)},
    )
    killed = Stack(stack.definition, project)
    assert killed.toxiproxy().proxy("mic").enabled is False  # the cut outlived the killed run...
    assert list(state_dir.glob("ledgers/*.json"))
    proc = deadair("sweep", env={"DEADAIR_STATE": str(state_dir)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reverted 2" in proc.stdout  # ...until sweep: the cut, then the stack
    assert not list_containers(stack.docker, all=True, filters=label)
    assert not list(state_dir.glob("ledgers/*.json"))


def test_after_sigkill_the_next_run_reverts_what_was_left(stack: Stack, tmp_path, state_dir):
    _start_and_kill_after_cut(
        [str(FLAGSHIP), "--journal-dir", str(tmp_path / "runs")], {"DEADAIR_STATE": str(state_dir)}
    )
    assert stack.toxiproxy().proxy("mic").enabled is False
    exp = write(
        tmp_path,
        quick([{"at": "0s", "fault": "link.latency", "target": "relay-2", "with": {"latency": "20ms"}, "for": "1s"}]),
        "next.yaml",
    )
    proc = deadair("run", str(exp), "--journal-dir", str(tmp_path / "runs2"), env={"DEADAIR_STATE": str(state_dir)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "reverted 1 item(s) it left" in proc.stderr
    assert stack.toxiproxy().proxy("mic").enabled


def test_abort_when_stops_the_method_and_rolls_back_at_once(stack: Stack, tmp_path, state_dir):
    doc = quick(
        [
            {"at": "0s", "fault": "node.stop", "target": "hold-music", "for": "20s"},
            {"at": "1s", "fault": "mic.cut", "for": "15s"},
        ],
        abort_when=[{"measure": "listeners.connected_ratio", "expect": "< 0.5"}],
    )
    doc["listeners"] = {"count": 6}
    proc = deadair("run", str(write(tmp_path, doc)), "--journal-dir", str(tmp_path / "runs"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ABORTED" in proc.stdout and "TRIPPED" in proc.stdout
    s = summary(tmp_path)
    assert s["status"] == "aborted" and s["abort"]["measure"] == "listeners.connected_ratio"
    events = [
        json.loads(line)
        for line in Path(s["journal"] if "journal" in s else next(tmp_path.glob("runs/*/journal.jsonl")))
        .read_text()
        .splitlines()
    ]
    method = next(e for e in events if e["kind"] == "run.method")["start"]
    abort = next(e for e in events if e["kind"] == "run.abort")["t"]
    assert abort - method < 6.0, "the guardrail should trip within seconds of the cut, not at the planned end"
    assert stack.container("hold-music").status == "running" and stack.toxiproxy().proxy("mic").enabled


def test_repeating_step_with_random_targets_follows_the_plan(stack: Stack, tmp_path, state_dir):
    doc = quick(
        [
            {
                "at": "0s",
                "fault": "link.latency",
                "target": {"one_of": ["relay-1", "relay-2"]},
                "with": {"latency": "30ms"},
                "for": "1s",
                "every": "2s",
                "times": 3,
            }
        ],
        seed=11,
    )
    f = write(tmp_path, doc)
    planned = [o.target for o in plan(load_experiment(f))]
    proc = deadair("run", str(f), "--journal-dir", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = [json.loads(line) for line in next(tmp_path.glob("runs/*/journal.jsonl")).read_text().splitlines()]
    starts = [e for e in events if e["kind"] == "fault.start"]
    assert [e["target"] for e in starts] == planned and len(starts) == 3
    gaps = [b["t"] - a["t"] for a, b in zip(starts, starts[1:])]
    assert all(abs(g - 2.0) < 0.3 for g in gaps), gaps
    assert events[0]["seed"] == 11 and len(events[0]["plan"]) == 3


def test_not_steady_before_the_method_injects_nothing(stack: Stack, tmp_path, state_dir):
    doc = quick([{"at": "0s", "fault": "mic.cut", "for": "2s"}])
    doc["steady_state"] = [{"probe": "impossible", "http": {"url": "${links.entry-api}/health"}, "tolerance": 418}]
    proc = deadair("run", str(write(tmp_path, doc)), "--journal-dir", str(tmp_path / "runs"))
    assert proc.returncode == 1 and "NOT STEADY" in proc.stdout
    events = next(tmp_path.glob("runs/*/journal.jsonl")).read_text()
    assert '"fault.start"' not in events
