"""The one reader of compose files: as Docker Compose reads them, within bounds.

Every part of deadair that reads a compose file (the stack definition, its fingerprint, the
image builds of set-up, `deadair init`) reads it here, so that none of them can see a value the
others do not: Compose v2 reads YAML 1.2 scalars (`22:22` and `yes` stay strings, `0o17` is
octal), skips the tabs libyaml skips, and a hostile file (too large, nested past reason, an alias
bomb, not UTF-8) is a located error, never a traceback nor a minute of CPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from chaos.stack.yamlbounds import BoundedComposer, LimitExceeded
from chaos.stack.yamltabs import TabTolerantSafeLoader

MAX_BYTES = 1024 * 1024
"""A compose file's size: far beyond any stack, small enough to parse within a second."""
MAX_VALUES = 200_000  # values once every alias is expanded: a compose file of 500 services has ~20,000
MAX_DEPTH = 64
MAX_CHARS = 1024 * 1024  # characters of text once every alias is expanded


class ComposeFileError(Exception):
    """A compose file that cannot be read, at the line and column (1-based; 0 when the whole file)."""

    def __init__(self, path: Path, line: int, column: int, message: str) -> None:
        super().__init__(f"{path}:{line}:{column}: {message}" if line else f"{path}: {message}")
        self.path, self.line, self.column, self.message = path, line, column, message


class Compose12Loader(BoundedComposer, TabTolerantSafeLoader):
    """Scalars as Compose v2 reads them (YAML 1.2 core schema): only true/false are booleans, no
    base-60 (`22:22` stays a string), no `yes`/`on`, no dates, `0o17` is octal, `017` decimal, and a
    null stays null. PyYAML's SafeLoader is YAML 1.1 and would change such values. Tabs as libyaml
    skips them; nesting, values and characters bounded through aliases."""

    max_depth = MAX_DEPTH
    max_values = MAX_VALUES
    max_chars = MAX_CHARS
    smaller = "a smaller compose file"

    def __init__(self, stream: str) -> None:
        TabTolerantSafeLoader.__init__(self, stream)
        self.start_bounds()


Compose12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag == "tag:yaml.org,2002:merge"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Compose12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
Compose12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), list("-+0123456789")
)
Compose12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)
Compose12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)


def _int12(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = str(loader.construct_scalar(node))
    return int(text, 0) if text.startswith(("0o", "0x")) else int(text, 10)


Compose12Loader.add_constructor("tag:yaml.org,2002:int", _int12)
Compose12Loader.add_constructor("tag:yaml.org,2002:bool", lambda loader, node: node.value.lower() == "true")


@dataclass(frozen=True)
class ComposeFile:
    """A compose file's document (a mapping) and its node tree (for the line and column of a value)."""

    path: Path
    doc: dict[str, Any]
    node: yaml.Node


def read_compose_file(path: Path) -> ComposeFile:
    """The compose file at path as Compose reads it; anything else (unreadable, too large, not
    UTF-8, not YAML, past the bounds, not a mapping) is a ComposeFileError at its place."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise ComposeFileError(path, 0, 0, f"more than {MAX_BYTES:,} bytes; expected a compose file")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ComposeFileError(path, 0, 0, f"cannot read the compose file: {exc}") from None
    loader = Compose12Loader(text)
    try:
        node = loader.get_single_node()
        doc = loader.construct_document(node) if node is not None else None
    except LimitExceeded as exc:
        at = exc.problem_mark
        line, col = (at.line + 1, at.column + 1) if at is not None else (1, 1)
        raise ComposeFileError(path, line, col, str(exc.problem)) from None
    except yaml.MarkedYAMLError as exc:  # one located line, not PyYAML's several
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        raise ComposeFileError(path, line, col, f"YAML syntax: {exc.problem or exc}; expected a compose file") from None
    except yaml.YAMLError as exc:  # the reader's: a character YAML does not allow
        raise ComposeFileError(path, 0, 0, f"YAML: {exc}; expected a compose file") from None
    except RecursionError:  # not reached within MAX_DEPTH; kept so that no traceback can escape
        raise ComposeFileError(
            path, 1, 1, f"nested more than {MAX_DEPTH} levels deep; expected a compose file"
        ) from None
    finally:
        loader.dispose()
    if not isinstance(doc, dict) or node is None:
        raise ComposeFileError(path, 1, 1, f"is {type(doc).__name__}, not a compose file (a mapping with services)")
    return ComposeFile(path, doc, node)
