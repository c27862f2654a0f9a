"""The state one run shares between its phases: the timeline, the ledger, the worker threads.

Every phase takes a RunContext. Blocking calls (an apply, a revert, a probe) go through it, to
worker threads that a cancelled wait does not stop; `settle` lets rollback wait for those that
change the stack, so that a late apply cannot land after its revert.

It also holds what the person watching sees and does: the live status (`enter` a phase, `say`
a message above the status line) and the kill switch (`request_kill`, from a key or SIGUSR1, in
any thread), which acts on the run where it is: the stack starting, the live phases, or nothing
once the run is already ending (rollback is under way then).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from chaos.faults.ledger import Ledger
from chaos.language.model import Experiment
from chaos.language.plan import Occurrence, method_length, plan
from chaos.listen.shards.fleet import ShardedSwarm
from chaos.listen.swarm import Swarm
from chaos.runner.model import RunOptions, Stopped
from chaos.runner.operator import KillSignal, Prompter, login_user
from chaos.runner.status import LiveStatus
from chaos.timeline import Timeline

STEP_TIMEOUT = 30.0  # an apply that takes longer is abandoned (its own calls time out sooner)
# A revert may wait out two slow toxic removals (chaos.faults.undo_network.REMOVE_TIMEOUT each) and a Toxiproxy
# restart before it verifies; rollback waits as long for steps still running.
REVERT_TIMEOUT = 120.0
SETTLE_TIMEOUT = REVERT_TIMEOUT


class RunContext:
    """State of one run, shared by the async part and the synchronous clean-up."""

    def __init__(self, experiment: Experiment, options: RunOptions):
        self.exp = experiment
        self.opt = options
        self.timeline = Timeline()
        self.ledger = Ledger(meta={"experiment": str(experiment.path)})
        self.ledger.on_event = self._ledger_event
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="deadair")
        self.inflight: set[concurrent.futures.Future] = set()  # applies and reverts still running
        self.applying: dict[int, concurrent.futures.Future] = {}  # ledger entry -> its apply
        self.status = "error"  # judged, not_steady, inconclusive, aborted, once the live phases get that far
        self.interrupted: int | None = None
        self.timings: dict[str, float] = {}
        self.plan: list[Occurrence] = plan(experiment)
        self.method_len = method_length(self.plan)
        self.links: dict[str, str] = {}
        self.engines: list[Any] = []  # distributed engines the swarm started or joined (closed after it leaves)
        self.swarm: Swarm | ShardedSwarm | None = (
            None  # the listening swarm, once the listeners joined (join steps add to it)
        )
        self.abort: dict[str, Any] | None = None
        self.crash: str | None = None  # the traceback of an unexpected error (a bug)
        self.stack_started = False  # this run started the stack (set before it is brought up)
        self.user = options.user or login_user()
        self.live = LiveStatus(
            self.timeline,
            self._phase_lengths(),
            experiment.listeners.count + sum(s.join.count for s in experiment.method if s.join),  # join steps' too
            {o.key: o.duration for o in self.plan},
            options.live_status,
            options.status_stream or sys.stderr,
        )
        self.prompter = Prompter(self.say)
        self.skipped: list[str] = []  # fault occurrences not injected (dry run, or the operator said s)
        # The kill switch: where the run is decides what pulling it does.
        self.stage = "startup"  # startup (the stack), live (the event loop), closing (rollback, verdicts)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.live_task: asyncio.Task[Any] | None = None
        self.method_work: asyncio.Future[Any] | None = None  # the method's occurrences, while they run
        self.stopped: dict[str, Any] | None = None  # who pulled the kill switch, how, when
        self.method_start: float | None = None  # the run's clock when the method started (t+0)
        self.kill_signal = KillSignal(self.request_kill, self.act_on_kill)
        self._kill_lock = threading.Lock()

    def say(self, msg: str) -> None:
        self.live.message(lambda: self.opt.progress(msg))

    def enter(self, phase: str) -> None:
        """A phase begins (for the live status; the judged windows are `record_phase`)."""
        self.live.enter(phase)

    def _phase_lengths(self) -> list[tuple[str, float | None]]:
        w, spec = self.exp.windows, self.exp.listeners
        return [
            ("stack", None),
            ("warm-up", (w.warmup + spec.arrival_span) if spec.count else 0.0),
            ("gate", w.gate),
            ("method", self.method_len),
            ("recovery", w.recovery),
        ]

    def submit(self, fn: Callable[[], Any], settle: bool = False) -> concurrent.futures.Future:
        """Start a blocking call in a worker thread. With `settle`, rollback waits for it even after
        the wait for it was cancelled (a signal, a guardrail) or timed out: it changes the stack."""
        fut = self.pool.submit(fn)
        if settle:
            self.inflight.add(fut)
            fut.add_done_callback(self.inflight.discard)
        return fut

    async def blocking(self, fn: Callable[[], Any], timeout: float = STEP_TIMEOUT, settle: bool = False) -> Any:
        """Await a blocking call without blocking the loop (the listeners run on it)."""
        return await asyncio.wait_for(asyncio.wrap_future(self.submit(fn, settle)), timeout)

    def settle(self) -> set[int]:
        """Wait (bounded) for the applies and reverts still running; returns the ledger entries whose
        apply is still running after that (rollback must leave them: a revert now would be undone
        when the apply lands)."""
        running = set(self.inflight)
        if running:
            self.say(f"  waiting for {len(running)} step(s) still running before rolling back")
            concurrent.futures.wait(running, timeout=SETTLE_TIMEOUT)
        return {eid for eid, fut in self.applying.items() if not fut.done()}

    def record_phase(self, name: str, start: float, end: float) -> None:
        """A judged window (before, during, after) on the timeline: verdicts are read over it."""
        self.timeline.record("run.phase", "runner", t=start, name=name, start=start, end=end)

    def on_signal(self, signum: int, task: asyncio.Task[Any] | None) -> None:
        """SIGINT or SIGTERM on the loop: cancel the live phases once; rollback follows."""
        if self.interrupted is None:
            self.interrupted = signum
            self.say(f"\n  {signal.Signals(signum).name}: stopping, rolling back")
            if task is not None:
                task.cancel()

    def note_signals(self) -> None:
        """From the live phases' end to the end of the run, SIGINT and SIGTERM are noted, not
        raised: a second Ctrl-C or a CI's SIGTERM while the swarm's engine closed escaped before
        rollback, and left every fault in place. (The main thread only: signals go nowhere else.)"""
        if threading.current_thread() is not threading.main_thread():
            return

        def noted(signum: int, _frame: Any) -> None:
            if self.interrupted is None:
                self.interrupted = signum
            self.say(f"\n  {signal.Signals(signum).name}: closing and rolling back first; it will finish")

        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, noted)

    def on_key(self, ch: str) -> None:
        """A key from the operator's terminal (the key reader's thread): k stops the run, anything
        else answers a step-mode question if one is asked."""
        if ch in ("k", "K"):
            self.request_kill({"by": self.user, "how": "key", "key": "k"})
        else:
            self.prompter.key(ch)

    def request_kill(self, who: dict[str, Any]) -> None:
        """The kill switch, from any thread: recorded once (who, how, when), then acted on where the
        run is. Never raises: stopping the stack's start-up is the main thread's (`act_on_kill`)."""
        with self._kill_lock:
            if self.stage == "closing":
                self.say("  kill switch: the run is already ending; rollback is under way")
                return
            if self.stopped is not None:
                return
            t = self.timeline.clock.now()
            self.stopped = {**who, "t": round(t, 6), "stage": self.stage}
            if self.method_start is not None:  # what the user reads is on the method's clock
                self.stopped["method_t"] = round(t - self.method_start, 6)
            stage, loop = self.stage, self.loop
        self.timeline.record("run.stopped", "operator", t=t, **who, stage=stage)
        self.say(f"\n  kill switch pulled by {who.get('by')} ({describe_how(who)}): stopping, rolling everything back")
        if stage == "live" and loop is not None:
            try:
                loop.call_soon_threadsafe(self._stop_live)
            except RuntimeError:
                pass  # the loop closed in between: the run is ending, and rolls back anyway
        elif threading.current_thread() is not threading.main_thread():
            self.kill_signal.poke()  # the main thread is starting the stack: stop it there

    def act_on_kill(self) -> None:
        """In the main thread, after `request_kill`: stop the stack's start-up (raise Stopped), or
        have the loop stop the live phases."""
        if self.stopped is None:
            return
        if self.stage == "startup":
            raise Stopped()
        if self.stage == "live" and self.loop is not None:
            try:
                self.loop.call_soon_threadsafe(self._stop_live)
            except RuntimeError:
                pass

    def _stop_live(self) -> None:
        """On the loop: during the method, revert its faults at once while the listeners still
        listen (run_method); elsewhere (warm-up, gate, recovery), end the live phases."""
        if self.method_work is not None and not self.method_work.done():
            self.method_work.cancel()
        elif self.live_task is not None and not self.live_task.done():
            self.live_task.cancel()

    def _ledger_event(self, event: dict[str, Any]) -> None:
        """Something a revert did that listeners feel (a Toxiproxy restart): on the timeline."""
        data = dict(event)
        kind = data.pop("kind", "harness.event")
        self.timeline.record(kind, "deadair", **data)
        self.say(f"  {kind}: {data.get('reason', '')}; {data.get('effect', '')}".rstrip("; "))


def describe_how(who: dict[str, Any]) -> str:
    """`key k`, or `SIGUSR1 from pid 4242 (kill)`."""
    if who.get("how") == "key":
        return f"key {who.get('key', 'k')}"
    text = str(who.get("signal", "signal"))
    if who.get("pid"):
        text += f" from pid {who['pid']}" + (f" ({who['command']})" if who.get("command") else "")
    return text
