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
from typing import Any

from chaos.checkers.verdicts import Verdict
from chaos.faults.ledger import RollbackReport
from chaos.language.model import Experiment

EXIT_PASSED, EXIT_FAILED, EXIT_INVALID, EXIT_ENVIRONMENT, EXIT_INTERRUPTED, EXIT_TERMINATED = 0, 1, 2, 3, 130, 143
EXIT_INCONCLUSIVE = 4  # nothing failed, but a verdict could not be told from the instrument's own error


@dataclass
class RunOptions:
    keep_stack: bool = False  # leave a stack this run started running afterwards
    journal_dir: Path = Path(".deadair/runs")
    project: str | None = None  # compose project name (default deadair-<stack>)
    progress: Callable[[str], None] = lambda msg: print(msg, file=sys.stderr, flush=True)


@dataclass
class RunResult:
    experiment: Experiment
    run_id: str
    status: str  # passed, failed, inconclusive, not_steady, aborted, interrupted, error
    exit_code: int
    verdicts: list[Verdict] = field(default_factory=list)
    journal: Path | None = None
    summary: Path | None = None
    error: str | None = None
    rollback: RollbackReport | None = None
    timings: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    stack_started: bool = False  # this run started the stack (and, unless kept, took it down)
    abort: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return self.status == "passed"


class Interrupted(BaseException):
    """A signal, raised where no event loop handles it. A BaseException, so that the catch-alls
    that keep a rollback going (or turn a bug into exit 3) never swallow it."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


class Aborted(Exception):
    """A guardrail tripped."""
