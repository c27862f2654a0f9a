"""Output streams that survive their reader leaving (`deadair ... | head -2`, `| grep -q`, a pager
closed early): the command carries on to its own end and exit code, writing nothing more."""

from __future__ import annotations

import io
from typing import TextIO


class ClosedPipeTolerant(io.TextIOBase):
    """stdout that survives its reader leaving (`| head -2`, `| grep -q`, a pager closed early).

    The first write or flush that meets a closed pipe points stdout at /dev/null and the command
    goes on: a run still reverts its faults and stores its results, and the exit code stays the
    command's own (a verdict, `stack status`'s health), so `set -o pipefail` still means something.
    Exiting 141 (as if killed by SIGPIPE) would hide that and skip the command's own cleanup."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._closed_pipe = False

    def _lost(self) -> None:
        import os

        self._closed_pipe = True
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
        except (OSError, ValueError):  # no descriptor to redirect: drop what is written from now on
            pass

    def write(self, text: str) -> int:
        if not self._closed_pipe:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._lost()
        return len(text)

    def flush(self) -> None:
        if not self._closed_pipe:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._lost()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._stream.encoding
