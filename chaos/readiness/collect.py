"""Each scenario's result, for the scorecard: either run now, one after another on the same stack
(every run recorded in the results store as `deadair run` records it), or, with
`--from-results`, the newest already recorded (the results store; capacity.json files), running
nothing.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.readiness.decision import Evidence
from chaos.readiness.suite import Scenario
from chaos.readiness.sweeps import capacity_root, evidence, newest_capacity
from chaos.readiness.versions import definition_parts, file_sha256, mismatch
from chaos.results.store import ResultsError, ResultsStore, started_of

STOP_CODES = (5, 130, 143)  # stopped (the kill switch), SIGINT, SIGTERM: the suite ends there


@dataclass
class Collected:
    evidence: dict[str, Evidence | str] = field(default_factory=dict)
    code: int | None = None  # 3 (environment) or a stop code, when the runs end so; None otherwise
    recorded: list[str] = field(default_factory=list)  # run ids this readiness run added to the store
    problems: list[str] = field(default_factory=list)


def from_results(scenarios: list[Scenario], store_file: Path, journal_dir: Path, now: float | None = None) -> Collected:
    """The newest recorded result of each scenario that is of its version now
    (chaos.readiness.versions); nothing runs. A dry run is no result."""
    now = time.time() if now is None else now
    out = Collected()
    store: ResultsStore | None = None
    if store_file.exists():
        store = ResultsStore(store_file, readonly=True)
    try:
        for s in scenarios:
            why_not = _version_check(s, now)

            if s.is_capacity:
                out.evidence[s.stem] = newest_capacity(s, capacity_root(journal_dir), why_not)
                continue
            if store is None:
                out.evidence[s.stem] = f"no results store at {store_file}"
                continue
            runs = [r for r in store.runs(s.experiment_id) if not r.summary.get("dry")]
            if not runs:
                out.evidence[s.stem] = f"no recorded run of {s.experiment_id} in {store_file}"
                continue
            runs.sort(key=lambda r: (r.started, r.run_id), reverse=True)
            first_reason = None
            for r in runs:
                reason = why_not(r.summary, r.started)
                if reason is None:
                    out.evidence[s.stem] = Evidence("run", r.run_id, r.started, r.summary, r.journal or "")
                    break
                first_reason = (
                    first_reason or f"not run: the newest recorded run ({r.run_id}) is not this version: {reason}"
                )
            else:
                out.evidence[s.stem] = first_reason or "not run"
    finally:
        if store is not None:
            store.close()
    return out


def _version_check(s: Scenario, now: float) -> Callable[[dict[str, Any], float], str | None]:
    """Why a recorded result is not of the scenario's version now (chaos.readiness.versions)."""
    sha, stack_now = file_sha256(s.path), definition_parts(s)

    def why_not(recorded: dict[str, Any], started: float) -> str | None:
        return mismatch(recorded, s, sha, stack_now, started, now)

    return why_not


@dataclass
class RunSettings:
    journal_dir: Path
    store_file: Path
    project: str | None = None
    say: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)
    show: Callable[[str], None] = print  # each run's terminal report


def run_all(scenarios: list[Scenario], settings: RunSettings) -> Collected:
    """Every scenario in turn, in-process, on the same stack; each run stored as it ends."""
    out = Collected()
    for i, s in enumerate(scenarios):
        settings.say(f"readiness: scenario {i + 1} of {len(scenarios)}: {s.stem} ({s.title})")
        code = _sweep(s, settings, out) if s.is_capacity else _run(s, settings, out)
        if code in STOP_CODES:
            out.code = code
            for rest in scenarios[i + 1 :]:
                out.evidence[rest.stem] = "not run: the suite was stopped"
            break
        if code == 3 and out.code is None:
            out.code = 3
    return out


def _run(s: Scenario, settings: RunSettings, out: Collected) -> int:
    from chaos.report.html import after_run as write_html_report
    from chaos.report.text import render
    from chaos.runner.run import RunOptions, run

    assert s.experiment is not None
    result = run(
        s.experiment,
        RunOptions(keep_stack=True, journal_dir=settings.journal_dir, project=settings.project, progress=settings.say),
    )
    write_html_report(result)
    if result.journal or result.verdicts:
        settings.show(render(result, with_error=False))
    if result.error:
        settings.say(f"deadair: {result.error}")
    summary = _summary(result.summary)
    if summary is None:
        out.evidence[s.stem] = f"not run: the run ended {result.status} and wrote no summary" + (
            f" ({result.error})" if result.error else ""
        )
        return result.exit_code
    try:
        with ResultsStore(settings.store_file) as store:
            stored = store.add(summary, journal=str(result.journal) if result.journal else None)
            store.set_series([stored.run_id], str(result.status), result.exit_code)
        out.recorded.append(stored.run_id)
    except ResultsError as exc:
        out.problems.append(f"the results store was not updated: {exc}")
        out.code = out.code or 3
    where = str(result.summary) if result.summary else ""
    out.evidence[s.stem] = Evidence("run", str(result.run_id), started_of(summary), summary, where)
    return result.exit_code


def _summary(path: Path | None) -> dict[str, Any] | None:
    import json

    if path is None or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _sweep(s: Scenario, settings: RunSettings, out: Collected) -> int:
    """A capacity sweep through chaos.capacity (each step a run, recorded in the store); its
    result is the capacity.json it wrote. Returns the sweep's exit code."""
    from chaos.capacity.sweep import SweepOptions, run_sweep
    from chaos.capacity.text import render as render_sweep
    from chaos.errors import DeadairError

    try:
        done = run_sweep(
            s.path,
            SweepOptions(
                overrides=dict(s.overrides),
                out_dir=capacity_root(settings.journal_dir),
                journal_dir=settings.journal_dir,
                results=str(settings.store_file),
                project=settings.project,
                say=settings.say,
            ),
        )
    except DeadairError as exc:
        out.evidence[s.stem] = f"not run: {exc}"
        return exc.exit_code
    settings.show(render_sweep(done.doc))
    out.evidence[s.stem] = evidence(done.path, done.doc)
    out.recorded += [str(step["run_id"]) for step in done.doc.get("steps") or [] if step.get("run_id")]
    return done.exit_code
