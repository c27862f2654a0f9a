"""Errors that end a run, each carrying the exit code the CLI returns for it.

Exit codes (documented in the README): 0 passed, 1 a hypothesis failed,
2 invalid experiment, 3 environment error, 130 interrupted (143 on SIGTERM).
"""

from __future__ import annotations

from dataclasses import dataclass, field


class DeadairError(Exception):
    """Base of every error deadair reports to a user instead of a traceback."""

    exit_code = 1


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an experiment file, located as `file:line:column`."""

    file: str
    line: int  # 1-based; 0 when the whole file is meant
    column: int  # 1-based; 0 when unknown
    message: str
    last: bool = field(default=False, compare=False)  # "... and N more problems": printed after the rest

    def __str__(self) -> str:
        if self.line and self.column:
            return f"{self.file}:{self.line}:{self.column}: {self.message}"
        if self.line:
            return f"{self.file}:{self.line}: {self.message}"
        return f"{self.file}: {self.message}"


class ExperimentError(DeadairError):
    """An experiment is invalid. Carries every problem found, not only the first."""

    exit_code = 2

    def __init__(self, problems: list[Problem]):
        self.problems = sorted(problems, key=lambda p: (p.last, p.file, p.line, p.column))
        super().__init__("\n".join(str(p) for p in self.problems))


class EnvironmentNotReady(DeadairError):
    """No engine, no image, no Toxiproxy: the message says what to run."""

    exit_code = 3


class FaultError(DeadairError):
    """A fault could not be applied, reverted or verified: the stack may not be as declared."""

    exit_code = 3


class TargetError(DeadairError):
    """A fault or flood aimed at something that is not part of the stack."""

    exit_code = 2
