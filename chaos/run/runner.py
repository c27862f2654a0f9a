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
Every exit path (pass, failure, abort, exception, step timeout, Ctrl-C, SIGTERM) reverts what
the ledger holds, newest first, verified, before the process leaves; a stack the run started is
in the ledger too, so it is taken down even after a SIGKILL (by the next run or `deadair sweep`).
Blocking calls (an apply, a revert) run in worker threads that a cancelled wait does not stop,
so rollback first waits, bounded, for those still running: a late apply cannot land after its
revert. Whatever ends the run, the journal and the summary are written.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import random
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from docker.errors import DockerException

from chaos import __version__
from chaos.errors import DeadairError, EnvironmentNotReady, FaultError
from chaos.faults.base import Fault, make_fault
from chaos.faults.ledger import Ledger, RollbackReport, describe_sweep, sweep
from chaos.judge.history import History, Window
from chaos.judge.measures import resolve_measure
from chaos.judge.verdicts import Verdict, check, check_probe
from chaos.language.model import Check, Experiment
from chaos.language.plan import Occurrence, method_length, plan
from chaos.language.probes import ProbeSpec
from chaos.listen.ears import EarSettings
from chaos.listen.listener import ListenerSettings, PlayoutSettings, StreamAddress
from chaos.listen.probes import ProbeError, ServerProbe, run_probe, server_probes
from chaos.listen.swarm import Swarm
from chaos.stack.compose import Stack
from chaos.stack.definition import find_stack
from chaos.stack.room import RoomApi, RoomApiError
from chaos.stack.toxiproxy import ToxiproxyError
from chaos.timeline import Timeline

EXIT_PASSED, EXIT_FAILED, EXIT_INVALID, EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143
EXIT_INCONCLUSIVE = 4  # nothing failed, but a verdict could not be told from the instrument's own error
STEP_TIMEOUT = 30.0  # an apply that takes longer is abandoned (its own calls time out sooner)
# A revert may wait out two slow toxic removals (chaos.undo.REMOVE_TIMEOUT each) and a Toxiproxy
# restart before it verifies; rollback waits as long for steps still running.
REVERT_TIMEOUT = 120.0
SETTLE_TIMEOUT = REVERT_TIMEOUT
GUARD_INTERVAL = 0.5


@dataclass
class RunOptions:
    keep_stack: bool = False  # leave a stack this run started running afterwards
    journal_dir: Path = Path(".deadair/runs")
    project: str | None = None  # compose project name (default deadair-<stack>)
    progress: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)


@dataclass
class RunResult:
    experiment: Experiment
    run_id: str
    status: str  # passed, failed, inconclusive, not_steady, aborted, interrupted, error
    exit_code: int
    verdicts: list[Verdict] = field(default_factory=list)
    journal: Path | None = None
    summary: Path | None = None
    error: str | None = None
    rollback: RollbackReport | None = None
    timings: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    stack_started: bool = False  # this run started the stack (and, unless kept, took it down)
    abort: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"


class Interrupted(BaseException):
    """A signal, raised where no event loop handles it. A BaseException, so that the catch-alls
    that keep a rollback going (or turn a bug into exit 3) never swallow it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class Aborted(Exception):
    """A guardrail tripped."""


def judge(experiment: Experiment, history: History) -> list[Verdict]:
    """Every verdict of an experiment, from the recorded history alone."""
    verdicts: list[Verdict] = []
    for phase in ("before", "during", "after"):
        w = history.phases.get(phase)
        if w is None:
            continue
        for c in experiment.steady_state:
            if phase not in c.when:
                continue
            if c.measure:
                verdicts.append(check(history, c.measure, c.expect or "", w, phase))
            else:
                assert c.probe is not None
                verdicts.append(check_probe(history, c.probe.name, c.tolerance, w, phase))
    recovery = experiment.windows.recovery
    for step in experiment.method:
        spans = history.spans_of_step(step.index)
        if not spans:
            continue
        for c in step.expect:
            scope = resolve_measure(c.measure or "")[0].scope
            pairs = []
            for span in spans:
                if scope == "fault_start":
                    w = Window(span.start, span.end if step.duration else span.start + recovery)
                elif scope == "fault_end":
                    w = Window(span.end, span.end + recovery)
                else:
                    w = Window(span.start, span.end + recovery)
                pairs.append((span, w))
            (first, w0), rest = pairs[0], pairs[1:]
            verdicts.append(
                check(history, c.measure or "", c.expect or "", w0, "step", fault=first, step=step.index, more=rest)
            )
    _name_harness_disruptions(verdicts, history)
    for ev in history.events:
        if ev.kind == "run.abort":
            verdicts.append(
                Verdict(
                    "abort",
                    ev.data["measure"],
                    ev.data["expect"],
                    ev.data["stat"],
                    float(ev.data["value"]),
                    False,
                    Window(ev.data["start"], ev.t),
                    ev.data.get("unit", ""),
                    {
                        "count": 0,
                        "missing": 0,
                        "p50": float("nan"),
                        "p95": float("nan"),
                        "p99": float("nan"),
                        "max": float("nan"),
                    },
                    None,
                    "guardrail tripped: the method was stopped and rolled back",
                )
            )
    return verdicts


def _name_harness_disruptions(verdicts: list[Verdict], history: History) -> None:
    """A verdict whose window saw deadair disturb the stack itself (a Toxiproxy restart drops every
    connection through every link) says so: what listeners felt then was the harness's doing."""
    for ev in history.events:
        if not ev.kind.startswith("harness."):
            continue
        for v in verdicts:
            if v.window.start <= ev.t <= v.window.end + 1e-9:
                what = (
                    f"at t={ev.t:.2f}s deadair restarted Toxiproxy ({ev.data.get('effect', 'links reset')})"
                    if ev.kind == "harness.toxiproxy_restart"
                    else f"at t={ev.t:.2f}s {ev.kind}"
                )
                # a failure that already holds before the restart is the system's; else it may be the harness's
                already = (
                    v.outcome == "fail"
                    and v.unit not in ("probe",)
                    and v.phase != "abort"
                    and not check(history, v.measure, v.expect, Window(v.window.start, ev.t), v.phase).passed
                )
                if v.outcome == "fail" and not already:
                    v.make_unknown(f"unknown: {what}")
                else:
                    v.note = f"{v.note}; {what}" if v.note else what


class _Run:
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
        self.status = "error"
        self.interrupted: int | None = None
        self.timings: dict[str, float] = {}
        self.plan: list[Occurrence] = plan(experiment)
        self.method_len = method_length(self.plan)
        self.links: dict[str, str] = {}
        self.abort: dict[str, Any] | None = None
        self.crash: str | None = None  # the traceback of an unexpected error (a bug)

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

    def _ledger_event(self, event: dict[str, Any]) -> None:
        """Something a revert did that listeners feel (a Toxiproxy restart): on the timeline."""
        data = dict(event)
        kind = data.pop("kind", "harness.event")
        self.timeline.record(kind, "deadair", **data)
        self.say(f"  {kind}: {data.get('reason', '')}; {data.get('effect', '')}".rstrip("; "))

    # -- probes ----------------------------------------------------------------------------------
    async def sample(
        self, spec: ProbeSpec, phase: str, kind: str = "probe.sample", keep_body: bool = False, **extra: Any
    ) -> None:
        t = self.timeline.clock.now()
        data: dict[str, Any] = {"phase": phase, **extra}
        try:
            output = await self.blocking(lambda: run_probe(spec, self.links), timeout=spec.timeout + 2)
            data["elapsed"] = round(self.timeline.clock.now() - t, 6)
            data["output"] = output if keep_body else _trim(output)
            if isinstance(output, dict):
                data["output"] = {k: v for k, v in data["output"].items() if k != "headers"}
        except (TimeoutError, ProbeError) as exc:
            data["error"] = str(exc) or "timed out"
        self.timeline.record(kind, spec.name, t=t, **data)

    async def sample_checks(self, phase: str, only_every: bool | None = None) -> None:
        checks = [
            c
            for c in self.exp.steady_state
            if c.probe and phase in c.when and (only_every is None or (c.every is not None) == only_every)
        ]
        await asyncio.gather(*(self.sample(c.probe, phase, keep_body=_needs_body(c)) for c in checks))

    async def sampler(self, c: Check, start: float, end: float) -> None:
        """Sample one probe every `c.every` seconds during the method (the end sample is separate)."""
        clock = self.timeline.clock
        t = start
        while t < end - 1e-6:
            await asyncio.sleep(max(0.0, t - clock.now()))
            await self.sample(c.probe, "during", keep_body=_needs_body(c))  # type: ignore[arg-type]
            t += c.every  # type: ignore[operator]

    # -- the async part --------------------------------------------------------------------------
    async def main(self, stack: Stack, faults: dict[str, Fault]) -> None:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, self._on_signal, signum, me)
        exp, tl, clock = self.exp, self.timeline, self.timeline.clock
        self.links = {name: url for name, url in _links_by_name(stack).items()}
        swarm, room_api, room = None, None, None
        server = asyncio.ensure_future(self._server_sampler(stack))
        try:
            if exp.listeners.count:
                swarm, room_api, room = await self._listeners(stack)
            g0 = clock.now()
            await asyncio.sleep(exp.windows.gate)
            await self.sample_checks("before")
            self._phase("before", g0, clock.now())
            events, now = list(tl.events), clock.now()  # judged off the loop: judging must not lag the listeners
            gate = [
                v
                for v in await self.blocking(lambda: judge(exp, History(events, end=now)), timeout=60)
                if v.phase == "before"
            ]
            if any(v.outcome == "fail" for v in gate):
                self.status = "not_steady"
                self.say("  not steady before the method: no fault injected")
                return
            if any(v.outcome == "unknown" for v in gate):
                self.status = "inconclusive"
                self.say(
                    "  the steady state could not be judged before the method (see the verdicts): no fault injected"
                )
                return
            await self._method(faults)
            if self.abort is None:
                m1 = clock.now()
                await asyncio.sleep(exp.windows.recovery)
                await self.sample_checks("after")
                self._phase("after", m1, clock.now())
            self.status = "aborted" if self.abort else "judged"
        finally:
            server.cancel()
            if swarm is not None:
                await swarm.stop()
            if room_api is not None and room:
                try:
                    await self.blocking(lambda: room_api.transition(room, "end"), timeout=5)
                except (TimeoutError, RoomApiError):
                    pass  # the room outlives the run only in room-api's store
            tl.record("run.end", "runner")
            if threading.current_thread() is threading.main_thread():
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(signum)

    async def _server_sampler(self, stack: Stack, every: float = 1.0) -> None:
        """What the servers report about themselves (Icecast, HAProxy, room-api), once a second."""
        probes = server_probes(stack.definition.services)
        bases = {}
        for p in probes:
            try:
                host, port = stack.published(p.node, p.port)
                bases[p.node] = f"http://{host}:{port}"
            except DeadairError:
                continue
        if not bases:
            return
        clock, n = self.timeline.clock, 0
        while True:
            t = clock.now()

            def sample_all() -> list[tuple[ServerProbe, dict]]:
                out = []
                for p in probes:
                    if p.node in bases:
                        try:
                            out.append((p, p.sample(bases[p.node])))
                        except ProbeError as exc:
                            out.append((p, {"error": str(exc)}))
                return out

            try:
                for p, data in await self.blocking(sample_all, timeout=10):
                    self.timeline.record("server.sample", p.node, t=t, probe=p.kind, round=n, **data)
            except Exception as exc:
                self.timeline.record("run.warning", "server-probes", t=t, error=f"{type(exc).__name__}: {exc}")
                self.say(f"  server probes stopped: {type(exc).__name__}: {exc}")
                return
            n += 1
            await asyncio.sleep(max(0.0, t + every - clock.now()))

    async def _listeners(self, stack: Stack):
        exp, tl, clock = self.exp, self.timeline, self.timeline.clock
        spec = exp.listeners
        host, port = stack.link_address(spec.via)
        common = dict(
            count=spec.count,
            backoff=spec.backoff,
            ears=spec.ears,
            arrival=spec.arrival,
            arrival_over=spec.arrival_over,
            arrival_rate=spec.arrival_rate,
            playout=PlayoutSettings(
                min_stall=spec.min_stall,
                read_timeout=spec.read_timeout,
                response_timeout=spec.response_timeout,
                prebuffer=spec.prebuffer,
            ),
        )
        room_api, room = None, None
        if spec.join == "room-api":
            room_api = RoomApi(f"http://{host}:{port}")
            room = await self.blocking(lambda: room_api.live_room(f"deadair: {exp.title}"))
            tl.record("run.room", "runner", room=room, api=room_api.base_url)
            settings = ListenerSettings(join_api=(host, port), room=room, **common)
        else:
            settings = ListenerSettings(stream=StreamAddress(host, port, spec.path), **common)
        swarm = Swarm(
            settings, tl, random.Random(exp.seed), ear_settings=EarSettings.from_services(stack.definition.services)
        )
        tl.record(
            "run.listeners", "runner", count=settings.count, join=spec.join, via=spec.via, address=f"{host}:{port}"
        )
        joined = clock.now()
        await swarm.start()
        heard = await swarm.wait_all_hearing(exp.windows.warmup + spec.arrival_span)
        self.timings["warmup"] = clock.now() - joined
        self.say(f"  {heard}/{settings.count} listeners hear audio {self.timings['warmup']:.2f}s after joining")
        return swarm, room_api, room

    async def _method(self, faults: dict[str, Fault]) -> None:
        exp, tl, clock = self.exp, self.timeline, self.timeline.clock
        m0 = clock.now()
        tl.record("run.method", "runner", start=m0, length=self.method_len)
        end_sampled = asyncio.Event()
        samplers = [
            asyncio.ensure_future(self.sampler(c, m0 + exp.windows.grace, m0 + self.method_len))
            for c in exp.steady_state
            if c.probe and "during" in c.when and c.every is not None
        ]

        async def end_of_method() -> None:
            await asyncio.sleep(max(0.0, m0 + self.method_len - clock.now()))
            for s in samplers:
                s.cancel()
            await self.sample_checks("during")
            end_sampled.set()

        work = asyncio.gather(
            end_of_method(), *(self._occurrence(o, faults.get(o.key), m0, end_sampled) for o in self.plan)
        )
        guard = asyncio.ensure_future(self._guard(m0, work)) if exp.abort_when else None
        try:
            await work
        except asyncio.CancelledError:
            if self.abort is None:
                raise
            self.say(
                f"  guardrail tripped: {self.abort['measure']} {self.abort['expect']} "
                f"({self.abort['stat']}={self.abort['value']:.4g}); rolling back now"
            )
            report = await self.blocking(
                lambda: self.ledger.rollback(exclude=("stack.down",), skip=self.settle()), timeout=4 * REVERT_TIMEOUT
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
        finally:
            if guard is not None:
                guard.cancel()
            for s in samplers:
                s.cancel()
        m1 = clock.now()
        self._phase("during", min(m0 + exp.windows.grace, m1), m1)

    async def _guard(self, m0: float, work: asyncio.Future) -> None:
        """Check every guardrail twice a second over the method so far; trip: stop and roll back."""
        clock = self.timeline.clock
        while not work.done():
            await asyncio.sleep(GUARD_INTERVAL)
            now = clock.now()
            events = list(self.timeline.events)

            def trips(events: list = events, now: float = now) -> list:
                history = History(events, end=now)
                return [
                    (c, check(history, c.measure or "", c.expect or "", Window(m0, now), "abort", lag_rule=False))
                    for c in self.exp.abort_when
                ]

            for c, v in await self.blocking(trips, timeout=10):
                if v.passed:  # the abort condition holds (as seen: a guardrail acts on what it sees)
                    self.abort = {
                        "measure": c.measure,
                        "expect": c.expect,
                        "stat": v.stat,
                        "value": v.value,
                        "start": m0,
                        "unit": v.unit,
                    }
                    self.timeline.record("run.abort", "runner", t=now, **self.abort)
                    work.cancel()
                    return

    async def _occurrence(self, occ: Occurrence, fault: Fault | None, m0: float, end_sampled: asyncio.Event) -> None:
        clock, tl = self.timeline.clock, self.timeline
        await asyncio.sleep(max(0.0, m0 + occ.at - clock.now()))
        step = occ.step
        if step.kind != "fault":
            assert step.probe is not None
            kind = "probe.sample" if step.kind == "probe" else "action.run"
            await self.sample(step.probe, "method", kind=kind, step=step.index, occurrence=occ.key)
            self.say(f"  t+{clock.now() - m0:5.1f}s  {step.kind} {step.probe.name}")
            return
        assert fault is not None
        await self.blocking(fault.prepare)
        undo = fault.undo()
        entry = self.ledger.intend(fault.describe(), undo, step=step.index, occurrence=occ.key)
        fault.extra["others"] = lambda: self.ledger.active_others(entry)
        start = clock.now()
        tl.record(
            "fault.start", "runner", t=start, step=step.index, occurrence=occ.key, fault=step.fault, target=fault.target
        )
        applying = self.applying[entry] = self.submit(fault.apply, settle=True)
        await asyncio.wait_for(asyncio.wrap_future(applying), STEP_TIMEOUT)
        self.ledger.mark(entry, "applied")
        note = f" ({fault.extra['note']})" if fault.extra.get("note") else ""
        self.say(
            f"  t+{start - m0:5.1f}s  {fault.describe()} applied"
            + (f" for {occ.duration:g}s" if occ.duration else "")
            + note
        )
        if occ.duration:
            await asyncio.sleep(max(0.0, start + occ.duration - clock.now()))
            if occ.end >= self.method_len - 1e-9:
                await end_sampled.wait()  # the end-of-method sample sees the fault still in place
        end = clock.now()
        tl.record(
            "fault.end", "runner", t=end, step=step.index, occurrence=occ.key, fault=step.fault, target=fault.target
        )
        err = await self.blocking(
            lambda: self.ledger.revert_entry(self.ledger.entries[entry]), timeout=REVERT_TIMEOUT, settle=True
        )
        if err:
            raise FaultError(f"could not revert {fault.describe()}: {err}")
        detail = self.ledger.entries[entry].get("detail")
        self.say(f"  t+{clock.now() - m0:5.1f}s  {fault.describe()} reverted" + (f" ({detail})" if detail else ""))
        report = getattr(fault, "report", None)
        if report is not None:  # a flood's own numbers, on the timeline
            data = await self.blocking(report, timeout=10)
            data = {("flood_kind" if k == "kind" else k): v for k, v in (data or {}).items()}
            tl.record("fault.report", fault.target, step=step.index, occurrence=occ.key, fault=step.fault, **data)
            if data and "sent" in data:
                self.say(
                    f"  t+{clock.now() - m0:5.1f}s  {step.fault}: {data['sent']} sent, {data.get('ok', 0)} ok, "
                    f"{data.get('failed', 0)} failed, at most {data.get('max_open', 0)} open"
                )

    def _on_signal(self, signum: int, task: asyncio.Task) -> None:
        if self.interrupted is None:
            self.interrupted = signum
            self.say(f"\n  {signal.Signals(signum).name}: stopping, rolling back")
            task.cancel()

    def _phase(self, name: str, start: float, end: float) -> None:
        self.timeline.record("run.phase", "runner", t=start, name=name, start=start, end=end)

    # -- clean-up ----------------------------------------------------------------------------------
    def rollback(self) -> RollbackReport:
        """Revert what the ledger holds; signals cannot cut this short (each call has a timeout).

        First wait (bounded) for applies and reverts still running in worker threads: reverting
        before a late apply lands would leave its fault in place after "reverted, verified". What
        is still running after the wait keeps the ledger (and its lock, until this process ends)."""
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(
                    signum, lambda s, f: self.say("  (rollback in progress; it will finish)")
                )
        try:
            unsettled = self.settle()
            report = self.ledger.rollback(skip=unsettled)
            for eid in sorted(unsettled):
                report.unsettled.append(
                    f"{self.ledger.entries[eid]['fault']}: still being applied after "
                    f"{SETTLE_TIMEOUT:.0f}s; left for `deadair sweep` once this process ends"
                )
            self.ledger.close(keep=bool(unsettled), hold=bool(unsettled))
            return report
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def rollback_actions(self) -> None:
        """The experiment's own rollback actions (http, process), after the ledger's."""
        for spec in self.exp.rollbacks:
            t = self.timeline.clock.now()
            try:
                output = run_probe(spec, self.links)
                self.timeline.record("rollback.action", spec.name, t=t, output=_trim(output))
            except ProbeError as exc:
                self.timeline.record("rollback.action", spec.name, t=t, error=str(exc))


def _needs_body(c: Check) -> bool:
    return isinstance(c.tolerance, dict) and c.tolerance.get("type") in ("regex", "jsonpath")


def _trim(output: Any) -> Any:
    if isinstance(output, dict):
        return {k: (v[:2000] if isinstance(v, str) else v) for k, v in output.items() if k != "headers"}
    return output


def _links_by_name(stack: Stack) -> dict[str, str]:
    out = {}
    for link in stack.definition.links.values():
        try:
            host, port = stack.link_address(link.name)
            out[link.name] = f"http://{host}:{port}"
        except DeadairError:
            continue
    return out


def run_loop(coro) -> Any:
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

    def handler(signum, _frame):
        raise Interrupted(signum)

    return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}


def run(experiment: Experiment, options: RunOptions | None = None) -> RunResult:
    """Run one experiment against its stack; always rolls back; never leaves a stack it started."""
    opt = options or RunOptions()
    saved = _signals_raise()
    try:
        return _run(experiment, opt)
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def _run(experiment: Experiment, opt: RunOptions) -> RunResult:
    r = _Run(experiment, opt)
    result = RunResult(experiment, r.ledger.run_id, "error", EXIT_ENVIRONMENT)
    started = False
    t0 = time.monotonic()
    try:
        for led, rep in sweep():
            r.say(f"deadair: {describe_sweep(led.run_id, rep)}")
        stack = Stack(find_stack(experiment.stack, near=experiment.path.resolve().parent), opt.project)
        token = r.ledger.run_id[-6:]
        faults = {
            o.key: make_fault(
                stack, o.step.fault, o.target, o.step.raw_params, f"{token}_{o.step.index}_{o.n}", o.duration
            )
            for o in r.plan
            if o.step.kind == "fault"
        }
        r.say(f"deadair: {experiment.title}")
        if stack.is_running():
            stack.create_links(deadline=time.monotonic() + 10)
            stack.wait_healthy(deadline=time.monotonic() + 30)
            r.say(f"  stack {stack.project} already up (reused)")
        else:
            started = True
            if not opt.keep_stack:  # in the ledger: taken down on every exit path, even after SIGKILL
                r.ledger.intend(
                    f"stack {stack.project}",
                    {
                        "action": "stack.down",
                        "project": stack.project,
                        "compose_file": str(stack.definition.compose_file),
                    },
                )
            r.timings["stack_up"] = stack.up()
            r.say(f"  stack {stack.project} up in {r.timings['stack_up']:.1f}s")
        result.versions = _versions(stack)
        try:
            run_loop(r.main(stack, faults))
        finally:
            _signals_raise()  # closing the loop reset them to the defaults
    except asyncio.CancelledError:
        pass  # a signal cancelled the run; handled below
    except Interrupted as exc:
        r.interrupted = r.interrupted or exc.signum
    except KeyboardInterrupt:
        r.interrupted = r.interrupted or signal.SIGINT
    except (DeadairError, ToxiproxyError, RoomApiError, DockerException) as exc:
        result.error = str(exc)
        result.exit_code = getattr(exc, "exit_code", EXIT_ENVIRONMENT)
        if result.exit_code == EXIT_INVALID and (len(r.timeline) or r.ledger.entries):
            result.exit_code = EXIT_ENVIRONMENT  # not bad input: found at run time, after things started
    except TimeoutError:
        result.error = "a step did not finish in time (a hung Docker or Toxiproxy call?)"
        result.exit_code = EXIT_ENVIRONMENT
    except Exception as exc:
        result.error = f"internal error: {type(exc).__name__}: {exc}"
        result.exit_code = EXIT_ENVIRONMENT
        r.crash = traceback.format_exc()
    finally:
        r.pool.shutdown(wait=False, cancel_futures=True)
    try:
        result.rollback = r.rollback()
    except Exception as exc:
        result.rollback = RollbackReport(failed=[({"fault": "the ledger"}, f"{type(exc).__name__}: {exc}")])
        r.crash = (r.crash or "") + traceback.format_exc()
    try:
        r.rollback_actions()
    except Exception as exc:
        r.timeline.record("rollback.action", "runner", error=f"{type(exc).__name__}: {exc}")
    if started and any(e["undo"]["action"] == "stack.down" for e in result.rollback.reverted):
        r.say("  stack down")
    result.timings = {**r.timings, "total": time.monotonic() - t0}
    result.stack_started = started
    result.abort = r.abort

    if r.interrupted is not None:
        result.status = "interrupted"
        result.exit_code = EXIT_INTERRUPTED if r.interrupted == signal.SIGINT else EXIT_TERMINATED
    elif r.status in ("judged", "not_steady", "aborted", "inconclusive"):
        try:
            result.verdicts = judge(experiment, History(r.timeline.events))
        except Exception as exc:
            r.crash = (r.crash or "") + traceback.format_exc()
            result.error = f"internal error while judging: {type(exc).__name__}: {exc}"
            r.status = "error"
        if r.status == "error":
            result.status, result.exit_code = "error", EXIT_ENVIRONMENT
        elif r.status in ("not_steady", "aborted"):
            result.status, result.exit_code = r.status, EXIT_FAILED
        elif any(v.outcome == "fail" for v in result.verdicts):
            result.status, result.exit_code = "failed", EXIT_FAILED
        elif any(v.outcome == "unknown" for v in result.verdicts) or r.status == "inconclusive":
            result.status, result.exit_code = "inconclusive", EXIT_INCONCLUSIVE
        elif result.verdicts:
            result.status, result.exit_code = "passed", EXIT_PASSED
        else:  # nothing was judged (the loader refuses such experiments; a journal re-judged may not)
            result.status, result.exit_code = "failed", EXIT_FAILED
    if result.rollback and not result.rollback.ok:
        problems = [f"{e['fault']}: {msg}" for e, msg in result.rollback.failed] + result.rollback.unsettled
        failed = "; ".join(_without_repeats(problems, result.error))
        result.error = (
            result.error + "; " if result.error else ""
        ) + f"rollback failed ({failed}); ledger kept at {r.ledger.path}; run `deadair sweep`"
        result.status, result.exit_code = "error", EXIT_ENVIRONMENT
    elif result.status == "error" and r.ledger.path.exists():
        result.error = (result.error or "") + f"; ledger kept at {r.ledger.path}"
    if result.exit_code == EXIT_INVALID or not (len(r.timeline) or r.ledger.entries or r.crash):
        return result  # nothing was started (bad input, no engine): nothing is left behind
    crash = opt.journal_dir / result.run_id / "traceback.txt"
    if r.crash:
        result.error = (result.error or "") + f"; traceback in {crash}"
    try:
        _write_outputs(result, r, opt)
        if r.crash:
            crash.write_text(r.crash)
    except OSError as exc:  # the journal folder cannot be written: say so, keep the exit code honest
        result.error = (result.error + "; " if result.error else "") + f"could not write the journal: {exc}"
        result.journal = result.summary = None
        if result.exit_code == EXIT_PASSED:
            result.status, result.exit_code = "error", EXIT_ENVIRONMENT
    return result


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


def _versions(stack: Stack) -> dict[str, str]:
    out = {"deadair": __version__, "python": sys.version.split()[0]}
    try:
        out["engine"] = str(stack.docker.version().get("Version"))
    except Exception:
        out["engine"] = "unknown"
    out["compose"] = " ".join(stack.compose.command)
    try:
        out["toxiproxy"] = stack.toxiproxy().version()
    except Exception:
        out["toxiproxy"] = "unknown"
    return out


def _write_outputs(result: RunResult, r: _Run, opt: RunOptions) -> None:
    folder = opt.journal_dir / result.run_id
    exp = result.experiment
    header = {
        "experiment": str(exp.path),
        "title": exp.title,
        "seed": exp.seed,
        "run_id": result.run_id,
        "variables": exp.variables,
        "versions": result.versions,
        "plan": [{"occurrence": o.key, "at": o.at, "for": o.duration, "what": o.describe()} for o in r.plan],
    }
    result.journal = r.timeline.write_journal(folder / "journal.jsonl", header)
    summary = {
        **header,
        "status": result.status,
        "exit_code": result.exit_code,
        "error": result.error,
        "abort": result.abort,
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "verdicts": [v.to_json() for v in result.verdicts],
        "rollback": _rollback_json(result.rollback, r.ledger),
    }
    result.summary = folder / "summary.json"
    result.summary.write_text(json.dumps(summary, indent=2, default=str) + "\n")


def _rollback_json(report: RollbackReport | None, ledger: Ledger) -> dict[str, Any]:
    if report is None:
        return {"reverted": [], "failed": [], "gone": [], "unsettled": [], "ledger": None}
    return {
        "reverted": [e["fault"] for e in report.reverted],
        "failed": [{"fault": e["fault"], "error": msg} for e, msg in report.failed],
        "gone": [{"fault": e["fault"], "reason": why} for e, why in report.gone],
        "unsettled": report.unsettled,
        "details": {e["fault"]: e["detail"] for e in ledger.entries if e.get("detail")},
        "ledger": str(ledger.path) if ledger.path.exists() else None,
    }


__all__ = ["RunOptions", "RunResult", "run", "judge", "EnvironmentNotReady"]
