"""Pass 2 of loading: variables. `--var KEY=VALUE` overrides first, then `${name}` replaced by
the values declared under `vars` (`${links.NAME}`, a link's host URL, stays for run time).
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import yaml

from chaos.errors import ExperimentError, Problem
from chaos.language.positions import Path_, Positions
from chaos.language.schema import schema

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")


def apply_overrides(data: dict, overrides: dict[str, str], pos: Positions) -> list[Problem]:
    """--var KEY=VALUE: a declared variable, or a key of the experiment by its dotted path
    (missing mappings on the way are created: windows.gate=1s works without a windows key)."""
    problems = []
    variables = data.get("vars") if isinstance(data.get("vars"), dict) else None
    for key, raw in overrides.items():
        where = f"--var {key}={raw}"
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, (dict, list)) or value is None:
            value = raw
        if variables is not None and key in variables:
            variables[key] = value
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


def interpolate(data: Any, pos: Positions, file: str) -> list[Problem]:
    """Replace ${name} by the variable's value (typed when it is the whole value)."""
    variables = data.get("vars") if isinstance(data.get("vars"), dict) else {}
    problems: list[Problem] = []

    def sub(value: Any, path: Path_) -> Any:
        if isinstance(value, dict):
            return {k: sub(v, path + (k,)) for k, v in value.items()}
        if isinstance(value, list):
            return [sub(v, path + (i,)) for i, v in enumerate(value)]
        if not isinstance(value, str) or "${" not in value:
            return value
        whole = _VAR.fullmatch(value)
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
            elif name not in variables:
                hint = difflib.get_close_matches(name, list(variables), n=1)
                did = f" (did you mean ${{{hint[0]}}}?)" if hint else ""
                problems.append(
                    Problem(
                        file,
                        *pos.of(path),
                        f"undefined variable ${{{name}}}{did}; declared under vars: {', '.join(variables) or 'none'}",
                    )
                )
        if whole and whole.group(1) in variables:
            return variables[whole.group(1)]
        return _VAR.sub(lambda m: str(variables[m.group(1)]) if m.group(1) in variables else m.group(0), value)

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
