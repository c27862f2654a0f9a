"""Pass 1 of loading: YAML (or JSON) with the line and column of every value and key kept.

Every later problem is reported at `file:line:column`; duplicate keys, which PyYAML would
silently overwrite, are problems here.
"""

from __future__ import annotations

from typing import Any

import yaml

from chaos.errors import Problem

Path_ = tuple[Any, ...]


class Positions:
    """Line and column (1-based) of every value and every mapping key, by path."""

    def __init__(self) -> None:
        self.values: dict[Path_, tuple[int, int]] = {}
        self.keys: dict[Path_, tuple[int, int]] = {}
        self.overridden: dict[Path_, str] = {}  # path -> "--var KEY=VALUE" that set it

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


def load_yaml(text: str, file: str) -> tuple[Any, Positions, list[Problem]]:
    """Parse YAML (or JSON), keeping the position of every node; duplicate keys are problems."""
    pos = Positions()
    problems: list[Problem] = []
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problems.append(Problem(file, line, col, f"YAML syntax: {exc.problem or exc}"))
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
        pos.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for knode, vnode in node.value:
                key = build(knode, path + ("<key>",))
                if not isinstance(key, (str, int, float)) or isinstance(key, bool):
                    key = str(key)
                if key in out:
                    line, col = knode.start_mark.line + 1, knode.start_mark.column + 1
                    problems.append(Problem(file, line, col, f"duplicate key {key!r}"))
                pos.keys[path + (key,)] = (knode.start_mark.line + 1, knode.start_mark.column + 1)
                out[key] = build(vnode, path + (key,))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [build(child, path + (i,)) for i, child in enumerate(node.value)]
        try:
            return scalar_loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, OverflowError) as exc:
            problems.append(Problem(file, *pos.values[path], f"bad value: {exc}"))
            return None

    try:
        data = build(root, ())
    except RecursionError:
        problems.append(Problem(file, 1, 1, "the document is nested too deeply"))
        return None, pos, problems
    return data, pos, problems
