"""Pass 3 of loading: the experiment JSON Schema (experiment.schema.json, 2020-12), every error at once.

The same file is what editors use to complete and check experiments as they are written.
"""

from __future__ import annotations

import difflib
import json
from functools import lru_cache
from importlib import resources
from typing import Any

import jsonschema

from chaos.errors import Problem
from chaos.language.positions import Path_, Positions


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The experiment JSON Schema (experiment.schema.json, beside this file: the one editors use)."""
    return json.loads(resources.files(__name__).joinpath("experiment.schema.json").read_text())


# ---------------------------------------------------------------------------------------------
# pass 3: schema


def schema_problems(data: Any, pos: Positions, file: str) -> list[Problem]:
    """Every value the schema refuses, located. A value an earlier pass reported (a bad YAML scalar,
    an undefined variable) is not reported again; each refused value is marked rejected in `pos`
    (a missing required key at the key it lacks), so that the semantic pass judges everything else
    and only that: a file's problems are all found in one pass, each once."""
    validator = jsonschema.Draft202012Validator(schema())
    problems = []
    for err in validator.iter_errors(data):
        path = tuple(err.absolute_path)
        if pos.is_rejected(path):
            continue
        if err.validator == "required" and isinstance(err.instance, dict):
            for key in err.validator_value:
                if key not in err.instance:
                    pos.reject(path + (key,))
        elif err.validator == "additionalProperties" and isinstance(err.instance, dict):
            for key in err.instance:
                if key not in err.schema.get("properties", {}):
                    pos.reject(path + (key,))
        else:
            pos.reject(path)
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            extra = [k for k in err.instance if k not in err.schema.get("properties", {})]
            for key in extra:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                did = f" (did you mean {hint[0]!r}?)" if hint else ""
                problems.append(
                    pos.problem(
                        file,
                        path + (key,),
                        f"unknown key {key!r}{did}; expected one of: {', '.join(allowed)}",
                        key=True,
                    )
                )
            continue
        if err.validator == "required":
            problems.append(
                pos.problem(file, path, f"{_where(path)}{err.message.replace('is a required property', 'is required')}")
            )
            continue
        expected = err.schema.get("x-expected") if isinstance(err.schema, dict) else None
        if expected is None and err.validator in ("type", "minItems") and isinstance(err.schema, dict):
            expected = {
                "array": "a list",
                "object": "a mapping",
                "string": "a string",
                "integer": "a whole number",
            }.get(str(err.schema.get("type")), _cut(err.message))
        if expected is None and err.validator == "enum":
            expected = _cut("one of " + ", ".join(map(str, err.schema["enum"])))
        value = err.instance
        shown = (
            _shown(value)
            if not isinstance(value, (dict, list))
            else ("a mapping" if isinstance(value, dict) else "a list")
        )
        problems.append(
            pos.problem(file, path, f"{_where(path)}{shown} is not valid; expected {expected or _cut(err.message)}")
        )
    return problems


def _where(path: Path_) -> str:
    if not path:
        return ""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out + ": "


def _cut(message: str) -> str:
    """A schema message as the "expected" part of a problem: jsonschema quotes the whole value in
    it, which may be a megabyte; the problem quotes the value itself (shortened) already."""
    return message if len(message) <= 200 else f"{message[:160]}... ({len(message):,} characters)"


def _shown(value: Any) -> str:
    """A value as a problem quotes it: a long one cut (a 5,000-character name is not repeated)."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:60]}... ({len(str(value)):,} characters)"
