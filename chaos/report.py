"""Human-readable reports of a run: every verdict with the numbers it was judged on."""
from __future__ import annotations

from .hypotheses import Verdict
from .runner import RunResult

_PHASE_ORDER = {"before": 0, "step": 1, "during": 2, "after": 3}


def verdict_line(v: Verdict) -> str:
    mark = "PASS" if v.passed else "FAIL"
    s = v.summary
    if v.unit == "duration" or v.measure.startswith(("dead_air", "reconnect", "hold", "live", "time_to")):
        dist = (f"n={s['count']}, p50 {v.describe_value(s['p50'])}, p95 {v.describe_value(s['p95'])}, "
                f"p99 {v.describe_value(s['p99'])}, max {v.describe_value(s['max'])}")
    else:
        dist = f"n={s['count']}"
    line = f"{v.measure} {v.expect}".ljust(40) + f" {mark}  {v.stat}={v.describe_value()}  ({dist})"
    if v.note:
        line += f"  [{v.note}]"
    return line


def render(result: RunResult) -> str:
    exp = result.experiment
    lines = [f"{exp.title}: {result.status.upper().replace('_', ' ')} (exit {result.exit_code})"
             + (f" in {result.timings['total']:.1f}s" if "total" in result.timings else "")]
    steps = {s.index: s for s in exp.method}
    shown_step = None
    for v in sorted(result.verdicts, key=lambda v: (_PHASE_ORDER[v.phase], v.step or 0)):
        if v.phase == "step":
            if v.step != shown_step:
                st = steps[v.step]  # type: ignore[index]
                lines.append(f"  step {v.step} {st.fault} {st.target or ''}".rstrip() + ":")
                shown_step = v.step
            lines.append(f"    {verdict_line(v)}")
        else:
            lines.append(f"  {v.phase:<7} {verdict_line(v)}")
    if result.status == "not_steady":
        lines.append("  not steady before the method: no fault was injected")
    if result.error:
        lines.append(f"  error: {result.error}")
    if result.rollback and result.rollback.reverted:
        lines.append(f"  rolled back: {', '.join(e['fault'] for e in result.rollback.reverted)}")
    if result.journal:
        lines.append(f"  journal: {result.journal}")
        lines.append(f"  summary: {result.summary}")
    return "\n".join(lines)
