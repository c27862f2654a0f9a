"""The report's timeline, as one Plotly figure: rows that share one x axis, so zooming one
zooms all (Plotly's own zoom, pan and hover; nothing drawn by hand). The x axis is the method's
clock (chaos.report.clock: the experiment's `at: 2s` is x=2, the gate before it negative); the
run's clock only for a run that never reached its method.

    listeners      per-second listener state, stacked (chaos.checkers.states)
    lanes          a chosen few listeners, stretch by stretch
    probes         the experiment's probe samples: how long each took, and whether it answered
    servers        what Icecast, HAProxy and room-api said about themselves, once a second

Fault windows are bands over every row (layout shapes named `fault <occurrence> ...`; a join
step's arrivals `join <occurrence> ...`), phases
are dotted lines. Each trace carries `meta` saying what it is, so a test (or a curious reader
in the browser's console) can find the run's data in the page.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from chaos.checkers.states import STATES
from chaos.report.clock import ReportClock
from chaos.report.misses import Lane
from chaos.report.runfiles import RunRecord
from chaos.report.story import fault_words

LABELS = {
    "live": "hearing live",
    "hold": "hearing hold music",
    "joining": "joining",
    "dead_air": "dead air",
    "reconnecting": "reconnecting (silent)",
    "gone": "gone",
}
COLORS = {
    "live": "#2e7d32",
    "hold": "#1e88e5",
    "joining": "#bdbdbd",
    "dead_air": "#d32f2f",
    "reconnecting": "#fb8c00",
    "gone": "#212121",
}
FAULT_COLOR = "rgba(255, 193, 7, 0.25)"
JOIN_COLOR = "rgba(30, 136, 229, 0.12)"  # a join step's crowd arriving


def _rows(rec: RunRecord, lanes: list[Lane]) -> list[tuple[str, str, float]]:
    """(key, title, relative height) of the rows this run has data for."""
    rows = [("states", "Listeners, by what they heard each second", 3.0)]
    if lanes:
        rows.append(("lanes", "A few listeners, moment by moment", max(1.2, 0.35 * len(lanes))))
    if rec.of_kind("probe.sample"):
        rows.append(("probes", "Probe samples: seconds to answer (x: no answer or error)", 1.2))
    kinds = {str(e.data.get("probe")) for e in rec.history.server}
    if "icecast" in kinds:
        rows.append(("icecast", "Icecast: listeners per node", 1.2))
    if "haproxy" in kinds:
        rows.append(("haproxy", "HAProxy: servers up", 0.8))
    if "room-api" in kinds:
        rows.append(("room-api", "room-api: requests and errors per second", 1.0))
    return rows


def timeline_figure(rec: RunRecord, lanes: list[Lane]) -> go.Figure:
    rows = _rows(rec, lanes)
    clock = ReportClock.of(rec.history)
    index = {key: i + 1 for i, (key, _, _) in enumerate(rows)}
    total = sum(h for _, _, h in rows)
    fig = make_subplots(
        rows=len(rows),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.045,
        row_heights=[h / total for _, _, h in rows],
        subplot_titles=[title for _, title, _ in rows],
    )
    _states(fig, rec, clock)
    if "lanes" in index:
        _lanes(fig, rec, lanes, index["lanes"], clock)
    if "probes" in index:
        _probes(fig, rec, index["probes"], clock)
    for key in ("icecast", "haproxy", "room-api"):
        if key in index:
            _servers(fig, rec, key, index[key], clock)
    _faults_and_phases(fig, rec, clock)
    fig.update_layout(
        height=int(260 + 130 * total),
        barmode="overlay",
        hovermode="closest",
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        margin={"l": 70, "r": 20, "t": 90, "b": 50},
        template="plotly_white",
    )
    fig.update_xaxes(showticklabels=True, ticksuffix=" s")
    fig.update_xaxes(title_text=clock.axis_title, row=len(rows), col=1)
    fig.update_yaxes(title_text="listeners", rangemode="tozero", row=1, col=1)
    return fig


def _states(fig: go.Figure, rec: RunRecord, clock: ReportClock) -> None:
    counts = rec.states.counts()
    n = rec.states.seconds
    # a step per second of the run's clock (the last value held to the end of its second), drawn
    # where that second falls on the report's clock
    xs = [clock.x(float(i)) for i in range(n + 1)]
    for state in STATES:
        ys = counts[state] + counts[state][-1:] if n else []
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                name=LABELS[state],
                legendgroup=state,
                stackgroup="states",
                line={"shape": "hv", "width": 0.5, "color": COLORS[state]},
                fillcolor=COLORS[state],
                hovertemplate=f"%{{y}} listeners {LABELS[state]} in the second from {clock.hover_x}<extra></extra>",
                meta={"deadair": "states", "state": state},
            ),
            row=1,
            col=1,
        )


def _lanes(fig: go.Figure, rec: RunRecord, lanes: list[Lane], row: int, clock: ReportClock) -> None:
    names = {}
    for lane in lanes:
        server = rec.history.served_by(lane.listener)
        names[lane.listener] = lane.listener + (f" ({server})" if server else "")
    by_state: dict[str, dict[str, list[Any]]] = defaultdict(lambda: defaultdict(list))
    for lane in lanes:
        for st in rec.states.stretches.get(lane.listener, ()):
            d = by_state[st.state]
            d["y"].append(names[lane.listener])
            d["base"].append(clock.x(st.start))
            d["x"].append(st.end - st.start)  # a duration: no clock
            d["text"].append(f"{lane.listener}: {LABELS[st.state]} {clock.span(st.start, st.end)} ({lane.why})")
    for state in STATES:
        if state not in by_state:
            continue
        d = by_state[state]
        fig.add_trace(
            go.Bar(
                orientation="h",
                y=d["y"],
                x=d["x"],
                base=d["base"],
                name=LABELS[state],
                legendgroup=state,
                showlegend=False,
                marker={"color": COLORS[state]},
                hovertext=d["text"],
                hoverinfo="text",
                meta={"deadair": "lanes", "state": state},
            ),
            row=row,
            col=1,
        )
    fig.update_yaxes(
        categoryorder="array", categoryarray=[names[lane.listener] for lane in reversed(lanes)], row=row, col=1
    )


def _probes(fig: go.Figure, rec: RunRecord, row: int, clock: ReportClock) -> None:
    for name, samples in sorted(rec.history.probes.items()):
        ok = ["error" not in e.data for e in samples]
        fig.add_trace(
            go.Scatter(
                x=[clock.x(e.t) for e in samples],
                y=[float(e.data.get("elapsed", 0.0)) for e in samples],
                mode="markers",
                name=f"probe {name}",
                marker={"symbol": ["circle" if good else "x" for good in ok], "size": 9},
                hovertext=[f"{_probe_text(name, e.data)}, at {clock.at(e.t)}" for e in samples],
                hoverinfo="text",
                meta={"deadair": "probe", "probe": name},
            ),
            row=row,
            col=1,
        )
    fig.update_yaxes(ticksuffix=" s", rangemode="tozero", row=row, col=1)


def _probe_text(name: str, data: dict[str, Any]) -> str:
    if "error" in data:
        return f"{name} ({data.get('phase')}): {data['error']}"
    out = data.get("output")
    status = out.get("status") if isinstance(out, dict) else out
    return f"{name} ({data.get('phase')}): status {status} in {float(data.get('elapsed', 0.0)) * 1000:.0f} ms"


SERVER_FIELDS = {"icecast": ("listeners",), "haproxy": ("up",), "room-api": ("requests", "errors_5xx")}
COUNTERS = {"requests", "errors_5xx"}  # cumulative: drawn as a rate per second


def _servers(fig: go.Figure, rec: RunRecord, kind: str, row: int, clock: ReportClock) -> None:
    series: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for e in rec.history.server:
        if e.data.get("probe") != kind:
            continue
        for name in SERVER_FIELDS[kind]:
            if isinstance(e.data.get(name), (int, float)):
                series[(e.src, name)].append((clock.x(e.t), float(e.data[name])))
    for (node, name), points in sorted(series.items()):
        if name in COUNTERS:  # a rate between consecutive samples, at the later one
            points = [
                (t1, max(0.0, (v1 - v0) / (t1 - t0))) for (t0, v0), (t1, v1) in zip(points, points[1:]) if t1 > t0
            ]
        label = f"{node} {name.replace('_', ' ')}" + ("/s" if name in COUNTERS else "")
        fig.add_trace(
            go.Scatter(
                x=[t for t, _ in points],
                y=[v for _, v in points],
                mode="lines",
                line={"shape": "hv" if kind == "haproxy" else "linear", "width": 1.5},
                name=label,
                hovertemplate=f"{label}: %{{y:.4g}} at {clock.hover_x}<extra></extra>",
                meta={"deadair": "server", "probe": kind, "node": node, "field": name},
            ),
            row=row,
            col=1,
        )
    fig.update_yaxes(rangemode="tozero", row=row, col=1)


def _band(
    fig: go.Figure,
    clock: ReportClock,
    span: tuple[float, float],
    fill: str,
    line: dict[str, Any],
    name: str,
    label: tuple[float, str, str],
) -> None:
    """A shaded window over every row (a fault's, a crowd's arrivals), labelled at height
    `label[0]` of the top row with `label[1]` and hover text `label[2]`; `span` on the run's clock."""
    start, end = span
    fig.add_vrect(
        x0=clock.x(start), x1=clock.x(end), row="all", col=1, fillcolor=fill, line=line, layer="below", name=name
    )
    height, text, hover = label
    fig.add_annotation(
        x=clock.x((start + end) / 2),
        y=height,
        xref="x",
        yref="y domain",
        text=text,
        showarrow=False,
        yanchor="top",
        bgcolor="rgba(255, 255, 255, 0.8)",
        font={"size": 11},
        hovertext=hover,
    )


def _faults_and_phases(fig: go.Figure, rec: RunRecord, clock: ReportClock) -> None:
    for f in sorted(rec.history.faults.values(), key=lambda f: f.start):
        end = max(f.end, f.start + 0.1)  # an instant fault still shows
        skipped = getattr(f, "skipped", "")  # a dry run's or a skipped step's would-be window
        label = f"{f.fault} {f.target or ''}".strip() + (f" (not injected: {skipped})" if skipped else "")
        _band(
            fig,
            clock,
            (f.start, end),
            "rgba(0, 0, 0, 0)" if skipped else FAULT_COLOR,
            {"width": 1, "color": "rgba(230, 150, 0, 0.9)", "dash": "dash" if skipped else "solid"},
            f"{'skipped' if skipped else 'fault'} {f.occurrence} {label}",
            (0.9, label, f"{fault_words(f)} {clock.span(f.start, f.end)} (occurrence {f.occurrence})"),
        )
    for key, ev in sorted(rec.history.join_events.items(), key=lambda kv: kv[1].t):
        # a join step's crowd: a band over its arrivals (first to last), like a fault window
        end = ev.t + max(float(ev.data.get("span") or 0.0), 0.1)
        label = str(ev.data.get("shape") or f"join {ev.data.get('count')} listeners")
        cut = rec.history.join_cancelled.get(key)
        if cut is not None:
            label += f" ({cut.data.get('cancelled')} never joined)"
        _band(
            fig,
            clock,
            (ev.t, end),
            JOIN_COLOR,
            {"width": 1, "color": "rgba(30, 136, 229, 0.9)"},
            f"join {key} {label}",
            (
                0.8,
                f"step {ev.data.get('step')}: {label}",
                f"a crowd joining: {label}, {clock.span(ev.t, end)} (occurrence {key})",
            ),
        )
    for name, what in (("before", "gate"), ("during", "method"), ("after", "recovery")):
        w = rec.history.phases.get(name)
        if w is None:
            continue
        fig.add_vline(
            x=clock.x(w.start),
            line={"dash": "dot", "width": 1, "color": "#616161"},
            row="all",
            col=1,
            name=f"phase {name}",
        )
        fig.add_annotation(
            x=clock.x(w.start),
            y=0.98,
            xref="x",
            yref="y domain",
            text=what,
            showarrow=False,
            xanchor="left",
            font={"size": 10},
            hovertext=f"{what} (phase {name}) {clock.span(w.start, w.end)}",
        )
