"""capacity.html: the sweep on one self-contained page, charted the way report.html is (Plotly,
its JavaScript inlined: offline). Three rows against offered load: latency percentiles
(time to first audio), dead air per listener (total and longest span), and each resource's
utilisation of its limit; the knee and the breakpoint are marked as vertical lines (layout shapes
named `knee` and `breakpoint`) on every row. Each trace carries `meta` saying what it is."""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from chaos.capacity.binding import candidates
from chaos.capacity.text import render
from chaos.report.html import CSS, _e

DIV_ID = "deadair-capacity"
PCTS = ("p50", "p95", "p99", "max")


def figure(doc: dict[str, Any]) -> go.Figure:
    ran = [s for s in doc["steps"] if s.get("distributions")]
    loads = [s["load"] for s in ran]
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        subplot_titles=[
            "Time to first audio, per listener (percentiles)",
            "Dead air per listener from the first join: total and longest span (p95, max)",
            "Resources: utilisation of each limit (the busiest)",
        ],
    )
    for p in PCTS:
        ys = [(s["distributions"].get("time_to_first_audio") or {}).get(p) for s in ran]
        fig.add_trace(
            go.Scatter(x=loads, y=ys, name=f"time to first audio {p}", mode="lines+markers", meta=f"ttfa {p}"),
            row=1,
            col=1,
        )
    for name, label in (("dead_air.total", "dead air total"), ("dead_air", "longest dead air")):
        for p in ("p95", "max"):
            ys = [(s["distributions"].get(name) or {}).get(p) for s in ran]
            fig.add_trace(
                go.Scatter(x=loads, y=ys, name=f"{label} {p}", mode="lines+markers", meta=f"{name} {p}"),
                row=2,
                col=1,
            )
    top: dict[str, float] = {}
    for s in ran:
        for c in candidates(s.get("resources") or {}):
            top[c["resource"]] = max(top.get(c["resource"], 0.0), float(c["utilisation"]))
    for resource in sorted(top, key=lambda r: -top[r])[:6]:
        ys = []
        for s in ran:
            found = [c["utilisation"] for c in candidates(s.get("resources") or {}) if c["resource"] == resource]
            ys.append(found[0] if found else None)
        fig.add_trace(
            go.Scatter(x=loads, y=ys, name=resource, mode="lines+markers", meta=f"resource {resource}"),
            row=3,
            col=1,
        )
    for key, color in (("knee", "#f9a825"), ("breakpoint", "#c62828"), ("capacity", "#2e7d32")):
        if doc.get(key) is not None:
            fig.add_vline(x=doc[key], line_dash="dash", line_color=color, name=key)
            fig.add_annotation(
                x=doc[key], y=1.04, yref="paper", text=f"{key} {doc[key]:g}", showarrow=False, font={"color": color}
            )
    fig.update_layout(
        height=900,
        template="plotly_white",
        hovermode="x unified",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.06, "x": 0},
        margin={"l": 70, "r": 20, "t": 110, "b": 50},
    )
    fig.update_xaxes(showticklabels=True)
    fig.update_xaxes(title_text=f"offered load ({doc['vary']})", row=3, col=1)
    fig.update_yaxes(title_text="seconds", rangemode="tozero", row=1, col=1)
    fig.update_yaxes(title_text="seconds", rangemode="tozero", row=2, col=1)
    fig.update_yaxes(title_text="share of limit", rangemode="tozero", tickformat=".0%", row=3, col=1)
    return fig


def _steps_table(doc: dict[str, Any]) -> str:
    rows = []
    for s in doc["steps"]:
        slo = "<br>".join(
            f'<span class="{_e(e["outcome"])}">{_e(e["measure"])} {_e(e["expect"])}: {_e(e["outcome"])}</span>'
            f" value {_e(e.get('value'))}, margin left {_e(e.get('margin'))}, used {_e(e.get('used'))}"
            for e in s.get("slo") or []
        )
        top = candidates(s.get("resources") or {})[:3]
        res = "<br>".join(_e(c["evidence"]) for c in top)
        run = _e(s.get("run_id") or "")
        rows.append(
            f"<tr><td class='num'>{_e(s['load'])}</td><td>{_e(s['status'])}</td><td>{run}</td>"
            f"<td>{slo}</td><td>{res}</td></tr>"
        )
    return (
        "<table id='steps'><tr><th>load</th><th>status</th><th>run</th><th>SLOs</th><th>busiest resources</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def render_html(doc: dict[str, Any]) -> str:
    import plotly.io as pio

    chart = pio.to_html(
        figure(doc),
        include_plotlyjs=True,
        full_html=False,
        div_id=DIV_ID,
        config={"displaylogo": False, "responsive": True},
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>deadair capacity: {_e(doc["title"])}</title>
<style>{CSS}</style></head>
<body>
<h1>{_e(doc["title"])}: capacity</h1>
<div class="meta">sweep {_e(doc["sweep_id"])} &middot; {_e(doc["started"])} to {_e(doc["finished"])}
&middot; {_e(doc["experiment"])} &middot; exit {_e(doc["exit_code"])}</div>
<h2>In plain words</h2>
<pre class="plain" id="summary">{_e(render(doc))}</pre>
<p class="hint">{_e(doc["rule"])}</p>
<h2>Against offered load</h2>
{chart}
<h2>Steps</h2>
{_steps_table(doc)}
</body></html>
"""
