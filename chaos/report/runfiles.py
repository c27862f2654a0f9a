"""A finished run as its folder holds it: the journal (the timeline) and the summary beside it.

Reports are rebuilt from these files alone: nothing is re-run, and nothing is re-judged (the
verdicts and the rollback's outcome are the summary's; everything drawn is the journal's).
A RUN is named by its folder, its journal's path, or its run id under a journals folder.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.checkers.history import History
from chaos.checkers.states import ListenerStates, listener_states
from chaos.errors import DeadairError
from chaos.runner.summary_shape import shape_problem
from chaos.timeline import Event

JOURNAL, SUMMARY, REPORT = "journal.jsonl", "summary.json", "report.html"


class RunNotFound(DeadairError):
    """The RUN named is not a run folder, a journal or a run id; or its journal is unreadable."""

    exit_code = 2


@dataclass
class RunRecord:
    """What a run left behind, read and indexed for a report."""

    journal: Path
    header: dict[str, Any]  # the journal's first line: wall time, seed, versions, plan
    events: list[Event]
    summary: dict[str, Any] | None  # None: the run left no summary (then no verdict is shown as met)
    repeat: dict[str, Any] | None = None  # the series it belongs to (`--repeat N`), if any
    history: History = field(init=False)
    states: ListenerStates = field(init=False)

    def __post_init__(self) -> None:
        self.history = History(self.events)
        self.states = listener_states(self.history)

    @property
    def folder(self) -> Path:
        return self.journal.parent

    @property
    def title(self) -> str:
        return str(self.header.get("title") or (self.summary or {}).get("title") or self.folder.name)

    @property
    def run_id(self) -> str:
        return str(self.header.get("run_id") or self.folder.name)

    @property
    def status(self) -> str:
        return str(self.summary.get("status", "unknown")) if self.summary else "unknown"

    @property
    def verdicts(self) -> list[dict[str, Any]]:
        return list((self.summary or {}).get("verdicts") or [])

    def of_kind(self, *kinds: str) -> list[Event]:
        return [e for e in self.history.events if e.kind in kinds]


def find_run(run: str, journal_dir: Path) -> Path:
    """The journal of RUN: a run folder, a journal's path, or a run id under `journal_dir`."""
    p = Path(run)
    for candidate in (p / JOURNAL, p, journal_dir / run / JOURNAL):
        if candidate.is_file():
            return candidate
    raise RunNotFound(
        f"no run {run!r}: expected a run folder (holding {JOURNAL}), a journal's path, or a run id under {journal_dir}"
    )


def load_run(journal: Path) -> RunRecord:
    """Read a journal and the summary beside it; a line that is not a journal event is an error
    located as `file:line`, never a traceback."""
    try:
        lines = journal.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise RunNotFound(f"{journal}: cannot read the journal: {exc}") from None
    header: dict[str, Any] = {}
    events: list[Event] = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
            ev = Event.from_json(obj)
        except (ValueError, KeyError, TypeError) as exc:
            raise RunNotFound(
                f"{journal}:{n}: not a deadair journal event ({exc}); expected a JSON object with t and kind"
            ) from None
        if ev.kind == "run.origin":
            header = obj
        else:
            events.append(ev)
    if not header:
        raise RunNotFound(f"{journal}:1: no run.origin line; expected the journal of a deadair run")
    summary = None
    path = journal.parent / SUMMARY
    if path.is_file():
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise RunNotFound(f"{path}: not a readable summary ({exc})") from None
        problem = shape_problem(summary)
        if problem:
            raise RunNotFound(f"{path}: not a deadair summary: {problem}")
    from chaos.report.repeat_info import repeat_info

    return RunRecord(journal, header, events, summary, repeat_info(journal.parent))
