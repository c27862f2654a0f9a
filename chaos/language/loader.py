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
Every pass runs on what the ones before it did not reject, so that one pass over a file reports
all of its problems, each once (a problem a pass reports marks the value rejected: later passes
skip it). Only what needs a whole valid document waits for one: the checks that combine sections
(listeners against the measures and the stack), and the capacity section.

The limits of chaos.language.limits hold throughout, each a located problem: the file's size is
checked before it is read, nesting and aliases while its YAML is composed, variables before they
are substituted, the number of steps before the schema, repeats and the run's length by meaning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaos.errors import EnvironmentNotReady, ExperimentError, Problem
from chaos.language import chaostoolkit
from chaos.language.arrival import arrival_problem, parse_arrival
from chaos.language.capacity import parse_capacity
from chaos.language.limits import MAX_FILE_BYTES, MAX_PROBLEMS, MAX_STEPS, one_process_problem
from chaos.language.meaning import Meaning
from chaos.language.model import DEFAULT_BACKOFF, DEFAULT_LISTENERS, Experiment, ListenersSpec, Windows
from chaos.language.positions import Positions, load_yaml, too_large
from chaos.language.registry import resolve_measure
from chaos.language.schema import schema_problems
from chaos.language.units import parse_bitrate, parse_duration
from chaos.language.variables import apply_overrides, interpolate
from chaos.stack.definition import find_stack


def load_experiment(path: str | Path, check_stack: bool = True, overrides: dict[str, str] | None = None) -> Experiment:
    """Load and validate an experiment file (deadair or Chaos Toolkit); ExperimentError lists every problem."""
    p = Path(path)
    file = str(path)
    try:
        with p.open("rb") as f:  # never more than the limit: a 2 GB file or /dev/zero is refused as fast
            raw = f.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            size = p.stat().st_size
            raise ExperimentError([Problem(file, 0, 0, too_large(size if size > MAX_FILE_BYTES else len(raw)))])
        text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")  # as read_text() reads it
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
    if data is None and problems:
        raise ExperimentError(problems)
    if not isinstance(data, dict):
        what = Problem(file, 1, 1, "expected an experiment: a mapping with title and method")
        raise ExperimentError(_unique([*problems, what]))
    if problems and chaostoolkit.looks_like(data):  # its translation needs every value
        raise ExperimentError(problems)
    source = "deadair"
    if chaostoolkit.looks_like(data):
        overrides, configuration = chaostoolkit.split_overrides(data, overrides or {})  # --var: its configuration
        data, pos, problems = chaostoolkit.translate(data, pos, file, configuration)
        source = "chaostoolkit"
        if problems:
            raise ExperimentError(problems)
    problems += apply_overrides(data, overrides or {}, pos)
    problems += interpolate(data, pos, file)
    if (many := _too_many_steps(data, pos, file)) is not None:  # before the schema, whose time grows with them
        raise ExperimentError(_unique([*problems, many]))
    problems += schema_problems(data, pos, file)
    whole = not problems  # every value accepted so far: the checks that combine sections can run

    stack_def = None
    stack_name = data.get("stack", "audio-room")
    if check_stack and isinstance(stack_name, str) and not pos.is_rejected(("stack",)):
        try:
            stack_def = find_stack(stack_name, near=path.resolve().parent)
        except EnvironmentNotReady as exc:
            problems.append(Problem(file, *pos.of(("stack",)), str(exc)))
    m = Meaning(data, pos, file, stack_def)
    steady = [c for i, item in enumerate(m.items("steady_state")) if (c := m.steady_check(item, ("steady_state", i)))]
    guards = [
        c for i, item in enumerate(m.items("abort_when")) if (c := m.measure_check(item, ("abort_when", i), "steady"))
    ]
    steps = [s for i, raw in enumerate(m.items("method")) if (s := m.step(i, raw))]
    rollbacks = [r for i, raw in enumerate(m.items("rollbacks")) if (r := m.rollback(raw, ("rollbacks", i)))]
    m.windows()
    # the sweep's section (chaos.capacity; a plain run ignores it) tries the whole file at each step
    capacity = parse_capacity(data, m, text) if whole else None
    problems += m.problems
    # What follows combines sections: each check runs when its own inputs were accepted (a bad
    # title does not hide `ears` > `count`); the listeners section is the input of them all.
    lst = data.get("listeners") or {}
    listeners_ok = isinstance(lst, dict) and not any(p[:1] == ("listeners",) for p in pos.rejected)
    stack_ok = isinstance(stack_name, str) and not pos.is_rejected(("stack",))
    if (not whole and not listeners_ok) or not stack_ok or (check_stack and stack_def is None):
        raise ExperimentError(_unique(problems))  # the stack says what listeners there are
    # every step was read (a rejected join step would add listeners the checks below do not see)
    method_ok = whole or (isinstance(data.get("method"), list) and len(steps) == len(data["method"]))
    given = (
        stack_def.listeners
        if stack_def is not None
        else (_labels_if_found(stack_name, path) if stack_ok and check_stack or whole else {})
    )
    join, via, stream_path = _way_in(lst, given)
    count = lst.get("count", DEFAULT_LISTENERS if (given or lst) else 0)
    join_steps = [s for s in steps if s.join is not None]
    swept = capacity is not None and capacity.vary == "listeners.count" and any(v > 0 for v in capacity.steps)
    if via is None and stack_def is not None and (count or join_steps or swept):
        if join_steps and not lst:
            where: tuple = ("method", join_steps[0].index)
        elif swept and not lst:
            where = ("capacity", "vary")
        else:  # the section, or the --var that set it
            where = (
                ("listeners", "join") if "join" in lst else ("listeners", "count") if "count" in lst else ("listeners",)
            )
        said = (
            f"its listeners join {given['join']} and it names no link for listeners that join {join} "
            "(label deadair.listeners.stream)"
            if given
            else "it has no deadair.listeners.* labels (no audio)"
        )
        problems.append(
            pos.problem(
                file,
                where,
                f"no link for listeners that join {join} on stack {stack_name}: {said}; "
                "expected listeners.via, the link they use (and listeners.join, listeners.path)",
            )
        )
    listeners = ListenersSpec(
        count=count,
        join=join,
        via=via or "",
        path=stream_path,
        backoff=tuple(parse_duration(b) for b in lst["backoff"]) if "backoff" in lst else DEFAULT_BACKOFF,
        read_timeout=parse_duration(lst["read_timeout"]) if "read_timeout" in lst else 10.0,
        response_timeout=parse_duration(lst["response_timeout"]) if "response_timeout" in lst else 8.0,
        min_stall=parse_duration(lst["min_stall"]) if "min_stall" in lst else 0.02,
        prebuffer=parse_duration(lst["prebuffer"]) if "prebuffer" in lst else 0.0,
        ears=lst.get("ears", 0),
        workers=lst.get("workers"),
        sample=lst.get("sample", 20),
        source_addresses=tuple(lst.get("source_addresses", ())),
        bandwidth=parse_bitrate(lst["bandwidth"]) if "bandwidth" in lst else 0.0,
        **_arrival(lst.get("arrival", "all")),
    )
    if (bad := arrival_problem(parse_arrival(lst.get("arrival", "all")))) is not None:
        problems.append(Problem(file, *pos.of(("listeners", "arrival")), bad))
    joins = sum(s.join.count for s in steps if s.join is not None)  # listeners a join step adds
    if (too_many := one_process_problem(lst)) is not None:
        problems.append(Problem(file, *pos.of(("listeners", "count")), too_many))
    if listeners.ears > listeners.count:
        problems.append(
            Problem(
                file,
                *pos.of(("listeners", "ears")),
                f"listeners.ears ({listeners.ears}) is more than listeners.count ({listeners.count})",
            )
        )
    if (
        stack_def is not None
        and (listeners.count or joins)
        and via
        and listeners.via not in stack_def.links
        and method_ok
    ):
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
    if listeners.count == 0 and not joins and uses_listeners and method_ok:
        if "count" in lst:
            why = f"listeners.count is 0 but {uses_listeners[0].measure} is measured from listeners"
            where = pos.of(("listeners", "count"))
        else:  # a stack without audio, and the experiment did not ask for listeners
            why = (
                f"{uses_listeners[0].measure} is measured from listeners, but there are none: stack {stack_name} "
                "has no deadair.listeners.* labels (no audio) and the experiment has no listeners section; "
                "expected probes or server.* measures, or listeners: {count, join, via}"
            )
            where = (uses_listeners[0].line, uses_listeners[0].column)
        problems.append(Problem(file, *where, why))
    if listeners.count == 0 and joins and method_ok:  # nobody listens before the method: the gate would judge no one
        for i, item in enumerate(data.get("steady_state") if isinstance(data.get("steady_state"), list) else []):
            if pos.is_rejected(("steady_state", i)):
                continue
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
    judged = [v for k in ("steady_state", "method") if isinstance(v := data.get(k), list)]
    hypothesis_read = (  # every check and step was read, whatever else was wrong with the file
        not any(p[:1] in (("steady_state",), ("method",)) for p in pos.rejected)
        and all(isinstance(data.get(k, []), list) for k in ("steady_state", "method"))
        and sum(map(len, judged)) == len(steady) + len(steps)
    )
    if hypothesis_read and not steady and not any(st.expect for st in steps):
        problems.append(
            Problem(
                file,
                1,
                1,
                "nothing to judge: no steady_state check and no step with `expect`; "
                "an experiment without a hypothesis passes whatever happens",
            )
        )
    if not whole:  # the rest needs every value: the hypothesis, the windows, the seed
        raise ExperimentError(_unique(problems))
    windows = Windows(**{k: parse_duration(v) for k, v in (data.get("windows") or {}).items()})
    if problems:
        raise ExperimentError(_unique(problems))
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


def _way_in(lst: dict[str, Any], given: dict[str, str]) -> tuple[str, str | None, str]:
    """How listeners join, through which link, and the path a direct one streams: what the
    experiment says, else what the stack's labels say (chaos.stack.definition). A stack that
    says nothing has no audio; an experiment that wants listeners on it names the link."""
    join = lst.get("join") or given.get("join") or "direct"
    if "via" in lst:
        via = lst["via"]
    elif join == given.get("join"):
        via = given.get("via")
    elif join == "direct" and given.get("join") == "room-api":  # past room-api, straight to the stream
        via = given.get("stream")
    else:
        via = None
    return join, via, lst.get("path") or given.get("path") or "/"


def _labels_if_found(stack_name: str, path: Path) -> dict[str, str]:
    """The stack's listener labels when its compose file is at hand, though the caller asked not
    to check targets against it (check_stack=False): the defaults are the stack's either way."""
    try:
        return find_stack(stack_name, near=path.resolve().parent).listeners
    except EnvironmentNotReady:
        return {}


def _arrival(value: Any) -> dict[str, Any]:
    a = parse_arrival(value)
    return {"arrival": a.kind, "arrival_over": a.over, "arrival_rate": a.rate, "arrival_rate_to": a.rate_to}


def _unique(problems: list[Problem]) -> list[Problem]:
    """Each problem once (two passes may find the same thing at the same place), and no more than
    MAX_PROBLEMS: a file with a thousand wrong steps says so in a screenful, not in megabytes. The
    first ones in the file are kept (a pass that runs later may find earlier lines), the count last."""
    once = sorted(dict.fromkeys(problems), key=lambda p: (p.file, p.line, p.column))  # file order, as printed
    if len(once) <= MAX_PROBLEMS:
        return once
    last = once[MAX_PROBLEMS - 1]
    more = f"... and {len(once) - MAX_PROBLEMS + 1:,} more problems (the first {MAX_PROBLEMS - 1} are shown)"
    return [*once[: MAX_PROBLEMS - 1], Problem(last.file, 0, 0, more, last=True)]


def _too_many_steps(data: dict[str, Any], pos: Positions, file: str) -> Problem | None:
    """More steps written than MAX_STEPS (repeats are counted by meaning, once the steps are read)."""
    method = data.get("method")
    if not isinstance(method, list) or len(method) <= MAX_STEPS:
        return None
    return pos.problem(
        file,
        ("method", MAX_STEPS),
        f"the method has {len(method):,} steps, more than the limit of {MAX_STEPS:,}; expected fewer steps",
    )
