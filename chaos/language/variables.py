"""Pass 2 of loading: variables. `--var KEY=VALUE` overrides first, then `${name}` replaced by
the values declared under `vars` (`${links.NAME}`, a link's host URL, stays for run time).

A variable may use others (`vars: {base: 2s, at: "${base}"}`); variables that use each other are
a cycle, reported at the variable (`variable cycle: a -> b -> a`), and a value that uses one
is not judged again by later passes. Substitution is bounded (chaos.language.limits): a variable
may not grow past MAX_VARIABLE_CHARS (`a: ${b}${b}`, `b: ${c}${c}`, ... doubles at each level)
nor the document by more than MAX_EXPANDED_CHARS, both measured before a string is built.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterator
from typing import Any

import yaml

from chaos.errors import ExperimentError, Problem
from chaos.language.limits import MAX_EXPANDED_CHARS, MAX_VARIABLE_CHARS
from chaos.language.positions import Path_, Positions
from chaos.language.schema import schema

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")


def shown(raw: str, at_most: int = 40) -> str:
    """A --var's value as a message names it: a 70,000-character value is not printed whole."""
    return raw if len(raw) <= at_most else f"{raw[:at_most]}... ({len(raw):,} characters)"


def apply_overrides(data: dict, overrides: dict[str, str], pos: Positions) -> list[Problem]:
    """--var KEY=VALUE: a declared variable, or a key of the experiment by its dotted path
    (missing mappings on the way are created: windows.gate=1s works without a windows key)."""
    problems = []
    variables = data.get("vars") if isinstance(data.get("vars"), dict) else None
    for key, raw in overrides.items():
        where = f"--var {key}={shown(raw)}"
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, (dict, list)) or value is None:
            value = raw
        if variables is not None and key in variables:
            variables[key] = value
            pos.overridden[("vars", key)] = where  # a problem with it is the --var's
            continue
        parts: list[Any] = [int(p) if p.isdigit() else p for p in key.split(".")]
        node: Any = data
        ok = len(parts) > 1 or key in schema()["properties"]  # a bare name must be a variable or a top key
        for part in parts[:-1] if ok else []:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, dict) and not isinstance(part, int):
                node[part] = {}
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
            else:
                ok = False
                break
        last = parts[-1]
        if (
            ok
            and isinstance(node, dict)
            and not isinstance(last, int)
            or ok
            and isinstance(node, list)
            and isinstance(last, int)
            and last < len(node)
        ):
            node[last] = value
            pos.overridden[tuple(parts)] = where
        else:
            declared = ", ".join(variables) if variables else "none"
            problems.append(
                Problem(where, 0, 0, f"no variable {key!r} (declared: {declared}) and no key {key!r} in the experiment")
            )
    return problems


def _uses(value: Any) -> list[str]:
    """The variables a value uses (not ${links.NAME}: a link's URL is known at run time)."""
    if not isinstance(value, str) or "${" not in value:
        return []
    return [n for n in _VAR.findall(value) if not n.startswith("links.")]


def _substituted_length(value: str, variables: dict[str, Any]) -> int:
    """The length `value` will have once the variables it uses are substituted."""
    return len(value) + sum(
        len(str(variables[m.group(1)])) - len(m.group(0)) for m in _VAR.finditer(value) if m.group(1) in variables
    )


def _substitute(value: str, variables: dict[str, Any]) -> Any:
    whole = _VAR.fullmatch(value)
    if whole and whole.group(1) in variables:
        return variables[whole.group(1)]  # the whole value: keeps its type (a number stays one)
    return _VAR.sub(lambda m: str(variables[m.group(1)]) if m.group(1) in variables else m.group(0), value)


def resolve_variables(declared: dict[Any, Any], pos: Positions, file: str) -> tuple[dict[str, Any], list[Problem]]:
    """Every variable with the variables it uses substituted; a variable in a cycle, using an
    undefined one, or too long is a problem at the variable and is left out (so that its uses
    are not reported again). Depth-first without recursion: a chain of thousands is no trouble,
    and each variable and each use is looked at once."""
    problems: list[Problem] = []
    resolved: dict[str, Any] = {}
    bad: set[Any] = set()

    def drop(name: Any, message: str | None = None) -> None:
        bad.add(name)
        pos.reject(("vars", name))
        if message:
            problems.append(pos.problem(file, ("vars", name), message))

    chain: list[_Resolving] = []  # each variable uses the next; empty between the declared ones
    on_chain: set[Any] = set()

    def enter(name: Any) -> None:
        missing = [u for u in _uses(declared[name]) if u not in declared]
        if missing:
            hint = difflib.get_close_matches(missing[0], [str(k) for k in declared], n=1)
            did = f" (did you mean ${{{hint[0]}}}?)" if hint else ""
            drop(name, f"variable {name} uses ${{{missing[0]}}}, which is not declared under vars{did}")
            return
        chain.append(_Resolving(name, iter(_uses(declared[name]))))
        on_chain.add(name)

    for first in declared:
        if first not in resolved and first not in bad:
            enter(first)
        while chain:
            top = chain[-1]
            if top.name in bad or (top.waiting is not None and top.waiting in bad):
                if top.name not in bad:
                    drop(top.name)  # it uses a variable already reported
                chain.pop()
                on_chain.discard(top.name)
                continue
            top.waiting = next((u for u in top.uses if u not in resolved), None)
            if top.waiting is None:
                _finish(top.name, declared, resolved, drop)
                chain.pop()
                on_chain.discard(top.name)
            elif top.waiting in bad:
                continue
            elif top.waiting in on_chain:
                names = [r.name for r in chain]
                cycle = names[names.index(top.waiting) :] + [top.waiting]
                drop(
                    top.waiting,
                    f"variable cycle: {' -> '.join(map(str, cycle))}; expected variables that do not use each other",
                )
                for member in cycle:
                    bad.add(member)
                    pos.reject(("vars", member))
            else:
                enter(top.waiting)
    return resolved, problems


class _Resolving:
    """A variable on the chain being resolved: the uses still to look at, and the one it waits for."""

    def __init__(self, name: Any, uses: Iterator[str]) -> None:
        self.name, self.uses = name, uses
        self.waiting: str | None = None


def _finish(name: Any, declared: dict[Any, Any], resolved: dict[str, Any], drop: Callable[..., None]) -> None:
    """Every variable `name` uses is resolved: substitute them, within MAX_VARIABLE_CHARS."""
    value = declared[name]
    if isinstance(value, str):  # a long one written out (or set by --var) too, not only a grown one
        length = _substituted_length(value, resolved) if "${" in value else len(value)
        if length > MAX_VARIABLE_CHARS:
            drop(
                name,
                f"variable {name} is {length:,} characters once the variables it uses are "
                f"substituted, more than the limit of {MAX_VARIABLE_CHARS:,}",
            )
            return
        if "${" in value:
            value = _substitute(value, resolved)
    resolved[name] = value


def interpolate(data: Any, pos: Positions, file: str) -> list[Problem]:
    """Replace ${name} by the variable's value (typed when it is the whole value)."""
    declared = data.get("vars") if isinstance(data.get("vars"), dict) else {}
    variables, problems = resolve_variables(declared, pos, file)
    added = 0  # characters substitution has added to the document

    def sub(value: Any, path: Path_) -> Any:
        nonlocal added
        if isinstance(value, dict):
            return {k: sub(v, path + (k,)) for k, v in value.items()}
        if isinstance(value, list):
            return [sub(v, path + (i,)) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        names = _VAR.findall(value)
        for name in names:
            if name.startswith("links."):
                if not {"http", "process"} & set(path):
                    problems.append(
                        Problem(
                            file,
                            *pos.of(path),
                            f"${{{name}}} is known only when the stack runs: "
                            "use it in a probe's or action's http or process",
                        )
                    )
            elif name in declared and name not in variables:  # a cycle or worse, reported at the variable
                pos.reject(path)
            elif name not in declared:
                hint = difflib.get_close_matches(name, list(variables), n=1)
                did = f" (did you mean ${{{hint[0]}}}?)" if hint else ""
                problems.append(
                    Problem(
                        file,
                        *pos.of(path),
                        f"undefined variable ${{{name}}}{did}; declared under vars: {', '.join(map(str, declared)) or 'none'}",
                    )
                )
                pos.reject(path)
        grows = _substituted_length(value, variables) - len(value)
        if added + grows > MAX_EXPANDED_CHARS:
            pos.reject(path)
            if added > MAX_EXPANDED_CHARS:  # reported once, where the limit was crossed
                return value
            added = MAX_EXPANDED_CHARS + 1
            problems.append(
                Problem(
                    file,
                    *pos.of(path),
                    f"substituting variables here makes the experiment more than {MAX_EXPANDED_CHARS:,} "
                    "characters longer than its file; expected shorter variables or fewer uses",
                )
            )
            return value
        added += max(grows, 0)
        return _substitute(value, variables)

    for key in list(data):
        if key != "vars":
            data[key] = sub(data[key], (key,))
    return problems


def parse_var(text: str) -> tuple[str, str]:
    """`name=value` from the command line; ValueError otherwise."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(
            f"--var {text!r}: expected NAME=VALUE (a variable, or a dotted key such as listeners.count=500)"
        )
    return key.strip(), value


def parse_var_options(texts: list[str] | None) -> dict[str, str]:
    """Every `--var NAME=VALUE` of a command line; a bad one is an ExperimentError (exit 2) naming it."""
    out = {}
    for text in texts or []:
        try:
            key, value = parse_var(text)
        except ValueError as exc:
            raise ExperimentError([Problem("--var", 0, 0, str(exc))]) from None
        out[key] = value
    return out
