"""Rollback, on every exit path: what the ledger holds reverted, newest first, verified; then the
experiment's own rollback actions. A rollback that fails makes the run an error, whatever the
verdicts say, and names the ledger kept for `deadair sweep`.
"""

from __future__ import annotations

import signal
import threading
import traceback
from typing import Any

from chaos.faults.ledger import RollbackReport
from chaos.listen.probes import ProbeError, run_probe
from chaos.runner import context
from chaos.runner.context import RunContext
from chaos.runner.model import EXIT_ENVIRONMENT, RunResult
from chaos.runner.sampling import trim


def roll_back(ctx: RunContext, result: RunResult) -> None:
    """The ledger's rollback, then the experiment's own actions: a bug in one does not stop the other."""
    try:
        result.rollback = rollback_ledger(ctx)
    except Exception as exc:
        result.rollback = RollbackReport(failed=[({"fault": "the ledger"}, f"{type(exc).__name__}: {exc}")])
        ctx.crash = (ctx.crash or "") + traceback.format_exc()
    try:
        rollback_actions(ctx)
    except Exception as exc:
        ctx.timeline.record("rollback.action", "runner", error=f"{type(exc).__name__}: {exc}")
    if ctx.stack_started and any(e["undo"]["action"] == "stack.down" for e in result.rollback.reverted):
        ctx.say("  stack down")


def rollback_ledger(ctx: RunContext) -> RollbackReport:
    """Revert what the ledger holds; signals cannot cut this short (each call has a timeout).

    First wait (bounded) for applies and reverts still running in worker threads: reverting
    before a late apply lands would leave its fault in place after "reverted, verified". What
    is still running after the wait keeps the ledger (and its lock, until this process ends)."""
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda s, f: ctx.say("  (rollback in progress; it will finish)"))
    try:
        unsettled = ctx.settle()
        report = ctx.ledger.rollback(skip=unsettled)
        for eid in sorted(unsettled):
            report.unsettled.append(
                f"{ctx.ledger.entries[eid]['fault']}: still being applied after "
                f"{context.SETTLE_TIMEOUT:.0f}s; left for `deadair sweep` once this process ends"
            )
        ctx.ledger.close(keep=bool(unsettled), hold=bool(unsettled))
        return report
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def rollback_actions(ctx: RunContext) -> None:
    """The experiment's own rollback actions (http, process), after the ledger's."""
    for spec in ctx.exp.rollbacks:
        t = ctx.timeline.clock.now()
        try:
            output = run_probe(spec, ctx.links)
            ctx.timeline.record("rollback.action", spec.name, t=t, output=trim(output))
        except ProbeError as exc:
            ctx.timeline.record("rollback.action", spec.name, t=t, error=str(exc))


def account_for_rollback(ctx: RunContext, result: RunResult) -> None:
    """A rollback that failed overrides the verdicts: the run is an error, and says where the ledger is."""
    if result.rollback and not result.rollback.ok:
        problems = [f"{e['fault']}: {msg}" for e, msg in result.rollback.failed] + result.rollback.unsettled
        failed = "; ".join(_without_repeats(problems, result.error))
        result.error = (
            result.error + "; " if result.error else ""
        ) + f"rollback failed ({failed}); ledger kept at {ctx.ledger.path}; run `deadair sweep`"
        result.status, result.exit_code = "error", EXIT_ENVIRONMENT
    elif result.status == "error" and ctx.ledger.path.exists():
        result.error = (result.error or "") + f"; ledger kept at {ctx.ledger.path}"


def _without_repeats(messages: list[str], already: str | None) -> list[str]:
    """Rollback failures without the run's own error repeated in each (a hung Toxiproxy fails the
    step and then every revert with the same sentence)."""
    out: list[str] = []
    for m in messages:
        if already and already in m:
            m = m.replace(already, "(the same error)")
        elif already and m.split(": ", 1)[-1] in already:
            m = m.split(": ", 1)[0] + ": (the same error)"
        if m not in out:
            out.append(m)
    return out
