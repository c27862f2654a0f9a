"""Verdicts and the run's status: what the timeline says about the hypothesis.

`judge` reads a recorded history alone (a journal can be re-judged later); `conclude` turns the
verdicts, or what stopped the run first (a signal, a bug), into the status and the exit code.
"""

from __future__ import annotations

import signal
import traceback

from chaos.checkers.history import History, Window
from chaos.checkers.measures import resolve_measure
from chaos.checkers.verdicts import Verdict, check, check_probe
from chaos.language.model import Experiment
from chaos.runner.context import RunContext
from chaos.runner.model import (
    EXIT_ENVIRONMENT,
    EXIT_FAILED,
    EXIT_INCONCLUSIVE,
    EXIT_INTERRUPTED,
    EXIT_PASSED,
    EXIT_STOPPED,
    EXIT_TERMINATED,
    RunResult,
)
from chaos.timeline import method_time


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
        # a join step: judged from its start to the method's end plus the recovery window, every
        # measure alike (its crowd stays to the end; the measures of joins count its crowd only;
        # measures from a fault's start or end are refused there by the loader)
        joining = step.join is not None
        spans = history.joins_of_step(step.index) if joining else history.spans_of_step(step.index)
        injected = [s for s in spans if not s.skipped]
        spans = injected or spans  # judged over the faults injected; over would-be windows if none was
        if not spans:
            continue
        for c in step.expect:
            scope = resolve_measure(c.measure or "")[0].scope
            pairs = []
            for span in spans:
                if joining:
                    w = Window(span.start, span.end + recovery)
                elif scope == "fault_start":
                    w = Window(span.start, span.end if step.duration else span.start + recovery)
                elif scope == "fault_end":
                    w = Window(span.end, span.end + recovery)
                else:
                    w = Window(span.start, span.end + recovery)
                pairs.append((span, w))
            (first, w0), rest = pairs[0], pairs[1:]
            v = check(history, c.measure or "", c.expect or "", w0, "step", fault=first, step=step.index, more=rest)
            if not injected:
                v.skipped = True
                why = first.skipped if len({s.skipped for s in spans}) == 1 else "not injected"
                v.note = f"{v.note}; " if v.note else ""
                v.note += f"fault not injected ({why}): judged over its would-be window, not counted"
            if joining:
                for span in spans:
                    if (cut := history.join_cancelled.get(span.occurrence)) is not None:
                        never = (
                            f"{cut.data.get('cancelled')} of {cut.data.get('count')} listeners of the crowd "
                            f"never joined: their arrivals were cancelled when {cut.data.get('reason')}"
                        )
                        v.note = f"{v.note}; {never}" if v.note else never
            verdicts.append(v)
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
                    f"at {method_time(ev.t, history.method_start)} deadair restarted Toxiproxy "
                    f"({ev.data.get('effect', 'links reset')})"
                    if ev.kind == "harness.toxiproxy_restart"
                    else f"at {method_time(ev.t, history.method_start)} {ev.kind}"
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


def conclude(ctx: RunContext, result: RunResult) -> None:
    """The status and exit code: the kill switch or a signal first; else, if the live phases got
    that far, the verdicts over the whole timeline (judged after rollback, so they see it).
    Verdicts over a fault that was never injected (a dry run, a step the operator skipped) are
    reported and do not count."""
    if ctx.stopped is not None:  # the operator stopped it: what listeners heard until then is shown, not counted
        if ctx.timeline.of_kind("run.phase"):
            try:
                result.verdicts = judge(ctx.exp, History(ctx.timeline.events))
            except Exception:
                ctx.crash = (ctx.crash or "") + traceback.format_exc()
        result.status, result.exit_code = "stopped", EXIT_STOPPED
    elif ctx.interrupted is not None:
        result.status = "interrupted"
        result.exit_code = EXIT_INTERRUPTED if ctx.interrupted == signal.SIGINT else EXIT_TERMINATED
    elif ctx.status in ("judged", "not_steady", "aborted", "inconclusive"):
        try:
            result.verdicts = judge(ctx.exp, History(ctx.timeline.events))
        except Exception as exc:
            ctx.crash = (ctx.crash or "") + traceback.format_exc()
            result.error = f"internal error while judging: {type(exc).__name__}: {exc}"
            ctx.status = "error"
        counted = [v for v in result.verdicts if not v.skipped]
        if ctx.status == "error":
            result.status, result.exit_code = "error", EXIT_ENVIRONMENT
        elif ctx.status in ("not_steady", "aborted"):
            result.status, result.exit_code = ctx.status, EXIT_FAILED
        elif any(v.outcome == "fail" for v in counted):
            result.status, result.exit_code = "failed", EXIT_FAILED
        elif any(v.outcome == "unknown" for v in counted) or ctx.status == "inconclusive":
            result.status, result.exit_code = "inconclusive", EXIT_INCONCLUSIVE
        elif counted:
            result.status, result.exit_code = "passed", EXIT_PASSED
        else:  # nothing was judged (the loader refuses such experiments; a journal re-judged may not)
            result.status, result.exit_code = "failed", EXIT_FAILED
