"""The live phases, on one event loop while the listeners listen:

    listeners join and warm up -> gate -> method -> recovery

A signal cancels them (rollback follows, outside the loop); so does the kill switch, except in
the method, where it reverts the faults at once and skips the recovery. Whatever ends them, the
listeners leave and `run.end` closes the timeline. `ctx.status` says how far they got: judging
reads it. The live status is redrawn (or printed) from here, while the loop runs.
"""

from __future__ import annotations

import asyncio
import signal
import threading

from chaos.checkers.history import History
from chaos.faults.base import Fault
from chaos.runner.context import RunContext
from chaos.runner.judging import judge
from chaos.runner.listeners import Audience, join, leave
from chaos.runner.method import run_method
from chaos.runner.sampling import links_by_name, sample_checks, sample_servers
from chaos.stack.compose import Stack


async def live_phases(ctx: RunContext, stack: Stack, faults: dict[str, Fault]) -> None:
    """Listeners, gate, method, recovery; sets `ctx.status` to how far the run got."""
    loop = asyncio.get_running_loop()
    me = asyncio.current_task()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, ctx.on_signal, signum, me)
    ctx.loop, ctx.live_task, ctx.stage = loop, me, "live"
    exp, tl = ctx.exp, ctx.timeline
    ctx.links = {name: url for name, url in links_by_name(stack).items()}
    audience: Audience | None = None
    server = asyncio.ensure_future(sample_servers(ctx, stack))
    status = asyncio.ensure_future(ctx.live.run())
    try:
        if ctx.stopped is not None:  # pulled while the stack started, where nothing could act on it
            return
        if exp.listeners.count or any(s.join for s in exp.method):  # a join step needs a swarm (and a room)
            ctx.enter("warm-up")
            audience = await join(ctx, stack)
        ctx.enter("gate")
        if not await gate(ctx):
            return
        ctx.enter("method")
        await run_method(ctx, faults)
        if ctx.abort is None and ctx.stopped is None:
            ctx.enter("recovery")
            await recovery(ctx)
        ctx.status = "aborted" if ctx.abort else ("stopped" if ctx.stopped else "judged")
    finally:
        ctx.stage = "closing"
        status.cancel()
        server.cancel()
        if audience is not None:
            await leave(ctx, audience)
        elif ctx.swarm is not None:  # stopped while warming up: the listeners leave all the same
            await ctx.swarm.stop()
        ctx.live.close()
        tl.record("run.end", "runner")
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)  # back to the defaults: SIGTERM would end the process
            ctx.note_signals()  # while the loop closes, and until rollback is done


async def gate(ctx: RunContext) -> bool:
    """Steady state observed for `windows.gate` before any fault; False (no fault injected) if it
    does not hold or cannot be judged."""
    exp, tl, clock = ctx.exp, ctx.timeline, ctx.timeline.clock
    g0 = clock.now()
    await asyncio.sleep(exp.windows.gate)
    await sample_checks(ctx, "before")
    ctx.record_phase("before", g0, clock.now())
    if ctx.swarm is not None:
        await ctx.swarm.sync()  # a distributed swarm's events up to now (chaos.listen.shards.fleet)
    events, now = list(tl.events), clock.now()  # judged off the loop: judging must not lag the listeners
    verdicts = [
        v for v in await ctx.blocking(lambda: judge(exp, History(events, end=now)), timeout=60) if v.phase == "before"
    ]
    if any(v.outcome == "fail" for v in verdicts):
        ctx.status = "not_steady"
        ctx.say("  not steady before the method: no fault injected")
        return False
    if any(v.outcome == "unknown" for v in verdicts):
        ctx.status = "inconclusive"
        ctx.say("  the steady state could not be judged before the method (see the verdicts): no fault injected")
        return False
    return True


async def recovery(ctx: RunContext) -> None:
    """Steady state observed for `windows.recovery` after the method (its probes sampled at the end)."""
    clock = ctx.timeline.clock
    m1 = clock.now()
    await asyncio.sleep(ctx.exp.windows.recovery)
    await sample_checks(ctx, "after")
    ctx.record_phase("after", m1, clock.now())
