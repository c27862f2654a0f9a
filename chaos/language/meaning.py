"""Pass 4 of loading: what the values mean. Durations, expectations, measure and fault names
and parameters (through the registries), probes and tolerances, repeats, and targets against
the stack's compose file, so that a bad target is refused before anything starts.
"""

from __future__ import annotations

import copy
import difflib
import json

from chaos.errors import Problem
from chaos.language.arrival import arrival_problem, parse_arrival
from chaos.language.expectations import parse_expectation
from chaos.language.model import PHASES, Check, Join, Step
from chaos.language.positions import Path_, Positions
from chaos.language.probes import DEFAULT_TIMEOUT, ProbeSpec, link_names, tolerance_problems
from chaos.language.registry import FAULTS, MEASURES, resolve_measure
from chaos.language.units import parse_duration
from chaos.stack.definition import StackDefinition


class Meaning:
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
        kinds = [k for k in ("fault", "probe", "action", "join") if k in raw]
        if len(kinds) != 1:
            self.problem(path, "a step has exactly one of fault, probe, action or join")
            return None
        kind = kinds[0]
        if kind == "join":
            return self.join_step(i, raw)
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

    def join_step(self, i: int, raw: dict) -> Step | None:
        """A crowd joining during the method: once, at `at`; its expectations are judged from the
        step's start to the method's end (plus the recovery window). Measures from a fault's start
        or end (hold_music.*, live.*) are refused: they belong under the fault's step."""
        path: Path_ = ("method", i)
        for key in ("for", "every", "times", "until", "target", "with", "http", "process"):
            if key in raw:
                why = (
                    "a join step happens once and its crowd stays until the run ends"
                    if key in ("for", "every", "times", "until")
                    else "it belongs to fault, probe and action steps"
                )
                self.problem(path + (key,), f"{key!r} is not allowed on a join step: {why}", key=True)
        arrival = parse_arrival(raw["join"].get("arrival", "all"))
        problem = arrival_problem(arrival)
        if problem:
            self.problem(path + ("join", "arrival"), problem)
        expects = []
        for j, item in enumerate(raw.get("expect") or []):
            c = self.measure_check(item, path + ("expect", j), "step")
            if c is None:
                continue
            if resolve_measure(c.measure or "")[0].scope != "window":
                self.problem(
                    path + ("expect", j, "measure"),
                    f"{c.measure} is measured from a fault's start or end and a join step has none; "
                    "expected it under the fault's step (where it counts the crowd that joined during the fault)",
                )
                continue
            expects.append(c)
        return Step(
            i,
            parse_duration(raw["at"]),
            "join",
            expect=tuple(expects),
            line=self.pos.of(path)[0],
            join=Join(int(raw["join"]["count"]), arrival),
        )
