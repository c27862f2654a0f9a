"""The report's part for a run that is one of a repeated series (`deadair run --repeat N`): each
verdict across the repeats, with its spread, and the flaky ones (outcomes that differ) apart from
pass and fail. Read from the series' summary that chaos.results writes beside the runs
(chaos.report.repeat_info); a run that was not repeated shows nothing here.
"""

from __future__ import annotations

import html
from typing import Any

from chaos.report.story import series_outcome, value_words


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


def _num(x: Any, unit: str) -> str:
    if x == "inf":
        return "never"
    if x is None:
        return "n/a"
    return value_words(float(x), "" if unit == "probe" else unit)


def repeat_section(repeat: dict[str, Any] | None) -> str:
    if not repeat:
        return ""
    rows = []
    for v in repeat.get("verdicts") or []:
        state = str(v.get("state"))
        css = {"pass": "pass", "fail": "fail"}.get(state, "unknown")
        where = f"step {v.get('step')}" if v.get("phase") == "step" else str(v.get("phase"))
        outcomes = ", ".join(str(o or "-") for o in v.get("outcomes") or [])
        unit = str(v.get("unit", ""))
        rows.append(
            f"<tr><td>{_e(where)}</td><td>{_e(v.get('measure'))}</td><td>{_e(v.get('expect'))}</td>"
            f'<td class="{css}">{_e(str(v.get("label", state)).upper() if state == "flaky" else v.get("label", state))}</td>'
            + "".join(f'<td class="num">{_e(_num(v.get(k), unit))}</td>' for k in ("median", "min", "max"))
            + f"<td>{_e(outcomes)}</td></tr>"
        )
    runs = ", ".join(f"{r.get('run_id')} {r.get('status')}" for r in repeat.get("runs") or [])
    status = str(repeat.get("status", "")).upper().replace("_", " ")
    return (
        f'<h2>Repeats</h2><p id="repeat-series">Run {_e(repeat.get("index"))} of {_e(repeat.get("ran"))} '
        f"(of {_e(repeat.get('requested'))} requested); the series: {_e(status)} (exit {_e(repeat.get('exit_code'))}). "
        f"Runs: {_e(runs)}.</p>"
        '<table id="repeats-table"><tr><th>where</th><th>measure</th><th>expectation</th><th>across repeats</th>'
        f"<th>median</th><th>min</th><th>max</th><th>outcome per run</th></tr>{''.join(rows)}</table>"
    )


def series_banner(repeat: dict[str, Any] | None) -> str:
    """At the top of the page: the series this run belongs to regressed or was flaky, so the
    run's own PASSED is not read as the night's outcome."""
    outcome, details = series_outcome(repeat)
    if not outcome:
        return ""
    r = repeat or {}
    head = (
        f"The series of {_e(r.get('ran'))} runs this run belongs to {outcome.upper()} (exit {_e(r.get('exit_code'))})"
    )
    items = "".join(f"<li>{_e(d)}</li>" for d in details)
    return f'<div id="series-outcome" class="fail"><p>{head}.</p>{f"<ul>{items}</ul>" if items else ""}</div>'
