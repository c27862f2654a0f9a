"""Experiments: YAML files loaded into a typed model, or rejected with every problem located.

Loading is a series of passes, each reporting `file:line:column: what is wrong, what was expected`:
  1. YAML, composed node by node so every value and key keeps its position (duplicate keys,
     which PyYAML would silently overwrite, are errors). A Chaos Toolkit experiment (JSON or
     YAML) is recognised here and translated (chaos.chaostoolkit), keeping positions;
  2. variables: `--var` overrides, then `${name}` replaced by values declared under `vars`
     (`${links.NAME}`, a link's host URL, stays for run time);
  3. the JSON Schema shipped in chaos/language/schema/ (the one editors can use), all errors at once;
  4. meaning: durations, expectations, measure and fault names and parameters, probes and
     tolerances, repeats, and targets against the stack's compose file, so that a bad target
     is refused before anything starts.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from chaos.errors import EnvironmentNotReady, ExperimentError, Problem
from chaos.language import chaostoolkit
from chaos.language.expectations import parse_expectation
from chaos.language.model import DEFAULT_BACKOFF, PHASES, Check, Experiment, ListenersSpec, Step, Windows
from chaos.language.positions import Path_, Positions, load_yaml
from chaos.language.probes import DEFAULT_TIMEOUT, ProbeSpec, link_names, tolerance_problems
from chaos.language.registry import FAULTS, MEASURES, resolve_measure
from chaos.language.units import parse_duration, parse_rate
from chaos.stack.definition import StackDefinition, find_stack

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The experiment JSON Schema (chaos/language/schema/experiment.schema.json)."""
    return json.loads(resources.files("chaos.language").joinpath("schema/experiment.schema.json").read_text())


# ---------------------------------------------------------------------------------------------
# pass 2: variables


def _apply_overrides(data: dict, overrides: dict[str, str], pos: Positions) -> list[Problem]:
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


def _interpolate(data: Any, pos: Positions, file: str) -> list[Problem]:
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


# ---------------------------------------------------------------------------------------------
# pass 3: schema


def _schema_problems(data: Any, pos: Positions, file: str) -> list[Problem]:
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
            }.get(str(err.schema.get("type")), err.message)
        if expected is None and err.validator == "enum":
            expected = "one of " + ", ".join(map(str, err.schema["enum"]))
        value = err.instance
        shown = (
            repr(value)
            if not isinstance(value, (dict, list))
            else ("a mapping" if isinstance(value, dict) else "a list")
        )
        problems.append(
            pos.problem(file, path, f"{_where(path)}{shown} is not valid; expected {expected or err.message}")
        )
    return problems


def _where(path: Path_) -> str:
    if not path:
        return ""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out + ": "


# ---------------------------------------------------------------------------------------------
# pass 4: meaning


class _Meaning:
    """The semantic pass: builds the model while collecting problems."""

    def __init__(self, data: dict, pos: Positions, file: str, stack_def: StackDefinition | None):
        self.data, self.pos, self.file, self.stack_def = data, pos, file, stack_def
        self.problems: list[Problem] = []

    def problem(self, path: Path_, message: str, key: bool = False) -> None:
        self.problems.append(self.pos.problem(self.file, path, message, key=key))

    def measure_check(self, item: dict, path: Path_, scope: str) -> Check | None:
        name, expect = item["measure"], item.get("expect")
        if expect is None:
            self.problem(path, f"measure {name!r} needs an expect")
            return None
        try:
            measure, name_stat = resolve_measure(name)
        except KeyError:
            hint = difflib.get_close_matches(name, list(MEASURES), n=1)
            did = f" (did you mean {hint[0]!r}?)" if hint else ""
            self.problem(
                path + ("measure",),
                f"unknown measure {name!r}{did}; expected one of: {', '.join(MEASURES)}, "
                "optionally with a statistic (dead_air.max, reconnect_time.p95)",
            )
            return None
        try:
            exp = parse_expectation(expect)
        except ValueError as exc:
            self.problem(path + ("expect",), str(exc))
            return None
        if exp.stat and name_stat and exp.stat != name_stat:
            self.problem(
                path + ("expect",), f"{expect!r} asks for {exp.stat} but the measure {name!r} already names {name_stat}"
            )
        if measure.unit == "duration" and exp.unit != "duration" and not (exp.low == 0 and exp.unit is None):
            self.problem(
                path + ("expect",),
                f'{name} is a duration; write the bound with a unit, such as "< 2s" or "p95 < 300ms"',
            )
        if measure.unit == "count" and exp.unit is not None:
            self.problem(path + ("expect",), f'{name} is a count; write the bound as a plain number, such as ">= 2"')
        if measure.unit == "ratio" and exp.unit == "duration":
            self.problem(
                path + ("expect",),
                f'{name} is a ratio; write the bound as a number or a percentage, such as ">= 0.99" or ">= 99%"',
            )
        if measure.scope != "window" and scope != "step":
            self.problem(
                path + ("measure",),
                f"{name} is measured from a fault's start or end; put it under a method step's expect",
            )
        when = tuple(item.get("when", PHASES))
        return Check(measure=name, expect=expect, when=when, line=self.pos.of(path)[0], column=self.pos.of(path)[1])

    def probe_spec(self, item: dict, path: Path_, name: str) -> ProbeSpec | None:
        kinds = [k for k in ("http", "process") if k in item]
        if len(kinds) != 1:
            self.problem(path, f"{name!r} needs exactly one of http or process")
            return None
        kind = kinds[0]
        spec = copy.deepcopy(item[kind])
        timeout = parse_duration(spec.pop("timeout")) if "timeout" in spec else DEFAULT_TIMEOUT
        text = json.dumps(spec)
        for link in link_names(text):
            if self.stack_def is not None and link not in self.stack_def.links:
                self.problem(
                    path + (kind,),
                    f"${{links.{link}}}: {link!r} is not a link of stack "
                    f"{self.stack_def.name}; links: {', '.join(self.stack_def.links)}",
                )
        return ProbeSpec(name, kind, spec if kind == "http" else {}, spec if kind == "process" else {}, timeout)

    def steady_check(self, item: dict, path: Path_) -> Check | None:
        if ("measure" in item) == ("probe" in item):
            self.problem(
                path, "a steady-state check has either measure and expect, or probe, http|process and tolerance"
            )
            return None
        if "measure" in item:
            for key in ("http", "process", "tolerance", "every"):
                if key in item:
                    self.problem(path + (key,), f"{key!r} belongs to probes, not to measure checks", key=True)
            return self.measure_check(item, path, "steady")
        if "expect" in item:
            self.problem(path + ("expect",), "a probe is judged by its tolerance, not expect", key=True)
        if "tolerance" not in item:
            self.problem(path, f"probe {item['probe']!r} needs a tolerance (such as 200 for an HTTP status)")
            return None
        for msg in tolerance_problems(item["tolerance"]):
            self.problem(path + ("tolerance",), msg)
        spec = self.probe_spec(item, path, item["probe"])
        every = item.get("every", "2s")
        return (
            Check(
                probe=spec,
                tolerance=item["tolerance"],
                every=None if every == "end" else parse_duration(every),
                when=tuple(item.get("when", PHASES)),
                line=self.pos.of(path)[0],
                column=self.pos.of(path)[1],
            )
            if spec
            else None
        )

    def step(self, i: int, raw: dict) -> Step | None:
        path: Path_ = ("method", i)
        kinds = [k for k in ("fault", "probe", "action") if k in raw]
        if len(kinds) != 1:
            self.problem(path, "a step has exactly one of fault, probe or action")
            return None
        kind = kinds[0]
        at = parse_duration(raw["at"])
        duration = parse_duration(raw["for"]) if "for" in raw else None
        every = parse_duration(raw["every"]) if "every" in raw else None
        until = parse_duration(raw["until"]) if "until" in raw else None
        times = raw.get("times")
        if every is not None:
            if (times is None) == (until is None):
                self.problem(path + ("every",), "a repeating step needs times or until (not both)", key=True)
            if every <= 0:
                self.problem(path + ("every",), "every must be longer than 0s")
            if duration is not None and duration >= every:
                self.problem(
                    path + ("for",),
                    f"for ({raw['for']}) must be shorter than every ({raw['every']}): "
                    "occurrences of one step may not overlap",
                )
            if until is not None and until < at:
                self.problem(path + ("until",), f"until ({raw['until']}) is before at ({raw['at']})")
        elif times is not None or until is not None:
            self.problem(path + ("times" if times is not None else "until",), "times and until need every", key=True)
        target, one_of = None, None
        if isinstance(raw.get("target"), dict):
            one_of = tuple(raw["target"]["one_of"])
        else:
            target = raw.get("target")
        if kind == "fault":
            for key in ("http", "process"):
                if key in raw:
                    self.problem(path + (key,), f"{key!r} belongs to probe and action steps", key=True)
            expects = []
            for j, item in enumerate(raw.get("expect") or []):
                c = self.measure_check(item, path + ("expect", j), "step")
                if c:
                    expects.append(c)
            cls = FAULTS.get(raw["fault"])
            if cls is None:
                hint = difflib.get_close_matches(raw["fault"], list(FAULTS), n=1)
                did = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.problem(
                    path + ("fault",), f"unknown fault {raw['fault']!r}{did}; expected one of: {', '.join(FAULTS)}"
                )
                return None
            target = target if (target or one_of) else cls.default_target
            if self.stack_def is not None:
                for t in one_of or (target,):
                    for msg in cls.check_target(self.stack_def, t):
                        self.problem(path + ("target",) if "target" in raw else path + ("fault",), msg)
            params, more = cls.check_params(raw.get("with") or {})
            if not more and self.stack_def is not None:
                for t in one_of or (target,):
                    more += [m for m in cls.check_with(self.stack_def, t, params) if m not in more]
            for msg in more:
                self.problem(path + ("with",) if "with" in raw else path + ("fault",), msg)
            if cls.needs_duration and duration is None:
                self.problem(path + ("fault",), f"fault {raw['fault']} acts over time: give it a duration with `for`")
            return Step(
                i,
                at,
                "fault",
                fault=raw["fault"],
                duration=duration,
                every=every,
                times=times,
                until=until,
                target=target,
                one_of=one_of,
                params=params,
                raw_params=dict(raw.get("with") or {}),
                expect=tuple(expects),
                line=self.pos.of(path)[0],
            )
        for key in ("target", "with", "expect", "for"):
            if key in raw:
                self.problem(path + (key,), f"{key!r} belongs to fault steps, not {kind} steps", key=True)
        spec = self.probe_spec(raw, path, raw[kind])
        if spec is None:
            return None
        return Step(i, at, kind, probe=spec, every=every, times=times, until=until, line=self.pos.of(path)[0])


def load_experiment(path: str | Path, check_stack: bool = True, overrides: dict[str, str] | None = None) -> Experiment:
    """Load and validate an experiment file (deadair or Chaos Toolkit); ExperimentError lists every problem."""
    p = Path(path)
    file = str(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ExperimentError([Problem(file, 0, 0, "no such file")]) from None
    except IsADirectoryError:
        raise ExperimentError([Problem(file, 0, 0, "is a directory, not an experiment file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ExperimentError([Problem(file, 0, 0, f"cannot read the file: {exc}")]) from None
    return parse_experiment(text, p, check_stack=check_stack, overrides=overrides)


def parse_experiment(
    text: str, path: Path, check_stack: bool = True, overrides: dict[str, str] | None = None
) -> Experiment:
    file = str(path)
    data, pos, problems = load_yaml(text, file)
    if problems:
        raise ExperimentError(problems)
    if not isinstance(data, dict):
        raise ExperimentError([Problem(file, 1, 1, "expected an experiment: a mapping with title and method")])
    source = "deadair"
    if chaostoolkit.looks_like(data):
        data, pos, problems = chaostoolkit.translate(data, pos, file)
        source = "chaostoolkit"
        if problems:
            raise ExperimentError(problems)
    problems += _apply_overrides(data, overrides or {}, pos)
    problems += _interpolate(data, pos, file)
    if problems:
        raise ExperimentError(problems)
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
    m = _Meaning(data, pos, file, stack_def)
    steady = [
        c for i, item in enumerate(data.get("steady_state") or []) if (c := m.steady_check(item, ("steady_state", i)))
    ]
    guards = [
        c
        for i, item in enumerate(data.get("abort_when") or [])
        if (c := m.measure_check(item, ("abort_when", i), "steady"))
    ]
    steps = [s for i, raw in enumerate(data.get("method") or []) if (s := m.step(i, raw))]
    rollbacks = [
        r
        for i, raw in enumerate(data.get("rollbacks") or [])
        if (r := m.probe_spec(raw, ("rollbacks", i), raw["action"]))
    ]
    problems += m.problems

    lst = data.get("listeners") or {}
    join = lst.get("join", "room-api")
    listeners = ListenersSpec(
        count=lst.get("count", 20),
        join=join,
        via=lst.get("via", "entry-api" if join == "room-api" else "entry-lb"),
        path=lst.get("path", "/live"),
        backoff=tuple(parse_duration(b) for b in lst["backoff"]) if "backoff" in lst else DEFAULT_BACKOFF,
        read_timeout=parse_duration(lst["read_timeout"]) if "read_timeout" in lst else 10.0,
        response_timeout=parse_duration(lst["response_timeout"]) if "response_timeout" in lst else 8.0,
        min_stall=parse_duration(lst["min_stall"]) if "min_stall" in lst else 0.02,
        prebuffer=parse_duration(lst["prebuffer"]) if "prebuffer" in lst else 0.0,
        ears=lst.get("ears", 0),
        **_arrival(lst.get("arrival", "all")),
    )
    if listeners.ears > listeners.count:
        problems.append(
            Problem(
                file,
                *pos.of(("listeners", "ears")),
                f"listeners.ears ({listeners.ears}) is more than listeners.count ({listeners.count})",
            )
        )
    if stack_def is not None and listeners.count and listeners.via not in stack_def.links:
        problems.append(
            Problem(
                file,
                *pos.of(("listeners", "via")),
                f"{listeners.via!r} is not a link of stack {stack_def.name}; links: {', '.join(stack_def.links)}",
            )
        )
    uses_listeners = [
        c
        for c in [*steady, *guards, *(e for s in steps for e in s.expect)]
        if c.measure and not c.measure.startswith("server.")
    ]
    if listeners.count == 0 and uses_listeners:
        problems.append(
            Problem(
                file,
                *pos.of(("listeners", "count")),
                f"listeners.count is 0 but {uses_listeners[0].measure} is measured from listeners",
            )
        )
    for c in uses_listeners:
        if listeners.ears == 0 and resolve_measure(c.measure or "")[0].ears:
            problems.append(
                Problem(
                    file,
                    c.line,
                    c.column,
                    f"{c.measure} is measured by golden ears, but listeners.ears is 0; "
                    "set listeners.ears to at least 1 (a measure with no one to take it can never fail)",
                )
            )
    if not steady and not any(st.expect for st in steps) and not m.problems:
        problems.append(
            Problem(
                file,
                1,
                1,
                "nothing to judge: no steady_state check and no step with `expect`; "
                "an experiment without a hypothesis passes whatever happens",
            )
        )
    windows = Windows(**{k: parse_duration(v) for k, v in (data.get("windows") or {}).items()})
    if problems:
        raise ExperimentError(problems)
    return Experiment(
        path=path,
        title=data["title"],
        description=data.get("description", ""),
        tags=tuple(data.get("tags") or ()),
        seed=int(data.get("seed", 0)),
        stack=stack_name,
        listeners=listeners,
        windows=windows,
        steady_state=tuple(steady),
        abort_when=tuple(guards),
        method=tuple(steps),
        rollbacks=tuple(rollbacks),
        variables=dict(data.get("vars") or {}),
        source=source,
    )


def _arrival(value: Any) -> dict[str, Any]:
    if isinstance(value, dict) and "ramp" in value:
        return {"arrival": "ramp", "arrival_over": parse_duration(value["ramp"])}
    if isinstance(value, dict) and "poisson" in value:
        return {"arrival": "poisson", "arrival_rate": parse_rate(value["poisson"])}
    return {"arrival": "all"}


def parse_var(text: str) -> tuple[str, str]:
    """`name=value` from the command line; ValueError otherwise."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(
            f"--var {text!r}: expected NAME=VALUE (a variable, or a dotted key such as listeners.count=500)"
        )
    return key.strip(), value
