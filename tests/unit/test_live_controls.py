"""Runs for people: the live status (from a timeline), the operator's keys and step-mode
questions (with a fake input), the kill switch (a key, SIGUSR1 with its sender), dry runs
(verdicts over would-be windows reported and not counted; `--dry all` touching nothing)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import pty
import subprocess
import sys
import termios
import textwrap
import threading
import time
from pathlib import Path

import pytest

from chaos.checkers.history import History
from chaos.language.loader import load_experiment
from chaos.report.text import render
from chaos.runner.context import RunContext
from chaos.runner.judging import conclude, judge
from chaos.runner.method import MethodClock
from chaos.runner.model import EXIT_PASSED, EXIT_STOPPED, RunOptions, RunResult
from chaos.runner.operator import KeyReader, Prompter, login_user
from chaos.runner.status import Board, Counts, LiveStatus, render_line
from chaos.timeline import Event, Timeline

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = ROOT / "experiments" / "mic-cut-hold-music.yaml"
JOURNAL = ROOT / "tests" / "data" / "runs" / "flagship-20261130-074937-ac9830" / "journal.jsonl"  # a real flagship run


def _journal() -> list[Event]:
    return sorted(Timeline.read_journal(JOURNAL).events, key=lambda e: e.t)


def ev(t: float, kind: str, src: str = "L1", **data) -> Event:
    return Event(t, kind, src, data)


# -- the status line ------------------------------------------------------------------------------


def test_the_board_counts_listeners_and_names_the_fault_from_a_real_run():
    events = _journal()
    board = Board({"0.0": 8.0})
    board.feed([e for e in events if e.t <= 9.0])  # before the cut (t=10.89)
    assert board.counts() == Counts(hearing=20)
    assert board.current(9.0) == []
    board.feed([e for e in events if e.t <= 12.0])  # the same list, grown: only the new events are read
    [cut] = board.current(12.0)
    assert (cut.what, cut.occurrence, cut.skipped) == ("mic.cut mic", "0.0", "")
    assert cut.end == pytest.approx(10.891295 + 8.0)
    line = render_line("method", 6.1, 13.0, 12.0, board.counts(), 20, board.current(12.0), 12.0)
    assert line == "method 6/13s | 0:12 left | hearing 20/20 | dead air 0 | fault mic.cut mic 0:07 left"
    board.feed(events)  # to the end: the cut is over, the listeners left
    assert board.current(events[-1].t) == []


def test_the_board_tells_dead_air_joining_reconnecting_and_gone_apart():
    board = Board({"1.0": None})
    board.feed(
        [
            ev(0.0, "listener.join", "L1"),
            ev(0.0, "listener.join", "L2"),
            ev(0.0, "listener.join", "L3"),
            ev(0.0, "listener.join", "L4"),
            ev(0.0, "listener.join", "E1", ear=True),
            ev(0.5, "listener.first_audio", "L1"),
            ev(0.5, "listener.first_audio", "L2"),
            ev(0.5, "listener.first_audio", "L3"),
            ev(0.5, "listener.first_audio", "E1"),
            ev(1.0, "listener.disconnect", "L2", reason="reset"),
            ev(1.5, "listener.stall_start", "L2"),
            ev(2.0, "listener.gave_up", "L3"),
            ev(2.0, "ear.silence_start", "E1"),
            ev(2.5, "fault.start", "runner", step=1, occurrence="1.0", fault="node.kill", target="edge-1"),
        ]
    )
    assert board.counts() == Counts(hearing=1, dead_air=2, joining=1, reconnecting=1, gone=1)
    line = render_line("method", 3.0, None, 30.0, board.counts(), 5, board.current(3.0), 3.0, at_least=True)
    assert line == (
        "method 3s | 0:30+ left | hearing 1/5 | dead air 2 | joining 1 | reconnecting 1 | gone 1 | fault node.kill edge-1"
    )


def test_a_skipped_fault_shows_for_its_would_be_window_only():
    board = Board()
    board.feed(
        [
            ev(
                5.0,
                "fault.skipped",
                "runner",
                step=0,
                occurrence="0.0",
                fault="mic.cut",
                target="mic",
                end=13.0,
                reason="dry run",
            ),
        ]
    )
    assert render_line("method", 2.0, 13.0, 11.0, Counts(), 0, board.current(7.0), 7.0) == (
        "method 2/13s | 0:11 left | fault mic.cut mic (dry run, 0:06 left)"
    )
    assert board.current(13.0) == []


def test_time_left_adds_the_phases_still_to_come():
    tl = Timeline()
    phases = [("stack", None), ("warm-up", 30.0), ("gate", 5.0), ("method", 13.0), ("recovery", 5.0)]
    out = io.StringIO()
    status = LiveStatus(tl, phases, 20, mode="lines", stream=out)
    status.enter("stack")
    status.enter("gate")
    status.enter("method")
    status.extend(10.0)  # the operator took 10 s to answer
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("  status: stack 0s | 0:53+ left")
    assert lines[1].startswith("  status: gate 0/5s | 0:23 left")
    assert lines[2].startswith("  status: method 0/13s | 0:18 left")
    assert status.line().startswith("method 0/23s | 0:28 left")


def test_the_live_line_is_redrawn_in_place_and_messages_print_above_it():
    out = io.StringIO()
    status = LiveStatus(Timeline(), [("gate", 5.0)], 0, mode="live", stream=out)
    status.enter("gate")
    status.message(lambda: out.write("a message\n"))
    status.close()
    status.message(lambda: out.write("after\n"))
    status.show()  # closed: no line any more
    text = out.getvalue()
    assert text == "\rgate 0/5s | 0:05 left\x1b[K\r\x1b[Ka message\n\rgate 0/5s | 0:05 left\x1b[K\r\x1b[Kafter\n"


def test_no_status_when_off():
    out = io.StringIO()
    status = LiveStatus(Timeline(), [("gate", 5.0)], 0, mode="off", stream=out)
    status.enter("gate")
    status.show()
    status.message(lambda: out.write("m\n"))
    assert out.getvalue() == "m\n"


# -- keys, questions, the kill switch -------------------------------------------------------------


def test_keys_are_read_from_a_pipe_in_a_thread_until_its_end():
    r, w = os.pipe()
    got: list[str] = []
    reader = KeyReader(r, got.append)
    reader.start()
    os.write(w, b"ayk")
    os.close(w)
    deadline = time.monotonic() + 5
    while len(got) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    reader.stop()
    os.close(r)
    assert got == ["a", "y", "k"]


def test_a_terminal_is_in_cbreak_while_keys_are_read_and_restored_after():
    master, slave = pty.openpty()
    before = termios.tcgetattr(slave)
    got: list[str] = []
    reader = KeyReader(slave, got.append)
    reader.start()
    during = termios.tcgetattr(slave)
    assert not during[3] & termios.ICANON and not during[3] & termios.ECHO  # a key at once, not echoed
    assert during[3] & termios.ISIG  # Ctrl-C still interrupts
    os.write(master, b"k")  # no Enter needed
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    reader.stop()
    assert got == ["k"]
    assert termios.tcgetattr(slave) == before
    os.close(master)
    os.close(slave)


def test_a_step_question_is_answered_by_a_key_from_another_thread():
    said: list[str] = []

    async def main() -> str:
        prompter = Prompter(said.append)
        task = asyncio.ensure_future(prompter.ask("inject mic.cut mic?"))
        await asyncio.sleep(0.05)
        assert prompter.waiting
        for ch in "x\nY":  # x is refused with a hint, a newline ignored, Y answers
            threading.Thread(target=prompter.key, args=(ch,)).start()
            await asyncio.sleep(0.05)
        return await asyncio.wait_for(task, 2)

    assert asyncio.run(main()) == "y"
    assert said[0] == "inject mic.cut mic?"
    assert said[1:] == ["  ('x': press y to inject, s to skip, k to stop the run and roll back)"]


def _context(tmp_path: Path, **options) -> RunContext:
    return RunContext(load_experiment(FLAGSHIP), RunOptions(journal_dir=tmp_path, progress=lambda m: None, **options))


def test_the_k_key_stops_the_method_and_records_who_pulled_it(tmp_path):
    ctx = _context(tmp_path, user="alice")

    async def main() -> None:
        ctx.stage, ctx.loop = "live", asyncio.get_running_loop()
        ctx.method_work = asyncio.ensure_future(asyncio.sleep(30))
        threading.Thread(target=ctx.on_key, args=("s",)).start()  # no question asked: nothing happens
        threading.Thread(target=ctx.on_key, args=("k",)).start()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(ctx.method_work, 5)

    asyncio.run(main())
    assert ctx.stopped is not None and ctx.stopped["by"] == "alice" and ctx.stopped["how"] == "key"
    [stop] = ctx.timeline.of_kind("run.stopped")
    assert (stop.data["by"], stop.data["how"], stop.data["stage"]) == ("alice", "key", "live")
    ctx.on_key("k")  # a second press changes nothing
    assert len(ctx.timeline.of_kind("run.stopped")) == 1


def test_once_closing_the_kill_switch_only_says_rollback_is_under_way(tmp_path):
    said: list[str] = []
    ctx = RunContext(load_experiment(FLAGSHIP), RunOptions(journal_dir=tmp_path, progress=said.append))
    ctx.stage = "closing"
    ctx.on_key("k")
    assert ctx.stopped is None and not ctx.timeline.of_kind("run.stopped")
    assert "already ending" in said[-1]


KILL_WHILE_STARTING = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    from pathlib import Path
    import signal
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})  # as `deadair run` does, before numpy's threads
    from chaos.language.loader import load_experiment
    from chaos.runner.context import RunContext
    from chaos.runner.model import RunOptions, Stopped
    import signal
    ctx = RunContext(load_experiment(Path(sys.argv[1])), RunOptions(progress=lambda m: None))
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    ctx.kill_signal.start()
    # another process sends the signal, as an operator's `kill -USR1 PID` would
    # (after a pause, so that this process is in its loop by then; exec: the same pid sends it)
    sender = subprocess.Popen(["sh", "-c", f"sleep 0.3; exec kill -USR1 {os.getpid()}"])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the stack starting, in the main thread
            time.sleep(0.01)
        outcome = "not stopped"
    except Stopped:
        outcome = "stopped"
    sender.wait()
    ctx.kill_signal.stop()
    print(json.dumps({"outcome": outcome, "stopped": ctx.stopped, "sender": sender.pid,
                      "handler_restored": signal.getsignal(signal.SIGUSR1) == signal.SIG_DFL,
                      "mask_restored": signal.pthread_sigmask(signal.SIG_BLOCK, set()) == mask}))
    """
)


def test_sigusr1_while_the_stack_starts_stops_the_run_and_names_its_sender(tmp_path):
    script = tmp_path / "kill.py"
    script.write_text(KILL_WHILE_STARTING)
    proc = subprocess.run(
        [sys.executable, str(script), str(FLAGSHIP)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["outcome"] == "stopped"
    stopped = out["stopped"]
    assert stopped["how"] == "signal" and stopped["signal"] == "SIGUSR1" and stopped["stage"] == "startup"
    assert stopped["pid"] == out["sender"] and stopped["command"] == "kill"
    assert stopped["uid"] == os.getuid() and stopped["by"] == __import__("pwd").getpwuid(os.getuid()).pw_name
    assert out["handler_restored"] and out["mask_restored"]


FALLBACK = textwrap.dedent(
    """
    import json, signal, sys, threading, time
    from pathlib import Path
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})  # whatever the parent left blocked
    started = threading.Event()
    bystander = threading.Thread(target=lambda: (started.set(), time.sleep(30)), daemon=True)
    bystander.start()  # a host program's thread, started before the run: SIGUSR1 not blocked in it
    started.wait()
    from chaos.language.loader import load_experiment
    from chaos.runner.context import RunContext
    from chaos.runner.model import RunOptions, Stopped
    ctx = RunContext(load_experiment(Path(sys.argv[1])), RunOptions(progress=lambda m: None))
    ctx.kill_signal.start()
    try:
        signal.pthread_kill(bystander.ident, signal.SIGUSR1)  # taken by that thread, not the waiter
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the stack starting, in the main thread
            time.sleep(0.01)
        outcome = "not stopped"
    except Stopped:
        outcome = "stopped"
    ctx.kill_signal.stop()
    print(json.dumps({"outcome": outcome, "stopped": ctx.stopped}))
    """
)


def test_sigusr1_taken_by_a_thread_that_cannot_see_its_sender_still_stops_the_run(tmp_path):
    script = tmp_path / "fallback.py"
    script.write_text(FALLBACK)
    proc = subprocess.run(
        [sys.executable, str(script), str(FLAGSHIP)], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["outcome"] == "stopped"
    assert out["stopped"]["how"] == "signal" and out["stopped"]["by"].startswith("unknown")
    assert "pid" not in out["stopped"]


HOLDING = textwrap.dedent(
    """
    import os, signal
    from chaos.runner.operator import holding_kill_signal
    before = signal.pthread_sigmask(signal.SIG_BLOCK, set())
    with holding_kill_signal():
        os.kill(os.getpid(), signal.SIGUSR1)  # after the run: nobody is listening any more
        assert signal.SIGUSR1 in signal.sigpending()
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == before
    print("alive")  # the default action of SIGUSR1 would have killed this process
    """
)


def test_the_cli_holds_sigusr1_for_its_run_and_drops_a_late_one():
    proc = subprocess.run([sys.executable, "-c", HOLDING], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0 and proc.stdout.strip() == "alive", proc.stderr


def test_the_method_clock_stands_still_while_the_operator_is_asked(tmp_path):
    ctx = _context(tmp_path, step=True)

    async def main() -> float:
        mclock = MethodClock(ctx, ctx.timeline.clock.now())
        mclock.hold()
        asyncio.get_running_loop().call_later(0.3, mclock.release)
        t0 = time.monotonic()
        await mclock.sleep_until(0.1)
        return time.monotonic() - t0

    took = asyncio.run(main())
    assert 0.38 <= took < 1.0  # 0.3 s held, then 0.1 s on a clock moved by those 0.3 s


# -- dry runs: verdicts over would-be windows, not counted ----------------------------------------


def _as_skipped(events: list[Event], reason: str = "dry run") -> list[Event]:
    """The real run's events with its cut not injected: fault.start/end replaced by fault.skipped,
    and no listener ever hearing hold music (what a dry run's listeners hear)."""
    start = next(e for e in events if e.kind == "fault.start")
    end = next(e for e in events if e.kind == "fault.end")
    out = [e for e in events if e.kind not in ("fault.start", "fault.end", "listener.switch")]
    out = [e for e in out if not (e.kind == "listener.stream" and e.data.get("title") == "hold")]
    skipped = {k: v for k, v in start.data.items()} | {"end": end.t, "reason": reason}
    return sorted([*out, Event(start.t, "fault.skipped", "runner", skipped)], key=lambda e: e.t)


def test_a_fault_not_injected_is_judged_over_its_would_be_window_and_not_counted(tmp_path):
    exp = load_experiment(FLAGSHIP)
    events = _as_skipped(_journal())
    verdicts = {(v.phase, v.measure): v for v in judge(exp, History(events))}
    onset = verdicts[("step", "hold_music.onset")]
    assert onset.skipped and onset.outcome == "fail"  # nobody heard hold music: no cut, no fallback
    assert onset.window.start == pytest.approx(10.891295) and onset.window.end == pytest.approx(18.891023)
    assert "fault not injected (dry run): judged over its would-be window, not counted" in onset.note
    assert onset.to_json()["skipped"] is True
    assert not verdicts[("during", "dead_air.max")].skipped

    ctx = _context(tmp_path, dry="faults")
    ctx.timeline.events = events
    ctx.status = "judged"
    result = RunResult(exp, "r1", "error", 3, dry="faults", skipped=["0.0"])
    conclude(ctx, result)
    assert (result.status, result.exit_code) == ("passed", EXIT_PASSED)  # the steady state held
    text = render(result)
    assert text.splitlines()[0] == f"{exp.title}: PASSED [DRY RUN: no fault injected] (exit 0)"
    assert "hold_music.onset p95 < 2s" in text and "(fail)" in text
    assert "not injected: 0.0 (verdicts over their would-be windows not counted)" in text


def test_a_step_with_one_fault_injected_is_judged_over_that_one_only():
    exp = load_experiment(FLAGSHIP)
    events = _journal()
    # a second occurrence of step 0, skipped by the operator: the real one still decides
    events.append(
        Event(
            20.0,
            "fault.skipped",
            "runner",
            {
                "step": 0,
                "occurrence": "0.1",
                "fault": "mic.cut",
                "target": "mic",
                "end": 22.0,
                "reason": "skipped by alice",
            },
        )
    )
    onset = next(v for v in judge(exp, History(events)) if v.measure == "hold_music.onset")
    assert not onset.skipped and onset.outcome == "pass"
    assert onset.window.start == pytest.approx(10.891295)


def test_a_stopped_run_ends_stopped_and_says_who_stopped_it(tmp_path):
    exp = load_experiment(FLAGSHIP)
    ctx = _context(tmp_path)
    ctx.timeline.events = _journal()
    ctx.stopped = {"by": "alice", "how": "key", "key": "k", "t": 12.5, "method_t": 2.5, "stage": "live"}
    result = RunResult(exp, "r1", "error", 3, stopped=ctx.stopped)
    conclude(ctx, result)
    assert (result.status, result.exit_code) == ("stopped", EXIT_STOPPED)
    assert result.verdicts  # what listeners heard until then, shown
    text = render(result)
    assert text.splitlines()[0].startswith(f"{exp.title}: STOPPED (exit 5)")
    # on the method's clock, as the progress lines ("t+  2.5s ...") and the experiment's `at:`
    assert "stopped by alice (key k) at t+2.5s, during the live phases: everything rolled back at once" in text


def test_login_user_names_someone():
    assert login_user()


# -- the command line: --dry all touches nothing; --step needs a terminal --------------------------


def _cli(*args: str, env: dict | None = None, tmp: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "chaos", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "DEADAIR_STATE": str(tmp / "state"), **(env or {})},
    )


def test_dry_all_prints_the_plan_and_calls_no_engine(tmp_path):
    """With DOCKER_HOST pointing nowhere, any engine call would fail the run (exit 3)."""
    runs = tmp_path / "runs"
    proc = _cli(
        "run",
        str(FLAGSHIP),
        "--dry",
        "all",
        "--journal-dir",
        str(runs),
        env={"DOCKER_HOST": "tcp://127.0.0.1:9"},
        tmp=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "t+   5.0s  mic.cut mic for 8s" in proc.stdout
    assert "dry run (--dry all): planned only; no engine was called, nothing was started" in proc.stdout
    assert not runs.exists() and not (tmp_path / "state").exists()  # no journal, no ledger
    assert "deadair:" not in proc.stderr  # not even a sweep was tried


def test_step_mode_needs_a_terminal_and_no_dry_run(tmp_path):
    proc = _cli("run", str(FLAGSHIP), "--step", env={"DOCKER_HOST": "tcp://127.0.0.1:9"}, tmp=tmp_path)
    assert proc.returncode == 2 and "--step needs the operator's terminal" in proc.stderr
    proc = _cli("run", str(FLAGSHIP), "--step", "--dry", "faults", tmp=tmp_path)
    assert proc.returncode == 2 and "--step and --dry faults cannot go together" in proc.stderr
    assert not (tmp_path / "state").exists()


pytest_plugins = ["pytester"]


def test_the_pytest_plugin_plans_only_with_deadair_dry_all(pytester, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:9")
    monkeypatch.setenv("DEADAIR_STATE", str(pytester.path / "state"))
    pytester.makeini("[pytest]\ndeadair_paths = experiments\n")
    pytester.mkdir("experiments")
    text = FLAGSHIP.read_text().replace("stack: audio-room", f"stack: {ROOT / 'compose' / 'audio-room'}")
    (pytester.path / "experiments" / "cut.yaml").write_text(text)
    result = pytester.runpytest_subprocess("--deadair-dry", "all", "-rA", "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*dry run (--dry all): planned only*", "*1 passed*"])
    assert not (pytester.path / ".deadair").exists() and not (pytester.path / "state").exists()
