"""The runner: stack, listeners, fault timeline, rollback, verdicts.

A run, on one clock:
    stack up (or reuse) -> listeners join -> warm-up (every listener hears audio)
    -> gate: steady state observed for `windows.gate`; not steady: no fault is injected
    -> method: steps at their offsets, each fault reverted after its `for`
    -> recovery: steady state observed for `windows.recovery`
    -> verdicts, journal, summary
Every exit path (pass, failure, exception, Ctrl-C, SIGTERM) reverts what the ledger holds,
newest first, verified, before the process leaves; a stack the run started is taken down.
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .errors import DeadairError, EnvironmentNotReady
from .experiment import Experiment
from .faults import Fault, FaultError, make_fault
from .hypotheses import History, Verdict, Window, check, resolve_measure
from .ledger import Ledger, RollbackReport, sweep
from .listeners import ListenerSettings, PlayoutSettings, StreamAddress, Swarm
from .room import RoomApi, RoomApiError
from .stack import Stack, find_stack
from .timeline import Timeline

EXIT_PASSED, EXIT_FAILED, EXIT_INVALID, EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143
STEP_TIMEOUT = 30.0  # an apply or revert that takes longer is abandoned (its own calls time out too)


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
    status: str  # passed, failed, not_steady, interrupted, error
    exit_code: int
    verdicts: list[Verdict] = field(default_factory=list)
    journal: Path | None = None
    summary: Path | None = None
    error: str | None = None
    rollback: RollbackReport | None = None
    timings: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    stack_started: bool = False  # this run started the stack (and, unless kept, took it down)

    @property
    def passed(self) -> bool:
        return self.status == "passed"


class Interrupted(Exception):
    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def judge(experiment: Experiment, history: History) -> list[Verdict]:
    """Every verdict of an experiment, from the recorded history alone."""
    verdicts: list[Verdict] = []
    phases = history.phases
    for phase in ("before", "during", "after"):
        w = phases.get(phase)
        if w is None:
            continue
        for c in experiment.steady_state:
            verdicts.append(check(history, c.measure, c.expect, w, phase))
    recovery = experiment.windows.recovery
    for step in experiment.method:
        span = history.faults.get(step.index)
        if span is None:
            continue
        for c in step.expect:
            scope = resolve_measure(c.measure)[0].scope
            if scope == "fault_start":
                w = Window(span.start, max(span.end, span.start + recovery) if step.duration is None else span.end)
            elif scope == "fault_end":
                w = Window(span.end, span.end + recovery)
            else:
                w = Window(span.start, span.end + recovery)
            verdicts.append(check(history, c.measure, c.expect, w, "step", fault=span, step=step.index))
    return verdicts


class _Run:
    """State of one run, shared by the async part and the synchronous clean-up."""

    def __init__(self, experiment: Experiment, options: RunOptions):
        self.exp = experiment
        self.opt = options
        self.timeline = Timeline()
        self.ledger = Ledger(meta={"experiment": str(experiment.path)})
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="deadair-fault")
        self.status = "error"
        self.interrupted: int | None = None
        self.timings: dict[str, float] = {}

    def say(self, msg: str) -> None:
        self.opt.progress(msg)

    async def blocking(self, fn: Callable[[], Any], timeout: float = STEP_TIMEOUT) -> Any:
        loop = asyncio.get_running_loop()
        return await asyncio.wait_for(loop.run_in_executor(self.pool, fn), timeout)

    # -- the async part --------------------------------------------------------------------------
    async def main(self, stack: Stack, faults: list[Fault]) -> None:
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, self._on_signal, signum, me)
        exp, tl, clock = self.exp, self.timeline, self.timeline.clock
        spec = exp.listeners
        host, port = stack.link_address(spec.via)
        common = dict(count=spec.count, backoff=spec.backoff,
                      playout=PlayoutSettings(min_stall=spec.min_stall, read_timeout=spec.read_timeout))
        room_api = None
        if spec.join == "room-api":
            room_api = RoomApi(f"http://{host}:{port}")
            room = await self.blocking(lambda: room_api.live_room(f"deadair: {exp.title}"))
            tl.record("run.room", "runner", room=room, api=room_api.base_url)
            settings = ListenerSettings(join_api=(host, port), room=room, **common)
        else:
            settings = ListenerSettings(stream=StreamAddress(host, port, spec.path), **common)
        swarm = Swarm(settings, tl, random.Random(exp.seed))
        try:
            tl.record("run.listeners", "runner", count=settings.count, join=spec.join, via=spec.via,
                      address=f"{host}:{port}")
            joined = clock.now()
            await swarm.start()
            heard = await swarm.wait_all_hearing(exp.windows.warmup)
            self.timings["warmup"] = clock.now() - joined
            self.say(f"  {heard}/{settings.count} listeners hear audio {self.timings['warmup']:.2f}s after joining")
            g0 = clock.now()
            await asyncio.sleep(exp.windows.gate)
            self._phase("before", g0, clock.now())
            history = History(tl.events)
            gate = [check(history, c.measure, c.expect, history.phases["before"], "before") for c in exp.steady_state]
            if not all(v.passed for v in gate):
                self.status = "not_steady"
                self.say("  not steady before the method: no fault injected")
                return
            m0 = clock.now()
            tl.record("run.method", "runner", start=m0)
            await asyncio.gather(*(self._step(step, fault, m0) for step, fault in zip(exp.method, faults)))
            m1 = clock.now()
            self._phase("during", min(m0 + exp.windows.grace, m1), m1)
            await asyncio.sleep(exp.windows.recovery)
            self._phase("after", m1, clock.now())
            self.status = "judged"
        finally:
            await swarm.stop()
            if room_api is not None and settings.room:
                try:
                    await self.blocking(lambda: room_api.transition(settings.room, "end"), timeout=5)
                except (RoomApiError, asyncio.TimeoutError):
                    pass  # the room outlives the run only in room-api's store
            tl.record("run.end", "runner")
            if threading.current_thread() is threading.main_thread():
                for signum in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(signum)

    def _on_signal(self, signum: int, task: asyncio.Task) -> None:
        if self.interrupted is None:
            self.interrupted = signum
            self.say(f"\n  {signal.Signals(signum).name}: stopping, rolling back")
            task.cancel()

    def _phase(self, name: str, start: float, end: float) -> None:
        self.timeline.record("run.phase", "runner", t=start, name=name, start=start, end=end)

    async def _step(self, step, fault: Fault, m0: float) -> None:
        clock, tl = self.timeline.clock, self.timeline
        await asyncio.sleep(max(0.0, m0 + step.at - clock.now()))
        undo = await self.blocking(fault.undo)
        entry = self.ledger.intend(fault.describe(), undo)
        start = clock.now()
        tl.record("fault.start", "runner", t=start, step=step.index, fault=step.fault, target=fault.target)
        await self.blocking(fault.apply)
        self.ledger.mark(entry, "applied")
        self.say(f"  t+{start - m0:5.1f}s  {fault.describe()} applied" + (f" for {step.duration:g}s" if step.duration else ""))
        if step.duration:
            await asyncio.sleep(max(0.0, start + step.duration - clock.now()))
        end = clock.now()
        tl.record("fault.end", "runner", t=end, step=step.index, fault=step.fault, target=fault.target)
        err = await self.blocking(lambda: self.ledger.revert_entry(self.ledger.entries[entry]))
        if err:
            raise FaultError(f"could not revert {fault.describe()}: {err}")
        self.say(f"  t+{clock.now() - m0:5.1f}s  {fault.describe()} reverted")

    # -- clean-up ----------------------------------------------------------------------------------
    def rollback(self) -> RollbackReport:
        """Revert what the ledger holds; signals cannot cut this short (each call has a timeout)."""
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, lambda s, f: self.say("  (rollback in progress; it will finish)"))
        try:
            report = self.ledger.rollback()
            self.ledger.close()
            return report
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


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
    stack: Stack | None = None
    started = False
    t0 = time.monotonic()
    try:
        for led, rep in sweep():
            r.say(f"deadair: reverted {len(rep.reverted)} fault(s) left by run {led.run_id}"
                  + (f"; {len(rep.failed)} failed" if rep.failed else ""))
        stack = Stack(find_stack(experiment.stack, near=experiment.path.resolve().parent), opt.project)
        faults = [make_fault(stack, s.fault, s.target, s.params) for s in experiment.method]
        r.say(f"deadair: {experiment.title}")
        if stack.is_running():
            stack.create_links(deadline=time.monotonic() + 10)
            stack.wait_healthy(deadline=time.monotonic() + 30)
            r.say(f"  stack {stack.project} already up (reused)")
        else:
            started = True
            r.timings["stack_up"] = stack.up()
            r.say(f"  stack {stack.project} up in {r.timings['stack_up']:.1f}s")
        result.versions = _versions(stack)
        try:
            asyncio.run(r.main(stack, faults))
        finally:
            _signals_raise()  # closing the loop reset them to the defaults
    except asyncio.CancelledError:
        pass  # a signal cancelled the run; handled below
    except Interrupted as exc:
        r.interrupted = r.interrupted or exc.signum
    except KeyboardInterrupt:
        r.interrupted = r.interrupted or signal.SIGINT
    except (DeadairError, FaultError) as exc:
        result.error = str(exc)
        result.exit_code = getattr(exc, "exit_code", EXIT_ENVIRONMENT)
    except Exception as exc:  # noqa: BLE001 - reported, rolled back, and re-raised below
        result.error = f"{type(exc).__name__}: {exc}"
        result.rollback = r.rollback()
        _teardown(stack, started, opt, r)
        raise
    finally:
        r.pool.shutdown(wait=False, cancel_futures=True)
    result.rollback = r.rollback()
    _teardown(stack, started, opt, r)
    result.timings = {**r.timings, "total": time.monotonic() - t0}
    result.stack_started = started

    if r.interrupted is not None:
        result.status = "interrupted"
        result.exit_code = EXIT_INTERRUPTED if r.interrupted == signal.SIGINT else EXIT_TERMINATED
    elif r.status in ("judged", "not_steady"):
        history = History(r.timeline.events)
        result.verdicts = judge(experiment, history)
        if r.status == "not_steady":
            result.status, result.exit_code = "not_steady", EXIT_FAILED
        elif all(v.passed for v in result.verdicts):
            result.status, result.exit_code = "passed", EXIT_PASSED
        else:
            result.status, result.exit_code = "failed", EXIT_FAILED
    if result.rollback and not result.rollback.ok:
        failed = "; ".join(f"{e['fault']}: {msg}" for e, msg in result.rollback.failed)
        result.error = (result.error + "; " if result.error else "") + \
            f"rollback failed ({failed}); ledger kept at {r.ledger.path}; run `deadair sweep`"
        result.status, result.exit_code = "error", EXIT_ENVIRONMENT
    if len(r.timeline):
        _write_outputs(result, r, opt)
    return result


def _teardown(stack: Stack | None, started: bool, opt: RunOptions, r: _Run) -> None:
    if stack is not None and started and not opt.keep_stack:
        try:
            stack.down()
            r.say(f"  stack {stack.project} down")
        except DeadairError as exc:
            r.say(f"  could not take the stack down: {exc}")


def _versions(stack: Stack) -> dict[str, str]:
    out = {"deadair": __version__, "python": sys.version.split()[0]}
    try:
        out["engine"] = str(stack.docker.version().get("Version"))
    except Exception:  # noqa: BLE001 - versions are informative only
        out["engine"] = "unknown"
    out["compose"] = " ".join(stack.compose.command)
    try:
        out["toxiproxy"] = stack.toxiproxy().version()
    except Exception:  # noqa: BLE001
        out["toxiproxy"] = "unknown"
    return out


def _write_outputs(result: RunResult, r: _Run, opt: RunOptions) -> None:
    folder = opt.journal_dir / result.run_id
    header = {"experiment": str(result.experiment.path), "title": result.experiment.title,
              "seed": result.experiment.seed, "run_id": result.run_id, "versions": result.versions}
    result.journal = r.timeline.write_journal(folder / "journal.jsonl", header)
    summary = {
        **header, "status": result.status, "exit_code": result.exit_code, "error": result.error,
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "verdicts": [v.to_json() for v in result.verdicts],
        "rollback": {"reverted": [e["fault"] for e in result.rollback.reverted] if result.rollback else [],
                     "failed": [e["fault"] for e, _ in result.rollback.failed] if result.rollback else []},
    }
    result.summary = folder / "summary.json"
    result.summary.write_text(json.dumps(summary, indent=2) + "\n")


__all__ = ["RunOptions", "RunResult", "run", "judge", "EnvironmentNotReady"]
