"""The method: faults applied at their offsets and reverted after their `for`, probes sampled, and
the guardrails (abort_when) checked twice a second over the method so far.

Every fault goes into the ledger before it is applied, and each apply or revert runs in a worker
thread that rollback waits for (`settle=True`): a fault is never applied behind rollback's back.

A dry run (`dry="faults"`) resolves each fault (its target must exist) and records it as
`fault.skipped` with its would-be window instead of injecting it, and runs no method action;
probes still run. In step mode the operator is asked before each fault (y injects, s skips); the
method's clock stands still while a question waits, so the plan keeps its spacing. The kill
switch, or a guardrail, stops the occurrences and reverts every fault at once while the
listeners still listen.

A join step's crowd arrives on the method's clock too: in step mode its arrivals pause while the
operator is asked (the crowd keeps its spacing with the faults; the pause is a gap in its
arrivals). The method ends once every crowd's last listener has recorded its join. When the
method stops early (the kill switch, a guardrail, an error, a signal), the arrivals still
pending are cancelled, and `step.join_cancelled` says how many never joined.
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


class MethodClock:
    """Offsets from the method's start, on a clock that stands still while the operator is asked
    (step mode): every occurrence still waiting moves later by the time the question took."""

    def __init__(self, ctx: RunContext, m0: float):
        self.ctx, self.m0 = ctx, m0
        self.paused = 0.0  # seconds the method stood still so far
        self._holds = 0
        self._since = 0.0
        self._moved: asyncio.Event | None = None

    def at(self, offset: float) -> float:
        return self.m0 + offset + self.paused

    def elapsed(self) -> float:
        """Seconds into the method on its own clock (the pauses so far taken out)."""
        return self.ctx.timeline.clock.now() - self.m0 - self.paused

    def hold(self) -> None:
        if self._holds == 0:
            self._since = self.ctx.timeline.clock.now()
            self.ctx.live.note = "waiting for the operator"
        self._holds += 1

    def release(self) -> None:
        self._holds -= 1
        if self._holds == 0:
            waited = self.ctx.timeline.clock.now() - self._since
            self.paused += waited
            self.ctx.live.extend(waited)
            self.ctx.live.note = ""
            if self._moved is not None:
                self._moved.set()

    async def sleep_until(self, offset: float) -> None:
        """Until `offset` seconds into the method, pauses included (a single sleep when nothing
        can pause it)."""
        clock = self.ctx.timeline.clock
        if not self.ctx.opt.step:
            await asyncio.sleep(max(0.0, self.at(offset) - clock.now()))
            return
        while True:
            if self._holds == 0 and clock.now() >= self.at(offset):
                return
            self._moved = self._moved or asyncio.Event()
            moved = self._moved
            wait = None if self._holds else max(0.0, self.at(offset) - clock.now())
            try:
                await asyncio.wait_for(moved.wait(), wait)
            except TimeoutError:
                pass
            if moved.is_set():
                moved.clear()


async def run_method(ctx: RunContext, faults: dict[str, Fault]) -> None:
    """The plan's occurrences at their offsets, probes sampled over the method, guardrails watching."""
    exp, tl, clock = ctx.exp, ctx.timeline, ctx.timeline.clock
    m0 = clock.now()
    mclock = MethodClock(ctx, m0)
    tl.record("run.method", "runner", start=m0, length=ctx.method_len)
    ctx.method_start = m0
    end_sampled = asyncio.Event()
    # in step mode the method may last longer than planned: its samplers run until its end sample
    sampling_end = float("inf") if ctx.opt.step else m0 + ctx.method_len
    samplers = [
        asyncio.ensure_future(sample_every(ctx, c, m0 + exp.windows.grace, sampling_end))
        for c in exp.steady_state
        if c.probe and "during" in c.when and c.every is not None
    ]

    # set once a join occurrence's crowd has all arrived (its last listener's join recorded)
    arrived = {o.key: asyncio.Event() for o in ctx.plan if o.step.join is not None}

    async def end_of_method() -> None:
        await mclock.sleep_until(ctx.method_len)
        for crowd in arrived.values():
            await crowd.wait()
        for s in samplers:
            s.cancel()
        await sample_checks(ctx, "during")
        end_sampled.set()

    work = asyncio.gather(
        end_of_method(), *(_occurrence(ctx, o, faults.get(o.key), mclock, end_sampled, arrived) for o in ctx.plan)
    )
    ctx.method_work = work
    guard = asyncio.ensure_future(_guard(ctx, m0, work)) if exp.abort_when else None
    stopped_by = "an error stopped the method"  # the crowds' pending arrivals are cancelled unless it ends
    try:
        await work
        stopped_by = ""
    except asyncio.CancelledError:
        if ctx.abort is None and ctx.stopped is None:
            stopped_by = "the run was interrupted"
            raise
        stopped_by = "the guardrail tripped" if ctx.abort is not None else "the kill switch was pulled"
        _cancel_crowds(ctx, stopped_by)  # no more joins while the faults are rolled back
        await _roll_back_now(ctx, "guardrail" if ctx.abort is not None else "kill switch")
    finally:
        if stopped_by:
            _cancel_crowds(ctx, stopped_by)
        ctx.method_work = None
        if guard is not None:
            guard.cancel()
        for s in samplers:
            s.cancel()
    m1 = clock.now()
    ctx.record_phase("during", min(m0 + exp.windows.grace, m1), m1)


def _cancel_crowds(ctx: RunContext, why: str) -> None:
    """The method stopped early: the crowds' arrivals still pending never happen (recorded)."""
    if ctx.swarm is not None and (never := ctx.swarm.cancel_crowds(why)):
        ctx.say(f"  {why}: {never} listener(s) of a join step never joined")


async def _roll_back_now(ctx: RunContext, why: str) -> None:
    """A guardrail tripped or the kill switch was pulled: revert the faults now (not the stack),
    while the listeners still listen."""
    tl, abort = ctx.timeline, ctx.abort
    if abort is not None:
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
            **({"aborted": True} if why == "guardrail" else {"stopped": True}),
        )
    if ctx.stopped is not None and why == "kill switch":
        ctx.stopped["rolled_back"] = [e["fault"] for e in report.reverted]
    if report.reverted:
        ctx.say(f"  {why}: rolled back {', '.join(e['fault'] for e in report.reverted)}")


async def _guard(ctx: RunContext, m0: float, work: asyncio.Future) -> None:
    """Check every guardrail twice a second over the method so far; trip: stop and roll back."""
    clock = ctx.timeline.clock
    while not work.done():
        await asyncio.sleep(GUARD_INTERVAL)
        if ctx.swarm is not None:
            await ctx.swarm.sync()  # a distributed swarm's events up to now: no stall of a silent shard grows here
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
    ctx: RunContext,
    occ: Occurrence,
    fault: Fault | None,
    mclock: MethodClock,
    end_sampled: asyncio.Event,
    arrived: dict[str, asyncio.Event],
) -> None:
    """One occurrence at its offset: a probe or action sampled, or a fault applied, held, reverted
    (or, in a dry run or when the operator skips it, resolved and held as a would-be window)."""
    clock, tl, m0 = ctx.timeline.clock, ctx.timeline, mclock.m0
    await mclock.sleep_until(occ.at)
    step = occ.step
    if step.kind == "join":
        await _join_crowd(ctx, occ, mclock)
        arrived[occ.key].set()
        return
    if step.kind == "action" and ctx.opt.dry:
        tl.record("action.skipped", step.probe.name if step.probe else "action", step=step.index, occurrence=occ.key)
        ctx.say(f"  t+{clock.now() - m0:5.1f}s  action {step.name} skipped (dry run)")
        return
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
    skip = "dry run" if ctx.opt.dry else None
    if skip is None and ctx.opt.step:
        skip = await _ask_operator(ctx, occ, fault, mclock)
    if skip is not None:
        await _skipped(ctx, occ, fault, skip, mclock, end_sampled)
        return
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


async def _join_crowd(ctx: RunContext, occ: Occurrence, mclock: MethodClock) -> None:
    """A join step: its crowd into the running swarm, each listener at its planned offset from now
    on the method's clock (paused with it in step mode); returns once the last one's join is
    recorded. Not a fault: nothing to undo, no operator question, and a dry run joins too
    (listeners always listen). The crowd stays until the listeners leave at the end of the run."""
    clock, tl, step = ctx.timeline.clock, ctx.timeline, occ.step
    assert step.join is not None and ctx.swarm is not None
    start = clock.now()
    late = max(0.0, start - mclock.at(occ.at))  # the step's own start, as its offsets are from it

    async def until(offset: float) -> float:
        await mclock.sleep_until(occ.at + late + offset)
        return mclock.elapsed() - occ.at - late

    tl.record(
        "step.join",
        "runner",
        t=start,
        step=step.index,
        occurrence=occ.key,
        count=step.join.count,
        arrival=step.join.arrival.kind,
        span=round(occ.duration or 0.0, 6),
        shape=occ.describe(),
    )
    crowd = ctx.swarm.add_crowd(step.index, occ.offsets, until, key=occ.key)
    ctx.say(f"  t+{start - mclock.m0:5.1f}s  {occ.describe()}")
    assert crowd.task is not None
    await crowd.task


async def _ask_operator(ctx: RunContext, occ: Occurrence, fault: Fault, mclock: MethodClock) -> str | None:
    """Step mode: the operator confirms the fault (None: inject) or skips it (the reason); the
    method's clock stands still meanwhile."""
    asked = ctx.timeline.clock.now()
    mclock.hold()
    length = f" for {occ.duration:g}s" if occ.duration else ""
    # one clock: t+ counts from the method's start, the operator's waits included, as every
    # progress line and the report do; the plan's offset moves later by the waits so far
    waits = f"; the waits for answers so far put it at t+{asked - mclock.m0:.1f}s" if mclock.paused else ""
    try:
        answer = await ctx.prompter.ask(
            f"  step mode: inject {fault.describe()}{length} (step {occ.step.index}, occurrence {occ.key}, "
            f"planned at t+{occ.at:g}s{waits})?  y inject / s skip / k stop the run and roll back"
        )
    finally:
        mclock.release()
    ctx.timeline.record(
        "operator.answer",
        "operator",
        occurrence=occ.key,
        answer=answer,
        by=ctx.user,
        asked=round(asked, 6),  # the method stood still from `asked` to this event: the report can show it
    )
    if answer == "y":
        ctx.say(f"  {ctx.user}: inject {fault.describe()}")
        return None
    return f"skipped by {ctx.user}"


async def _skipped(
    ctx: RunContext, occ: Occurrence, fault: Fault, why: str, mclock: MethodClock, end_sampled: asyncio.Event
) -> None:
    """A fault not injected: recorded with its would-be window (verdicts scoped to it are judged
    there and not counted), and held as long as it would have lasted, so the method keeps its timing."""
    clock, step = ctx.timeline.clock, occ.step
    start = clock.now()
    end = start + (occ.duration or 0.0)
    ctx.timeline.record(
        "fault.skipped",
        "runner",
        t=start,
        step=step.index,
        occurrence=occ.key,
        fault=step.fault,
        target=fault.target,
        end=round(end, 6),
        reason=why,
    )
    ctx.skipped.append(occ.key)
    ctx.say(f"  t+{start - mclock.m0:5.1f}s  {fault.describe()} not injected ({why})")
    if occ.duration:
        await asyncio.sleep(max(0.0, end - clock.now()))
        if occ.end >= ctx.method_len - 1e-9:
            await end_sampled.wait()
