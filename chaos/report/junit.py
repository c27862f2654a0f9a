"""JUnit XML with the numbers: every verdict a property of its test case, so a CI system's test
view (and anything that reads JUnit) shows what listeners measured, not only passed or failed.

Property names (chaos.checkers.names): the verdict's stable name with its value (`repr` of the
float, `inf` when a listener never got there, `nan` with no data) and `<name>_outcome`: pass,
fail or unknown, as judged; `skipped` for a verdict over the would-be window of a fault that was
not injected (`--dry faults`, a step the operator skipped), which counts in no outcome and says
nothing of the system: such a verdict also gets `<name>_skipped` = `true`. Then `deadair_run_id`, `deadair_experiment_id`, `deadair_status`,
`deadair_exit_code`, `deadair_stack_fingerprint`, `deadair_journal`, `deadair_report` (the HTML
report beside the journal) and `deadair_summary`. A run of a repeated series also has
`deadair_repeat` ("1 of 3") and `<name>_repeats` ("flaky (1 of 2)", "pass (3 of 3)").

The pytest plugin adds the same properties to an experiment's item (pytest's --junitxml writes
them); `deadair run --junit-xml FILE` writes one testsuite with one test case per run.
"""

from __future__ import annotations

import math
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.checkers.names import named
from chaos.report.repeat_info import repeat_info

_FAILURES = ("failed", "not_steady", "aborted", "inconclusive", "stopped", "flaky")


@dataclass
class Case:
    """One run for the JUnit file: its summary (or what is known of a run that wrote none), the
    folder it wrote, and the terminal text of its verdicts."""

    summary: dict[str, Any]
    run_dir: Path | None
    text: str


def value_text(v: dict[str, Any]) -> str:
    raw = v.get("value")
    if raw is None:
        return "inf" if (v.get("summary") or {}).get("missing") else "nan"
    x = float(raw)
    return "inf" if math.isinf(x) else repr(x)


def properties(
    summary: dict[str, Any], run_dir: Path | None, repeat: dict[str, Any] | None = None
) -> list[tuple[str, str]]:
    """The properties of one run (see the module's docstring)."""
    props: list[tuple[str, str]] = []
    for v in named(list(summary.get("verdicts") or [])):
        props.append((v["name"], value_text(v)))
        if v.get("skipped"):  # not injected: its judged outcome is no pass or failure of the system
            props += [(f"{v['name']}_outcome", "skipped"), (f"{v['name']}_skipped", "true")]
            continue
        props.append((f"{v['name']}_outcome", str(v.get("outcome") or ("pass" if v.get("passed") else "fail"))))
    fp = summary.get("stack_fingerprint") or {}
    props += [
        ("deadair_run_id", str(summary.get("run_id", ""))),
        (
            "deadair_experiment_id",
            str(summary.get("experiment_id") or f"{summary.get('experiment')}::{summary.get('title')}"),
        ),
        ("deadair_status", str(summary.get("status", ""))),
        ("deadair_exit_code", str(summary.get("exit_code", ""))),
        ("deadair_stack_fingerprint", str(fp.get("id", ""))),
    ]
    if run_dir is not None:
        run_dir = run_dir.absolute()  # a reader of the file may not share the run's working directory
        props += [
            ("deadair_journal", str(run_dir / "journal.jsonl")),
            ("deadair_report", str(run_dir / "report.html")),
            ("deadair_summary", str(run_dir / "summary.json")),
        ]
        repeat = repeat or repeat_info(run_dir)
    if repeat:
        index = next((i for i, r in enumerate(repeat["runs"], 1) if r["run_id"] == summary.get("run_id")), None)
        props.append(("deadair_repeat", f"{index} of {repeat['ran']}"))
        props += [(f"{v['name']}_repeats", v["label"]) for v in repeat["verdicts"]]
    return props


def write_junit(
    path: Path,
    cases: list[Case],
    repeat: dict[str, Any] | None = None,
    regression: dict[str, Any] | None = None,
) -> Path:
    """One testsuite, one test case per run. A run that did not pass gets a failure (an error
    when deadair itself could not finish it) with the text of its verdicts; a regression against
    a baseline is a failure of the last run's case (its messages name the measures)."""
    suite = ET.Element("testsuite", name="deadair")
    if repeat:
        suite_props = ET.SubElement(suite, "properties")
        for name, value in (
            [
                ("deadair_repeat_status", str(repeat["status"])),
                ("deadair_repeat_exit_code", str(repeat["exit_code"])),
                ("deadair_repeat_flaky", ", ".join(repeat["flaky"])),
            ]
            + [(f"{v['name']}_repeats", v["label"]) for v in repeat["verdicts"]]
            + _spread(repeat)
        ):
            ET.SubElement(suite_props, "property", name=name, value=value)
    failures = errors = 0
    total = 0.0
    for i, case in enumerate(cases, 1):
        s = case.summary
        seconds = float((s.get("timings") or {}).get("total") or 0.0)
        total += seconds
        title = str(s.get("title") or "experiment")
        name = title + (f" [run {i} of {len(cases)}]" if len(cases) > 1 else "")
        tc = ET.SubElement(suite, "testcase", classname=_classname(s), name=name, time=f"{seconds:.3f}")
        props = ET.SubElement(tc, "properties")
        for pname, pvalue in properties(s, case.run_dir, repeat):
            ET.SubElement(props, "property", name=pname, value=pvalue)
        status, code = str(s.get("status")), s.get("exit_code")
        message = f"{status.upper().replace('_', ' ')} (exit {code})" + (f": {s['error']}" if s.get("error") else "")
        if status in ("error", "interrupted") or code in (3, 130, 143):
            ET.SubElement(tc, "error", message=message, type=status).text = case.text
            errors += 1
        elif status in _FAILURES or (code not in (0, None)):
            ET.SubElement(tc, "failure", message=message, type=status).text = case.text
            failures += 1
        elif regression and regression.get("regressions") and i == len(cases):
            lines = [r["message"] for r in regression["regressions"]]
            text = "\n".join(
                [f"regressed against baseline {regression['baseline']} ({regression['baseline_ref']})"] + lines
            )
            ET.SubElement(tc, "failure", message=f"REGRESSED: {lines[0]}", type="regression").text = text
            failures += 1
        if case.text:
            ET.SubElement(tc, "system-out").text = case.text
    started = next((c.summary.get("started") for c in cases if c.summary.get("started")), None)
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", "0")
    suite.set("time", f"{total:.3f}")
    suite.set("timestamp", str(started or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())))
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)
    return path


def _classname(summary: dict[str, Any]) -> str:
    """The experiment file as a dotted class name, as pytest names a file's tests."""
    exp_id = str(summary.get("experiment_id") or summary.get("experiment") or "deadair")
    return exp_id.rsplit("::", 1)[0].replace("/", ".")


def _spread(repeat: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for v in repeat["verdicts"]:
        for k in ("median", "min", "max"):
            x = v.get(k)
            out.append((f"{k}_{v['name']}", "nan" if x is None else ("inf" if x == "inf" else repr(float(x)))))
    return out


def write_series_junit(
    path: str | Path | None,
    cases: list[tuple[dict[str, Any], Path | None, str]],
    repeat: dict[str, Any] | None,
    regression: dict[str, Any] | None,
    code: int,
) -> int:
    """`deadair run --junit-xml FILE` (nothing without FILE). Returns the exit code: a file that
    cannot be written turns a pass (or an inconclusive run) into 3, as an unwritable journal does,
    so that CI never reads a missing report as a pass."""
    if not path or not cases:
        return code
    try:
        write_junit(Path(path), [Case(*c) for c in cases], repeat, regression)
    except OSError as exc:
        import sys

        print(f"deadair: could not write the JUnit file {path}: {exc}", file=sys.stderr)
        return 3 if code in (0, 4) else code
    return code
