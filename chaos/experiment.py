"""Experiments: YAML files loaded into a typed model, or rejected with every problem located.

Loading is three passes, each reporting `file:line:column: what is wrong, what was expected`:
  1. YAML, composed node by node so every value and key keeps its position (and duplicate
     keys, which PyYAML would silently overwrite, are errors);
  2. the JSON Schema shipped in chaos/schema/ (the one editors can use), all errors at once;
  3. meaning: durations, expectations, measure and fault names, and targets against the
     stack's compose file, so a bad target is refused before anything starts.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import EnvironmentNotReady, ExperimentError, Problem
from .faults import FAULTS
from .hypotheses import MEASURES, parse_expectation, resolve_measure
from .listeners import DEFAULT_BACKOFF
from .stack import StackDefinition, find_stack
from .units import parse_duration

Path_ = tuple[Any, ...]


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The experiment JSON Schema (chaos/schema/experiment.schema.json)."""
    return json.loads(resources.files("chaos").joinpath("schema/experiment.schema.json").read_text())


# ---------------------------------------------------------------------------------------------
# model


@dataclass(frozen=True)
class Check:
    """An expectation on a measure, where it was written."""

    measure: str
    expect: str
    line: int = 0
    column: int = 0


@dataclass(frozen=True)
class Step:
    index: int
    at: float
    fault: str
    duration: float | None  # `for`; None: the fault is reverted right after it acts
    target: str | None
    params: dict[str, Any]
    expect: tuple[Check, ...]
    line: int = 0

    @property
    def end(self) -> float:
        return self.at + (self.duration or 0.0)


@dataclass(frozen=True)
class ListenersSpec:
    count: int = 20
    join: str = "room-api"  # join through room-api, then stream the URL it returns; or "direct"
    via: str = "entry-api"  # the link joins go through (room-api) or streams come from (direct)
    path: str = "/live"  # direct only
    backoff: tuple[float, ...] = DEFAULT_BACKOFF
    read_timeout: float = 10.0
    min_stall: float = 0.02


@dataclass(frozen=True)
class Windows:
    warmup: float = 30.0  # longest wait for every listener to hear audio before the gate
    gate: float = 5.0  # steady state is observed this long before any fault
    grace: float = 0.0  # the "during" check starts this long after the method starts
    recovery: float = 5.0  # steady state must hold this long after the method ends


@dataclass(frozen=True)
class Experiment:
    path: Path
    title: str
    description: str = ""
    tags: tuple[str, ...] = ()
    seed: int = 0
    stack: str = "audio-room"
    listeners: ListenersSpec = field(default_factory=ListenersSpec)
    windows: Windows = field(default_factory=Windows)
    steady_state: tuple[Check, ...] = ()
    method: tuple[Step, ...] = ()

    @property
    def method_length(self) -> float:
        return max((s.end for s in self.method), default=0.0)


# ---------------------------------------------------------------------------------------------
# pass 1: YAML with positions


class _Positions:
    """Line and column (1-based) of every value and every mapping key, by path."""

    def __init__(self) -> None:
        self.values: dict[Path_, tuple[int, int]] = {}
        self.keys: dict[Path_, tuple[int, int]] = {}

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


def _load_yaml(text: str, file: str) -> tuple[Any, _Positions, list[Problem]]:
    pos = _Positions()
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
        problems.append(Problem(file, 1, 1, "the file is empty; expected an experiment (a mapping with title and method)"))
        return None, pos, problems
    scalar_loader = yaml.SafeLoader("")

    def build(node: yaml.Node, path: Path_) -> Any:
        pos.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for knode, vnode in node.value:
                key = build(knode, path + ("<key>",))
                if not isinstance(key, (str, int, float, bool)) or isinstance(key, bool):
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
        except yaml.YAMLError as exc:
            problems.append(Problem(file, *pos.values[path], f"bad value: {exc}"))
            return None

    return build(root, ()), pos, problems


# ---------------------------------------------------------------------------------------------
# pass 2: schema


def _schema_problems(data: Any, pos: _Positions, file: str) -> list[Problem]:
    validator = jsonschema.Draft202012Validator(schema())
    problems = []
    for err in validator.iter_errors(data):
        path = tuple(err.absolute_path)
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            extra = [k for k in err.instance if k not in err.schema.get("properties", {})]
            for key in extra:
                hint = difflib.get_close_matches(str(key), allowed, n=1)
                did = f" (did you mean {hint[0]!r}?)" if hint else ""
                problems.append(Problem(file, *pos.of(path + (key,), key=True),
                                        f"unknown key {key!r}{did}; expected one of: {', '.join(allowed)}"))
            continue
        line, col = pos.of(path)
        if err.validator == "required":
            problems.append(Problem(file, line, col, f"{_where(path)}{err.message.replace('is a required property', 'is required')}"))
            continue
        expected = err.schema.get("x-expected") if isinstance(err.schema, dict) else None
        if expected is None and err.validator in ("type", "minItems") and isinstance(err.schema, dict):
            expected = {"array": "a list", "object": "a mapping", "string": "a string",
                        "integer": "a whole number"}.get(str(err.schema.get("type")), err.message)
        value = err.instance
        shown = repr(value) if not isinstance(value, (dict, list)) else ("a mapping" if isinstance(value, dict) else "a list")
        problems.append(Problem(file, line, col, f"{_where(path)}{shown} is not valid; expected {expected or err.message}"))
    return problems


def _where(path: Path_) -> str:
    if not path:
        return ""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out + ": "


# ---------------------------------------------------------------------------------------------
# pass 3: meaning


def _check_expectations(items: list[dict], base: Path_, pos: _Positions, file: str, scope: str) -> tuple[list[Check], list[Problem]]:
    checks, problems = [], []
    for i, item in enumerate(items):
        path = base + (i,)
        name, expect = item["measure"], item["expect"]
        try:
            measure, name_stat = resolve_measure(name)
        except KeyError:
            hint = difflib.get_close_matches(name, list(MEASURES), n=1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.append(Problem(file, *pos.of(path + ("measure",)),
                                    f"unknown measure {name!r}{did}; expected one of: {', '.join(MEASURES)}, "
                                    "optionally with a statistic (dead_air.max, reconnect_time.p95)"))
            continue
        try:
            exp = parse_expectation(expect)
        except ValueError as exc:
            problems.append(Problem(file, *pos.of(path + ("expect",)), str(exc)))
            continue
        if exp.stat and name_stat and exp.stat != name_stat:
            problems.append(Problem(file, *pos.of(path + ("expect",)),
                                    f"{expect!r} asks for {exp.stat} but the measure {name!r} already names {name_stat}"))
        if measure.unit == "duration" and exp.unit not in ("duration",) and not (exp.low == 0 and exp.unit is None):
            problems.append(Problem(file, *pos.of(path + ("expect",)),
                                    f"{name} is a duration; write the bound with a unit, such as \"< 2s\" or \"p95 < 300ms\""))
        if measure.unit == "ratio" and exp.unit == "duration":
            problems.append(Problem(file, *pos.of(path + ("expect",)),
                                    f"{name} is a ratio; write the bound as a number or a percentage, such as \">= 0.99\" or \">= 99%\""))
        if measure.scope != "window" and scope != "step":
            problems.append(Problem(file, *pos.of(path + ("measure",)),
                                    f"{name} is measured from a fault's start or end; put it under a method step's expect"))
        line, col = pos.of(path)
        checks.append(Check(name, expect, line, col))
    return checks, problems


def _check_steps(data: dict, pos: _Positions, file: str, stack_def: StackDefinition | None) -> tuple[list[Step], list[Problem]]:
    steps, problems = [], []
    for i, raw in enumerate(data.get("method") or []):
        path = ("method", i)
        name = raw["fault"]
        cls = FAULTS.get(name)
        if cls is None:
            hint = difflib.get_close_matches(name, list(FAULTS), n=1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            problems.append(Problem(file, *pos.of(path + ("fault",)),
                                    f"unknown fault {name!r}{did}; expected one of: {', '.join(FAULTS)}"))
        elif stack_def is not None:
            for msg in cls.validate(stack_def, raw.get("target"), raw.get("with") or {}):
                where = "target" if "target" in raw else ("with" if "with" in raw else "fault")
                problems.append(Problem(file, *pos.of(path + (where,)), msg))
        checks, more = _check_expectations(raw.get("expect") or [], path + ("expect",), pos, file, "step")
        problems += more
        steps.append(Step(i, parse_duration(raw["at"]), name,
                          parse_duration(raw["for"]) if "for" in raw else None,
                          raw.get("target") or (cls.default_target if cls else None),
                          dict(raw.get("with") or {}), tuple(checks), pos.of(path)[0]))
    return steps, problems


def load_experiment(path: str | Path, check_stack: bool = True) -> Experiment:
    """Load and validate an experiment file; ExperimentError lists every problem."""
    p = Path(path)
    file = str(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ExperimentError([Problem(file, 0, 0, "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExperimentError([Problem(file, 0, 0, f"cannot read the file: {exc}")]) from None
    return parse_experiment(text, p, check_stack=check_stack)


def parse_experiment(text: str, path: Path, check_stack: bool = True) -> Experiment:
    file = str(path)
    data, pos, problems = _load_yaml(text, file)
    if problems:
        raise ExperimentError(problems)
    if not isinstance(data, dict):
        raise ExperimentError([Problem(file, 1, 1, "expected an experiment: a mapping with title and method")])
    problems += _schema_problems(data, pos, file)
    if problems:
        raise ExperimentError(problems)

    stack_def = None
    stack_name = data.get("stack", "audio-room")
    if check_stack:
        try:
            stack_def = find_stack(stack_name, near=path.resolve().parent)
        except EnvironmentNotReady as exc:
            problems.append(Problem(file, *pos.of(("stack",)), str(exc)))
    steady, more = _check_expectations(data.get("steady_state") or [], ("steady_state",), pos, file, "steady")
    problems += more
    steps, more = _check_steps(data, pos, file, stack_def)
    problems += more

    lst = data.get("listeners") or {}
    join = lst.get("join", "room-api")
    listeners = ListenersSpec(
        count=lst.get("count", 20), join=join, via=lst.get("via", "entry-api" if join == "room-api" else "entry-lb"),
        path=lst.get("path", "/live"),
        backoff=tuple(parse_duration(b) for b in lst["backoff"]) if "backoff" in lst else DEFAULT_BACKOFF,
        read_timeout=parse_duration(lst["read_timeout"]) if "read_timeout" in lst else 10.0,
        min_stall=parse_duration(lst["min_stall"]) if "min_stall" in lst else 0.02,
    )
    if stack_def is not None and listeners.via not in stack_def.links:
        problems.append(Problem(file, *pos.of(("listeners", "via")),
                                f"{listeners.via!r} is not a link of stack {stack_def.name}; "
                                f"links: {', '.join(stack_def.links)}"))
    win = data.get("windows") or {}
    windows = Windows(**{k: parse_duration(v) for k, v in win.items()})
    if problems:
        raise ExperimentError(problems)
    return Experiment(
        path=path, title=data["title"], description=data.get("description", ""),
        tags=tuple(data.get("tags") or ()), seed=int(data.get("seed", 0)), stack=stack_name,
        listeners=listeners, windows=windows, steady_state=tuple(steady), method=tuple(steps),
    )
