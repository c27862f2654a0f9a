"""The method: faults applied at their offsets and reverted after their `for`, probes sampled, and
the guardrails (abort_when) checked twice a second over the method so far.

Every fault goes into the ledger before it is applied, and each apply or revert runs in a worker
thread that rollback waits for (`settle=True`): a fault is never applied behind rollback's back.
"""

from __future__ import annotations

import asyncio
from typing import Any

from chaos.checkers.history import History, Window
from chaos.checkers.verdicts import check
from chaos.errors import FaultError
from chaos.faults.base import Fault
from chaos.language.plan import Occurrence
from chaos.runner import context
from chaos.runner.context import RunContext
from chaos.runner.sampling import sample, sample_checks, sample_every

GUARD_INTERVAL = 0.5


async def run_method(ctx: RunContext, faults: dict[str, Fault]) -> None:
    """The plan's occurrences at their offsets, probes sampled over the method, guardrails watching."""
    exp, tl, clock = ctx.exp, ctx.timeline, ctx.timeline.clock
    m0 = clock.now()
    tl.record("run.method", "runner", start=m0, length=ctx.method_len)
    end_sampled = asyncio.Event()
    samplers = [
        asyncio.ensure_future(sample_every(ctx, c, m0 + exp.windows.grace, m0 + ctx.method_len))
        for c in exp.steady_state
        if c.probe and "during" in c.when and c.every is not None
    ]

    async def end_of_method() -> None:
        await asyncio.sleep(max(0.0, m0 + ctx.method_len - clock.now()))
        for s in samplers:
            s.cancel()
        await sample_checks(ctx, "during")
        end_sampled.set()

    work = asyncio.gather(end_of_method(), *(_occurrence(ctx, o, faults.get(o.key), m0, end_sampled) for o in ctx.plan))
    guard = asyncio.ensure_future(_guard(ctx, m0, work)) if exp.abort_when else None
    try:
        await work
    except asyncio.CancelledError:
        if ctx.abort is None:
            raise
        await _roll_back_tripped(ctx, ctx.abort)
    finally:
        if guard is not None:
            guard.cancel()
        for s in samplers:
            s.cancel()
    m1 = clock.now()
    ctx.record_phase("during", min(m0 + exp.windows.grace, m1), m1)


async def _roll_back_tripped(ctx: RunContext, abort: dict[str, Any]) -> None:
    """A guardrail tripped: revert the faults now (not the stack), while the listeners still listen."""
    tl = ctx.timeline
    ctx.say(
        f"  guardrail tripped: {abort['measure']} {abort['expect']} "
        f"({abort['stat']}={abort['value']:.4g}); rolling back now"
    )
    report = await ctx.blocking(
        lambda: ctx.ledger.rollback(exclude=("stack.down",), skip=ctx.settle()), timeout=4 * context.REVERT_TIMEOUT
    )
    for entry in report.reverted:
        tl.record(
            "fault.end",
            "runner",
            step=entry.get("step"),
            occurrence=entry.get("occurrence"),
            fault=entry["fault"],
            aborted=True,
        )


async def _guard(ctx: RunContext, m0: float, work: asyncio.Future) -> None:
    """Check every guardrail twice a second over the method so far; trip: stop and roll back."""
    clock = ctx.timeline.clock
    while not work.done():
        await asyncio.sleep(GUARD_INTERVAL)
        now = clock.now()
        events = list(ctx.timeline.events)

        def trips(events: list = events, now: float = now) -> list:
            history = History(events, end=now)
            return [
                (c, check(history, c.measure or "", c.expect or "", Window(m0, now), "abort", lag_rule=False))
                for c in ctx.exp.abort_when
            ]

        for c, v in await ctx.blocking(trips, timeout=10):
            if v.passed:  # the abort condition holds (as seen: a guardrail acts on what it sees)
                ctx.abort = {
                    "measure": c.measure,
                    "expect": c.expect,
                    "stat": v.stat,
                    "value": v.value,
                    "start": m0,
                    "unit": v.unit,
                }
                ctx.timeline.record("run.abort", "runner", t=now, **ctx.abort)
                work.cancel()
                return


async def _occurrence(
    ctx: RunContext, occ: Occurrence, fault: Fault | None, m0: float, end_sampled: asyncio.Event
) -> None:
    """One occurrence at its offset: a probe or action sampled, or a fault applied, held, reverted."""
    clock, tl = ctx.timeline.clock, ctx.timeline
    await asyncio.sleep(max(0.0, m0 + occ.at - clock.now()))
    step = occ.step
    if step.kind != "fault":
        assert step.probe is not None
        kind = "probe.sample" if step.kind == "probe" else "action.run"
        await sample(ctx, step.probe, "method", kind=kind, step=step.index, occurrence=occ.key)
        ctx.say(f"  t+{clock.now() - m0:5.1f}s  {step.kind} {step.probe.name}")
        return
    assert fault is not None

    def resolve() -> dict[str, Any]:
        """prepare() reads the running stack; undo() then only describes (a plugin's might not:
        both run off the event loop, bounded, as the undo action always did)."""
        fault.prepare()
        return fault.undo()

    undo = await ctx.blocking(resolve)
    entry = ctx.ledger.intend(fault.describe(), undo, step=step.index, occurrence=occ.key)
    fault.extra["others"] = lambda: ctx.ledger.active_others(entry)
    start = clock.now()
    tl.record(
        "fault.start", "runner", t=start, step=step.index, occurrence=occ.key, fault=step.fault, target=fault.target
    )
    applying = ctx.applying[entry] = ctx.submit(fault.apply, settle=True)
    await asyncio.wait_for(asyncio.wrap_future(applying), context.STEP_TIMEOUT)
    ctx.ledger.mark(entry, "applied")
    note = f" ({fault.extra['note']})" if fault.extra.get("note") else ""
    ctx.say(
        f"  t+{start - m0:5.1f}s  {fault.describe()} applied"
        + (f" for {occ.duration:g}s" if occ.duration else "")
        + note
    )
    if occ.duration:
        await asyncio.sleep(max(0.0, start + occ.duration - clock.now()))
        if occ.end >= ctx.method_len - 1e-9:
            await end_sampled.wait()  # the end-of-method sample sees the fault still in place
    end = clock.now()
    tl.record("fault.end", "runner", t=end, step=step.index, occurrence=occ.key, fault=step.fault, target=fault.target)
    err = await ctx.blocking(
        lambda: ctx.ledger.revert_entry(ctx.ledger.entries[entry]), timeout=context.REVERT_TIMEOUT, settle=True
    )
    if err:
        raise FaultError(f"could not revert {fault.describe()}: {err}")
    detail = ctx.ledger.entries[entry].get("detail")
    ctx.say(f"  t+{clock.now() - m0:5.1f}s  {fault.describe()} reverted" + (f" ({detail})" if detail else ""))
    report = getattr(fault, "report", None)
    if report is not None:  # a flood's own numbers, on the timeline
        data = await ctx.blocking(report, timeout=10)
        data = {("flood_kind" if k == "kind" else k): v for k, v in (data or {}).items()}
        tl.record("fault.report", fault.target, step=step.index, occurrence=occ.key, fault=step.fault, **data)
        if data and "sent" in data:
            ctx.say(
                f"  t+{clock.now() - m0:5.1f}s  {step.fault}: {data['sent']} sent, {data.get('ok', 0)} ok, "
                f"{data.get('failed', 0)} failed, at most {data.get('max_open', 0)} open"
            )
