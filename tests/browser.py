"""A real browser for tests: Debian's Chromium, headless, driven by Selenium through Debian's
chromium-driver (scripts/test installs both). No browser is downloaded: Selenium is pointed at
the system's chromedriver and Chromium binaries.

Where either is missing the test is skipped, except under DEADAIR_STRICT=1 (CI), where it fails:
a report never opened in a browser must not pass there.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = ("chromium", "chromium-browser")
DRIVER = ("chromedriver",)
PAGE_TIMEOUT = 60  # seconds to load a page of about 5 MB and draw its chart


def _which(names: tuple[str, ...]) -> str | None:
    return next((p for p in map(shutil.which, names) if p), None)


def tools() -> tuple[str, str]:
    chromium, driver = _which(CHROMIUM), _which(DRIVER)
    if chromium and driver:
        return chromium, driver
    message = "Chromium or chromium-driver is missing (scripts/test installs them on Debian)"
    if os.environ.get("DEADAIR_STRICT"):
        pytest.fail(message + "; CI does not skip this test")
    pytest.skip(message)


@dataclass
class Page:
    console: list[dict[str, Any]]  # the browser's log: level, message
    chart: dict[str, Any]  # what the chart holds, read from Plotly's own objects in the page
    resources: list[str]  # every resource the page fetched (offline: none but data: and file:)
    text: str  # the page's visible text
    screenshot: Path


# Read from the page: the chart's traces and shapes as Plotly holds them after drawing.
CHART_JS = """
const gd = document.getElementById(arguments[0]);
if (!gd || !gd.data || !gd._fullLayout) { return null; }
return {
  drawn: gd.querySelectorAll('.main-svg').length,
  traces: gd.data.map(t => ({name: t.name, type: t.type, meta: t.meta || null,
                            x: Array.from(t.x || []), y: Array.from(t.y || []),
                            base: t.base ? Array.from(t.base) : null})),
  shapes: (gd.layout.shapes || []).map(s => ({name: s.name || '', x0: s.x0, x1: s.x1, type: s.type})),
  plotly: window.Plotly ? window.Plotly.version : null,
};
"""


def open_page(url: str, screenshot: Path, div_id: str, width: int = 1400) -> Page:
    """Load a page in headless Chromium, wait for the chart, read it, and save a full-page screenshot."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    chromium, driver_path = tools()
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},1000",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    try:
        driver.set_page_load_timeout(PAGE_TIMEOUT)
        driver.set_script_timeout(PAGE_TIMEOUT)
        driver.get(url)
        WebDriverWait(driver, PAGE_TIMEOUT).until(
            lambda d: d.execute_script(
                "const g = document.getElementById(arguments[0]); return !!(g && g._fullLayout && g.querySelector('.main-svg'));",
                div_id,
            )
        )
        chart = driver.execute_script(CHART_JS, div_id)
        resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name);")
        text = driver.execute_script("return document.body.innerText;")
        height = driver.execute_script("return document.documentElement.scrollHeight;")
        driver.set_window_size(width, min(int(height) + 40, 6000))
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
        console = driver.get_log("browser")
    finally:
        driver.quit()
    return Page(console, chart, resources, text, screenshot)
