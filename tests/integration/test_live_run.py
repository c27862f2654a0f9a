"""Runs for people, against the real stack: a dry run injects nothing and still judges; step mode
takes the operator's keys on a terminal (y injects, k is the kill switch); SIGUSR1 is the kill
switch too. Each kill leaves no fault applied, and the journal and summary say who stopped the run.
Short on purpose (3 listeners, seconds-long windows): CI's budget."""

from __future__ import annotations

import json
import os
import pty
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from chaos.runner.operator import login_user
from chaos.stack.compose import Stack


def _experiment(tmp_path: Path, method: list[dict], expect_onset: bool = True) -> Path:
    doc = {
        "title": "live helper: short mic cut",
        "seed": 7,
        "stack": str(ROOT / "compose" / "audio-room"),
        "listeners": {"count": 3},
        "windows": {"warmup": "20s", "gate": "2s", "recovery": "3s"},
        "steady_state": [{"measure": "dead_air.max", "expect": "< 1.5s"}],
        "method": method,
    }
    if expect_onset:
        doc["method"][0]["expect"] = [{"measure": "hold_music.onset", "expect": "p95 < 2s"}]
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class Run:
    """`deadair run` in a child process whose stderr is read line by line as it comes."""

    def __init__(self, args: list[str], state_dir: Path, stdin=None):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "chaos", "run", *args],
            cwd=ROOT,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "DEADAIR_STATE": str(state_dir)},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.err: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.proc.poll() is not None:
                    break
                continue
            if text in line:
                return line
        self.proc.kill()
        pytest.fail(f"never saw {text!r}; stderr:\n{''.join(self.err)}")

    def finish(self, timeout: float = 120) -> tuple[int, str, str]:
        """Wait for the end; stdout read here, stderr by the reader thread to its end."""
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        self.proc.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return self.proc.returncode, out, "".join(self.err)


def _summary(runs: Path) -> tuple[dict, list[dict]]:
    [folder] = [p for p in runs.iterdir() if p.is_dir()]
    events = [json.loads(line) for line in (folder / "journal.jsonl").read_text().splitlines()]
    return json.loads((folder / "summary.json").read_text()), events


def _untouched(stack: Stack) -> tuple[dict, list]:
    """Every container (id, start time, state) and every link (enabled, toxics) as they are now."""
    containers = {c.name: (c.id, c.attrs["State"]["StartedAt"], c.status) for c in stack.containers()}
    links = sorted((link.name, link.enabled, tuple(link.toxics)) for link in stack.status().links)
    return containers, links


def test_dry_faults_brings_everything_up_injects_nothing_and_judges(stack, tmp_path, state_dir):
    exp = _experiment(
        tmp_path,
        [
            {"at": "1s", "fault": "mic.cut", "for": "4s"},
            {"at": "2s", "fault": "link.latency", "target": "entry-lb", "for": "3s", "with": {"latency": "300ms"}},
            {"at": "3s", "fault": "node.pause", "target": "edge-1", "for": "2s"},
        ],
    )
    before = _untouched(stack)
    runs = tmp_path / "runs"
    run = Run([str(exp), "--dry", "faults", "--journal-dir", str(runs)], state_dir)
    run.wait_for("not injected (dry run)")
    seen = []
    while run.proc.poll() is None:  # over the would-be windows and to the end: nothing changes
        seen.append(_untouched(stack))
        time.sleep(0.5)
    code, out, err = run.finish()
    assert code == 0, out + err
    assert len(seen) >= 4 and all(s == before for s in seen), seen
    assert _untouched(stack) == before
    assert "PASSED [DRY RUN: no fault injected] (exit 0)" in out.splitlines()[0]
    assert "mic.cut mic not injected (dry run)" in err
    assert "  status: method" in err  # plain status lines: stderr is not a terminal
    summary, events = _summary(runs)
    assert summary["dry"] == "faults" and summary["skipped"] == ["0.0", "1.0", "2.0"]
    kinds = [e["kind"] for e in events]
    assert "fault.start" not in kinds and kinds.count("fault.skipped") == 3
    by = {(v["phase"], v["measure"]): v for v in summary["verdicts"]}
    for phase in ("before", "during", "after"):  # listeners listened: judged, counted
        v = by[(phase, "dead_air.max")]
        assert v["outcome"] == "pass" and v["summary"]["count"] == 3 and not v["skipped"]
    onset = by[("step", "hold_music.onset")]  # over the would-be window: nobody heard hold music
    assert onset["skipped"] and onset["outcome"] == "fail" and onset["summary"]["missing"] == 3
    skipped = next(e for e in events if e["kind"] == "fault.skipped" and e["occurrence"] == "0.0")
    assert onset["window"] == [pytest.approx(skipped["t"], abs=1e-3), pytest.approx(skipped["end"], abs=1e-3)]
    assert not list(state_dir.glob("ledgers/*.json"))


pytest_plugins = ["pytester"]


def test_the_pytest_plugin_runs_a_dry_run_with_deadair_dry_faults(stack, pytester, tmp_path, state_dir):
    pytester.makeini("[pytest]\ndeadair_paths = experiments\n")
    pytester.mkdir("experiments")
    exp = _experiment(tmp_path, [{"at": "1s", "fault": "mic.cut", "for": "3s"}])
    (pytester.path / "experiments" / "cut.yaml").write_text(exp.read_text())
    runs = tmp_path / "runs"
    result = pytester.runpytest_subprocess(
        "--deadair-dry", "faults", "--deadair-journal-dir", str(runs), "-p", "no:cacheprovider", "-rA"
    )
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*mic.cut mic not injected (dry run)*", "*1 passed*"])
    summary, events = _summary(runs)
    assert summary["dry"] == "faults" and summary["status"] == "passed"
    assert [e["kind"] for e in events].count("fault.skipped") == 1
    assert not any(e["kind"] == "fault.start" for e in events)
    assert stack.toxiproxy().proxy("mic").enabled


def test_step_mode_y_injects_and_k_rolls_everything_back(stack, tmp_path, state_dir):
    exp = _experiment(
        tmp_path,
        [
            {"at": "1s", "fault": "mic.cut", "for": "10s"},
            {"at": "3s", "fault": "link.latency", "target": "entry-lb", "for": "3s", "with": {"latency": "300ms"}},
        ],
        expect_onset=False,
    )
    runs = tmp_path / "runs"
    master, slave = pty.openpty()
    try:
        run = Run([str(exp), "--step", "--journal-dir", str(runs)], state_dir, stdin=slave)
        os.close(slave)
        run.wait_for("step mode: inject mic.cut mic")
        assert stack.toxiproxy().proxy("mic").enabled  # not before the operator says so
        os.write(master, b"y")  # one key, no Enter: the terminal is in cbreak
        run.wait_for("mic.cut mic applied")
        assert stack.toxiproxy().proxy("mic").enabled is False
        run.wait_for("step mode: inject link.latency entry-lb")
        os.write(master, b"k")
        code, out, err = run.finish()
    finally:
        os.close(master)
    assert code == 5, out + err
    assert stack.toxiproxy().proxy("mic").enabled is True
    assert not stack.toxiproxy().proxy("entry-lb").toxics
    user = login_user()
    assert f"kill switch pulled by {user} (key k)" in err
    assert "STOPPED (exit 5)" in out and f"stopped by {user} (key k)" in out
    summary, events = _summary(runs)
    assert summary["status"] == "stopped" and summary["exit_code"] == 5 and summary["step"] is True
    assert summary["stopped"]["by"] == user and summary["stopped"]["how"] == "key"
    assert summary["stopped"]["rolled_back"] == ["mic.cut mic"]  # by the kill switch, at once
    [stop] = [e for e in events if e["kind"] == "run.stopped"]
    assert stop["by"] == user and stop["how"] == "key"
    end = next(e for e in events if e["kind"] == "fault.end" and e.get("occurrence") == "0.0")
    assert end.get("stopped") is True and end["t"] >= stop["t"]
    assert not any(e["kind"] == "fault.start" and e["occurrence"] == "1.0" for e in events)  # never injected
    assert [e["answer"] for e in events if e["kind"] == "operator.answer"] == ["y"]
    assert not list(state_dir.glob("ledgers/*.json"))


def test_sigusr1_during_a_fault_rolls_back_at_once_and_records_the_sender(stack, tmp_path, state_dir):
    exp = _experiment(tmp_path, [{"at": "1s", "fault": "mic.cut", "for": "30s"}], expect_onset=False)
    runs = tmp_path / "runs"
    run = Run([str(exp), "--journal-dir", str(runs)], state_dir)
    run.wait_for("mic.cut mic applied")
    assert stack.toxiproxy().proxy("mic").enabled is False
    sent = time.monotonic()
    run.proc.send_signal(signal.SIGUSR1)
    run.wait_for("rolled back mic.cut mic", timeout=30)
    assert stack.toxiproxy().proxy("mic").enabled is True
    assert time.monotonic() - sent < 10  # at once, not at the end of its 30 s
    code, out, err = run.finish()
    assert code == 5, out + err
    summary, events = _summary(runs)
    stopped = summary["stopped"]
    assert stopped["how"] == "signal" and stopped["signal"] == "SIGUSR1" and stopped["stage"] == "live"
    assert stopped["pid"] == os.getpid() and stopped["uid"] == os.getuid()  # this test sent it
    assert stopped["by"] == __import__("pwd").getpwuid(os.getuid()).pw_name
    assert f"stopped by {stopped['by']} (SIGUSR1 from pid {os.getpid()}" in out
    assert stopped["rolled_back"] == ["mic.cut mic"]
    assert any(e["kind"] == "fault.end" and e.get("stopped") for e in events)
    assert not list(state_dir.glob("ledgers/*.json"))
