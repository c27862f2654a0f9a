"""One step of a sweep, judged from what its run recorded (its journal's history, re-judged with
chaos.checkers, so a step can be judged again later from its journal alone).

Windows:
  - the SLOs and the distributions are judged over the whole run from its first listener join
    (the warm-up included: silence while the crowd arrives counts) to the end of the last phase
    (a run with no join: from the gate's start);
  - the resources are taken over the method (from its start to its end) when it lasts 2 s or
    more, else over the run after warm-up.
A step passes when every SLO passes, fails when one fails, and is unknown when none failed but
one is unknown (the swarm's own lag could decide it: README "Unknown"). chaos.capacity.sweep.assess
fails a step whose run failed, was aborted or was not steady, whatever its SLOs.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any

from chaos.capacity.knee import Point, finite, margin_left
from chaos.checkers.history import History, Window
from chaos.checkers.measures import resolve_measure
from chaos.checkers.verdicts import check
from chaos.language.expectations import parse_expectation
from chaos.language.model import Check

# drawn against offered load in capacity.html, whatever the SLOs are
CHART_MEASURES = ("time_to_first_audio", "dead_air.total", "dead_air", "listeners.connected_ratio")


def windows(h: History) -> tuple[Window, Window, Window] | None:
    """(after warm-up, from the first join, the method or else after warm-up); None when the run
    never got past its warm-up (no phase recorded)."""
    before = h.phases.get("before")
    if before is None:
        return None
    end = max(w.end for w in h.phases.values())
    joins = [e.t for e in h.events if e.kind == "listener.join"]
    after_warmup = Window(before.start, end)
    from_join = Window(min(joins), end) if joins else after_warmup
    method = after_warmup
    starts = [float(e.data["start"]) for e in h.events if e.kind == "run.method"]
    during = h.phases.get("during")
    if starts and during is not None and during.end - starts[0] >= 2.0:
        method = Window(starts[0], during.end)
    return after_warmup, from_join, method


def window_for(measure: str, after_warmup: Window, from_join: Window) -> Window:
    """Every SLO and distribution of a step: from the first join (review finding 11: a sweep whose
    listeners sat in silence through the warm-up must not look clean)."""
    return from_join


def judge_slo(h: History, slo: tuple[Check, ...]) -> tuple[str, list[dict[str, Any]], list[Point]]:
    """The step's status and each SLO's verdict as capacity.json writes it."""
    ws = windows(h)
    if ws is None:
        return "error", [], []
    after_warmup, from_join, _ = ws
    entries, points = [], []
    for c in slo:
        measure, expect = c.measure or "", c.expect or ""
        v = check(h, measure, expect, window_for(measure, after_warmup, from_join), "capacity")
        exp = parse_expectation(expect)
        entries.append(
            {
                "measure": measure,
                "expect": expect,
                "stat": v.stat,
                "value": finite(v.value),
                "bound": exp.low,
                "unit": v.unit,
                "passed": v.passed,
                "outcome": v.outcome,
                "margin": margin_left(v.value, exp.low, exp.op),
                "window": [v.window.start, v.window.end],
                "n": v.summary.get("count"),
                "note": v.note,
            }
        )
        points.append(Point(measure, expect, v.value, exp.low, exp.op, v.outcome))
    outcomes = {p.outcome for p in points}
    status = "failed" if "fail" in outcomes else ("unknown" if "unknown" in outcomes else "passed")
    return status, entries, points


def distributions(h: History, slo: tuple[Check, ...]) -> dict[str, Any]:
    """Count, percentiles and max of the charted measures and the SLOs' own, per measure."""
    ws = windows(h)
    if ws is None:
        return {}
    after_warmup, from_join, _ = ws
    names = list(dict.fromkeys([*CHART_MEASURES, *(resolve_measure(c.measure or "")[0].name for c in slo)]))
    out: dict[str, Any] = {}
    for name in names:
        measure = resolve_measure(name)[0]
        if measure.scope != "window" or measure.ears:
            continue
        w = window_for(name, after_warmup, from_join)
        d = measure.compute(h, w, None)
        out[name] = {k: finite(v) if isinstance(v, float) else v for k, v in d.summary().items()}
        out[name]["unit"] = measure.unit
    return out


def servers(h: History) -> dict[str, Any]:
    """What Icecast, HAProxy and room-api said about themselves after warm-up, per node: each
    numeric field's min, mean and max over the sampling rounds, and the rounds that failed."""
    ws = windows(h)
    if ws is None:
        return {}
    w = ws[0]
    fields: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    kinds: dict[str, str] = {}
    failed: dict[str, int] = defaultdict(int)
    for e in h.server:
        if not w.start <= e.t <= w.end:
            continue
        kinds[e.src] = str(e.data.get("probe", ""))
        if "error" in e.data:
            failed[e.src] += 1
        for k, v in e.data.items():
            if k not in ("probe", "round") and isinstance(v, (int, float)) and not isinstance(v, bool):
                fields[e.src][k].append(float(v))
    out: dict[str, Any] = {}
    for node in sorted(kinds):
        out[node] = {"probe": kinds[node], "failed_rounds": failed[node]}
        for k, vs in fields[node].items():
            out[node][k] = {"min": min(vs), "mean": round(statistics.fmean(vs), 3), "max": max(vs), "n": len(vs)}
    return out


def load_generator(h: History, w: Window) -> dict[str, Any]:
    """deadair's own process over a window, from its swarm.health events: CPU (of one core) and the
    event loop's lag."""
    evs = [e for e in h.health if w.start <= e.t <= w.end + 1.0]
    if not evs:
        return {}
    cpus = [float(e.data.get("cpu", 0.0)) for e in evs]
    lags = [float(e.data.get("lag_max", 0.0)) for e in evs]
    mean = statistics.fmean(cpus)
    return {
        "cpu_mean": round(mean, 4),
        "cpu_max": round(max(cpus), 4),
        "cpu_util": round(mean, 4),  # against one core
        "lag_max": round(max(lags), 4),
        "lag_median": round(statistics.median(lags), 4),
        "samples": len(evs),
    }


def method_window(h: History) -> Window | None:
    ws = windows(h)
    return ws[2] if ws else None


def is_finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)
