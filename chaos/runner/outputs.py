"""What a run leaves behind in `journal_dir/<run id>/`: the journal (every event, replayable), the
summary (status, verdicts, rollback), and the traceback of a bug. Written last, whatever ended the
run; a run that started nothing (bad input, no engine) leaves nothing.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

from chaos import __version__
from chaos.checkers.names import named
from chaos.faults.ledger import Ledger, RollbackReport
from chaos.runner.context import RunContext
from chaos.runner.model import EXIT_ENVIRONMENT, EXIT_INVALID, EXIT_PASSED, RunResult
from chaos.stack.compose import Stack
from chaos.stack.fingerprint import fingerprint, running_image_ids


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


def stack_fingerprint(stack: Stack) -> dict[str, Any]:
    """The stack's fingerprint (chaos.stack.fingerprint), for the journal's header and the summary;
    what cannot be read is said in it, never an error that ends a run."""
    try:
        images = running_image_ids(stack)
    except Exception as exc:
        images = {"error": f"{type(exc).__name__}: {exc}"}
    try:
        return fingerprint(stack.definition, images)
    except Exception as exc:
        return {"id": "unknown", "error": f"{type(exc).__name__}: {exc}"}


def experiment_sha256(path: Path) -> str | None:
    """The experiment file's content hash (None: unreadable); a result of another content is
    another version of the experiment (chaos.readiness.versions)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def experiment_id(path: Path, title: str) -> str:
    """What the results store keys a run by: `<file>::<title>`, the file relative to the root of
    the repository that holds it (the nearest folder above it with a `.git`), else its absolute
    path; the same id as the pytest item's node id when pytest runs from that root. Variables are
    not part of it: the same experiment with a worse `--var` is the same experiment, measured again."""
    resolved = path.resolve()
    rel = str(resolved)
    for parent in resolved.parents:
        if (parent / ".git").exists():
            rel = resolved.relative_to(parent).as_posix()
            break
    return f"{rel}::{title}"


def _write_journal_and_summary(result: RunResult, ctx: RunContext) -> None:
    folder = ctx.opt.journal_dir / result.run_id
    exp = result.experiment
    header = {
        "experiment": str(exp.path),
        "title": exp.title,
        "seed": exp.seed,
        "run_id": result.run_id,
        "experiment_id": experiment_id(exp.path, exp.title),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ctx.timeline.clock.wall_origin)),
        "variables": exp.variables,
        "versions": result.versions,
        "stack_fingerprint": result.fingerprint,
        "plan": [{"occurrence": o.key, "at": o.at, "for": o.duration, "what": o.describe()} for o in ctx.plan],
    }
    result.journal = ctx.timeline.write_journal(folder / "journal.jsonl", header)
    summary = {
        **header,
        "experiment_sha256": experiment_sha256(exp.path),  # readiness --from-results: the same file?
        "status": result.status,
        "exit_code": result.exit_code,
        "error": result.error,
        "abort": result.abort,
        "dry": result.dry,  # "faults": a dry run, nothing injected (chaos.runner.run)
        "step": ctx.opt.step,  # step mode: the operator confirmed each fault
        "skipped": result.skipped,  # fault occurrences not injected (dry run, or the operator's s)
        "stopped": result.stopped,  # the kill switch: by (user), how (key, signal), t, stage
        "timings": {k: round(v, 3) for k, v in result.timings.items()},
        "verdicts": named([v.to_json() for v in result.verdicts]),  # each with its stable name
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
