"""Experiments: YAML files loaded into a typed model (chaos.language.model), or rejected with
every problem located.

Loading is a series of passes, each reporting `file:line:column: what is wrong, what was expected`:
  1. YAML with positions (chaos.language.positions); a Chaos Toolkit experiment (JSON or YAML)
     is recognised here and translated (chaos.language.chaostoolkit), keeping positions;
  2. variables (chaos.language.variables): `--var` overrides, then `${name}`;
  3. the JSON Schema (chaos.language.schema), all errors at once;
  4. meaning (chaos.language.meaning): durations, expectations, fault and measure names
     through the registries, probes, and targets against the stack's compose file, so that a
     bad target is refused before anything starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaos.errors import EnvironmentNotReady, ExperimentError, Problem
from chaos.language import chaostoolkit
from chaos.language.arrival import arrival_problem, parse_arrival
from chaos.language.capacity import parse_capacity
from chaos.language.meaning import Meaning
from chaos.language.model import DEFAULT_BACKOFF, Experiment, ListenersSpec, Windows
from chaos.language.positions import load_yaml
from chaos.language.registry import resolve_measure
from chaos.language.schema import schema_problems
from chaos.language.units import parse_duration
from chaos.language.variables import apply_overrides, interpolate
from chaos.stack.definition import find_stack


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
    problems += apply_overrides(data, overrides or {}, pos)
    problems += interpolate(data, pos, file)
    if problems:
        raise ExperimentError(problems)
    problems += schema_problems(data, pos, file)
    if problems:
        raise ExperimentError(problems)

    stack_def = None
    stack_name = data.get("stack", "audio-room")
    if check_stack:
        try:
            stack_def = find_stack(stack_name, near=path.resolve().parent)
        except EnvironmentNotReady as exc:
            problems.append(Problem(file, *pos.of(("stack",)), str(exc)))
    m = Meaning(data, pos, file, stack_def)
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
    capacity = parse_capacity(data, m, text)  # the sweep's section (chaos.capacity); a plain run ignores it
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
    if (bad := arrival_problem(parse_arrival(lst.get("arrival", "all")))) is not None:
        problems.append(Problem(file, *pos.of(("listeners", "arrival")), bad))
    joins = sum(s.join.count for s in steps if s.join is not None)  # listeners a join step adds
    if listeners.ears > listeners.count:
        problems.append(
            Problem(
                file,
                *pos.of(("listeners", "ears")),
                f"listeners.ears ({listeners.ears}) is more than listeners.count ({listeners.count})",
            )
        )
    if stack_def is not None and (listeners.count or joins) and listeners.via not in stack_def.links:
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
    if listeners.count == 0 and not joins and uses_listeners:
        problems.append(
            Problem(
                file,
                *pos.of(("listeners", "count")),
                f"listeners.count is 0 but {uses_listeners[0].measure} is measured from listeners",
            )
        )
    if listeners.count == 0 and joins:  # nobody listens before the method: the gate would judge no one
        for i, item in enumerate(data.get("steady_state") or []):
            name = item.get("measure") if isinstance(item, dict) else None
            if not name or name.startswith("server.") or "before" not in item.get("when", ("before",)):
                continue
            where = ("steady_state", i, "when") if "when" in item else ("steady_state", i)
            problems.append(
                Problem(
                    file,
                    *pos.of(where),
                    f"{name} is measured from listeners but listeners.count is 0: before the method, "
                    "only a join step's crowd could listen and it has not joined yet, so the gate "
                    "could never pass; expected when: [during, after]",
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
        capacity=capacity,
    )


def _arrival(value: Any) -> dict[str, Any]:
    a = parse_arrival(value)
    return {"arrival": a.kind, "arrival_over": a.over, "arrival_rate": a.rate, "arrival_rate_to": a.rate_to}
