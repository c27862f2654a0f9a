"""`deadair history EXPERIMENT`: an experiment's runs over time, one line each, with the stack's
changes marked where they happened, so that a step in a trend can be told from a new build."""

from __future__ import annotations

import math
from pathlib import Path

from chaos.checkers.names import display_keys, named
from chaos.results.compare import fmt
from chaos.results.store import ResultsError, ResultsStore, StoredRun
from chaos.stack.fingerprint import differences


def find_experiment(store: ResultsStore, query: str) -> str:
    """The experiment id a user means: an id, an experiment file (any title it had), or a part of
    an id that only one experiment has."""
    ids = [e for e, _ in store.experiments()]
    if query in ids:
        return query
    candidates = []
    path = Path(query)
    if path.is_file():
        from chaos.runner.outputs import experiment_id

        prefix = experiment_id(path, "").removesuffix("::")
        candidates = [e for e in ids if e.rsplit("::", 1)[0] == prefix]
    if not candidates:
        candidates = [e for e in ids if query in e]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        known = "\n  ".join(ids) or "(none: no run has been stored yet)"
        raise ResultsError(f"no experiment {query!r} in the results store {store.path}; it holds:\n  {known}")
    raise ResultsError(f"{query!r} matches {len(candidates)} experiments; give one of:\n  " + "\n  ".join(candidates))


def render_history(runs: list[StoredRun], experiment: str) -> str:
    """Per run: when, id, status (regressed or flaky when its series was, dry for a dry run), stack fingerprint (a change marked, with what changed), tags,
    and the value of every verdict (a verdict that did not pass is marked)."""
    lines = [f"{experiment}: {len(runs)} run(s), oldest first, times UTC"]
    previous = None
    for run in runs:
        fp = run.summary.get("stack_fingerprint")
        mark = ""
        if previous is not None:
            changes = differences(previous, fp)
            if changes:
                mark = f"  * stack changed: {'; '.join(changes)}"
        previous = fp
        group = f" [repeat {run.repeat_group}]" if run.repeat_group else ""
        tags = f" tags: {', '.join(run.tags)}" if run.tags else ""
        lines.append(f"  {run.when}  {run.run_id}  {run.shown_status:<12} stack {run.fingerprint}{tags}{group}{mark}")
        measures = _measures(run)
        if measures:
            lines.append(f"      {measures}")
        variables = run.summary.get("variables")
        if variables:
            lines.append("      vars: " + ", ".join(f"{k}={v}" for k, v in variables.items()))
    return "\n".join(lines)


def _measures(run: StoredRun) -> str:
    verdicts = named(list(run.summary.get("verdicts") or []))
    parts = []
    for v, key in zip(verdicts, display_keys(verdicts)):
        bad = "" if v.get("outcome") == "pass" else f" {str(v.get('outcome')).upper()}"
        if v.get("unit") == "probe":
            parts.append(f"{key}={'ok' if v.get('outcome') == 'pass' else 'failed'}")
            continue
        raw = v.get("value")
        value = (math.inf if (v.get("summary") or {}).get("missing") else math.nan) if raw is None else float(raw)
        parts.append(f"{key}={fmt(value, str(v.get('unit')))}{bad}")
    return "  ".join(parts)
