"""Pass 1 of loading: YAML (or JSON) with the line and column of every value and key kept.

Every later problem is reported at `file:line:column`; duplicate keys, which PyYAML would
silently overwrite, are problems here. So are the limits (chaos.language.limits) that YAML itself
can be used to cross: the file's size, checked before parsing, and nesting and aliases, checked
while the YAML is composed, before a single alias is expanded (a "billion laughs" is refused in
milliseconds, and 5,000 nested brackets never reach Python's recursion limit).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from chaos.errors import Problem
from chaos.language.limits import MAX_DEPTH, MAX_DOCUMENT_CHARS, MAX_FILE_BYTES, MAX_VALUES
from chaos.stack.yamlbounds import BoundedComposer, LimitExceeded
from chaos.stack.yamllines import EditorLines
from chaos.stack.yamltabs import TabTolerantSafeLoader

Path_ = tuple[Any, ...]
_SURROGATE = re.compile("[\ud800-\udfff]")


class Positions:
    """Line and column (1-based) of every value and every mapping key, by path."""

    def __init__(self) -> None:
        self.values: dict[Path_, tuple[int, int]] = {}
        self.keys: dict[Path_, tuple[int, int]] = {}
        self.overridden: dict[Path_, str] = {}  # path -> "--var KEY=VALUE" that set it
        self.rejected: set[Path_] = set()  # values a pass has reported: later passes skip them

    def reject(self, path: Path_) -> None:
        """A pass reported this value: later passes neither judge it nor report it again."""
        self.rejected.add(tuple(path))

    def is_rejected(self, path: Path_) -> bool:
        """Whether this value, or one that contains it, has been reported already."""
        p = tuple(path)
        return any(p[:i] in self.rejected for i in range(len(p) + 1))

    def origin(self, path: Path_, file: str) -> tuple[str, int, int] | None:
        """(label, 0, 0) when a --var override set this path or one of its parents."""
        for i in range(len(path), 0, -1):
            if path[:i] in self.overridden:
                return self.overridden[path[:i]], 0, 0
        return None

    def problem(self, file: str, path: Path_, message: str, key: bool = False) -> Problem:
        where = self.origin(tuple(path), file)
        if where:
            return Problem(where[0], 0, 0, message)
        return Problem(file, *self.of(path, key=key), message)

    def of(self, path: Path_, key: bool = False) -> tuple[int, int]:
        table = self.keys if key else self.values
        p = tuple(path)
        while p:
            if p in table:
                return table[p]
            if p in self.values:
                return self.values[p]
            p = p[:-1]
        return self.values.get((), (1, 1))


class _PythonLoader(BoundedComposer, TabTolerantSafeLoader):
    """PyYAML's own parser (its messages for broken YAML are the clearer ones), with libyaml's
    rule for tabs between tokens, so that `key:\tvalue` or `[\t1.5]` load as Compose loads them,
    within chaos.language.limits' bounds."""

    max_depth = MAX_DEPTH
    max_values = MAX_VALUES
    max_chars = MAX_DOCUMENT_CHARS
    smaller = "a smaller experiment"

    def __init__(self, stream: str) -> None:
        TabTolerantSafeLoader.__init__(self, stream)
        self.start_bounds()


def _compose(text: str) -> Any:
    """The document's node graph, within the limits, by PyYAML's own (pure-Python) parser, always:
    libyaml, where PyYAML was built with it, is four times faster but does not agree on what is
    valid (a byte order mark after line 1 passes one and not the other; tabs agree since
    chaos.stack.yamltabs), and whether a file is
    valid may not depend on how PyYAML was built. MAX_FILE_BYTES is set so that this parser stays
    within seconds (chaos.language.limits)."""
    loader = _PythonLoader(text)  # its reader refuses control characters already
    try:
        return loader.get_single_node()
    finally:
        loader.dispose()


def size_problem(text: str, file: str) -> Problem | None:
    """The file is larger than MAX_FILE_BYTES (checked before anything parses it)."""
    if len(text) <= MAX_FILE_BYTES // 4 or len(text.encode("utf-8", "surrogatepass")) <= MAX_FILE_BYTES:
        return None
    return Problem(file, 0, 0, too_large(len(text.encode("utf-8", "surrogatepass"))))


def too_large(size: int) -> str:
    return (
        f"the file is {size:,} bytes, more than the limit of {MAX_FILE_BYTES:,} "
        "(an experiment is a few KB); expected a smaller experiment file"
    )


def load_yaml(text: str, file: str) -> tuple[Any, Positions, list[Problem]]:
    """Parse YAML (or JSON), keeping the position of every node; duplicate keys are problems."""
    pos = Positions()
    problems: list[Problem] = []
    if (big := size_problem(text, file)) is not None:
        return None, pos, [big]
    lines = EditorLines(text)
    try:
        root = _compose(text)
    except LimitExceeded as exc:
        line, col = lines.of(exc.problem_mark)
        problems.append(Problem(file, line, col, str(exc.problem)))
        return None, pos, problems
    except RecursionError:  # not reached within MAX_DEPTH; kept so that no traceback can escape
        problems.append(Problem(file, 1, 1, f"nested too deeply; expected at most {MAX_DEPTH} levels"))
        return None, pos, problems
    except yaml.MarkedYAMLError as exc:
        line, col = lines.of(exc.problem_mark or exc.context_mark)
        problems.append(Problem(file, line, col, f"YAML syntax: {exc.problem or exc}"))
        return None, pos, problems
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow: at its place, on one line
        line, col = lines.at(exc.position)
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        problems.append(
            Problem(
                file,
                line,
                col,
                f"the character U+{ord(char):04X} is not allowed in YAML; expected printable text "
                "(write it as an escape such as \\t inside double quotes)",
            )
        )
        return None, pos, problems
    except yaml.YAMLError as exc:
        problems.append(Problem(file, 1, 1, f"YAML: {exc}"))
        return None, pos, problems
    if root is None:
        problems.append(
            Problem(file, 1, 1, "the file is empty; expected an experiment (a mapping with title and method)")
        )
        return None, pos, problems
    scalar_loader = yaml.SafeLoader("")

    def build(node: yaml.Node, path: Path_) -> Any:
        pos.values[path] = lines.of(node.start_mark)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for knode, vnode in node.value:
                if knode.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: one problem, the mapping skipped
                    line, col = lines.of(knode.start_mark)
                    problems.append(
                        Problem(
                            file,
                            line,
                            col,
                            "a merge key (<<) is not supported in an experiment; "
                            "expected the keys written out (or a variable for a repeated value)",
                        )
                    )
                    pos.reject(path)
                    continue
                key = build(knode, path + ("<key>",))
                if not isinstance(key, (str, int, float)) or isinstance(key, bool):
                    key = str(key)
                if key in out:
                    line, col = lines.of(knode.start_mark)
                    problems.append(Problem(file, line, col, f"duplicate key {key!r}"))
                pos.keys[path + (key,)] = lines.of(knode.start_mark)
                out[key] = build(vnode, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [build(child, path + (i,)) for i, child in enumerate(node.value)]
        try:
            value = scalar_loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            problems.append(Problem(file, *pos.values[path], f"bad value: {exc}"))
            pos.reject(path)
            return None
        if isinstance(value, str) and (lone := _SURROGATE.search(value)):  # "\ud800": not a character
            problems.append(
                Problem(
                    file,
                    *pos.values[path],
                    f"bad value: the escape \\u{ord(lone.group()):04x} is half of a UTF-16 surrogate pair, "
                    "not a character; expected text",
                )
            )
            pos.reject(path)
            return "?"
        return value

    try:
        data = build(root, ())
    except RecursionError:
        problems.append(Problem(file, 1, 1, "the document is nested too deeply"))
        return None, pos, problems
    return data, pos, problems
