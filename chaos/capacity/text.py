"""The sweep in the terminal: one row per step, then the knee, capacity, breakpoint, headroom and
the binding resource in words."""

from __future__ import annotations

from typing import Any

from chaos.language.capacity import step_text


def _value(entry: dict[str, Any]) -> str:
    v = entry.get("value")
    if v is None:
        return "inf" if entry.get("n") else "n/a"
    return f"{v * 1000:.0f}ms" if entry.get("unit") == "duration" else f"{v:.4g}"


def _top(resources: dict[str, Any]) -> str:
    """The busiest resources of a step, briefly."""
    parts = []
    host = resources.get("host") or {}
    if host.get("cpu_util") is not None:
        parts.append(f"host {host['cpu_util']:.0%}")
    gen = resources.get("load_generator") or {}
    if gen.get("cpu_util") is not None:
        parts.append(f"deadair {gen['cpu_util']:.0%}/core")
    cpus = sorted(
        ((n, c["cpu_cores"]) for n, c in (resources.get("containers") or {}).items() if c.get("cpu_cores") is not None),
        key=lambda x: -x[1],
    )
    parts += [f"{n} {cores:.2f} cores" for n, cores in cpus[:2]]
    return ", ".join(parts)


def render(doc: dict[str, Any]) -> str:
    lines = [f"{doc['title']}: capacity sweep of {doc['vary']} (sweep {doc['sweep_id']})"]
    slo_names = [f"{s['measure']} {s['expect']}" for s in doc["slo"]]
    header = f"  {'load':>8}  {'status':<8}  " + "  ".join(f"{n[:28]:<28}" for n in slo_names) + "  resources"
    lines.append(header)
    for st in doc["steps"]:
        cells = []
        by = {f"{e['measure']} {e['expect']}": e for e in st.get("slo") or []}
        for n in slo_names:
            e = by.get(n)
            if e is None:
                cells.append(f"{'-':<28}")
                continue
            used = e.get("used")
            mark = {"pass": "ok", "fail": "FAIL", "unknown": "UNKNOWN"}.get(e["outcome"], e["outcome"])
            text = f"{_value(e)} {mark}" + (f" u={used:.2f}" if used is not None else "")
            cells.append(f"{text:<28}")
        lines.append(
            f"  {step_text(st['load']):>8}  {st['status']:<8}  "
            + "  ".join(cells)
            + f"  {_top(st.get('resources') or {})}"
        )

    def show(x: Any) -> str:
        return "none" if x is None else step_text(x)

    lines.append(
        f"  knee {show(doc['knee'])}; capacity {show(doc['capacity'])}; breakpoint {show(doc['breakpoint'])}"
        + (f" (broken by {', '.join(doc['broken_by'])})" if doc["broken_by"] else "")
    )
    if doc.get("target") is not None:
        h, need = doc.get("headroom"), float(doc.get("headroom_required") or 0.0)
        lines.append(
            f"  target {show(doc['target'])}: headroom "
            + ("none (nothing passed)" if h is None else f"{h:+.0%}")
            + f", {need:.0%} required"
            + (" (holds)" if h is not None and h >= need - 1e-9 else " (does NOT hold)")
        )
    b = doc.get("binding")
    if b:
        lines.append(f"  binding resource: {b['resource'] or 'none named'}: {b['evidence']}")
    if doc.get("verdict"):
        lines.append(f"  {doc['verdict']}")
    return "\n".join(lines)
