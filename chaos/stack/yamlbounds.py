"""YAML composed within bounds: nesting, values and characters counted through aliases.

A few lines of YAML can name a value a billion times ("billion laughs") or nest 5,000 brackets;
PyYAML builds the first lazily and dies of recursion on the second. Both experiments and compose
files are read by users' hands and tools, so both are refused while they are composed, before a
single alias is expanded, at the node that crosses the bound. One accounting serves both readers
(chaos.language.positions and chaos.stack.composefile); each sets its own bounds.
"""

from __future__ import annotations

from typing import Any

import yaml


class LimitExceeded(yaml.MarkedYAMLError):
    """A bound crossed while composing, at the node that crosses it."""

    def __init__(self, problem: str, problem_mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=problem_mark)


class BoundedComposer:
    """A composer's compose_node, refusing nesting deeper than max_depth, an alias inside the value
    it names (a recursive structure), more than max_values values and more than max_chars
    characters of scalars once aliases are expanded. An alias costs what it names (its values, its
    characters, its depth), known because that value was composed before it. A mixin placed before
    a PyYAML loader; call start_bounds() from its __init__."""

    max_depth = 64
    max_values = 100_000
    max_chars = 1024 * 1024
    smaller = "a smaller document"  # what the error asks for: "expected a smaller experiment"

    anchors: dict[Any, yaml.Node]
    peek_event: Any

    def start_bounds(self) -> None:
        self._depth = 0
        self._values = 0
        self._chars = 0
        self._sizes: dict[int, tuple[int, int, int]] = {}  # id(node) -> (values, characters, levels)

    def _count(self, n: int, chars: int, mark: Any, what: str) -> None:
        self._values += n
        self._chars += chars
        if self._values > self.max_values:
            raise LimitExceeded(
                problem=f"{what} makes the document more than {self.max_values:,} values "
                f"(each alias counts as a copy of what it names); expected {self.smaller}",
                problem_mark=mark,
            )
        if self._chars > self.max_chars:
            raise LimitExceeded(
                problem=f"{what} makes the document's values more than {self.max_chars:,} characters "
                f"(each alias counts as a copy of what it names); expected {self.smaller}",
                problem_mark=mark,
            )

    def _too_deep(self, levels: int, mark: Any, what: str) -> None:
        if self._depth + levels > self.max_depth:
            raise LimitExceeded(
                problem=f"{what}nested more than {self.max_depth} levels deep (the document is level 1; a mapping, "
                "list or value is one level below what holds it"
                f"{', counting what aliases name' if what else ''}); expected a flatter document",
                problem_mark=mark,
            )

    def compose_node(self, parent: Any, index: Any) -> Any:
        event: Any = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:
                size = self._sizes.get(id(target))
                if size is None:
                    raise LimitExceeded(
                        problem=f"the alias *{event.anchor} is inside the value &{event.anchor} names: "
                        "a recursive structure; expected an alias to a value defined before it",
                        problem_mark=event.start_mark,
                    )
                self._too_deep(size[2], event.start_mark, f"the alias *{event.anchor} makes the document ")
                self._count(size[0], size[1], event.start_mark, f"the alias *{event.anchor}")
            return super().compose_node(parent, index)  # type: ignore[misc]
        self._too_deep(1, event.start_mark, "")
        scalar = isinstance(event, yaml.ScalarEvent)
        self._count(1, len(event.value) if scalar else 0, event.start_mark, "this value")
        self._depth += 1
        try:
            node = super().compose_node(parent, index)  # type: ignore[misc]
        finally:
            self._depth -= 1
        if isinstance(node, yaml.MappingNode):
            children = [c for pair in node.value for c in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        else:
            self._sizes[id(node)] = (1, len(node.value), 1)
            return node
        sizes = [self._sizes.get(id(c), (1, 0, 1)) for c in children]
        self._sizes[id(node)] = (
            1 + sum(s[0] for s in sizes),
            sum(s[1] for s in sizes),
            1 + max((s[2] for s in sizes), default=0),
        )
        return node
