"""The rollback ledger: written before a fault acts, replayed newest first, swept after a crash."""
import json
import os
import subprocess
import sys

import pytest

from chaos import faults, ledger


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("DEADAIR_STATE", str(tmp_path))
    done: list[str] = []
    monkeypatch.setitem(faults.UNDO, "test.undo", (lambda a: done.append(a["name"]), lambda a: None))
    monkeypatch.setitem(faults.UNDO, "test.broken",
                        (lambda a: None, lambda a: (_ for _ in ()).throw(faults.FaultError("still broken"))))
    return done


def test_entries_are_on_disk_before_the_fault_acts(state):
    led = ledger.Ledger()
    eid = led.intend("first", {"action": "test.undo", "name": "first"})
    on_disk = json.loads(led.path.read_text())
    assert on_disk["entries"][eid]["status"] == "applying"
    assert on_disk["meta"]["pid"] == os.getpid()


def test_rollback_is_newest_first_and_removes_the_file(state):
    led = ledger.Ledger()
    for name in ("a", "b", "c"):
        led.mark(led.intend(name, {"action": "test.undo", "name": name}), "applied")
    report = led.rollback()
    assert state == ["c", "b", "a"] and report.ok
    led.close()
    assert not led.path.exists()


def test_failed_revert_keeps_the_ledger(state):
    led = ledger.Ledger()
    led.intend("x", {"action": "test.broken"})
    report = led.rollback()
    assert not report.ok and "still broken" in report.failed[0][1]
    led.close()
    assert led.path.exists()


def test_sweep_reverts_what_a_dead_process_left(state, tmp_path):
    # a separate process writes a ledger and dies without rolling back (as SIGKILL would leave it)
    code = ("from chaos import ledger; l = ledger.Ledger(run_id='dead'); "
            "l.mark(l.intend('left', {'action': 'test.undo', 'name': 'left'}), 'applied')")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "DEADAIR_STATE": str(tmp_path)})
    mine = ledger.Ledger(run_id="alive")
    mine.intend("mine", {"action": "test.undo", "name": "mine"})
    results = ledger.sweep()
    assert [led.run_id for led, _ in results] == ["dead"]
    assert state == ["left"]  # the live run's entry was not touched
    assert not (tmp_path / "ledgers" / "dead.json").exists()
    assert mine.path.exists()
