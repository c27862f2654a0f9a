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
from chaos.stack.yamllines import EditorLines
from chaos.stack.yamltabs import TabTolerantSafeLoader

MAX_BYTES = 1024 * 1024
"""A compose file's size: far beyond any stack (a 500-service file is ~100 KB); with MAX_VALUES it
bounds a parse to seconds (199,000 values in 400 KB: 6.5 s on a loaded 2-core host)."""
MAX_VALUES = 200_000  # values once every alias is expanded: a compose file of 500 services has ~20,000
MAX_DEPTH = 64
MAX_CHARS = 1024 * 1024  # characters of text once every alias is expanded


class ComposeFileError(Exception):
    """A compose file that cannot be read, at the line and column (1-based; 0 when the whole file)."""

    def __init__(self, path: Path, line: int, column: int, message: str) -> None:
        super().__init__(f"{path}:{line}:{column}: {message}" if line else f"{path}: {message}")
        self.path, self.line, self.column, self.message = path, line, column, message


class Compose12Loader(BoundedComposer, TabTolerantSafeLoader):
    """Scalars as Compose v2 reads them: go-yaml v3 decoding into plain values (YAML 1.2 core, with
    go-yaml's own number rules). Only true/false are booleans (no `yes`/`on`), no base 60 (`22:22`
    stays a string), no dates, a null stays null; numbers are read as Go's strconv reads them once
    underscores are dropped (`1_000` is 1000, `0x1F`, `0o17`, `0b101`, and `017` octal as YAML 1.1's
    15). PyYAML's SafeLoader is YAML 1.1 and would change such values. Tabs as libyaml skips them;
    nesting, values and characters bounded through aliases; an anchor may be named again (the
    later one counts), as go-yaml allows."""

    max_depth = MAX_DEPTH
    max_values = MAX_VALUES
    max_chars = MAX_CHARS
    smaller = "a smaller compose file"

    def __init__(self, stream: str) -> None:
        TabTolerantSafeLoader.__init__(self, stream)
        self.start_bounds()

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        anchor = getattr(event, "anchor", None)
        if anchor is not None and not isinstance(event, yaml.AliasEvent):
            self.anchors.pop(anchor, None)  # PyYAML refuses a second &a; go-yaml (and so Compose) rebinds it
        return super().compose_node(parent, index)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """A value that cannot be built (`!!int abc`, `!!timestamp 2024-13-45`) is an error at its node."""
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            raise _UnbuildableValue(f"cannot read this value as its tag says ({exc})", node.start_mark) from None


class _UnbuildableValue(yaml.MarkedYAMLError):
    """A value whose explicit tag does not fit it, at its node."""

    def __init__(self, problem: str, problem_mark: Any) -> None:
        super().__init__(problem=problem, problem_mark=problem_mark)


_NUMBER_TAG = "tag:deadair,2026:go-number"  # resolved here, constructed as go-yaml would: int, float or text
_GO_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")  # go-yaml's yamlStyleFloat
_GO_INT = re.compile(r"^[-+]?(?:0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+|0[0-7]*|[1-9][0-9]*)$")  # ParseInt, base 0
_INT_RANGE = (-(2**63), 2**64 - 1)  # int64, then uint64: beyond both, go-yaml tries a float, then text

Compose12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag == "tag:yaml.org,2002:merge"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
Compose12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
Compose12Loader.add_implicit_resolver(  # go-yaml's table (.inf, -.inf, .nan) first, and `.5`
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)|\.[0-9]+(?:[eE][-+]?[0-9]+)?)$"),
    list("-+."),
)
Compose12Loader.add_implicit_resolver(  # what starts with a digit or a sign is tried as a number
    _NUMBER_TAG, re.compile(r"^[-+]?[0-9._][0-9A-Za-z_.+-]*$"), list("-+0123456789")
)
Compose12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]
)


def go_number(text: str) -> int | float | str:
    """A plain scalar that starts with a digit or a sign, as go-yaml v3 resolves it: underscores
    dropped, then Go's ParseInt (base from the prefix, a leading 0 octal) within int64 or uint64,
    then a YAML-style float, else the text itself."""
    plain = text.replace("_", "")
    if _GO_INT.match(plain):
        sign = -1 if plain[0] == "-" else 1
        digits = plain.lstrip("+-")
        base = {"x": 16, "o": 8, "b": 2}.get(digits[1:2].lower(), 8) if len(digits) > 1 and digits[0] == "0" else 10
        body = digits[2:] if base != 10 and digits[1:2].isalpha() else digits
        if base != 10 and len(body) > 64 or base == 10 and len(body) > 20:
            value = None  # far beyond uint64: no need to convert it to know
        else:
            value = sign * int(body or "0", base)
        if value is not None and _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            return value
    if _GO_FLOAT.match(plain):
        f = float(plain)
        if f not in (float("inf"), float("-inf")):  # Go's ParseFloat reports out of range: then text
            return f
    return text


def plain_reads_as_text(value: str) -> bool:
    """Whether Compose v2 reads this string, written as a plain scalar, back as the same string."""
    tag = Compose12Loader.resolve(Compose12Loader, yaml.ScalarNode, value, (True, False))  # type: ignore[arg-type]
    return tag == "tag:yaml.org,2002:str" or (tag == _NUMBER_TAG and isinstance(go_number(value), str))


Compose12Loader.add_constructor(_NUMBER_TAG, lambda loader, node: go_number(str(node.value)))
Compose12Loader.add_constructor("tag:yaml.org,2002:bool", lambda loader, node: node.value.lower() == "true")


@dataclass(frozen=True)
class ComposeFile:
    """A compose file's document (a mapping) and its node tree (for the line and column of a value)."""

    path: Path
    doc: dict[str, Any]
    node: yaml.Node
    lines: EditorLines  # a node's mark as an editor's line and column: lines.of(node.start_mark)


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
    lines = EditorLines(text)
    try:
        loader = Compose12Loader(text)  # its reader checks every character first
    except yaml.reader.ReaderError as exc:
        raise _bad_character(path, lines, exc) from None
    try:
        node = loader.get_single_node()
        doc = loader.construct_document(node) if node is not None else None
    except (LimitExceeded, _UnbuildableValue) as exc:
        raise ComposeFileError(path, *lines.of(exc.problem_mark), str(exc.problem)) from None
    except yaml.MarkedYAMLError as exc:  # one located line, not PyYAML's several
        line, col = lines.of(exc.problem_mark or exc.context_mark)
        raise ComposeFileError(path, line, col, f"YAML syntax: {exc.problem or exc}; expected a compose file") from None
    except yaml.reader.ReaderError as exc:
        raise _bad_character(path, lines, exc) from None
    except yaml.YAMLError as exc:
        raise ComposeFileError(path, 0, 0, f"YAML: {exc}; expected a compose file") from None
    except RecursionError:  # not reached within MAX_DEPTH; kept so that no traceback can escape
        raise ComposeFileError(
            path, 1, 1, f"nested more than {MAX_DEPTH} levels deep; expected a compose file"
        ) from None
    finally:
        loader.dispose()
    if doc is None or node is None:
        raise ComposeFileError(path, 1, 1, "is empty; expected a compose file (a mapping with services)")
    if not isinstance(doc, dict):
        raise ComposeFileError(path, 1, 1, f"is a {type(doc).__name__}, not a compose file (a mapping with services)")
    return ComposeFile(path, doc, node, lines)


def _bad_character(path: Path, lines: EditorLines, exc: yaml.reader.ReaderError) -> ComposeFileError:
    """A character YAML does not allow (a control character), at its place."""
    char = exc.character if isinstance(exc.character, str) else chr(exc.character)
    return ComposeFileError(
        path,
        *lines.at(exc.position),
        f"the character U+{ord(char):04X} is not allowed in YAML; expected printable text",
    )
