"""Pass 4 of loading: what the values mean. Durations, expectations, measure and fault names
and parameters (through the registries), probes and tolerances, repeats, and targets against
the stack's compose file, so that a bad target is refused before anything starts.

It runs on whatever the earlier passes did not reject (Positions.rejected): a value the schema
refused is neither judged nor reported again, and everything else is, so that one pass reports
every problem of a file (a bad duration in one step and an unknown fault in another, or in the
same step). Nothing here assumes a shape the schema would have enforced: a missing or rejected
value skips the checks that need it. It also counts the method against the limits of
chaos.language.limits (occurrences once repeats are expanded, the run's length).
"""

from __future__ import annotations

import copy
import difflib
import json
import math
from typing import Any

from chaos.errors import Problem
from chaos.language.arrival import Arrival, arrival_problem, parse_arrival
from chaos.language.expectations import Expectation, parse_expectation
from chaos.language.limits import MAX_RUN_SECONDS, MAX_STEPS, describe
from chaos.language.model import PHASES, Check, Join, Step
from chaos.language.positions import Path_, Positions
from chaos.language.probes import DEFAULT_TIMEOUT, ProbeSpec, link_names, tolerance_problems
from chaos.language.registry import FAULTS, MEASURES, MeasureKind, resolve_measure
from chaos.language.schema import schema
from chaos.language.units import parse_duration
from chaos.stack.definition import StackDefinition


def _known_keys(definition: str) -> frozenset[str]:
    return frozenset(schema()["$defs"][definition]["properties"])


class Meaning:
    """The semantic pass: builds the model while collecting problems."""

    def __init__(self, data: dict, pos: Positions, file: str, stack_def: StackDefinition | None):
        self.data, self.pos, self.file, self.stack_def = data, pos, file, stack_def
        self.problems: list[Problem] = []
        # every rejected value and what contains it: "did an earlier pass report something here?"
        self._touched = {p[:i] for p in pos.rejected for i in range(len(p) + 1)}
        self.occurrences = 0  # of the method, once repeating steps are expanded
        self._over: set[str] = set()  # limits already reported (once each)

    def problem(self, path: Path_, message: str, key: bool = False) -> None:
        self.problems.append(self.pos.problem(self.file, path, message, key=key))

    # -- reading values the earlier passes accepted ------------------------------------------

    def bad(self, path: Path_) -> bool:
        """An earlier pass reported this value (or one that contains it): judge nothing of it."""
        return self.pos.is_rejected(path)

    def _unknown_keys(self, item: dict, definition: str) -> bool:
        """The schema reported a key of `item` as unknown (a typo of the key that was wanted)."""
        return any(k not in _known_keys(definition) for k in item)

    def items(self, *path: Any) -> list[Any]:
        """The list at a top-level path, or [] (absent, rejected or not a list)."""
        value: Any = self.data
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        return value if isinstance(value, list) and not self.bad(path) else []

    def duration(self, raw: dict, path: Path_, key: str) -> float | None:
        """raw[key] in seconds; None when absent or rejected (or wrong: then a problem)."""
        if key not in raw or self.bad(path + (key,)):
            return None
        try:
            return parse_duration(raw[key])
        except ValueError as exc:
            self.problem(path + (key,), str(exc))
            return None

    # -- checks -------------------------------------------------------------------------------

    def measure_check(self, item: Any, path: Path_, scope: str) -> Check | None:
        if not isinstance(item, dict) or self.bad(path):
            return None
        name = item.get("measure")
        if not isinstance(name, str) or self.bad(path + ("measure",)):
            return None  # the schema said what is wrong with it
        expect = item.get("expect")
        expect_ok = isinstance(expect, str) and not self.bad(path + ("expect",))
        if "expect" not in item and not self.bad(path + ("expect",)):
            self.problem(path, f"measure {name!r} needs an expect")
        measure: MeasureKind | None = None
        name_stat: str | None = None
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
        if measure is not None and measure.scope != "window" and scope != "step":
            self.problem(
                path + ("measure",),
                f"{name} is measured from a fault's start or end; put it under a method step's expect",
            )
        exp: Expectation | None = None
        if expect_ok:
            try:
                exp = parse_expectation(str(expect))
            except ValueError as exc:
                self.problem(path + ("expect",), str(exc))
        if measure is None or exp is None:
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
        return Check(
            measure=name,
            expect=expect,
            when=self._when(item, path),
            line=self.pos.of(path)[0],
            column=self.pos.of(path)[1],
        )

    def _when(self, item: dict, path: Path_) -> tuple[str, ...]:
        when = item.get("when", PHASES)
        return tuple(when) if isinstance(when, (list, tuple)) and not self.bad(path + ("when",)) else tuple(PHASES)

    def probe_spec(self, item: Any, path: Path_, name: Any) -> ProbeSpec | None:
        if not isinstance(item, dict) or self.bad(path):
            return None
        kinds = [k for k in ("http", "process") if k in item]
        if len(kinds) != 1:
            if kinds or not any(self.bad(path + (k,)) for k in item):  # else: a misspelt http, reported
                self.problem(path, f"{name!r} needs exactly one of http or process")
            return None
        kind = kinds[0]
        if self.bad(path + (kind,)) or not isinstance(item[kind], dict):
            return None
        spec = copy.deepcopy(item[kind])
        timeout = DEFAULT_TIMEOUT
        if "timeout" in spec:
            given = self.duration(spec, path + (kind,), "timeout")
            timeout = DEFAULT_TIMEOUT if given is None else given
            spec.pop("timeout")
        text = json.dumps(spec, default=str)
        for link in link_names(text):
            if self.stack_def is not None and link not in self.stack_def.links:
                self.problem(
                    path + (kind,),
                    f"${{links.{link}}}: {link!r} is not a link of stack "
                    f"{self.stack_def.name}; links: {', '.join(self.stack_def.links)}",
                )
        name = str(name)
        return ProbeSpec(name, kind, spec if kind == "http" else {}, spec if kind == "process" else {}, timeout)

    def rollback(self, raw: Any, path: Path_) -> ProbeSpec | None:
        if not isinstance(raw, dict) or self.bad(path):
            return None
        return self.probe_spec(raw, path, raw.get("action", ""))

    def steady_check(self, item: Any, path: Path_) -> Check | None:
        if not isinstance(item, dict) or self.bad(path):
            return None
        if ("measure" in item) == ("probe" in item):
            if "measure" in item or not self._unknown_keys(item, "check"):
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
        name = item["probe"]
        tolerance_ok = "tolerance" in item and not self.bad(path + ("tolerance",))
        if "tolerance" not in item and not self.bad(path + ("tolerance",)):
            self.problem(path, f"probe {name!r} needs a tolerance (such as 200 for an HTTP status)")
        if tolerance_ok:
            try:
                messages = tolerance_problems(item["tolerance"])
            except (RecursionError, OverflowError, ValueError, TypeError) as exc:  # a regex nested past reason
                messages = [f"tolerance cannot be read: {type(exc).__name__}: {exc}"]
            for msg in messages:
                self.problem(path + ("tolerance",), msg)
        spec = self.probe_spec(item, path, name)
        every: float | None = 2.0
        if item.get("every") == "end":
            every = None
        elif "every" in item:
            every = self.duration(item, path, "every")
            if every is None:
                return None
        if spec is None or not tolerance_ok:
            return None
        return Check(
            probe=spec,
            tolerance=item["tolerance"],
            every=every,
            when=self._when(item, path),
            line=self.pos.of(path)[0],
            column=self.pos.of(path)[1],
        )

    # -- the method ---------------------------------------------------------------------------

    def expects(self, raw: dict, path: Path_) -> list[Check]:
        out: list[Check] = []
        if self.bad(path + ("expect",)) or not isinstance(raw.get("expect"), list):
            return out
        for j, item in enumerate(raw["expect"]):
            c = self.measure_check(item, path + ("expect", j), "step")
            if c:
                out.append(c)
        return out

    def step(self, i: int, raw: Any) -> Step | None:
        path: Path_ = ("method", i)
        if not isinstance(raw, dict) or self.bad(path):
            return None
        kinds = [k for k in ("fault", "probe", "action", "join") if k in raw]
        if len(kinds) != 1:
            if kinds or not self._unknown_keys(raw, "step"):  # else: a misspelt fault, reported
                self.problem(path, "a step has exactly one of fault, probe, action or join")
            for key in ("at", "for", "every", "until"):  # what it is not, its times and checks are still read
                self.duration(raw, path, key)
            self.expects(raw, path)
            return None
        kind = kinds[0]
        if kind == "join":
            return self.join_step(i, raw)
        at = self.duration(raw, path, "at")
        duration = self.duration(raw, path, "for")
        every = self.duration(raw, path, "every")
        until = self.duration(raw, path, "until")
        times = raw.get("times") if not self.bad(path + ("times",)) else None
        times = times if isinstance(times, int) and not isinstance(times, bool) else None
        if "every" in raw:
            if ("times" in raw) == ("until" in raw):
                self.problem(path + ("every",), "a repeating step needs times or until (not both)", key=True)
            if every is not None and every <= 0:
                self.problem(path + ("every",), "every must be longer than 0s")
            if duration is not None and every is not None and duration >= every:
                self.problem(
                    path + ("for",),
                    f"for ({raw['for']}) must be shorter than every ({raw['every']}): "
                    "occurrences of one step may not overlap",
                )
            if until is not None and at is not None and until < at:
                self.problem(path + ("until",), f"until ({raw['until']}) is before at ({raw['at']})")
        elif "times" in raw or "until" in raw:
            self.problem(path + ("times" if "times" in raw else "until",), "times and until need every", key=True)
        self.count(path, at, duration, every, times, until)
        target_ok = not self.bad(path + ("target",))
        target, one_of = None, None
        if not target_ok:
            pass
        elif isinstance(raw.get("target"), dict):
            names = raw["target"].get("one_of")
            one_of = tuple(names) if isinstance(names, list) and names else None
            target_ok = one_of is not None
        else:
            target = raw.get("target")
        if kind == "fault":
            for key in ("http", "process"):
                if key in raw:
                    self.problem(path + (key,), f"{key!r} belongs to probe and action steps", key=True)
            expects = self.expects(raw, path)
            fault = raw["fault"]
            if not isinstance(fault, str) or self.bad(path + ("fault",)):
                return None
            cls = FAULTS.get(fault)
            if cls is None:
                hint = difflib.get_close_matches(fault, list(FAULTS), n=1)
                did = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.problem(path + ("fault",), f"unknown fault {fault!r}{did}; expected one of: {', '.join(FAULTS)}")
                return None
            target = target if (target or one_of) else cls.default_target
            if self.stack_def is not None and target_ok:
                for t in one_of or (target,):
                    for msg in cls.check_target(self.stack_def, t):
                        self.problem(path + ("target",) if "target" in raw else path + ("fault",), msg)
            params: dict[str, Any] = {}
            with_ = raw.get("with") or {}
            if isinstance(with_, dict) and not self.bad(path + ("with",)):
                params, more = cls.check_params(with_)
                if not more and self.stack_def is not None and target_ok:
                    for t in one_of or (target,):
                        more += [m for m in cls.check_with(self.stack_def, t, params) if m not in more]
                for msg in more:
                    self.problem(path + ("with",) if "with" in raw else path + ("fault",), msg)
            if cls.needs_duration and "for" not in raw:
                self.problem(path + ("fault",), f"fault {fault} acts over time: give it a duration with `for`")
            if at is None:
                return None
            return Step(
                i,
                at,
                "fault",
                fault=fault,
                duration=duration,
                every=every,
                times=times,
                until=until,
                target=target,
                one_of=one_of,
                params=params,
                raw_params=dict(with_) if isinstance(with_, dict) else {},
                expect=tuple(expects),
                line=self.pos.of(path)[0],
            )
        for key in ("target", "with", "expect", "for"):
            if key in raw:
                self.problem(path + (key,), f"{key!r} belongs to fault steps, not {kind} steps", key=True)
        spec = self.probe_spec(raw, path, raw[kind])
        if spec is None or at is None:
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
        join = raw["join"] if isinstance(raw["join"], dict) and not self.bad(path + ("join",)) else None
        arrival: Arrival | None = Arrival()
        if join is not None and "arrival" in join:
            arrival = None
            if not self.bad(path + ("join", "arrival")):
                try:
                    arrival = parse_arrival(join["arrival"])
                except ValueError as exc:
                    self.problem(path + ("join", "arrival"), str(exc))
            if arrival is not None and (problem := arrival_problem(arrival)):
                self.problem(path + ("join", "arrival"), problem)
                arrival = None
        count = join.get("count") if join is not None and not self.bad(path + ("join", "count")) else None
        count = count if isinstance(count, int) and not isinstance(count, bool) else None
        expects = []
        given = raw.get("expect")
        items: list[Any] = given if isinstance(given, list) and not self.bad(path + ("expect",)) else []
        for j, item in enumerate(items):
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
        at = self.duration(raw, path, "at")
        if at is None or count is None or arrival is None:
            return None
        self.count(path, at, None, None, None, None, span=_span(arrival, count))
        return Step(i, at, "join", expect=tuple(expects), line=self.pos.of(path)[0], join=Join(count, arrival))

    # -- limits -------------------------------------------------------------------------------

    def count(
        self,
        path: Path_,
        at: float | None,
        duration: float | None,
        every: float | None,
        times: int | None,
        until: float | None,
        span: float = 0.0,
    ) -> None:
        """Add a step's occurrences to the method's, and refuse a step that ends past
        MAX_RUN_SECONDS or brings the method past MAX_STEPS occurrences (each reported once).
        Counted arithmetically: `every: 1ms, until: 24h` is not expanded to find it is too much."""
        if at is None:
            return
        n, last = 1, at
        if every is not None and every > 0:
            if times is not None:
                n, last = times, at + (times - 1) * every
            elif until is not None and until >= at:
                k = (until - at) / every
                if math.isfinite(k):
                    n = int(min(k + 1e-9, MAX_STEPS + 1)) + 1
                    last = at + math.floor(k + 1e-9) * every
                else:
                    n, last = MAX_STEPS + 1, until
        self.occurrences += n
        if self.occurrences > MAX_STEPS and "steps" not in self._over:
            self._over.add("steps")
            self.problem(
                path,
                f"the method has more than {MAX_STEPS:,} occurrences once repeating steps are expanded "
                f"(this step brings it past the limit); expected fewer steps or repeats",
            )
        end = last + (duration or 0.0) + span
        if not end <= MAX_RUN_SECONDS and "run" not in self._over:
            self._over.add("run")
            when = describe(end)
            if not end < 1e9:  # a typo of hundreds of nines: no use spelling it
                when = f"more than {describe(MAX_RUN_SECONDS)}"
            elif when == describe(MAX_RUN_SECONDS):  # just past it: `until: 24h` plus a `for`
                when = f"{end:.9g}s"
            # at a key a --var set, if one did: the problem is that --var's
            given = [path + (k,) for k in ("until", "every", "times", "for", "at") if self.pos.origin(path + (k,), "")]
            self.problem(
                given[0] if given else path,
                f"this step ends {when} into the method, past the limit of {describe(MAX_RUN_SECONDS)}; "
                "expected a shorter method",
            )

    def windows(self) -> None:
        """Each window within MAX_RUN_SECONDS (a run waits for all of them)."""
        raw = self.data.get("windows")
        if not isinstance(raw, dict) or self.bad(("windows",)):
            return
        for key in raw:
            seconds = self.duration(raw, ("windows",), key)
            if seconds is not None and seconds > MAX_RUN_SECONDS:
                self.problem(("windows", key), f"windows.{key} is longer than the limit of {describe(MAX_RUN_SECONDS)}")


def _span(arrival: Arrival, count: int) -> float:
    """About how long a crowd takes to arrive (a Poisson crowd's expected span)."""
    if arrival.kind == "ramp":
        return arrival.over
    if arrival.kind == "poisson" and arrival.rate > 0:
        return (count - 1) / arrival.rate
    if arrival.kind == "rising" and arrival.rate + arrival.rate_to > 0:
        return 2.0 * (count - 1) / (arrival.rate + arrival.rate_to)
    return 0.0
