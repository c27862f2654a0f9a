"""Probes as an experiment declares them: what runs, its timeout, and the tolerance its output must meet.

A probe is the Chaos Toolkit's idea, kept compatible with it: an HTTP probe's output is
{status, headers, body} (body parsed when it is JSON), a process probe's is {status (the exit
code), stdout, stderr}; tolerances have the Chaos Toolkit's forms and meanings:

    200 / true / "ok"          equality (an integer is compared with the output's status)
    [200, 204]                 membership (the status, or the value)
    [0, 10]                    two numbers: an inclusive range
    {type: range, range: [a, b], target: status}
    {type: regex, pattern: "...", target: body}
    {type: jsonpath, path: "$.a.b", expect: 1, count: 1, target: body}

Checked when the experiment loads, applied by the judge; chaos.listen.probes runs them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

DEFAULT_TIMEOUT = 5.0
LINK_VAR = re.compile(r"\$\{links\.([A-Za-z0-9_.-]+)\}")


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    kind: str  # "http" or "process"
    http: dict[str, Any] = field(default_factory=dict)
    process: dict[str, Any] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT

    def describe(self) -> str:
        if self.kind == "http":
            return f"{self.http.get('method', 'GET')} {self.http['url']}"
        return " ".join([self.process["path"], *map(str, self.process.get("arguments", []))])


def link_names(text: str) -> list[str]:
    return LINK_VAR.findall(text)


# -- tolerances ---------------------------------------------------------------------------------


def tolerance_problems(tol: Any) -> list[str]:
    """What is wrong with a tolerance, checked when the experiment is loaded."""
    if isinstance(tol, dict):
        kind = tol.get("type")
        if kind == "regex":
            if "pattern" not in tol:
                return ["a regex tolerance needs a pattern"]
            try:
                re.compile(tol["pattern"])
            except re.error as exc:
                return [f"regex {tol['pattern']!r} does not compile: {exc}"]
        elif kind == "jsonpath":
            if "path" not in tol:
                return ["a jsonpath tolerance needs a path"]
            try:
                parse_jsonpath(tol["path"])
            except ValueError as exc:
                return [str(exc)]
        elif kind == "range":
            if "range" not in tol:
                return ["a range tolerance needs range: [low, high]"]
            low, high = tol["range"]
            if low > high:
                return [f"range {tol['range']}: the low bound is above the high bound"]
    return []


def within_tolerance(tol: Any, output: Any) -> bool:
    """The Chaos Toolkit's tolerance semantics, applied to a probe's output."""
    if isinstance(tol, (bool, str)):
        return output == tol
    if isinstance(tol, int):
        if isinstance(output, dict) and "status" in output:
            return output["status"] == tol
        return output == tol
    if isinstance(tol, list):
        if isinstance(output, dict) and "status" in output:
            return output["status"] in tol
        if len(tol) == 2 and all(isinstance(x, (int, float)) for x in tol):
            try:
                return tol[0] <= output <= tol[1]
            except TypeError:
                return False
        return output in tol
    if isinstance(tol, dict):
        value = output
        target = tol.get("target")
        if target and isinstance(output, dict):
            value = output.get(target, output)
        kind = tol["type"]
        if kind == "regex":
            return isinstance(value, str) and re.search(tol["pattern"], value) is not None
        if kind == "range":
            try:
                v = Decimal(str(value))
            except (InvalidOperation, ValueError):
                return False
            return Decimal(str(tol["range"][0])) <= v <= Decimal(str(tol["range"][1]))
        if kind == "jsonpath":
            if isinstance(value, (bytes, str)):
                try:
                    value = json.loads(value)
                except ValueError:
                    return False
            found = jsonpath(value, tol["path"])
            result = len(found) > 0
            if "count" in tol:
                result = len(found) == tol["count"]
            if "expect" in tol:
                expect = tol["expect"]
                result = found == (expect if isinstance(expect, list) else [expect])
            return result
    return False


# -- JSONPath, the subset tolerances use: $, .name, ['name'], [n], [*], .* ------------------------

_TOKEN = re.compile(r"\.(\*|[A-Za-z_][A-Za-z0-9_-]*)|\[(\*|-?\d+|'[^']*'|\"[^\"]*\")\]")


def parse_jsonpath(path: str) -> list[str | int]:
    """Steps of a JSONPath; ValueError (saying what is supported) for anything else."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise ValueError(f"JSONPath {path!r} must start with $")
    steps: list[str | int] = []
    pos = 1
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m:
            raise ValueError(
                f"JSONPath {path!r}: unsupported syntax at {path[pos:]!r}; "
                "supported: $, .name, ['name'], [index], [*], .*"
            )
        name, index = m.group(1), m.group(2)
        if name is not None:
            steps.append(name)
        elif index == "*":
            steps.append("*")
        elif index[0] in "'\"":
            steps.append(index[1:-1])
        else:
            steps.append(int(index))
        pos = m.end()
    return steps


def jsonpath(doc: Any, path: str) -> list[Any]:
    nodes = [doc]
    for step in parse_jsonpath(path):
        out: list[Any] = []
        for node in nodes:
            if step == "*":
                out.extend(node.values() if isinstance(node, dict) else node if isinstance(node, list) else [])
            elif isinstance(step, int):
                if isinstance(node, list) and -len(node) <= step < len(node):
                    out.append(node[step])
            elif isinstance(node, dict) and step in node:
                out.append(node[step])
        nodes = out
    return nodes
