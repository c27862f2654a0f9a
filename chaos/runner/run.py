"""The runner: stack, listeners, the fault timeline, probes, guardrails, rollback, verdicts.

A run, on one clock:
    stack up (or reuse) -> listeners join -> warm-up (every listener hears audio)
    -> gate: steady state observed for `windows.gate` (probes sampled at its end); if it does
       not hold, no fault is injected
    -> method: the plan's occurrences at their offsets, each fault reverted after its `for`;
       probes sampled every `every` and once at the method's end, before the faults that last
       to the end are reverted; guardrails (abort_when) checked twice a second
    -> recovery: steady state observed for `windows.recovery` (probes sampled at its end)
    -> verdicts, journal, summary
Every exit path (pass, failure, abort, the kill switch, exception, step timeout, Ctrl-C, SIGTERM)
reverts what the ledger holds, newest first, verified, before the process leaves; a stack the run started is
in the ledger too, so it is taken down even after a SIGKILL (by the next run or `deadair sweep`).
Blocking calls (an apply, a revert) run in worker threads that a cancelled wait does not stop,
so rollback first waits, bounded, for those still running: a late apply cannot land after its
revert. Whatever ends the run, the journal and the summary are written.

The kill switch (the `k` key on the operator's terminal, or SIGUSR1, at any time) stops the run
where it is: the stack's start-up (raised there, as a signal is), the live phases (during the
method, every fault reverted at once while the listeners still listen), and it is ignored once
rollback is under way. The run ends `stopped` (exit 5), with who pulled it and how.
Dry runs: `dry="faults"` is a whole run that injects nothing (the method's faults are resolved
and recorded as `fault.skipped`, its actions skipped); `dry="all"` returns the plan's status
(`planned`) at once, having called nothing: no engine, no ledger, no journal.

`_run` below is that list, one call per phase; chaos/runner/__init__.py says which module holds each.
"""

from __future__ import annotations

import asyncio
import signal
import threading
import time
import traceback
from collections.abc import Coroutine
from typing import Any

from docker.errors import DockerException

from chaos.errors import DeadairError, EnvironmentNotReady
from chaos.language.model import Experiment
from chaos.runner.context import RunContext
from chaos.runner.judging import conclude, judge
from chaos.runner.live import live_phases
from chaos.runner.model import (
    EXIT_ENVIRONMENT,
    EXIT_FAILED,
    EXIT_INCONCLUSIVE,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_PASSED,
    EXIT_STOPPED,
    EXIT_TERMINATED,
    Aborted,
    Interrupted,
    RunOptions,
    RunResult,
    Stopped,
)
from chaos.runner.operator import KeyReader
from chaos.runner.outputs import stack_fingerprint, versions, write_outputs
from chaos.runner.rollback import _without_repeats, account_for_rollback, roll_back
from chaos.runner.startup import bring_up_stack
from chaos.stack.room import RoomApiError
from chaos.stack.toxiproxy import ToxiproxyError

ENGINE_CLOSE_TIMEOUT = 60.0  # s: Ray's shutdown of a local cluster takes 1-2 s, longer on a busy host


def run(experiment: Experiment, options: RunOptions | None = None) -> RunResult:
    """Run one experiment against its stack; always rolls back; never leaves a stack it started."""
    opt = options or RunOptions()
    if opt.dry == "all":  # only the plan: nothing is called, nothing is written
        from chaos.faults.ledger import Ledger

        return RunResult(experiment, Ledger().run_id, "planned", EXIT_PASSED, dry="all")
    saved = _signals_raise()
    ctx = RunContext(experiment, opt)
    keys = KeyReader(opt.keys, ctx.on_key) if opt.keys is not None else None
    try:
        ctx.kill_signal.start()  # first: every thread the run starts inherits SIGUSR1 blocked
        if keys is not None:
            keys.start()
        return _run(ctx)
    finally:
        ctx.live.close()
        if keys is not None:
            keys.stop()
        ctx.kill_signal.stop()
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def _run(ctx: RunContext) -> RunResult:
    """The phases in order. Whatever ends the stack or the live phases (a signal, the kill switch,
    an error, a bug) is recorded; rollback, judging and writing then run on every path."""
    experiment = ctx.exp
    result = RunResult(experiment, ctx.ledger.run_id, "error", EXIT_ENVIRONMENT, dry=ctx.opt.dry)
    t0 = time.monotonic()
    try:
        ctx.enter("stack")
        stack, faults = bring_up_stack(ctx)
        result.versions = versions(stack)
        result.fingerprint = stack_fingerprint(stack)  # what ran: compared across runs (chaos.results)
        run_loop(live_phases(ctx, stack, faults))
    except asyncio.CancelledError:
        pass  # a signal or the kill switch cancelled the run; handled below
    except Stopped:
        pass  # the kill switch, while the stack started; handled below
    except Interrupted as exc:
        ctx.interrupted = ctx.interrupted or exc.signum
    except KeyboardInterrupt:
        ctx.interrupted = ctx.interrupted or signal.SIGINT
    except (DeadairError, ToxiproxyError, RoomApiError, DockerException) as exc:
        result.error = str(exc)
        result.exit_code = getattr(exc, "exit_code", EXIT_ENVIRONMENT)
        if result.exit_code == EXIT_INVALID and (len(ctx.timeline) or ctx.ledger.entries):
            result.exit_code = EXIT_ENVIRONMENT  # not bad input: found at run time, after things started
    except TimeoutError:
        result.error = "a step did not finish in time (a hung Docker or Toxiproxy call?)"
        result.exit_code = EXIT_ENVIRONMENT
    except Exception as exc:
        result.error = f"internal error: {type(exc).__name__}: {exc}"
        result.exit_code = EXIT_ENVIRONMENT
        ctx.crash = traceback.format_exc()
    finally:
        ctx.stage = "closing"  # the kill switch has nothing left to stop: rollback comes next
        ctx.note_signals()  # a signal from here on is noted: closing, rollback and the outputs finish
        ctx.live.close()
        ctx.pool.shutdown(wait=False, cancel_futures=True)
        _close_engines(ctx)
    roll_back(ctx, result)
    result.timings = {**ctx.timings, "total": time.monotonic() - t0}
    result.stack_started = ctx.stack_started
    result.abort = ctx.abort
    result.stopped, result.skipped = ctx.stopped, list(ctx.skipped)
    conclude(ctx, result)
    account_for_rollback(ctx, result)
    write_outputs(ctx, result)
    return result


def _close_engines(ctx: RunContext) -> None:
    """The distributed swarm's engine (chaos.listen.shards): its shards removed, a local cluster
    stopped; bounded, in a thread of its own, so a hung engine cannot hold rollback."""
    for engine in ctx.engines:
        closer = threading.Thread(target=engine.close, name="deadair-engine-close", daemon=True)
        closer.start()
        closer.join(ENGINE_CLOSE_TIMEOUT)
        if closer.is_alive():
            ctx.say(f"  the swarm's engine did not close in {ENGINE_CLOSE_TIMEOUT:g}s; left to exit with deadair")
    ctx.engines.clear()


def run_loop(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine on uvloop where it is installed (about 30 % less CPU per listener; bench/),
    else on asyncio's own loop."""
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


def _signals_raise() -> dict[int, Any]:
    """Outside the event loop, SIGINT and SIGTERM raise Interrupted so clean-up still runs."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handler(signum: int, _frame: Any) -> None:
        raise Interrupted(signum)

    return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}


__all__ = [
    "EXIT_ENVIRONMENT",
    "EXIT_FAILED",
    "EXIT_INCONCLUSIVE",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_PASSED",
    "EXIT_STOPPED",
    "EXIT_TERMINATED",
    "Aborted",
    "EnvironmentNotReady",
    "Interrupted",
    "RunOptions",
    "RunResult",
    "Stopped",
    "_without_repeats",
    "judge",
    "run",
    "run_loop",
]
