"""What a run takes and what it gives back: its options, its result, its exit codes.

Here, below every other module of chaos.runner, so that each phase can name them without an
import cycle; `chaos.runner.run` re-exports them for callers.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from chaos.checkers.verdicts import Verdict
from chaos.faults.ledger import RollbackReport
from chaos.language.model import Experiment

EXIT_PASSED, EXIT_FAILED, EXIT_INVALID, EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143
EXIT_INCONCLUSIVE = 4  # nothing failed, but a verdict could not be told from the instrument's own error
EXIT_STOPPED = 5  # an operator pulled the kill switch (a key, or SIGUSR1): everything rolled back at once


@dataclass
class RunOptions:
    keep_stack: bool = False  # leave a stack this run started running afterwards
    journal_dir: Path = Path(".deadair/runs")
    project: str | None = None  # compose project name (default deadair-<stack>)
    progress: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)
    # Dry runs (chaos.runner.run): "faults" runs everything but injects no fault and runs no method
    # action (each occurrence recorded as `fault.skipped`); "all" only plans (no engine call).
    dry: str | None = None
    step: bool = False  # game-day step mode: the operator confirms each fault before it is injected (needs `keys`)
    keys: int | None = None  # a file descriptor to read the operator's keys from (a terminal: cbreak); None: no keys
    user: str | None = None  # who is at the keyboard (default: the login user), recorded if they stop the run
    live_status: str = "off"  # "live": one status line redrawn in place; "lines": a plain line now and then; "off"
    status_stream: TextIO | None = None  # where the status goes (default sys.stderr)
    # The distributed swarm: a Ray cluster's address (None: with listeners.workers, a local
    # cluster the run starts and stops); given alone, it means listeners.workers: auto
    cluster: str | None = None


@dataclass
class RunResult:
    experiment: Experiment
    run_id: str
    status: str  # passed, failed, inconclusive, not_steady, aborted, stopped, interrupted, error, planned (--dry all)
    exit_code: int
    verdicts: list[Verdict] = field(default_factory=list)
    journal: Path | None = None
    summary: Path | None = None
    report: Path | None = None  # report.html beside the journal, written by the entry points (chaos.report.html)
    error: str | None = None
    rollback: RollbackReport | None = None
    timings: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    stack_started: bool = False  # this run started the stack (and, unless kept, took it down)
    abort: dict[str, Any] | None = None
    fingerprint: dict[str, Any] | None = None  # the stack that ran (chaos.stack.fingerprint): images, compose, files
    dry: str | None = None  # the run was a dry run: "faults" (nothing injected) or "all" (planned only)
    stopped: dict[str, Any] | None = None  # the kill switch: who pulled it (by), how (key, signal), when (t)
    skipped: list[str] = field(default_factory=list)  # fault occurrences not injected (dry run, step mode)

    @property
    def passed(self) -> bool:
        return self.status == "passed"


class Interrupted(BaseException):
    """A signal, raised where no event loop handles it. A BaseException, so that the catch-alls
    that keep a rollback going (or turn a bug into exit 3) never swallow it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class Stopped(BaseException):
    """The kill switch, raised where no event loop handles it (the stack still starting). A
    BaseException for the same reason as Interrupted."""


class Aborted(Exception):
    """A guardrail tripped."""
