"""The method with the operator in it, with no engine: a stand-in fault whose effect is a real
process (found, stopped and verified by the ledger's own `flood.stop` undo action), so "applied"
and "rolled back" are facts of the machine, not flags. Step mode with keys from another thread
(y for the first fault, k at the second question), SIGUSR1 during a fault (its sender recorded),
and a dry run that never applies anything."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chaos.faults.flooder import MARKER, flood_pids
from chaos.language.loader import load_experiment
from chaos.runner.context import RunContext
from chaos.runner.method import run_method
from chaos.runner.model import RunOptions

ROOT = Path(__file__).resolve().parents[2]
METHOD = """\
title: the operator in the method
stack: {stack}
listeners: {{count: 1}}
steady_state:
  - {{measure: dead_air.max, expect: "< 1.5s"}}
method:
  - {{at: 200ms, fault: mic.cut, for: {first}}}
  - {{at: 600ms, fault: mic.cut, for: 500ms}}
"""


class StandInFault:
    """A fault whose effect is a sleeping process carrying the flood marker and its own id: the
    ledger's `flood.stop` undo action stops it and verifies it is gone."""

    def __init__(self, key: str):
        self.id = f"deadair-flood-test-{uuid.uuid4().hex[:8]}-{key}"
        self.target = "mic"
        self.extra: dict[str, Any] = {}
        self.prepared = self.applied = 0

    def describe(self) -> str:
        return f"stand-in {self.id[-3:]}"

    def prepare(self) -> None:
        self.prepared += 1

    def undo(self) -> dict[str, Any]:
        return {"action": "flood.stop", "flood": self.id, "node": "mic"}

    def apply(self) -> None:
        self.applied += 1
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", MARKER, self.id])
        deadline = time.monotonic() + 10
        while not flood_pids(self.id) and time.monotonic() < deadline:
            time.sleep(0.02)


def context(tmp_path: Path, first: str = "10s", **options: Any) -> tuple[RunContext, dict[str, StandInFault]]:
    exp_file = tmp_path / "exp.yaml"
    exp_file.write_text(METHOD.format(stack=ROOT / "compose" / "audio-room", first=first))
    ctx = RunContext(load_experiment(exp_file), RunOptions(journal_dir=tmp_path, progress=lambda m: None, **options))
    return ctx, {o.key: StandInFault(o.key) for o in ctx.plan}


async def until(cond: Callable[[], Any], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("DEADAIR_STATE", str(tmp_path / "state"))


def test_step_mode_y_injects_and_k_at_the_next_question_rolls_it_back_at_once(tmp_path):
    ctx, faults = context(tmp_path, step=True, user="alice")
    first, second = faults["0.0"], faults["1.0"]

    async def main() -> float:
        ctx.stage, ctx.loop = "live", asyncio.get_running_loop()
        method = asyncio.ensure_future(run_method(ctx, faults))
        await until(lambda: ctx.prompter.waiting)
        assert not first.applied  # not before the operator says so
        threading.Thread(target=ctx.on_key, args=("y",)).start()
        await until(lambda: flood_pids(first.id))
        await until(lambda: ctx.prompter.waiting)  # the second fault's question; the first is in effect
        pulled = time.monotonic()
        threading.Thread(target=ctx.on_key, args=("k",)).start()
        await asyncio.wait_for(method, 30)
        return time.monotonic() - pulled

    try:
        took = asyncio.run(main())
    finally:
        ctx.pool.shutdown()
        ctx.ledger.close()
    assert not flood_pids(first.id) and not second.applied
    assert took < 8  # at once: the first fault had 10 s to go
    assert ctx.stopped is not None and (ctx.stopped["by"], ctx.stopped["how"]) == ("alice", "key")
    assert ctx.stopped["rolled_back"] == [first.describe()]
    kinds = [e.kind for e in ctx.timeline.events]
    assert kinds.count("fault.start") == 1 and "fault.skipped" not in kinds
    [end] = ctx.timeline.of_kind("fault.end")
    assert end.data["occurrence"] == "0.0" and end.data["stopped"] is True
    assert [e.data["answer"] for e in ctx.timeline.of_kind("operator.answer")] == ["y"]
    assert ctx.timeline.of_kind("run.phase")[0].data["name"] == "during"  # judged up to the kill


def test_step_mode_s_skips_a_fault_and_the_method_keeps_its_spacing(tmp_path):
    ctx, faults = context(tmp_path, first="300ms", step=True, user="bob")
    said: list[str] = []
    ctx.opt.progress = said.append

    async def main() -> None:
        ctx.stage, ctx.loop = "live", asyncio.get_running_loop()
        method = asyncio.ensure_future(run_method(ctx, faults))
        await until(lambda: ctx.prompter.waiting)
        await asyncio.sleep(1.0)  # the operator thinks for a second
        ctx.on_key("s")
        await until(lambda: ctx.timeline.of_kind("fault.skipped"))
        await until(lambda: ctx.prompter.waiting)
        ctx.on_key("y")
        await asyncio.wait_for(method, 30)

    try:
        asyncio.run(main())
    finally:
        ctx.pool.shutdown()
        ctx.ledger.close()
    assert faults["0.0"].applied == 0 and faults["1.0"].applied == 1 and not flood_pids(faults["1.0"].id)
    [skipped] = ctx.timeline.of_kind("fault.skipped")
    assert skipped.data["reason"] == "skipped by bob" and skipped.data["end"] == pytest.approx(
        skipped.t + 0.3, abs=1e-3
    )
    [start] = ctx.timeline.of_kind("fault.start")
    # planned 400 ms after the first; the second question came after the first was answered
    assert start.t - skipped.t >= 0.4 - 0.05
    assert ctx.skipped == ["0.0"] and ctx.stopped is None
    # one clock: the second question says where the operator's second of thinking put the fault
    first_q, second_q = [m for m in said if "step mode: inject" in m]
    assert "planned at t+0.2s)?" in first_q, first_q
    assert "planned at t+0.6s; the waits for answers so far put it at t+" in second_q, second_q
    moved = float(second_q.split("put it at t+")[1].split("s)")[0])
    assert moved >= 0.6 + 1.0 - 0.05, second_q  # planned at 0.6 s, after a wait of at least 1 s
    first_answer = ctx.timeline.of_kind("operator.answer")[0]
    assert first_answer.t - first_answer.data["asked"] >= 1.0 - 0.05  # the wait, from the journal


def test_a_dry_run_resolves_every_fault_and_applies_none(tmp_path):
    ctx, faults = context(tmp_path, first="1s", dry="faults")

    async def main() -> None:
        ctx.stage, ctx.loop = "live", asyncio.get_running_loop()
        await asyncio.wait_for(run_method(ctx, faults), 30)

    t0 = time.monotonic()
    try:
        asyncio.run(main())
    finally:
        ctx.pool.shutdown()
        ctx.ledger.close()
    assert time.monotonic() - t0 >= 1.2 - 0.05  # the would-be windows are held: the method keeps its length
    assert all(f.prepared == 1 and f.applied == 0 for f in faults.values())
    assert not ctx.ledger.entries  # nothing to roll back: nothing was applied
    skipped = {e.data["occurrence"]: e for e in ctx.timeline.of_kind("fault.skipped")}
    assert set(skipped) == {"0.0", "1.0"} and not ctx.timeline.of_kind("fault.start")
    assert skipped["0.0"].data["end"] - skipped["0.0"].t == pytest.approx(1.0, abs=1e-3)
    assert {e.data["reason"] for e in skipped.values()} == {"dry run"}


SIGNAL_DURING_A_FAULT = textwrap.dedent(
    """
    import asyncio, json, os, subprocess, sys, time
    from pathlib import Path
    import signal
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})  # as `deadair run` does, before numpy's threads
    sys.path.insert(0, sys.argv[2])
    from test_live_method import context, until
    from chaos.faults.flooder import flood_pids
    from chaos.runner.method import run_method

    ctx, faults = context(Path(sys.argv[1]))
    ctx.kill_signal.start()

    async def main():
        ctx.stage, ctx.loop = "live", asyncio.get_running_loop()
        method = asyncio.ensure_future(run_method(ctx, faults))
        await until(lambda: flood_pids(faults["0.0"].id))
        sender = subprocess.Popen(["kill", "-USR1", str(os.getpid())])
        pulled = time.monotonic()
        await asyncio.wait_for(method, 30)
        sender.wait()
        return sender.pid, time.monotonic() - pulled

    sender, took = asyncio.run(main())
    ctx.kill_signal.stop()
    ctx.pool.shutdown()
    ctx.ledger.close()
    print(json.dumps({"stopped": ctx.stopped, "sender": sender, "took": took,
                      "left": [k for k, f in faults.items() if flood_pids(f.id)]}))
    """
)


def test_sigusr1_during_a_fault_rolls_it_back_at_once_and_names_the_sender(tmp_path):
    script = tmp_path / "kill_during_fault.py"
    script.write_text(SIGNAL_DURING_A_FAULT)
    proc = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(Path(__file__).parent)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env={**os.environ, "DEADAIR_STATE": str(tmp_path / "state")},
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["left"] == []  # no fault left applied
    assert out["took"] < 8  # at once: the fault had 10 s to go
    stopped = out["stopped"]
    assert stopped["how"] == "signal" and stopped["pid"] == out["sender"] and stopped["command"] == "kill"
    assert stopped["stage"] == "live" and stopped["uid"] == os.getuid()
    assert len(stopped["rolled_back"]) == 1
