"""report.html: one self-contained page per run, for the people who watch and discuss it.

Written beside the journal by the entry points after every run (the CLI's `deadair run`, the
pytest plugin's items) and rebuilt by `deadair report RUN` from the run's folder alone. Offline:
Plotly's JavaScript is inlined from the plotly package, so the page opens from a CI artifact, a
mail attachment or a laptop on a plane; nothing is fetched.
"""

from __future__ import annotations

import argparse
import html
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chaos import __version__
from chaos.errors import DeadairError
from chaos.report.charts import timeline_figure
from chaos.report.clock import ReportClock
from chaos.report.misses import Miss, choose_lanes, misses
from chaos.report.repeats_html import repeat_section, series_banner
from chaos.report.runfiles import REPORT, RunRecord, find_run, load_run
from chaos.report.story import plain_verdict, value_words, verdict_key
from chaos.runner.model import RunResult

DIV_ID = "deadair-timeline"


class ReportNotWritten(DeadairError):
    exit_code = 3  # the environment: a folder that cannot be written


_BADGE = {
    "passed": "#2e7d32",
    "failed": "#c62828",
    "inconclusive": "#f9a825",
    "flaky": "#f9a825",
    "stopped": "#616161",
    "unknown": "#757575",
}  # anything else (not steady, aborted, error, interrupted): red
CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1280px;
       padding: 0 24px 40px; color: #212121; }
h1 { font-size: 24px; margin: 24px 0 6px; } h2 { font-size: 18px; margin: 28px 0 8px; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 4px; color: #fff; font-weight: 600;
         font-size: 14px; vertical-align: middle; margin-left: 8px; }
.meta { color: #616161; font-size: 13px; }
.plain { font-size: 17px; background: #f5f5f5; border-left: 4px solid #9e9e9e; padding: 12px 16px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e0e0e0; vertical-align: top; }
th { background: #fafafa; } td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.pass { color: #2e7d32; font-weight: 600; } .fail { color: #c62828; font-weight: 600; }
.unknown { color: #f57f17; font-weight: 600; } .hint { color: #757575; font-size: 13px; }
ul.lanes { columns: 2; font-size: 13px; }
"""


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(v: Any, unit: str, missing: int = 0) -> str:
    """A statistic; the summary writes an infinite one (a listener that never got there) as null."""
    if v is None and missing:
        return "never"
    return _e(value_words(None if v is None else float(v), unit))


def _where(v: dict[str, Any], rec: RunRecord) -> str:
    if v.get("phase") != "step":
        return str(v.get("phase"))
    if v.get("step") is not None and (joins := rec.history.joins_of_step(int(v["step"]))):
        ev = rec.history.join_events.get(joins[0].occurrence)
        shape = str(ev.data.get("shape") or f"join {ev.data.get('count')} listeners") if ev is not None else "join"
        return f"step {v.get('step')}: {shape}"
    spans = rec.history.spans_of_step(int(v["step"])) if v.get("step") is not None else []
    what = f" {spans[0].fault} {spans[0].target or ''}" if spans else ""
    return f"step {v.get('step')}{what}".strip() + (f" (x{len(spans)})" if len(spans) > 1 else "")


def _n_listeners(v: dict[str, Any], rec: RunRecord) -> str:
    basis = str((v.get("summary") or {}).get("basis", ""))
    if basis.startswith("ears"):
        return str(len(rec.history.ears))
    if basis.startswith("listeners"):
        return str(len(rec.history.listeners_by(float(v["window"][1]))))
    return "-"


def _missed_cell(ms: list[Miss], unit: str) -> str:
    if not ms:
        return ""
    shown = [
        f"{m.subject}{' (' + m.served_by + ')' if m.served_by else ''}: "
        + ("never" if m.value is None else value_words(m.value, unit))
        for m in ms[:12]
    ]
    more = f" and {len(ms) - 12} more" if len(ms) > 12 else ""
    return _e("; ".join(shown) + more)


def verdict_table(rec: RunRecord, missed: dict[str, list[Miss]]) -> str:
    head = (
        "<tr><th>where</th><th>measure</th><th>expectation</th><th>result</th><th>value</th><th>count</th>"
        "<th>p50</th><th>p95</th><th>p99</th><th>max</th><th>n listeners</th><th>missed by</th><th>note</th></tr>"
    )
    rows = []
    for v in rec.verdicts:
        s, unit = v.get("summary") or {}, str(v.get("unit", ""))
        outcome = str(v.get("outcome", ""))
        stats_unit = "" if unit == "probe" else unit
        miss = int(s.get("missing") or 0)
        spans = f", {s['spans']} spans" if "spans" in s else ""
        rows.append(
            "<tr>"
            f"<td>{_e(_where(v, rec))}</td><td>{_e(v.get('measure'))}</td><td>{_e(v.get('expect'))}</td>"
            f'<td class="{_e(outcome)}">{_e(outcome.upper())}{" (not counted: no fault injected)" if v.get("skipped") else ""}</td>'
            f'<td class="num">{_e(v.get("stat"))}={_num(v.get("value"), stats_unit, miss)}</td>'
            f'<td class="num">{_e(s.get("count", ""))} {_e(s.get("basis", ""))}{_e(spans)}</td>'
            + "".join(f'<td class="num">{_num(s.get(k), stats_unit, miss)}</td>' for k in ("p50", "p95", "p99", "max"))
            + f'<td class="num">{_e(_n_listeners(v, rec))}</td>'
            f"<td>{_missed_cell(missed.get(verdict_key(v), []), unit)}</td><td>{_e(v.get('note', ''))}</td></tr>"
        )
    if not rows:
        rows.append(
            '<tr><td colspan="13">no verdicts: '
            + ("no summary" if rec.summary is None else "none judged")
            + "</td></tr>"
        )
    return f'<table id="verdicts-table">{head}{"".join(rows)}</table>'


def rollback_section(rec: RunRecord) -> str:
    items = []
    r = (rec.summary or {}).get("rollback")
    if r is None:
        items.append("<li>the run left no summary: the ledger's outcome is unknown</li>")
    else:
        details = r.get("details") or {}
        for what in r.get("reverted") or []:
            extra = f" ({details[what]})" if details.get(what) else ""
            items.append(f'<li class="pass">reverted and verified: {_e(what)}{_e(extra)}</li>')
        for f in r.get("failed") or []:
            items.append(f'<li class="fail">FAILED to revert: {_e(f.get("fault"))}: {_e(f.get("error"))}</li>')
        for g in r.get("gone") or []:
            items.append(f"<li>gone with its stack: {_e(g.get('fault'))} ({_e(g.get('reason'))})</li>")
        for u in r.get("unsettled") or []:
            items.append(f'<li class="fail">unsettled: {_e(u)}</li>')
        if r.get("ledger"):
            items.append(f'<li class="fail">ledger kept at {_e(r["ledger"])}: run <code>deadair sweep</code></li>')
        if not items:
            items.append("<li>nothing to revert</li>")
    clock = ReportClock.of(rec.history)
    for e in rec.of_kind("rollback.action"):
        out = e.data.get("output")
        status = out.get("status") if isinstance(out, dict) else out
        res = f"error: {e.data['error']}" if "error" in e.data else f"status {status}"
        items.append(f"<li>rollback action {_e(e.src)} at {_e(clock.at(e.t))}: {_e(res)}</li>")
    return f'<ul id="rollback-ledger">{"".join(items)}</ul>'


def _dry_banner(rec: RunRecord) -> str:
    dry = (rec.summary or {}).get("dry")
    if not dry:
        return ""
    skipped = sum(1 for v in rec.verdicts if v.get("skipped"))
    return (
        f'<p class="unknown" id="dry-run">DRY RUN (--dry {_e(dry)}): no fault was '
        f"injected; {skipped} verdict(s) over the faults' would-be windows are shown but not counted.</p>"
    )


def _length(rec: RunRecord, clock: ReportClock) -> str:
    """How long the run took (a duration), and where the method's clock starts in it."""
    took = f"{rec.history.end:.1f} s in all"
    if clock.method_start is None:
        return f"{took}; the run never reached its method"
    return f"{took}; the method (t+0) began {clock.method_start:.2f} s in"


def _clock_hint(clock: ReportClock) -> str:
    if clock.on_method:
        return (
            "Times are on the method's clock, as the experiment's at: and the progress lines count them "
            "(t+2.00s: 2 s after the method began; the gate before it is negative)."
        )
    return (
        "This run never reached its method (stopped, or not steady at the gate): times are seconds since the run began."
    )


def render_html(rec: RunRecord) -> str:
    """The whole page, as text."""
    import plotly.io as pio

    missed = {verdict_key(v): misses(rec.history, v) for v in rec.verdicts}
    lanes = choose_lanes(rec.history, rec.states, {str(v.get("measure")): missed[verdict_key(v)] for v in rec.verdicts})
    fig = timeline_figure(rec, lanes)
    chart = pio.to_html(
        fig,
        include_plotlyjs=True,
        full_html=False,
        div_id=DIV_ID,
        config={"displaylogo": False, "responsive": True, "toImageButtonOptions": {"filename": rec.run_id}},
    )
    status = rec.status
    wall = rec.header.get("wall_time")
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(float(wall))) if wall else "unknown"
    versions = ", ".join(f"{k} {v}" for k, v in (rec.header.get("versions") or {}).items())
    lane_items = "".join(f"<li><b>{_e(lane.listener)}</b>: {_e(lane.why)}</li>" for lane in lanes)
    error = (rec.summary or {}).get("error")
    clock = ReportClock.of(rec.history)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>deadair: {_e(rec.title)} ({_e(status)})</title>
<style>{CSS}</style></head>
<body>
<h1>{_e(rec.title)}<span class="badge" id="status" style="background:{_BADGE.get(status, "#c62828")}">{_e(status.upper().replace("_", " "))}</span></h1>
<div class="meta">run {_e(rec.run_id)} &middot; started {_e(started)} &middot; {_e(_length(rec, clock))}
&middot; exit {_e((rec.summary or {}).get("exit_code", "?"))} &middot; seed {_e(rec.header.get("seed"))}
&middot; {_e(rec.header.get("experiment", ""))}<br>{_e(versions)}</div>
<h2>In plain words</h2>
<p class="plain" id="plain-verdict">{_e(plain_verdict(rec, missed))}</p>
{f'<p class="fail">error: {_e(error)}</p>' if error else ""}
{series_banner(rec.repeat)}{_dry_banner(rec)}
<h2>Timeline</h2>
<p class="hint" id="clock-hint">{_e(_clock_hint(clock))} Fault windows are the shaded bands. Drag across any row to
zoom (every row follows), double-click to zoom out; hover for details. A listener's state in a second is the worst it
was in during any part of it.</p>
{chart}
<h3>Lanes</h3>
<ul class="lanes" id="lanes">{lane_items or "<li>no listeners</li>"}</ul>
<h2>Verdicts</h2>
{verdict_table(rec, missed)}
{repeat_section(rec.repeat)}
<h2>Rollback</h2>
{rollback_section(rec)}
<p class="meta">made by deadair {_e(__version__)} from {_e(rec.journal)}; rebuild with
<code>deadair report {_e(rec.folder)}</code></p>
</body></html>
"""


def write_report(journal: Path, out: Path | None = None) -> Path:
    """Build the report of a run's journal; writes `report.html` beside it unless told otherwise."""
    rec = load_run(journal)
    path = out or journal.parent / REPORT
    text = render_html(rec)
    try:
        path.write_text(text)
    except OSError as exc:
        raise ReportNotWritten(f"cannot write the report {path}: {exc}") from None
    return path


def after_run(result: RunResult, say: Callable[[str], None] | None = None) -> Path | None:
    """For the entry points: the report of a run that left a journal. A report that cannot be
    made is said (with how to rebuild it) and changes nothing else: the verdicts stand."""
    if result.journal is None:
        return None
    try:
        result.report = write_report(result.journal)
    except Exception as exc:  # a report is derived: it must not turn a judged run into a crash
        (say or (lambda m: print(m, file=sys.stderr)))(
            f"deadair: could not write the report ({type(exc).__name__}: {exc}); "
            f"`deadair report {result.journal.parent}` rebuilds it"
        )
        return None
    return result.report


def cmd_report(args: argparse.Namespace) -> int:
    journal = find_run(args.run, Path(args.journal_dir))
    path = write_report(journal, Path(args.output) if args.output else None)
    size = path.stat().st_size
    print(f"report: {path} ({size / 1e6:.1f} MB)")
    return 0


def add_command(sub: Any) -> None:
    """`deadair report RUN [-o FILE] [--journal-dir DIR]`"""
    rp = sub.add_parser("report", help="(re)build a run's report.html from its journal")
    rp.add_argument("run", metavar="RUN", help="a run folder, a journal's path, or a run id under --journal-dir")
    rp.add_argument("-o", "--output", help="write here instead of report.html beside the journal")
    rp.add_argument(
        "--journal-dir", default=".deadair/runs", help="where run ids are looked up (default .deadair/runs)"
    )
    rp.set_defaults(fn=cmd_report)
