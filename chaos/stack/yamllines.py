"""Lines and columns as editors and `grep -n` count them.

YAML's marks also break lines at U+0085, U+2028 and U+2029, so a problem reported at a YAML
mark would be a line off after each; both readers (experiments and compose files) report here.
"""

from __future__ import annotations

import bisect
import re
from typing import Any

_LINE_BREAK = re.compile("\r\n|\r|\n")  # an editor's and grep -n's, not YAML's (which adds U+0085, U+2028, U+2029)


class EditorLines:
    """Line and column (1-based) of a character index, lines counted as editors count them: YAML's
    marks also break lines at U+0085, U+2028 and U+2029, and would be a line off after each."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.starts = [0, *(m.end() for m in _LINE_BREAK.finditer(text))]

    def at(self, index: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, index)
        start = self.starts[line - 1]
        return line, index - start + 1 - self.text.count("\ufeff", start, index)  # a BOM takes no column

    def of(self, mark: Any) -> tuple[int, int]:
        return self.at(mark.index) if mark is not None else (1, 1)
