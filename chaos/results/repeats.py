"""`--repeat N`: one experiment run N times; each measure's spread, and the verdicts that differ.

A verdict whose outcome differs across the repeats (passed in one, failed or unknown in another)
is **flaky (n of m)**: n repeats where it did not pass, of the m where it was judged (a verdict
over the window of a fault that was not injected, `skipped`, is not judged: a dry run or a step
the operator skipped decides nothing, flaky included). It is
reported apart from pass and fail, in the terminal, in the repeat summary (`repeat-<first run
id>.json` beside the runs' folders; each run's folder gets a `repeat.json` pointing to it), in
JUnit and in the HTML report.

The exit code of a repeated run (README, "Exit codes"):
1. a repeat that ends other than passed, failed or inconclusive (invalid, environment, stopped,
   interrupted) ends the series, and its exit code is the series';
2. every repeat failed: 1 (a verdict that differed among them is still reported flaky);
3. the repeats disagree (some failed and some did not, or some passed and some were
   inconclusive): 7, status `flaky`;
4. otherwise their common exit code (0 or 4).
A regression against a baseline (6) is judged on the medians and replaces only 0 and 4.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from chaos.checkers.names import named
from chaos.results import EXIT_FLAKY
from chaos.results.compare import fmt

SERIES_CODES = (0, 1, 4)  # exit codes after which the next repeat runs
_STATS = ("p50", "p95", "p99", "max", "count")


def summarize(summaries: list[dict[str, Any]], paths: list[Path | None], requested: int) -> dict[str, Any]:
    """The repeat summary of runs of one experiment, in the order they ran."""
    runs = [named(list(s.get("verdicts") or [])) for s in summaries]
    order: list[str] = []
    first: dict[str, dict[str, Any]] = {}
    for verdicts in runs:
        for v in verdicts:
            if v["name"] not in first:
                order.append(v["name"])
                first[v["name"]] = v
    out_verdicts = []
    for name in order:
        per_run = [next((v for v in verdicts if v["name"] == name), None) for verdicts in runs]
        judged = [v for v in per_run if v is not None and not v.get("skipped")]
        outcomes = [v.get("outcome") or ("pass" if v.get("passed") else "fail") for v in judged]
        not_passed = sum(o != "pass" for o in outcomes)
        if not judged:
            state = "skipped"
            label = f"skipped (not injected in {sum(v is not None for v in per_run)} of {len(runs)} runs)"
        else:
            state = outcomes[0] if len(set(outcomes)) == 1 else "flaky"
            count = not_passed if state != "pass" else len(judged)
            label = f"{state} ({count} of {len(judged)})"
        if judged and len(judged) < len(runs):
            label += f", judged in {len(judged)} of {len(runs)} runs"
        values = [_value(v) for v in judged]
        v0 = first[name]
        out_verdicts.append(
            {
                "name": name,
                "phase": v0.get("phase"),
                "step": v0.get("step"),
                "measure": v0.get("measure"),
                "expect": v0.get("expect"),
                "stat": v0.get("stat"),
                "unit": v0.get("unit"),
                "state": state,
                "label": label,
                "not_passed": not_passed,
                "judged": len(judged),
                "outcomes": [("skipped" if v.get("skipped") else v.get("outcome")) if v else None for v in per_run],
                "values": [_json_num(x) for x in values],
                **{k: _json_num(x) for k, x in spread(values).items()},
            }
        )
    status, code = series_outcome(summaries)
    return {
        "kind": "deadair.repeat",
        "group": str(summaries[0].get("run_id")) if summaries else "",
        "experiment_id": summaries[0].get("experiment_id") if summaries else None,
        "title": summaries[0].get("title") if summaries else None,
        "requested": requested,
        "ran": len(summaries),
        "status": status,
        "exit_code": code,
        "flaky": [v["name"] for v in out_verdicts if v["state"] == "flaky"],
        "runs": [
            {
                "run_id": s.get("run_id"),
                "status": s.get("status"),
                "exit_code": s.get("exit_code"),
                "summary": str(p) if p else None,
                "stack_fingerprint": (s.get("stack_fingerprint") or {}).get("id"),
            }
            for s, p in zip(summaries, paths)
        ],
        "verdicts": out_verdicts,
    }


def series_outcome(summaries: list[dict[str, Any]]) -> tuple[str, int]:
    """(status, exit code) of a series of runs (see the module's docstring)."""
    if not summaries:
        return "error", 3
    for s in summaries:
        if s.get("exit_code") not in SERIES_CODES:
            return str(s.get("status")), int(s.get("exit_code") or 3)
    codes = {int(s["exit_code"]) for s in summaries}
    if codes == {1}:
        return "failed", 1
    if len(codes) > 1 or any(_flaky_verdicts(summaries)):
        return "flaky", EXIT_FLAKY
    return str(summaries[0].get("status")), codes.pop()


def _flaky_verdicts(summaries: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, set[str]] = {}
    for s in summaries:
        for v in named(list(s.get("verdicts") or [])):
            if not v.get("skipped"):  # not injected: judged over a would-be window, counted nowhere
                seen.setdefault(v["name"], set()).add(str(v.get("outcome")))
    return [n for n, outs in seen.items() if len(outs) > 1]


def spread(values: list[float]) -> dict[str, float]:
    """Median, min and max of the values that are numbers (inf included: a listener that never
    got there is the worst value, not a missing one)."""
    xs = [x for x in values if not math.isnan(x)]
    if not xs:
        return {"median": math.nan, "min": math.nan, "max": math.nan}
    return {"median": float(statistics.median(xs)), "min": min(xs), "max": max(xs)}


def median_summary(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """A summary like the last run's, with each verdict's value and statistics the median across
    the runs that judged it (a skipped verdict, not injected, judged nothing): what a baseline
    comparison of a repeated run is made on. A statistic summary.json wrote as null with listeners
    missing is infinite (they never got there): the worst value, never dropped."""
    last = dict(summaries[-1])
    runs = [named(list(s.get("verdicts") or [])) for s in summaries]
    merged = []
    for v in named(list(last.get("verdicts") or [])):
        same = [x for verdicts in runs for x in verdicts if x["name"] == v["name"] and not x.get("skipped")]
        if not same:  # skipped in every run: left as it is, so that a comparison counts it as no data
            merged.append(v)
            continue
        m = {**v, "skipped": False}
        m["value"] = _json_num(spread([_value(x) for x in same])["median"])
        summ = dict(v.get("summary") or {})
        for k in _STATS:
            nums = [x for x in (_stat(s, k) for s in same) if not math.isnan(x)]
            if nums:
                summ[k] = float(statistics.median(nums))
        m["summary"] = summ
        merged.append(m)
    last["verdicts"] = merged
    return last


def write(repeat: dict[str, Any], journal_dir: Path) -> Path:
    """The repeat summary beside the runs, and in each run's folder a `repeat.json` pointing to it."""
    path = journal_dir / f"repeat-{repeat['group']}.json"
    path.write_text(json.dumps(repeat, indent=2) + "\n")
    for i, r in enumerate(repeat["runs"], 1):
        folder = journal_dir / str(r["run_id"])
        if folder.is_dir():
            # the series' summary by name: it lies beside the run's folder wherever the folders move
            pointer = {"group": repeat["group"], "index": i, "of": repeat["ran"], "summary": path.name}
            (folder / "repeat.json").write_text(json.dumps(pointer, indent=2) + "\n")
    return path


def render(repeat: dict[str, Any], path: Path | None) -> str:
    """The series as text: the outcome, then each verdict across the repeats with its spread."""
    head = f"Repeated {repeat['ran']} time(s)"
    if repeat["ran"] < repeat["requested"]:
        head += f" of {repeat['requested']} (stopped after run {repeat['ran']})"
    lines = [f"{head}: {repeat['status'].upper().replace('_', ' ')} (exit {repeat['exit_code']})"]
    lines.append(f"  {'verdict':<52} {'across repeats':<18} {'median':>9} {'min':>9} {'max':>9}")
    for v in repeat["verdicts"]:
        where = f"step {v['step']}" if v["phase"] == "step" else str(v["phase"])
        what = f"{where:<8} {v['measure']} {v['expect']}"
        unit = str(v.get("unit"))
        nums = [fmt(_num(v[k]), unit if unit != "probe" else "count") for k in ("median", "min", "max")]
        mark = "  <- FLAKY" if v["state"] == "flaky" else ""
        lines.append(f"  {what:<52} {v['label']:<18} {nums[0]:>9} {nums[1]:>9} {nums[2]:>9}{mark}")
    runs = ", ".join(f"{r['run_id']} {r['status']}" for r in repeat["runs"])
    lines.append(f"  runs: {runs}")
    if path:
        lines.append(f"  repeat summary: {path}")
    return "\n".join(lines)


def _value(v: dict[str, Any]) -> float:
    raw = v.get("value")
    if raw is None:
        return math.inf if (v.get("summary") or {}).get("missing") else math.nan
    return float(raw)


def _stat(v: dict[str, Any], key: str) -> float:
    """One statistic of a verdict: inf for a null with listeners missing (summary.json writes inf
    as null, see compare's value), nan when it was not recorded."""
    summ = v.get("summary") or {}
    raw = summ.get(key)
    if raw is None:
        return math.inf if key in summ and summ.get("missing") else math.nan
    return float(raw)


def _json_num(x: float) -> float | str | None:
    """JSON has no inf or nan: inf is written "inf" (a listener never got there), nan null."""
    if math.isnan(x):
        return None
    return "inf" if math.isinf(x) else x


def _num(x: Any) -> float | None:
    if x is None:
        return None
    return math.inf if x == "inf" else float(x)
