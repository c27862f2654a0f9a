"""The state one run shares between its phases: the timeline, the ledger, the worker threads.

Every phase takes a RunContext. Blocking calls (an apply, a revert, a probe) go through it, to
worker threads that a cancelled wait does not stop; `settle` lets rollback wait for those that
change the stack, so that a late apply cannot land after its revert.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
from collections.abc import Callable
from typing import Any

from chaos.faults.ledger import Ledger
from chaos.language.model import Experiment
from chaos.language.plan import Occurrence, method_length, plan
from chaos.runner.model import RunOptions
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
        self.abort: dict[str, Any] | None = None
        self.crash: str | None = None  # the traceback of an unexpected error (a bug)
        self.stack_started = False  # this run started the stack (set before it is brought up)

    def say(self, msg: str) -> None:
        self.opt.progress(msg)

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

    def _ledger_event(self, event: dict[str, Any]) -> None:
        """Something a revert did that listeners feel (a Toxiproxy restart): on the timeline."""
        data = dict(event)
        kind = data.pop("kind", "harness.event")
        self.timeline.record(kind, "deadair", **data)
        self.say(f"  {kind}: {data.get('reason', '')}; {data.get('effect', '')}".rstrip("; "))
