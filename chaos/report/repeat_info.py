"""What a run's folder says about the repeated series it belongs to (`deadair run --repeat N`).

chaos.results writes the series' summary beside the runs and a `repeat.json` pointer in each
run's folder; this reads them back for what a person reads (JUnit, the HTML report) without
importing chaos.results (the two packages are independent layers).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def repeat_info(run_dir: Path) -> dict[str, Any] | None:
    """The repeat summary of the series this run belongs to, with `index` (1-based) and `of`
    added, or None for a run that was not repeated (or whose series summary is gone).

    Each entry of its `verdicts` has `name` (the verdict's stable name), `state` (pass, fail,
    unknown or flaky), `label` ("flaky (1 of 2)": repeats where it did not pass, of those where
    it was judged), `median`, `min`, `max` (of its value; "inf" when a listener never got there)
    and `outcomes` (per run, in order). `flaky` lists the names of the flaky ones."""
    folder = run_dir if run_dir.is_dir() else run_dir.parent
    try:
        pointer = json.loads((folder / "repeat.json").read_text())
        summary = json.loads((folder.parent / Path(pointer["summary"]).name).read_text())
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {**summary, "index": pointer.get("index"), "of": pointer.get("of")}
