"""The rollback ledger: written before a fault acts, replayed newest first whatever a revert
raises, one rollback at a time, swept after a crash by a lock rather than a pid."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from chaos.errors import EnvironmentNotReady, FaultError
from chaos.faults import ledger, undo


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("DEADAIR_STATE", str(tmp_path))
    done: list[str] = []

    def slow(r):
        time.sleep(0.3)
        done.append(r.action["name"])

    def raising(r):
        raise r.action["exc"]  # set per entry, below

    def broken_verify(r):
        raise FaultError("still broken")

    monkeypatch.setitem(undo.UNDO, "test.undo", (lambda r: done.append(r.action["name"]), lambda r: None))
    monkeypatch.setitem(undo.UNDO, "test.slow", (slow, lambda r: None))
    monkeypatch.setitem(undo.UNDO, "test.broken", (lambda r: None, broken_verify))
    monkeypatch.setitem(
        undo.UNDO, "test.gone", (lambda r: (_ for _ in ()).throw(undo.Gone("went with its stack")), lambda r: None)
    )
    return done


def test_entries_are_on_disk_before_the_fault_acts(state):
    led = ledger.Ledger()
    eid = led.intend("first", {"action": "test.undo", "name": "first"})
    on_disk = json.loads(led.path.read_text())
    assert on_disk["entries"][eid]["status"] == "applying"
    assert on_disk["meta"]["pid"] == os.getpid()
    assert led.lock_path.exists()


def test_rollback_is_newest_first_and_removes_the_files(state):
    led = ledger.Ledger()
    for name in ("a", "b", "c"):
        led.mark(led.intend(name, {"action": "test.undo", "name": name}), "applied")
    report = led.rollback()
    assert state == ["c", "b", "a"] and report.ok
    assert led.close()
    assert not led.path.exists() and not led.lock_path.exists()


def test_failed_revert_keeps_the_ledger(state):
    led = ledger.Ledger()
    led.intend("x", {"action": "test.broken"})
    report = led.rollback()
    assert not report.ok and "still broken" in report.failed[0][1]
    assert not led.close()
    assert led.path.exists()


@pytest.mark.parametrize(
    "exc", [KeyError("container"), OSError("disk full"), EnvironmentNotReady("no Docker engine answers")]
)
def test_any_exception_in_one_revert_does_not_stop_the_others(state, monkeypatch, exc):
    """Issue 11 point 5: before, only a FaultError was caught, and the first other exception left
    every older entry applied."""
    monkeypatch.setitem(undo.UNDO, "test.raises", (lambda r: (_ for _ in ()).throw(exc), lambda r: None))
    led = ledger.Ledger()
    led.mark(led.intend("old", {"action": "test.undo", "name": "old"}), "applied")
    led.mark(led.intend("bad", {"action": "test.raises"}), "applied")
    led.mark(led.intend("new", {"action": "test.undo", "name": "new"}), "applied")
    report = led.rollback()
    assert state == ["new", "old"]
    assert [e["fault"] for e, _ in report.failed] == ["bad"]
    assert type(exc).__name__ in report.failed[0][1] or str(exc) in report.failed[0][1]
    assert not led.close() and json.loads(led.path.read_text())["entries"][1]["status"] == "revert_failed"


def test_a_target_gone_with_its_stack_is_resolved_not_failed(state):
    led = ledger.Ledger()
    led.intend("on a stack that is gone", {"action": "test.gone"})
    report = led.rollback()
    assert report.ok and report.gone and "went with its stack" in report.gone[0][1]
    assert led.close()


def test_each_revert_is_told_which_faults_are_still_active(state, monkeypatch):
    seen = {}
    monkeypatch.setitem(
        undo.UNDO,
        "test.look",
        (lambda r: seen.setdefault(r.action["name"], [o["fault"] for o in r.others]), lambda r: None),
    )
    led = ledger.Ledger()
    for name in ("a", "b", "c"):
        led.mark(led.intend(name, {"action": "test.look", "name": name}), "applied")
    led.revert_entry(led.entries[1])
    led.rollback()
    assert seen == {"b": ["a", "c"], "c": ["a"], "a": []}


def test_two_rollbacks_of_one_ledger_revert_each_entry_once(state):
    """Issue 11 point 6: a signal during the guardrail's rollback thread started a second
    rollback over the same entries."""
    led = ledger.Ledger()
    for name in ("a", "b"):
        led.mark(led.intend(name, {"action": "test.slow", "name": name}), "applied")
    t = threading.Thread(target=led.rollback)
    t.start()
    time.sleep(0.1)
    second = led.rollback()
    t.join()
    assert state == ["b", "a"] and second.ok and not second.reverted


def _dead_ledger(tmp_path, run_id: str, pid: int | None = None) -> None:
    """A separate process writes a ledger and dies without rolling back (as SIGKILL leaves it)."""
    code = (
        f"from chaos.faults import ledger; l = ledger.Ledger(run_id='{run_id}'); "
        "l.mark(l.intend('left', {'action': 'test.undo', 'name': 'left'}), 'applied')"
    )
    if pid is not None:
        code += f"; l.meta['pid'] = {pid}; l._write()"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "DEADAIR_STATE": str(tmp_path)})


def test_sweep_reverts_what_a_dead_process_left(state, tmp_path):
    _dead_ledger(tmp_path, "dead")
    mine = ledger.Ledger(run_id="alive")
    mine.intend("mine", {"action": "test.undo", "name": "mine"})
    results = ledger.sweep()
    assert [led.run_id for led, _ in results] == ["dead"]
    assert state == ["left"]  # the live run's entry was not touched
    assert not (tmp_path / "ledgers" / "dead.json").exists()
    assert mine.path.exists()


def test_a_dead_run_whose_pid_was_reused_is_still_swept(state, tmp_path):
    """Issue 11 point 6: liveness was `kill(pid, 0)`, and fresh CI containers reuse pids; this
    ledger names a live pid (init's) but nobody holds its lock."""
    _dead_ledger(tmp_path, "reused", pid=1)
    assert [led.run_id for led, _ in ledger.sweep()] == ["reused"]
    assert state == ["left"]


def test_a_live_run_in_another_process_is_not_swept(state, tmp_path):
    code = (
        "import time; from chaos.faults import ledger; l = ledger.Ledger(run_id='busy'); "
        "l.intend('held', {'action': 'test.undo', 'name': 'held'}); print('ready', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "DEADAIR_STATE": str(tmp_path)},
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert ledger.sweep() == [] and state == []
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        assert [led.run_id for led, _ in ledger.sweep()] == ["busy"] and state == ["held"]
    finally:
        proc.kill()


def test_an_entry_whose_apply_is_still_running_is_left_for_later(state):
    led = ledger.Ledger()
    a = led.intend("landed", {"action": "test.undo", "name": "landed"})
    led.mark(a, "applied")
    b = led.intend("still applying", {"action": "test.undo", "name": "late"})
    report = led.rollback(skip={b})
    assert state == ["landed"] and [e["fault"] for e in report.reverted] == ["landed"]
    assert led.pending() == [led.entries[b]]
    assert not led.close(keep=True, hold=True) and led.path.exists()
    assert ledger.sweep() == [], "the owner still holds it (its apply may land)"


def test_a_signal_is_never_swallowed_by_the_rollbacks_catch_all(state, monkeypatch):
    from chaos.runner.run import Interrupted

    monkeypatch.setitem(
        undo.UNDO, "test.signal", (lambda r: (_ for _ in ()).throw(Interrupted(signal.SIGINT)), lambda r: None)
    )
    led = ledger.Ledger()
    led.intend("x", {"action": "test.signal"})
    with pytest.raises(Interrupted):
        led.rollback()


def test_rollback_failures_do_not_repeat_the_runs_own_error():
    from chaos.runner.run import _without_repeats

    err = "could not revert link.latency relay-1: Toxiproxy of p is paused and cannot answer"
    assert _without_repeats(["link.latency relay-1: Toxiproxy of p is paused and cannot answer"], err) == [
        "link.latency relay-1: (the same error)"
    ]
    assert _without_repeats([f"x: {err}", f"x: {err}"], err) == ["x: (the same error)"]
