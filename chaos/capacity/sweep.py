"""A capacity sweep: the experiment run once per step of its `capacity:` section, `vary` set to
the step's value as `--var` sets it, on one stack, until an SLO breaks.

Each step is an ordinary run (chaos.run): journal, summary, report.html, a row in the results
store. While it runs, chaos.stack.resources reads the containers and the host; afterwards the
step is judged from its journal (chaos.capacity.steps), and the sweep stops at the first step
where an SLO failed (the later steps are not run), or where a verdict was unknown (the load
generator bound it: exit 4), or where the run itself did not finish (its exit code). The steps
run are then read by the knee rule (chaos.capacity.knee) and the binding resource chosen
(chaos.capacity.binding); capacity.json and capacity.html go to `.deadair/capacity/<sweep_id>/`.

The stack is brought up once if it is not running (in a rollback ledger first, so a killed sweep
leaves it to `deadair sweep`) and taken down at the end; a running stack is reused and left up.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.capacity.binding import binding
from chaos.capacity.knee import Analysis, StepPoints, analyse, exit_code, finite, number
from chaos.capacity.steps import distributions, judge_slo, load_generator, method_window, servers
from chaos.checkers.history import History
from chaos.errors import ExperimentError, Problem
from chaos.faults.ledger import Ledger
from chaos.language.capacity import step_text
from chaos.language.loader import load_experiment
from chaos.language.model import Capacity, Experiment
from chaos.runner.model import RunOptions, RunResult
from chaos.runner.outputs import experiment_id, experiment_sha256
from chaos.stack.compose import Stack
from chaos.stack.definition import find_stack
from chaos.stack.resources import ResourceSampler, summarise
from chaos.timeline import Timeline

RULE = (
    "Per SLO, the margin used at step i is u_i = (value_i - value_1) / (bound - value_1) (value_1: at the "
    "first step; for >= bounds the same formula, mirrored); a failed SLO has used all of it. The knee is the "
    "first step where some SLO has used more than {used:g} of its margin; the capacity is the last step where "
    "every SLO held; the breakpoint is the first step where one failed. Headroom = capacity / target - 1; "
    "the target holds when capacity >= target x (1 + {headroom:g})."
)


@dataclass
class SweepOptions:
    overrides: dict[str, str] = field(default_factory=dict)  # --var, applied to every step
    target: float | None = None  # --target; else the section's
    out_dir: Path = Path(".deadair/capacity")
    journal_dir: Path = Path(".deadair/runs")
    results: str | None = None  # the results store (default beside the journals)
    project: str | None = None
    say: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)


@dataclass
class SweepResult:
    doc: dict[str, Any]
    path: Path
    exit_code: int


def step_experiments(path: Path, overrides: dict[str, str]) -> tuple[Capacity, Experiment, list[Experiment]]:
    """The section, and the experiment of every step (each checked before anything runs: exit 2)."""
    exp = load_experiment(path, overrides=overrides)
    if exp.capacity is None:
        raise ExperimentError(
            [Problem(str(path), 1, 1, "no capacity section; expected `capacity: {vary, steps, slo}` to sweep")]
        )
    cap = exp.capacity
    steps = [load_experiment(path, overrides={**overrides, cap.vary: step_text(v)}) for v in cap.steps]
    return cap, exp, steps


def run_sweep(path: Path, opt: SweepOptions) -> SweepResult:
    """Every step until one breaks; capacity.json and capacity.html written; the exit code."""
    from chaos.report.html import after_run as write_html_report
    from chaos.results.store import ResultsError, record_run
    from chaos.runner.run import run

    cap, exp, experiments = step_experiments(path, opt.overrides)
    target = opt.target if opt.target is not None else cap.target
    sweep_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
    out = opt.out_dir / sweep_id
    started = _utc()
    stack = Stack(find_stack(exp.stack, near=path.resolve().parent), opt.project)
    ledger = _bring_up(stack, opt.say)
    recorded: dict[str, Any] = {}  # the first step's stack fingerprint

    def one_step(load: float, step_exp: Experiment) -> tuple[dict[str, Any], StepPoints, int]:
        sampler = ResourceSampler(stack)
        sampler.start()
        try:
            result = run(
                step_exp,
                RunOptions(keep_stack=True, journal_dir=opt.journal_dir, project=stack.project, progress=opt.say),
            )
        finally:
            sampler.stop()
        write_html_report(result, opt.say)
        try:
            record_run(result.summary, opt.results, opt.journal_dir)
        except ResultsError as exc:
            opt.say(f"deadair capacity: the results store was not updated: {exc}")
        if result.fingerprint and "stack_fingerprint" not in recorded:
            recorded["stack_fingerprint"] = result.fingerprint
        step, pts = assess(result, cap, load, sampler)
        opt.say(f"  {cap.vary}={step_text(load)}: {step['status']} (run {result.run_id})")
        return step, pts, result.exit_code

    try:
        steps, points, stopped, code_of_run = sweep_steps(cap, experiments, one_step, opt.say)
    finally:
        if ledger is not None:
            report = ledger.rollback()  # the stack this sweep started
            ledger.close()
            for entry, err in report.failed:
                opt.say(f"deadair capacity: could not take down {entry['fault']}: {err}; ledger kept at {ledger.path}")
    for load in cap.steps[len(steps) :]:
        steps.append({"load": load, "run_id": None, "status": "not run"})
    analysis = analyse(points, target, cap.knee_used)
    ran = [s for s in steps if s.get("run_id")]
    at = next((s for s in ran if s["load"] == analysis.breakpoint), ran[-1] if ran else None)
    bound_by = binding(at.get("resources") or {}, at["load"]) if at else None
    instrument = bool(bound_by and (bound_by["load_generator"] or bound_by.get("other_work")))
    code = exit_code(analysis, target, stopped, instrument, cap.headroom)
    if at is not None and bound_by and bound_by.get("other_work") and code == 4:
        at["inconclusive"] = "other work on the machine bound it, not the stack"
    if code_of_run is not None:
        code = code_of_run if code_of_run not in (0, 1, 4) else 3
    doc = document(exp, cap, sweep_id, started, target, steps, analysis, bound_by, stopped, code)
    doc.update(
        experiment_sha256=experiment_sha256(path),  # what makes a result this version (readiness)
        variables=exp.variables,
        overrides=dict(opt.overrides),
        stack_fingerprint=recorded.get("stack_fingerprint"),
        target_given=opt.target,  # --target; None: the file's
        file_target=number(cap.target),
    )
    return SweepResult(doc, write(doc, out), code)


# a run with any other status that still ended with a journal (failed, not_steady, aborted) failed
# its step whatever its SLOs said: its gate, a guardrail or its own expectations broke at this load
JUDGED_RUNS = ("passed", "inconclusive")

StepRunner = Callable[[float, Experiment], tuple[dict[str, Any], StepPoints, int]]


def sweep_steps(
    cap: Capacity, experiments: list[Experiment], one_step: StepRunner, say: Callable[[str], None]
) -> tuple[list[dict[str, Any]], list[StepPoints], str | None, int | None]:
    """The steps in order, each run by `one_step`, until one does not pass: a failed SLO (the
    breakpoint), an unknown verdict (`stopped` = "unknown") or a run that did not finish
    (`stopped` = "error", with its exit code). The steps after it are not run."""
    steps: list[dict[str, Any]] = []
    points: list[StepPoints] = []
    for load, step_exp in zip(cap.steps, experiments):
        say(f"deadair capacity: step {len(steps) + 1} of {len(cap.steps)}: {cap.vary}={step_text(load)}")
        step, pts, code = one_step(load, step_exp)
        steps.append(step)
        points.append(pts)
        if step["status"] == "passed":
            continue
        if step["status"] == "unknown":
            return steps, points, "unknown", None
        if step["status"] == "error":
            return steps, points, "error", code
        break
    return steps, points, None, None


def _bring_up(stack: Stack, say: Callable[[str], None]) -> Ledger | None:
    """The stack, up and healthy; a ledger holding its take-down if this sweep started it."""
    if stack.is_running():
        return None
    ledger = Ledger(meta={"owner": "capacity sweep"})
    ledger.intend(
        f"stack {stack.project}",
        {"action": "stack.down", "project": stack.project, "compose_file": str(stack.definition.compose_file)},
    )
    say(f"deadair capacity: starting stack {stack.project}")
    try:
        stack.up()
    except BaseException:
        ledger.rollback()
        ledger.close()
        raise
    return ledger


def assess(
    result: RunResult, cap: Capacity, load: float, sampler: ResourceSampler
) -> tuple[dict[str, Any], StepPoints]:
    """A step as capacity.json has it, from its run's journal and the resource readings."""
    step: dict[str, Any] = {"load": load, "run_id": result.run_id, "run_status": result.status}
    if result.journal is None or not result.journal.is_file() or result.exit_code not in (0, 1, 4):
        step.update(status="error", error=result.error or f"the run ended {result.status}", slo=[])
        return step, StepPoints(load, "error")
    history = History(Timeline.read_journal(result.journal).events)
    status, entries, pts = judge_slo(history, cap.slo)
    if result.status not in JUDGED_RUNS:  # its gate was not steady, a guardrail aborted it, or it failed
        status = "failed"
        step["broken_by"] = [f"run {result.status}"]
    step.update(status=status, slo=entries, journal=str(result.journal))
    step["distributions"] = distributions(history, cap.slo)
    step["servers"] = servers(history)
    step["resources"] = resources(result.journal, history, sampler)
    return step, StepPoints(load, status, pts, run_status=result.status)


def resources(journal: Path, history: History, sampler: ResourceSampler) -> dict[str, Any]:
    """The containers', the host's and the load generator's use over the step's method."""
    w = method_window(history)
    if w is None:
        return {}
    origin = _origin_monotonic(journal)
    expected = list(getattr(sampler, "services", []))
    out = (
        summarise(sampler.readings, origin + w.start, origin + w.end, sampler.cores, expected)
        if origin is not None
        else {}
    )
    if out:
        out["window"] = [w.start, w.end]  # on the run's clock
    out["method"] = sampler.method or "none (no reading)"
    if sampler.errors:
        out["errors"] = sampler.errors[:5]
    gen = load_generator(history, w)
    if gen:
        out["load_generator"] = gen
    return out


def _origin_monotonic(journal: Path) -> float | None:
    with journal.open() as fh:
        first = json.loads(fh.readline() or "{}")
    value = first.get("monotonic")
    return float(value) if value is not None else None


def document(
    exp: Experiment,
    cap: Capacity,
    sweep_id: str,
    started: str,
    target: float | None,
    steps: list[dict[str, Any]],
    a: Analysis,
    bound_by: dict[str, Any] | None,
    stopped: str | None,
    code: int,
) -> dict[str, Any]:
    """capacity.json (interface B of issue 15; readiness reads it)."""
    for step in steps:
        step["load"] = number(step["load"])
    for step, used in zip([s for s in steps if s.get("run_id")], a.used):  # one entry per step run
        for entry in step["slo"]:
            entry["used"] = finite(used.get(f"{entry['measure']} {entry['expect']}", float("nan")))
    verdict = {
        "unknown": "the load generator bound it: a verdict was within the swarm's own lag of its bound",
        "error": "a step's run did not finish; nothing decided beyond it",
    }.get(stopped or "", "")
    if not verdict and code == 4 and bound_by:
        verdict = (
            "the machine bound it: other work on the machine, not the stack, used the cores"
            if bound_by.get("other_work")
            else "the load generator bound it: it ran out before the stack did"
        )
    return {
        "kind": "capacity",
        "experiment": experiment_id(exp.path, exp.title),
        "file": str(exp.path),
        "title": exp.title,
        "sweep_id": sweep_id,
        "started": started,
        "finished": _utc(),
        "vary": cap.vary,
        "unit": cap.unit,
        "target": number(target),
        "headroom_required": cap.headroom,
        "required_load": number(target * (1 + cap.headroom)) if target is not None else None,
        "slo": [{"measure": c.measure, "expect": c.expect} for c in cap.slo],
        "steps": steps,
        "capacity": number(a.capacity),
        "knee": number(a.knee),
        "breakpoint": number(a.breakpoint),
        "broken_by": a.broken_by,
        "binding": bound_by,
        "headroom": a.headroom,
        "rule": RULE.format(used=cap.knee_used, headroom=cap.headroom),
        "stopped": stopped,
        "verdict": verdict,
        "exit_code": code,
    }


def write(doc: dict[str, Any], out: Path) -> Path:
    from chaos.capacity.html import render_html

    out.mkdir(parents=True, exist_ok=True)
    path = out / "capacity.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    (out / "capacity.html").write_text(render_html(doc))
    return path


def _utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
