"""A real run's report.html in a real browser: the flagship experiment through `deadair run`, then
its report opened in Debian's headless Chromium (Selenium, chromium-driver).

The page must load with no console error and fetch nothing (offline), and the chart must hold
this run's fault windows and per-second listener series, read from Plotly's own objects in the
page and compared with the journal. The screenshot is saved in the test's tmp dir and copied to
.deadair/artifacts/report-flagship.png (the path is printed in the log); the README's picture
(docs/report-flagship.png) is one of these.
"""

from __future__ import annotations

import shutil

import pytest
from browser import open_page, tools
from conftest import FLAGSHIP, ROOT, deadair

from chaos.checkers.states import STATES
from chaos.report.html import DIV_ID
from chaos.report.runfiles import load_run
from chaos.stack.compose import Stack

ARTIFACT = ROOT / ".deadair" / "artifacts" / "report-flagship.png"


def _say(request: pytest.FixtureRequest, line: str) -> None:
    """A line in the test log even when output is captured (CI reads it there)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    print(line)


def test_the_flagship_runs_report_opens_in_chromium_with_its_faults_and_listeners(
    stack: Stack, tmp_path, request: pytest.FixtureRequest
):
    tools()  # Chromium and chromium-driver, or skip (fail under DEADAIR_STRICT) before spending a run
    runs = tmp_path / "runs"
    proc = deadair("run", str(FLAGSHIP), "--journal-dir", str(runs))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    report = run / "report.html"
    assert f"report:  {report}" in proc.stdout, proc.stdout[-2000:]

    page = open_page(report.as_uri(), tmp_path / "report.png", DIV_ID)
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(page.screenshot, ARTIFACT)
    _say(
        request,
        f"report: {report} ({report.stat().st_size} bytes); screenshot: {page.screenshot}, copied to {ARTIFACT}",
    )

    errors = [m for m in page.console if m.get("level") in ("SEVERE", "ERROR")]
    assert errors == [], errors
    assert [u for u in page.resources if not u.startswith(("data:", "file:"))] == []  # offline
    chart = page.chart
    assert chart is not None and chart["drawn"] > 0 and chart["plotly"], chart

    rec = load_run(run / "journal.jsonl")
    faults = sorted(rec.history.faults.values(), key=lambda f: f.start)
    assert [f.fault for f in faults] == ["mic.cut"]
    bands = {
        (s["name"], round(s["x0"], 6), round(s["x1"], 6)) for s in chart["shapes"] if s["name"].startswith("fault ")
    }
    m0 = rec.history.method_start  # the chart's x is the method's clock (chaos.report.clock)
    assert m0 is not None
    assert bands == {
        (f"fault {f.occurrence} mic.cut mic", round(f.start - m0, 6), round(f.end - m0, 6)) for f in faults
    }

    counts = rec.states.counts()
    series = {t["meta"]["state"]: t["y"] for t in chart["traces"] if (t.get("meta") or {}).get("deadair") == "states"}
    assert set(series) == set(STATES)
    for state in STATES:
        assert series[state][:-1] == counts[state], state
    n = len(rec.history.listeners)
    assert n == 20
    # during the cut, listeners hear hold music (the verdicts say within 2 s): the chart shows it
    cut = faults[0]
    mid = int((cut.start + cut.end) / 2)
    assert series["hold"][mid] == n and series["live"][mid] == 0
    lanes = [t for t in chart["traces"] if (t.get("meta") or {}).get("deadair") == "lanes"]
    assert lanes and all(len(t["base"]) == len(t["x"]) == len(t["y"]) for t in lanes)

    assert "PASSED" in page.text and "hold_music.onset" in page.text and "In plain words" in page.text
    png = page.screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000
