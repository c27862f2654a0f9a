"""The scorecard and its decision: GO, or NO-GO with every reason. Pure: results, policy and a
clock in, a JSON-ready scorecard out (no engine, no store, no file).

Rules, in the order they are applied:

1. **A scenario's status.** No result: `not run` (with why; `--from-results` takes only a result of
   the scenario's version now, chaos.readiness.versions). A result dated more than 60 s after now:
   `not run`. An undated one is dated the epoch, so stale. A result older than the policy's
   `max_age` (its start to now): `stale`, which counts as not run, with its age. A run: `passed`
   is `pass`; `failed`, `aborted` and `not_steady` are `fail`; `inconclusive` is `inconclusive`
   (not a pass: no data never passes); any other end (error, stopped, interrupted, a dry run) is
   `not run`, with its status. A capacity sweep: `pass` when its measured capacity reaches
   target x (1 + headroom) (rule 4), `fail` otherwise; with no target at all, `pass` when any step
   held its SLO (measured, not judged); a sweep short of it that the instrument bound (a verdict
   within the swarm's own lag, the load generator as the binding resource, or other work on the
   machine: chaos.capacity.binding) is `inconclusive`,
   one whose step run did not finish is `not run`. A scenario named under `waive:` is `waived` whatever its
   result (kept beside it as `outcome`) and gives no reason below.
2. **Category**: the first of the policy's categories, in its order, one of whose tags the
   scenario carries; `uncategorised` otherwise. Per category: how many scenarios in each status
   and the smallest margin among them.
3. **Margins**: per verdict, chaos.readiness.margins (relative to the bound, negative when
   broken); a scenario's margin is its smallest.
4. **Capacity**: a sweep is judged against the policy's target of its declared `unit`
   (`listeners`: `targets.listeners`; `joins/s`: `targets.joins`) with the policy's headroom;
   without one, against the sweep's own `target` with its own `headroom` (the rule `deadair
   capacity` exits by). Required load = target x (1 + headroom); headroom at the target =
   capacity / target - 1. A sweep whose steps never broke measured a lower bound (`at least`).
   A sweep with no known unit, or run with a `--target` other than its file's when no policy
   target judges it, is `not run` (another version of the sweep).
5. **Launch limits** (`slo:`): every verdict on the limit's measure, in every scenario with a
   fresh result that is not waived (pass, fail or inconclusive), is checked: a bare limit
   (`dead_air: 2s`) against the worst listener (its distribution's `max`; a bare lower limit,
   `join_success_ratio: ">= 0.99"`, against the measure's default statistic), a limit with a
   statistic (`dead_air.p95: 2s`) against that statistic; a verdict that did not record it does
   not count (and when none counts, the limit has no data); a capacity sweep's step
   verdicts count at loads up to the launch's target (up to its measured capacity without one):
   beyond it the sweep is finding where it breaks. The worst value and where it was are reported.
   A limit no verdict measured is not met (no data never passes).
6. **Decision**: GO when there is no reason; NO-GO with every reason: each required scenario
   (not waived) that failed, was inconclusive, was not run or is stale; each required scenario the
   suite does not have; each launch limit exceeded or never measured; each sweep (not waived) below
   its required load; each policy target that no fresh sweep measured.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from chaos.checkers.names import named, window_label
from chaos.language.expectations import Expectation, parse_expectation
from chaos.language.registry import resolve_measure
from chaos.readiness.margins import bound_of, clean, is_absolute, margin, margin_text, value_text, verdict_value
from chaos.readiness.policy import Limit, Policy, Targets, format_headroom
from chaos.readiness.suite import Scenario

MAX_FUTURE_S = 60.0  # a result dated later than this after now is no evidence (a clock ran ahead)

PASS, FAIL, INCONCLUSIVE, NOT_RUN, STALE, WAIVED = "pass", "fail", "inconclusive", "not run", "stale", "waived"
STATUSES = (PASS, FAIL, INCONCLUSIVE, NOT_RUN, STALE, WAIVED)
_RUN_STATUS = {"passed": PASS, "failed": FAIL, "aborted": FAIL, "not_steady": FAIL, "inconclusive": INCONCLUSIVE}


@dataclass
class Evidence:
    """A scenario's latest result: a run's summary, or a sweep's capacity.json."""

    kind: str  # "run" or "capacity"
    ref: str  # run id or sweep id
    started: float  # wall clock, seconds since the epoch
    data: dict[str, Any]  # the summary, or capacity.json
    where: str = ""  # the file it came from


def decide(
    policy: Policy,
    scenarios: list[Scenario],
    evidence: dict[str, Evidence | str],
    now: float | None = None,
    targets: Targets | None = None,
    suite: str = "",
) -> dict[str, Any]:
    """The scorecard: `evidence` maps a scenario's stem to its result, or to why it has none."""
    now = time.time() if now is None else now
    targets = targets or policy.targets
    rows = [_scenario(policy, targets, s, evidence.get(s.stem, "no result"), now) for s in scenarios]
    reasons: list[dict[str, str]] = []
    for row in rows:
        reasons += _scenario_reasons(policy, row)
    have = {s.stem for s in scenarios}
    for stem in policy.required or ():
        if stem not in have:
            reasons.append(_reason("missing", stem, f"required scenario {stem!r} is not in the suite"))
    categories = _categories(policy, rows)
    sweeps = [r["capacity"] for r in rows if r.get("capacity")]
    reasons += _capacity_reasons(rows, targets)
    limits = [_limit(lim, rows) for lim in policy.limits]
    for lim in limits:
        if lim["status"] != "held":
            reasons.append(_reason("launch limit", lim["where"] or "", lim["text"]))
    return {
        "kind": "readiness",
        "suite": suite,
        "generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        "decision": "GO" if not reasons else "NO-GO",
        "reasons": reasons,
        "policy": _policy_json(policy, targets),
        "scenarios": rows,
        "categories": categories,
        "capacity": sweeps,
        "limits": limits,
    }


# -- scenarios --------------------------------------------------------------------------------
def _scenario(policy: Policy, targets: Targets, s: Scenario, ev: Evidence | str, now: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "scenario": s.stem,
        "title": s.title,
        "file": str(s.path),
        "experiment_id": s.experiment_id,
        "tags": list(s.tags),
        "category": policy.category_of(s.tags),
        "required": policy.is_required(s.stem),
        "waived": policy.waive.get(s.stem),
        "kind": "capacity" if s.is_capacity else "run",
        "run_id": None,
        "started": None,
        "age_s": None,
        "age": None,
        "source": None,
        "outcome": NOT_RUN,
        "note": "",
        "slo": [],
        "margin": None,
        "margin_text": "n/a",
    }
    if isinstance(ev, str):
        row["note"] = ev
    elif ev.started > now + MAX_FUTURE_S:
        row["note"] = f"not run: its result is dated {ev.started - now:.0f} s in the future: not evidence"
    else:
        age = max(0.0, now - ev.started)
        row.update(
            run_id=ev.ref,
            started=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ev.started)),
            age_s=round(age, 1),
            age=format_age(age),
            source=ev.where,
        )
        if ev.kind == "capacity":
            row["capacity"] = _sweep(s, ev, targets, fresh=age <= policy.max_age)
            row["outcome"] = row["capacity"]["status"]
            row["note"] = row["capacity"]["note"]
            row["slo"] = row["capacity"]["slo"]
        else:
            row["outcome"], row["note"] = _run_outcome(ev.data)
            row["slo"] = [_verdict_row(v) for v in named(list(ev.data.get("verdicts") or []))]
        if age > policy.max_age:
            row["note"] = f"result {format_age(age)} old, older than max_age {format_age(policy.max_age)}" + (
                f" (it was {row['outcome']})" if row["outcome"] != NOT_RUN else ""
            )
            row["outcome"] = STALE
    # a verdict with no bound (a probe's tolerance) has no margin and is left out; a verdict with a
    # bound and no number (never got there) is -inf
    judged = [r["margin"] for r in row["slo"] if r.get("counts") and r.get("bound") is not None]
    if judged:
        row["margin"] = min((m if m is not None else -math.inf) for m in judged)
        row["margin_text"] = margin_text(row["margin"])
        row["margin"] = clean(row["margin"])
    row["status"] = WAIVED if row["waived"] else row["outcome"]
    return row


def _run_outcome(summary: dict[str, Any]) -> tuple[str, str]:
    status = str(summary.get("status") or "")
    if summary.get("dry"):
        return NOT_RUN, f"a dry run ({summary.get('dry')}): nothing was measured"
    if status in _RUN_STATUS:
        failed = [v for v in named(list(summary.get("verdicts") or [])) if v.get("outcome") in ("fail", "unknown")]
        names = ", ".join(f"{v['name']} ({v.get('outcome')})" for v in failed[:4]) + (
            ", ..." if len(failed) > 4 else ""
        )
        note = {"aborted": "a guardrail aborted it", "not_steady": "not steady before the method"}.get(status, "")
        if failed and _RUN_STATUS[status] != PASS:
            note = f"{note}; {names}" if note else names
        return _RUN_STATUS[status], note
    error = summary.get("error") or ""
    return NOT_RUN, f"the run ended {status or 'without a status'}" + (f": {error}" if error else "")


def _verdict_row(v: dict[str, Any]) -> dict[str, Any]:
    """One judged SLO of a run: its value, its bound and the margin between them."""
    row: dict[str, Any] = {
        "name": v.get("name"),
        "window": window_label(v),
        "measure": v.get("measure"),
        "expect": v.get("expect"),
        "stat": v.get("stat"),
        "unit": v.get("unit"),
        "outcome": "skipped" if v.get("skipped") else v.get("outcome"),
        "counts": not v.get("skipped"),  # a verdict over a fault not injected says nothing of the system
        "distribution": v.get("summary") or {},
    }
    return _with_margin(row, verdict_value(v), _expectation(v.get("expect")))


def _with_margin(row: dict[str, Any], value: float | None, expect: Expectation | None) -> dict[str, Any]:
    m = margin(value, expect) if (expect is not None and value is not None) else None
    absolute = expect is not None and is_absolute(expect)
    row.update(
        value=clean(value),
        value_text=value_text(value, row.get("unit")),
        bound=bound_of(expect) if expect else None,
        op=expect.op if expect else None,
        margin=m,
        margin_text=margin_text(m, absolute, row.get("unit")),
        margin_kind="absolute" if absolute else "relative",
    )
    return row


def _expectation(text: Any) -> Expectation | None:
    try:
        return parse_expectation(str(text))
    except ValueError:  # a probe's tolerance: no bound to measure a margin from
        return None


def _scenario_reasons(policy: Policy, row: dict[str, Any]) -> list[dict[str, str]]:
    if row["waived"] or not row["required"]:
        return []
    stem, outcome, note = row["scenario"], row["outcome"], row["note"]
    run = f" (run {row['run_id']})" if row["run_id"] else ""
    if outcome == FAIL and row["kind"] == "capacity":
        return []  # said once, as the capacity reason
    if outcome in (FAIL, INCONCLUSIVE, NOT_RUN, STALE):
        verb = {FAIL: "failed", INCONCLUSIVE: "was inconclusive", NOT_RUN: "was not run", STALE: "is stale"}[outcome]
        return [_reason(outcome, stem, f"required scenario {stem!r} {verb}{run}" + (f": {note}" if note else ""))]
    return []


def _reason(kind: str, scenario: str, text: str) -> dict[str, str]:
    return {"kind": kind, "scenario": scenario, "text": text}


# -- capacity ---------------------------------------------------------------------------------
UNITS = {"listeners": "listeners", "joins/s": "joins"}  # a capacity section's unit -> the policy's target


def dimension(unit: Any) -> str | None:
    """Which of the policy's targets a sweep measures (rule 4): its declared unit's, or None."""
    return UNITS.get(str(unit)) if unit is not None else None


def _load(x: Any) -> float | None:
    """A step's load: a number, or a rate such as 50/s."""
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, (int, float)):
        return float(x)
    from chaos.language.units import parse_rate

    try:
        return parse_rate(str(x))
    except ValueError:
        try:
            return float(str(x))
        except ValueError:
            return None


def _sweep(s: Scenario, ev: Evidence, targets: Targets, fresh: bool) -> dict[str, Any]:
    """A capacity.json read against the launch's target (rule 4)."""
    data = ev.data
    vary = str(data.get("vary") or (s.capacity or {}).get("vary") or "")
    unit = data.get("unit") or (s.capacity or {}).get("unit")
    dim = dimension(unit)
    policy_target = getattr(targets, dim) if dim else None
    target = policy_target if policy_target is not None else _load(data.get("target"))
    headroom = targets.headroom if policy_target is not None else float(data.get("headroom_required") or 0.25)
    capacity, knee, breakpoint = _load(data.get("capacity")), _load(data.get("knee")), _load(data.get("breakpoint"))
    required = target * (1 + headroom) if target is not None else None
    file_target = _load(data.get("file_target", (s.capacity or {}).get("target")))
    other_target = policy_target is None and _load(data.get("target")) != file_target
    binding = data.get("binding") or {}
    out: dict[str, Any] = {
        "scenario": s.stem,
        "sweep_id": ev.ref,
        "source": ev.where,
        "vary": vary,
        "dimension": dim,
        "target": target,
        "target_from": "policy" if policy_target is not None else ("sweep" if target is not None else None),
        "unit": unit,
        "headroom_required": headroom,
        "required_load": required,
        "capacity": capacity,
        "lower_bound": breakpoint is None and capacity is not None,
        "knee": knee,
        "breakpoint": breakpoint,
        "broken_by": list(data.get("broken_by") or []),
        "binding": binding.get("resource") if isinstance(binding, dict) else binding,
        "binding_evidence": binding.get("evidence") if isinstance(binding, dict) else None,
        "headroom_at_target": (capacity / target - 1) if (capacity is not None and target) else None,
        "rule": data.get("rule"),
        "fresh": fresh,
    }
    at_least = "at least " if out["lower_bound"] else ""
    if dim is None:
        out["status"], out["note"] = (
            NOT_RUN,
            f"the sweep declares no known unit ({unit!r}; expected listeners or joins/s)",
        )
    elif other_target:
        out["status"] = NOT_RUN
        out["note"] = (
            f"run with --target {_n(data.get('target'))} where the file says {_n(file_target)}: another version "
            f"of the sweep (set the policy's {dim} target to judge it)"
        )
    elif capacity is None:
        out["status"], out["note"] = FAIL, "no step held its SLO: no capacity"
    elif required is None:
        out["status"], out["note"] = PASS, f"capacity {at_least}{capacity:g}; no target: measured, not judged"
    elif capacity >= required:
        out["status"] = PASS
        out["note"] = (
            f"capacity {at_least}{capacity:g} >= {required:g} (target {target:g} + {format_headroom(headroom)})"
        )
    else:
        out["status"] = FAIL
        out["note"] = (
            f"capacity {at_least}{capacity:g} < {required:g} (target {target:g} + {format_headroom(headroom)})"
        )
    if out["status"] == FAIL:  # short of it, but was it the system? (chaos.capacity's exit 4, or a run that died)
        if data.get("stopped") == "unknown" or (
            isinstance(binding, dict) and (binding.get("load_generator") or binding.get("other_work"))
        ):
            out["status"] = INCONCLUSIVE
            why = data.get("verdict") or (binding.get("evidence") if isinstance(binding, dict) else "") or ""
            out["note"] += f"; the instrument bound it: {why}" if why else "; the instrument bound it"
        elif data.get("stopped") == "error":
            out["status"] = NOT_RUN
            out["note"] += f"; {data.get('verdict') or 'a step did not finish'}"
    upto = target if target is not None else capacity
    rows = []
    for step in data.get("steps") or []:
        load = _load(step.get("load"))
        counts = upto is not None and load is not None and load <= upto
        for v in step.get("slo") or []:
            row = {
                "name": f"{v.get('measure')}@{step.get('load')}",
                "window": f"load {step.get('load')}",
                "measure": v.get("measure"),
                "expect": v.get("expect"),
                "stat": getattr(_expectation(v.get("expect")), "stat", None),
                "unit": _unit(str(v.get("measure") or "")),
                "outcome": v.get("outcome") or ("pass" if v.get("passed") else "fail"),
                "counts": counts,  # only steps up to the launch's load speak for the launch
                "run_id": step.get("run_id"),
                "load": load,
                "distribution": (step.get("distributions") or {}).get(_name(str(v.get("measure") or ""))),
            }
            value = v.get("value")
            rows.append(_with_margin(row, math.inf if value is None else float(value), _expectation(v.get("expect"))))
    out["slo"] = rows
    return out


def _n(x: Any) -> str:
    return "none" if x is None else f"{x:g}" if isinstance(x, (int, float)) else str(x)


def _name(measure: str) -> str:
    """The registry's name of a measure (the key of a step's `distributions`)."""
    try:
        return resolve_measure(measure)[0].name
    except KeyError:
        return measure


def _unit(measure: str) -> str | None:
    try:
        return resolve_measure(measure)[0].unit
    except KeyError:
        return None


def _capacity_reasons(rows: list[dict[str, Any]], targets: Targets) -> list[dict[str, str]]:
    out = []
    for row in rows:
        cap = row.get("capacity")
        if cap and not row["waived"] and row["outcome"] == FAIL:
            out.append(
                _reason(
                    "capacity",
                    row["scenario"],
                    f"capacity below target x (1 + headroom): {row['scenario']} (sweep {cap['sweep_id']}): {cap['note']}",
                )
            )
    for dim in ("listeners", "joins"):
        target = getattr(targets, dim)
        if target is None:
            continue
        fresh = [
            r
            for r in rows
            if r.get("capacity")
            and r["capacity"]["dimension"] == dim
            and r["outcome"] in (PASS, FAIL)
            and not r["waived"]
        ]
        if not fresh:
            sweeps = [r for r in rows if r["kind"] == "capacity" and not r["waived"]]
            said = "; ".join(f"{r['scenario']}: {r['outcome']}" for r in sweeps) or "none in the suite"
            out.append(
                _reason(
                    "capacity",
                    "",
                    f"capacity at the target of {target:g} {dim}{'/s' if dim == 'joins' else ''} not demonstrated: no fresh sweep varies {dim} ({said})",
                )
            )
    return out


# -- launch limits ----------------------------------------------------------------------------
def _limit(lim: Limit, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rule 5: the limit checked against every counted verdict on its measure."""
    checked: list[dict[str, Any]] = []
    uncounted = 0
    for row in rows:
        if row["waived"] or row["outcome"] not in (PASS, FAIL, INCONCLUSIVE):
            continue
        for v in row["slo"]:
            if not v.get("counts") or not _same_measure(str(v.get("measure") or ""), lim.measure):
                continue
            value = _limit_value(v, lim)
            if value is None:
                uncounted += 1
                continue
            m = margin(value, lim.expect)
            checked.append(
                {
                    "scenario": row["scenario"],
                    "run_id": v.get("run_id") or row["run_id"],
                    "verdict": v.get("name"),
                    "window": v.get("window"),
                    "value": clean(value),
                    "value_text": value_text(value, lim.unit),
                    "margin": clean(m),
                    "margin_text": margin_text(m, is_absolute(lim.expect), lim.unit),
                    "held": lim.expect.holds(value),
                    "_m": -math.inf if m is None else m,
                }
            )
    checked.sort(key=lambda c: c["_m"])
    for c in checked:
        del c["_m"]
    broken = [c for c in checked if not c["held"]]
    worst = checked[0] if checked else None
    where = f"{worst['scenario']} {worst['verdict']}" if worst else ""
    stat = _limit_stat(lim)
    if worst is None:
        why = f"{uncounted} verdict(s) on it recorded no {stat}" if uncounted else f"no scenario measured {lim.measure}"
        status, text = "no data", f"launch limit {lim.text}: {why} (no data never passes)"
    elif broken:
        status = "exceeded"
        text = (
            f"launch limit {lim.text} exceeded: worst {worst['value_text']} in {worst['scenario']} "
            f"({worst['verdict']}, run {worst['run_id']}); {len(broken)} of {len(checked)} verdict(s) beyond it"
        )
    else:
        status, text = "held", f"launch limit {lim.text} held: worst {worst['value_text']} in {where}"
    return {
        "key": lim.key,
        "measure": lim.measure,
        "expect": lim.expect.text,
        "stat": stat,
        "status": status,
        "not_counted": uncounted,
        "text": text,
        "where": worst["scenario"] if worst else "",
        "worst": worst,
        "checked": len(checked),
        "exceeded": broken,
    }


def _limit_stat(lim: Limit) -> str:
    """The statistic a limit checks: its own (`dead_air.p95: 2s`); a bare upper limit
    (`dead_air: 2s`) the worst listener's, `max`; a bare lower limit (`join_success_ratio: >= 0.99`)
    the measure's default statistic (a ratio over all joins has no worst listener)."""
    if lim.stat:
        return lim.stat
    if lim.expect.op in ("<", "<="):
        return "max"
    try:
        return str(getattr(resolve_measure(lim.measure)[0], "default_stat", "max"))
    except KeyError:
        return "max"


def _same_measure(verdict_measure: str, measure: str) -> bool:
    try:
        return resolve_measure(verdict_measure)[0].name == measure
    except KeyError:
        return False


def _limit_value(v: dict[str, Any], lim: Limit) -> float | None:
    """The limit's statistic of the verdict's distribution (None: the verdict did not record it, so
    it does not count)."""
    stat = _limit_stat(lim)
    if stat == v.get("stat"):
        value = v.get("value")
        if value is None:
            return math.nan if v.get("value_text") == "no data" else math.inf
        return float(value)
    dist = v.get("distribution")
    if isinstance(dist, dict):
        return verdict_value({"stat": v.get("stat"), "value": v.get("value"), "summary": dist}, stat)
    return None


# -- categories and the policy, for the reader ------------------------------------------------
def _categories(policy: Policy, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    names = [*policy.categories, "uncategorised"]
    out = []
    for name in names:
        members = [r for r in rows if r["category"] == name]
        if not members and name == "uncategorised":
            continue
        counts = {st: sum(1 for r in members if r["status"] == st) for st in STATUSES}
        margins = [m for r in members if r["status"] != WAIVED and (m := _margin_of(r)) is not None]
        ok = bool(members) and all(r["status"] in (PASS, WAIVED) for r in members)
        out.append(
            {
                "category": name,
                "scenarios": [r["scenario"] for r in members],
                "counts": counts,
                "summary": "no scenario" if not members else ("all pass" if ok else _count_text(counts)),
                "margin": clean(min(margins)) if margins else None,
                "margin_text": margin_text(min(margins)) if margins else "n/a",
            }
        )
    return out


def _margin_of(row: dict[str, Any]) -> float | None:
    """A scenario's margin as a number again (-inf where JSON holds null for it)."""
    if row["margin"] is not None:
        return float(row["margin"])
    return -math.inf if row["margin_text"] == "-inf" else None


def _count_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {st}" for st, n in counts.items() if n)


def _policy_json(policy: Policy, targets: Targets) -> dict[str, Any]:
    return {
        "file": policy.file,
        "targets": {"listeners": targets.listeners, "joins_per_s": targets.joins, "headroom": targets.headroom},
        "slo": [
            {"key": lim.key, "measure": lim.measure, "expect": lim.expect.text, "stat": lim.stat}
            for lim in policy.limits
        ],
        "max_age_s": policy.max_age,
        "max_age": format_age(policy.max_age),
        "required": "all" if policy.required is None else list(policy.required),
        "waive": dict(policy.waive),
        "categories": {k: list(v) for k, v in policy.categories.items()},
    }


def format_age(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"
