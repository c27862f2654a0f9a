"""What a run leaves behind in `journal_dir/<run id>/`: the journal (every event, replayable), the
summary (status, verdicts, rollback), and the traceback of a bug. Written last, whatever ended the
run; a run that started nothing (bad input, no engine) leaves nothing.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from chaos import __version__
from chaos.faults.ledger import Ledger, RollbackReport
from chaos.runner.context import RunContext
from chaos.runner.model import EXIT_ENVIRONMENT, EXIT_INVALID, EXIT_PASSED, RunResult
from chaos.stack.compose import Stack


def write_outputs(ctx: RunContext, result: RunResult) -> None:
    """Journal, summary and traceback; a folder that cannot be written is an error, never a pass."""
    if result.exit_code == EXIT_INVALID or not (len(ctx.timeline) or ctx.ledger.entries or ctx.crash):
        return  # nothing was started (bad input, no engine): nothing is left behind
    crash = ctx.opt.journal_dir / result.run_id / "traceback.txt"
    if ctx.crash:
        result.error = (result.error or "") + f"; traceback in {crash}"
    try:
        _write_journal_and_summary(result, ctx)
        if ctx.crash:
            crash.write_text(ctx.crash)
    except OSError as exc:  # the journal folder cannot be written: say so, keep the exit code honest
        result.error = (result.error + "; " if result.error else "") + f"could not write the journal: {exc}"
        result.journal = result.summary = None
        if result.exit_code == EXIT_PASSED:
            result.status, result.exit_code = "error", EXIT_ENVIRONMENT


def versions(stack: Stack) -> dict[str, str]:
    """What ran: deadair, Python, the engine, Compose, Toxiproxy (for the journal's header)."""
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


def _write_journal_and_summary(result: RunResult, ctx: RunContext) -> None:
    folder = ctx.opt.journal_dir / result.run_id
    exp = result.experiment
    header = {
        "experiment": str(exp.path),
        "title": exp.title,
        "seed": exp.seed,
        "run_id": result.run_id,
        "variables": exp.variables,
        "versions": result.versions,
        "plan": [{"occurrence": o.key, "at": o.at, "for": o.duration, "what": o.describe()} for o in ctx.plan],
    }
    result.journal = ctx.timeline.write_journal(folder / "journal.jsonl", header)
    summary = {
        **header,
        "status": result.status,
        "exit_code": result.exit_code,
        "error": result.error,
        "abort": result.abort,
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "verdicts": [v.to_json() for v in result.verdicts],
        "rollback": _rollback_json(result.rollback, ctx.ledger),
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
