"""The scorecard for people: a terminal table, and scorecard.html (static, no JavaScript: it reads
the same in a mail client, a CI artifact viewer or a browser with scripts off)."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from chaos.readiness.policy import format_headroom


def render_text(card: dict[str, Any]) -> str:
    pol = card["policy"]
    lines = [
        f"READINESS: {card['decision']}   suite {card['suite']}   policy {pol['file']}   {card['generated']}",
        "",
        f"  {'scenario':<28} {'category':<16} {'status':<13} {'run':<24} {'age':>8} {'margin':>7}  note",
    ]
    for r in card["scenarios"]:
        status = r["status"] + ("" if r["required"] else "*")
        lines.append(
            f"  {r['scenario'][:28]:<28} {r['category'][:16]:<16} {status:<13} {str(r['run_id'] or '-')[:24]:<24} "
            f"{r['age'] or '-':>8} {r['margin_text']:>7}  {_note(r)}"
        )
    if any(not r["required"] for r in card["scenarios"]):
        lines.append("  * not required by the policy")
    lines += ["", "SLOs (value, bound, margin: how far from breaking; negative: broken)"]
    for r in card["scenarios"]:
        counted = [v for v in r["slo"] if v.get("counts")]
        if not counted:
            continue
        lines.append(f"  {r['scenario']}")
        for v in counted:
            lines.append(
                f"    {str(v['window']):<10} {str(v['measure']):<28} {str(v['expect']):<18} "
                f"{v['value_text']:>12} {v['margin_text']:>8}  {v['outcome']}"
            )
    lines += ["", "Categories"]
    for c in card["categories"]:
        lines.append(
            f"  {c['category']:<18} {len(c['scenarios'])} scenario(s): {c['summary']:<32} margin {c['margin_text']}"
        )
    if card["capacity"]:
        lines += ["", "Capacity"]
        for cap in card["capacity"]:
            lines.append(f"  {cap['scenario']} (sweep {cap['sweep_id']}, vary {cap['vary']}): {cap['note']}")
            lines.append(
                f"    knee {_n(cap['knee'])}, breakpoint {_n(cap['breakpoint'])}, bound by {cap['binding'] or 'n/a'}; "
                f"headroom at the target {_pct(cap['headroom_at_target'])} "
                f"(required {format_headroom(cap['headroom_required'])})"
            )
    if card["limits"]:
        lines += ["", "Launch limits (every verdict on the measure, in every scenario)"]
        for lim in card["limits"]:
            lines.append(f"  {lim['status']:<9} {lim['text']}")
    lines += ["", f"Decision: {card['decision']}"]
    for reason in card["reasons"]:
        lines.append(f"  - {reason['text']}")
    return "\n".join(lines)


def _note(r: dict[str, Any]) -> str:
    if r["waived"]:
        return f"waived: {r['waived']} (it was {r['outcome']})"
    return str(r["note"] or "")


def _n(x: float | None) -> str:
    return "n/a" if x is None else f"{x:g}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.0f}%"


_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3} td.num{text-align:right;font-variant-numeric:tabular-nums}
.GO{background:#1a7f37;color:#fff} .NO-GO{background:#b42318;color:#fff}
.decision{display:inline-block;padding:.3em .8em;font-size:1.6em;font-weight:bold}
.pass{background:#dafbe1} .fail,.exceeded{background:#ffd7d5} .inconclusive,.stale,.no.data{background:#fff1c2}
.not.run{background:#eee} .waived{background:#e6e6ff} .held{background:#dafbe1}
"""


def render_html(card: dict[str, Any]) -> str:
    e = html.escape
    pol = card["policy"]
    out = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>Readiness: {e(card['decision'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>Readiness <span class='decision {e(card['decision'])}'>{e(card['decision'])}</span></h1>",
        f"<p>Suite <code>{e(card['suite'])}</code>, policy <code>{e(pol['file'])}</code>, {e(card['generated'])}.</p>",
    ]
    if card["reasons"]:
        out.append("<h2>Why NO-GO</h2><ul>" + "".join(f"<li>{e(r['text'])}</li>" for r in card["reasons"]) + "</ul>")
    out.append("<h2>Scenarios</h2><table><tr><th>scenario<th>category<th>status<th>run<th>age<th>margin<th>note</tr>")
    for r in card["scenarios"]:
        cls = e(r["status"])
        out.append(
            f"<tr><td>{e(r['scenario'])}{'' if r['required'] else ' (not required)'}<br><small>{e(r['title'])}</small>"
            f"<td>{e(r['category'])}<td class='{cls}'>{cls}<td>{e(str(r['run_id'] or '-'))}<td>{e(r['age'] or '-')}"
            f"<td class=num>{e(r['margin_text'])}<td>{e(_note(r))}</tr>"
        )
    out.append("</table><h2>SLOs per scenario</h2>")
    out.append("<p>Margin: how far the value is from breaking its bound, relative to the bound; negative: broken.</p>")
    out.append("<table><tr><th>scenario<th>where<th>measure<th>expect<th>value<th>margin<th>outcome</tr>")
    for r in card["scenarios"]:
        for v in r["slo"]:
            if v.get("counts"):
                out.append(
                    f"<tr><td>{e(r['scenario'])}<td>{e(str(v['window']))}<td>{e(str(v['measure']))}"
                    f"<td>{e(str(v['expect']))}<td class=num>{e(v['value_text'])}<td class=num>{e(v['margin_text'])}"
                    f"<td class='{e(str(v['outcome']))}'>{e(str(v['outcome']))}</tr>"
                )
    out.append("</table><h2>Categories</h2><table><tr><th>category<th>scenarios<th>summary<th>smallest margin</tr>")
    for c in card["categories"]:
        out.append(
            f"<tr><td>{e(c['category'])}<td>{e(', '.join(c['scenarios']) or '-')}<td>{e(c['summary'])}"
            f"<td class=num>{e(c['margin_text'])}</tr>"
        )
    out.append("</table>")
    if card["capacity"]:
        out.append(
            "<h2>Capacity</h2><table><tr><th>sweep<th>vary<th>capacity<th>knee<th>breakpoint<th>bound by"
            "<th>target<th>required<th>headroom at target<th>status</tr>"
        )
        for cap in card["capacity"]:
            out.append(
                f"<tr><td>{e(cap['scenario'])}<br><small>{e(cap['sweep_id'])}</small><td>{e(cap['vary'])}"
                f"<td class=num>{'at least ' if cap['lower_bound'] else ''}{_n(cap['capacity'])}"
                f"<td class=num>{_n(cap['knee'])}<td class=num>{_n(cap['breakpoint'])}<td>{e(str(cap['binding'] or 'n/a'))}"
                f"<td class=num>{_n(cap['target'])}<td class=num>{_n(cap['required_load'])}"
                f"<td class=num>{_pct(cap['headroom_at_target'])}<td class='{e(cap['status'])}'>{e(cap['note'])}</tr>"
            )
        out.append("</table>")
    if card["limits"]:
        out.append("<h2>Launch limits</h2><table><tr><th>limit<th>status<th>verdicts checked<th>worst</tr>")
        for lim in card["limits"]:
            w = lim["worst"]
            worst = (
                f"{w['value_text']} ({w['margin_text']}) in {w['scenario']} {w['verdict']}, run {w['run_id']}"
                if w
                else "-"
            )
            out.append(
                f"<tr><td>{e(lim['key'])} {e(lim['expect'])}<td class='{e(lim['status'])}'>{e(lim['status'])}"
                f"<td class=num>{lim['checked']}<td>{e(worst)}</tr>"
            )
        out.append("</table>")
    out.append(f"<h2>Policy</h2><pre>{e(json.dumps(pol, indent=2))}</pre></body></html>")
    return "\n".join(out)


def write(card: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    js, page = out_dir / "scorecard.json", out_dir / "scorecard.html"
    js.write_text(json.dumps(card, indent=2) + "\n")
    page.write_text(render_html(card))
    return js, page
