"""Human-readable output: every verdict with the numbers it was judged on, and the plan."""

from __future__ import annotations

from chaos.checkers.verdicts import Verdict
from chaos.language.model import Experiment
from chaos.runner.run import RunResult

_PHASE_ORDER = {"before": 0, "step": 1, "during": 2, "abort": 3, "after": 4}


def _n(s: dict) -> str:
    """n in what the measure counts (listeners, ears, samples), and the dead-air spans apart."""
    basis = str(s.get("basis", "listeners"))
    n = f"n={s['count']} {basis}"
    return n + (f", {s['spans']} spans" if "spans" in s else "")


def verdict_line(v: Verdict) -> str:
    mark = {"pass": "PASS", "fail": "FAIL", "unknown": "UNKNOWN"}[v.outcome]
    if v.skipped:  # over a fault never injected: shown, not counted
        mark = f"({mark.lower()})"
    s = v.summary
    if v.unit == "probe":
        line = f"{v.measure} {v.expect}".ljust(40) + f" {mark}  {s['count'] - int(v.value)}/{s['count']} samples ok"
    elif v.phase == "abort":
        line = f"abort_when {v.measure} {v.expect}".ljust(40) + f" TRIPPED  {v.stat}={v.describe_value()}"
    else:
        if s.get("no_data"):
            dist = _n(s)
        elif v.unit == "duration":
            dist = (
                f"{_n(s)}; p50 {v.describe_value(s['p50'])}, p95 {v.describe_value(s['p95'])}, "
                f"p99 {v.describe_value(s['p99'])}, max {v.describe_value(s['max'])}"
            )
        else:
            dist = _n(s)
        line = f"{v.measure} {v.expect}".ljust(40) + f" {mark}  {v.stat}={v.describe_value()}  ({dist})"
    if v.note and v.phase != "abort":
        line += f"  [{v.note}]"
    return line


def render(result: RunResult, with_error: bool = True) -> str:
    """The run as text. `with_error=False` when the caller prints the error itself (the CLI, on
    stderr), so that it is printed once."""
    exp = result.experiment
    dry = {"faults": " [DRY RUN: no fault injected]", "all": " [DRY RUN: planned only]"}.get(result.dry or "", "")
    lines = [
        f"{exp.title}: {result.status.upper().replace('_', ' ')}{dry} (exit {result.exit_code})"
        + (f" in {result.timings['total']:.1f}s" if "total" in result.timings else "")
    ]
    steps = {s.index: s for s in exp.method}
    shown_step = None
    for v in sorted(result.verdicts, key=lambda v: (_PHASE_ORDER[v.phase], v.step or 0)):
        if v.phase == "step":
            if v.step != shown_step:
                st = steps[v.step]  # type: ignore[index]
                target = st.target or ("one of " + "/".join(st.one_of) if st.one_of else "")
                repeat = " (every occurrence)" if st.every else ""
                what = st.fault or (f"join {st.join.count}" if st.join else st.name)
                lines.append(f"  step {v.step} {what} {target}{repeat}".rstrip() + ":")
                shown_step = v.step
            lines.append(f"    {verdict_line(v)}")
        else:
            lines.append(f"  {v.phase:<7} {verdict_line(v)}")
    if result.status == "not_steady":
        lines.append("  not steady before the method: no fault was injected")
    if result.status == "aborted":
        lines.append("  a guardrail tripped: the method was stopped and every fault rolled back at once")
    if result.stopped:
        lines.append(f"  {stopped_line(result.stopped)}")
    if result.skipped:
        lines.append(f"  not injected: {', '.join(result.skipped)} (verdicts over their would-be windows not counted)")
    if result.error and with_error:
        lines.append(f"  error: {result.error}")
    if result.rollback and result.rollback.reverted:
        lines.append(f"  rolled back: {', '.join(e['fault'] for e in result.rollback.reverted)}")
    if result.rollback and result.rollback.gone:
        lines.append(
            "  gone with their stack: " + "; ".join(f"{e['fault']} ({why})" for e, why in result.rollback.gone)
        )
    if result.journal:
        lines.append(f"  journal: {result.journal}")
        lines.append(f"  summary: {result.summary}")
    if result.report:
        lines.append(f"  report:  {result.report}")
    return "\n".join(lines)


def stopped_line(stopped: dict) -> str:
    """`stopped by alice (key k) at t+11.2s, during the live phases: everything rolled back at once`."""
    how = "key " + str(stopped.get("key", "k")) if stopped.get("how") == "key" else str(stopped.get("signal", "signal"))
    if stopped.get("pid"):
        how += f" from pid {stopped['pid']}" + (f" ({stopped['command']})" if stopped.get("command") else "")
    where = {"startup": "while the stack started", "live": "during the live phases"}.get(str(stopped.get("stage")), "")
    if stopped.get("method_t") is not None:  # the method's clock, as the progress lines
        d = round(float(stopped["method_t"]), 1)  # the sign of what is printed: never "t-0.0s"
        t = f" at t{'-' if d < 0 else '+'}{abs(d):.1f}s"
    elif stopped.get("t") is not None:
        t = f" {float(stopped['t']):.1f}s into the run (before the method)"
    else:
        t = ""
    return f"stopped by {stopped.get('by')} ({how}){t}{', ' + where if where else ''}: everything rolled back at once"


def render_plan(exp: Experiment) -> str:
    """What a run would do, step by step; reads the experiment and nothing else."""
    from chaos.language.plan import method_length, plan

    occurrences = plan(exp)
    length = method_length(occurrences)
    w = exp.windows
    lines = [f"{exp.title}  (seed {exp.seed}, stack {exp.stack})"]
    if exp.variables:
        lines.append("  vars: " + ", ".join(f"{k}={v}" for k, v in exp.variables.items()))
    if exp.listeners.count:
        how = (
            f"join through room-api ({exp.listeners.via})"
            if exp.listeners.join == "room-api"
            else f"stream {exp.listeners.path} from {exp.listeners.via}"
        )
        lines.append(f"  listeners  {exp.listeners.count}, {how}; warm-up until all hear audio (at most {w.warmup:g}s)")
    elif not any(s.join for s in exp.method):
        lines.append(f"  listeners  none (stack {exp.stack} has no audio, or the experiment asks for none)")
    lines.append(f"  gate       {w.gate:g}s: steady state must hold, else no fault is injected")
    for c in exp.steady_state:
        lines.append(f"             {c.name} {c.bound}  [{', '.join(c.when)}]")
    lines.append(f"  method     {length:g}s" + (f" (during-checks start after {w.grace:g}s)" if w.grace else ""))
    for o in occurrences:
        lines.append(f"    t+{o.at:6.1f}s  {o.describe()}")
        if o.n == 0:
            for c in o.step.expect:
                lines.append(f"               expect {c.measure} {c.expect}")
    for c in exp.abort_when:
        lines.append(f"  abort when {c.measure} {c.expect}")
    lines.append(f"  recovery   {w.recovery:g}s: steady state must hold again")
    for r in exp.rollbacks:
        lines.append(f"  rollback   {r.name}: {r.describe()}")
    total = w.gate + length + w.recovery
    if exp.listeners.count:
        lines.append(f"  about {total:g}s after the listeners hear audio (plus stack start and warm-up)")
    else:
        lines.append(f"  about {total:g}s after the stack is up")
    return "\n".join(lines)


def measure_table() -> str:
    """The README's measure table, from the measures' own definitions (a test keeps the two equal)."""
    from chaos.checkers.measures import measures

    rows = [
        "| measure | unit | default | definition (per listener or ear first, then across them) | no data |",
        "|---|---|---|---|---|",
    ]
    for m in measures().values():
        rows.append(f"| `{m.name}` | {m.unit} | {m.default_stat} | {m.definition or m.doc} | {m.no_data or '-'} |")
    return "\n".join(rows)
