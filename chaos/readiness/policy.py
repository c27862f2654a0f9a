"""The launch's policy: what GO means, read from a YAML file (or the default when none is given).

```yaml
targets: {listeners: 1000, joins: 50/s, headroom: 25%}   # capacity must reach target x (1 + headroom)
slo: {dead_air: 2s, hold_music.onset: 3s, join_success_ratio: ">= 0.99"}   # launch limits
max_age: 24h              # an older result is stale: it counts as not run
required: all             # or a list of scenario file stems
waive: {rolling-restart: "accepted for launch: ticket OPS-12"}
categories: {microphone-path: [microphone-path, mic]}   # category -> the tags that put a scenario in it
```

Every problem is located (`file:line:col: what; expected`, exit 2), with the language's own
position helpers (chaos.language.positions), so a policy reads like an experiment when it is wrong.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.errors import ExperimentError, Problem
from chaos.language.expectations import EXPECT_HELP, Expectation, parse_expectation
from chaos.language.positions import Path_, Positions, load_yaml
from chaos.language.registry import resolve_measure
from chaos.language.units import DURATION_HELP, RATE_HELP, parse_duration, parse_rate

CATEGORIES: dict[str, tuple[str, ...]] = {
    "redundancy": ("redundancy", "failover"),
    "dependencies": ("dependencies",),
    "capacity": ("capacity",),
    "microphone-path": ("microphone-path", "mic"),
    "abuse": ("abuse",),
}
UNCATEGORISED = "uncategorised"
DEFAULT_MAX_AGE = 24 * 3600.0
DEFAULT_HEADROOM = 0.25
KEYS = ("targets", "slo", "max_age", "required", "waive", "categories")
TARGET_KEYS = ("listeners", "joins", "headroom")


class PolicyError(ExperimentError):
    """A policy file (or --target) that cannot be read: every problem located, exit 2."""


@dataclass(frozen=True)
class Limit:
    """A launch limit on one measure: every verdict on that measure, in every scenario, must meet
    it. `stat` None: the worst listener's (the distribution's max); else that statistic of it."""

    key: str  # as the policy wrote it: dead_air, hold_music.onset.p95
    measure: str  # the measure it names (the registry's name): dead_air
    expect: Expectation  # a bare duration X is `<= X`
    unit: str  # the measure's unit: duration, ratio, count

    @property
    def stat(self) -> str | None:
        return self.expect.stat

    @property
    def text(self) -> str:
        return f"{self.key} {self.expect.text}"


@dataclass(frozen=True)
class Targets:
    """The launch's load: listeners at once and joins per second; None: not claimed."""

    listeners: float | None = None
    joins: float | None = None  # per second
    headroom: float = DEFAULT_HEADROOM  # capacity must be at least target x (1 + headroom)


@dataclass(frozen=True)
class Policy:
    file: str  # where it came from ("default policy" when none was given)
    targets: Targets = field(default_factory=Targets)
    limits: tuple[Limit, ...] = ()
    max_age: float = DEFAULT_MAX_AGE
    required: tuple[str, ...] | None = None  # None: every scenario of the suite
    waive: dict[str, str] = field(default_factory=dict)  # scenario stem -> why it does not block the launch
    categories: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(CATEGORIES))
    positions: Positions | None = None  # for located problems found later (a waiver naming no scenario)

    def is_required(self, stem: str) -> bool:
        return self.required is None or stem in self.required

    def category_of(self, tags: tuple[str, ...] | list[str]) -> str:
        """The first category, in the policy's order, one of whose tags the scenario carries."""
        for name, wanted in self.categories.items():
            if set(wanted) & set(tags):
                return name
        return UNCATEGORISED

    def problem(self, path: Path_, message: str, key: bool = False) -> Problem:
        if self.positions is None:
            return Problem(self.file, 0, 0, message)
        return self.positions.problem(self.file, path, message, key=key)


DEFAULT = Policy(file="default policy")


def load_policy(path: str | Path | None) -> Policy:
    """The policy in `path`, or the default (no capacity target, no launch limit, 24 h, every
    scenario required, no waiver, the five categories) when none is given."""
    if path is None:
        return DEFAULT
    file = str(path)
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise PolicyError([Problem(file, 0, 0, "no such file; expected a policy file (YAML)")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([Problem(file, 0, 0, f"cannot read the file: {exc}")]) from None
    return parse_policy(text, file)


def parse_policy(text: str, file: str) -> Policy:
    data, pos, problems = load_yaml(text, file)
    if problems:
        raise PolicyError(problems)
    if not isinstance(data, dict):
        raise PolicyError([Problem(file, 1, 1, f"a policy is a mapping; expected keys among: {', '.join(KEYS)}")])
    reader = _Reader(file, pos)
    for key in data:
        if key not in KEYS:
            reader.unknown((key,), key, KEYS)
    policy = Policy(
        file=file,
        targets=reader.targets(data.get("targets")),
        limits=reader.limits(data.get("slo")),
        max_age=reader.duration(data["max_age"], ("max_age",)) if "max_age" in data else DEFAULT_MAX_AGE,
        required=reader.required(data.get("required", "all")),
        waive=reader.waive(data.get("waive")),
        categories=reader.categories(data["categories"]) if "categories" in data else dict(CATEGORIES),
        positions=pos,
    )
    if reader.problems:
        raise PolicyError(reader.problems)
    return policy


def parse_target_option(text: str, base: Targets) -> Targets:
    """`--target listeners=1000,joins=50/s[,headroom=25%]`, over the policy's targets."""
    where = f"--target {text}"
    values = {"listeners": base.listeners, "joins": base.joins, "headroom": base.headroom}
    problems = []
    for part in [p for p in text.split(",") if p.strip()] or [""]:
        key, sep, raw = part.partition("=")
        key = key.strip()
        if not sep or key not in TARGET_KEYS:
            problems.append(Problem(where, 0, 0, f"{part!r}; expected listeners=N, joins=R/s or headroom=P%"))
            continue
        try:
            values[key] = _target_value(key, raw.strip())
        except ValueError as exc:
            problems.append(Problem(where, 0, 0, str(exc)))
    if problems:
        raise PolicyError(problems)
    return Targets(values["listeners"], values["joins"], float(values["headroom"] or 0.0))


def _target_value(key: str, raw: Any) -> float:
    """listeners: a whole number above 0; joins: a rate (50/s; a number means per second);
    headroom: a percentage (25%) or a fraction (0.25), 0 or more."""
    if key == "headroom":
        if isinstance(raw, str) and raw.strip().endswith("%"):
            number = _number(raw.strip()[:-1])
            value = None if number is None else number / 100.0
        else:
            value = _number(raw)
        if value is None or value < 0:
            raise ValueError(
                f"headroom {raw!r}; expected a percentage such as 25% (or a fraction such as 0.25), 0 or more"
            )
        return value
    if key == "joins":
        value = _number(raw)
        if value is None:
            try:
                value = parse_rate(raw)
            except ValueError:
                value = None
        if value is None or value <= 0:
            raise ValueError(f"joins {raw!r}; expected {RATE_HELP}, above 0")
        return value
    value = _number(raw)
    if value is None or value <= 0 or value != int(value):
        raise ValueError(f"listeners {raw!r}; expected a whole number of listeners above 0")
    return value


def _number(raw: Any) -> float | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        return float(raw) if math.isfinite(raw) else None
    try:
        value = float(str(raw))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


class _Reader:
    """Each section checked, every problem kept (not only the first)."""

    def __init__(self, file: str, pos: Positions):
        self.file, self.pos = file, pos
        self.problems: list[Problem] = []

    def add(self, path: Path_, message: str, key: bool = False) -> None:
        self.problems.append(self.pos.problem(self.file, path, message, key=key))

    def unknown(self, path: Path_, key: Any, known: tuple[str, ...] | list[str]) -> None:
        hint = difflib.get_close_matches(str(key), list(known), n=1)
        did = f" (did you mean {hint[0]!r}?)" if hint else ""
        self.add(path, f"unknown key {key!r}{did}; expected one of: {', '.join(known)}", key=True)

    def mapping(self, value: Any, path: Path_, what: str) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.add(path, f"{path[-1]} is a {type(value).__name__}; expected a mapping of {what}")
            return {}
        return value

    def duration(self, value: Any, path: Path_) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError:
            self.add(path, f"{'.'.join(map(str, path))}: {value!r} is not valid; expected {DURATION_HELP}")
            return 0.0
        if seconds <= 0:
            self.add(path, f"{'.'.join(map(str, path))}: {value!r}; expected a duration above 0")
        return seconds

    def targets(self, raw: Any) -> Targets:
        data = self.mapping(raw, ("targets",), "listeners, joins and headroom")
        values: dict[str, float | None] = {"listeners": None, "joins": None, "headroom": DEFAULT_HEADROOM}
        for key, value in data.items():
            if key not in TARGET_KEYS:
                self.unknown(("targets", key), key, TARGET_KEYS)
                continue
            try:
                values[key] = _target_value(key, value)
            except ValueError as exc:
                self.add(("targets", key), f"targets.{exc}")
        return Targets(values["listeners"], values["joins"], float(values["headroom"] or 0.0))

    def limits(self, raw: Any) -> tuple[Limit, ...]:
        data = self.mapping(
            raw, ("slo",), "measure: limit (a duration such as 2s, or an expectation such as '>= 0.99')"
        )
        out = []
        for key, value in data.items():
            path: Path_ = ("slo", key)
            try:
                kind, name_stat = resolve_measure(str(key))
            except KeyError:
                from chaos.language.registry import MEASURES

                self.unknown(path, key, sorted(MEASURES))
                continue
            if isinstance(value, str) and parse_duration_or_none(value) is not None:
                if kind.unit != "duration":
                    self.add(
                        path,
                        f"slo.{key}: {value!r} is a duration but {kind.name} is a {kind.unit}; "
                        f"expected an expectation such as {EXPECT_HELP}",
                    )
                    continue
                expect = Expectation(f"<= {value}", name_stat, "<=", parse_duration(value), unit="duration")
            elif isinstance(value, str):
                try:
                    expect = parse_expectation(value)
                except ValueError as exc:
                    self.add(path, f"slo.{key}: {exc}")
                    continue
                if name_stat and expect.stat and expect.stat != name_stat:
                    self.add(path, f"slo.{key}: two statistics ({name_stat} and {expect.stat}); expected one")
                    continue
                if expect.unit == "duration" and kind.unit != "duration":
                    self.add(path, f"slo.{key}: {value!r} has a duration but {kind.name} is a {kind.unit}")
                    continue
                if name_stat and not expect.stat:
                    expect = Expectation(expect.text, name_stat, expect.op, expect.low, expect.high, expect.unit)
            else:
                self.add(
                    path,
                    f"slo.{key}: {value!r} is not a limit; expected a duration such as 2s (at most), "
                    f"or an expectation such as {EXPECT_HELP}",
                )
                continue
            out.append(Limit(str(key), kind.name, expect, kind.unit))
        return tuple(out)

    def required(self, raw: Any) -> tuple[str, ...] | None:
        if raw == "all":
            return None
        if not isinstance(raw, list) or not raw or not all(isinstance(x, str) and x for x in raw):
            # an empty list would require nothing: every failure would be GO
            self.add(("required",), f"required: {raw!r}; expected `all` or a non-empty list of scenario file stems")
            return ()
        return tuple(raw)

    def waive(self, raw: Any) -> dict[str, str]:
        data = self.mapping(raw, ("waive",), "scenario stem: the reason it is waived")
        out = {}
        for stem, why in data.items():
            if not isinstance(why, str) or not why.strip():
                self.add(("waive", stem), f"waive.{stem}: a waiver needs its reason; expected a sentence, such as "
                         "'accepted for launch: ticket OPS-12'")  # fmt: skip
                continue
            out[str(stem)] = why.strip()
        return out

    def categories(self, raw: Any) -> dict[str, tuple[str, ...]]:
        data = self.mapping(raw, ("categories",), "category: [tags]")
        out = {}
        for name, tags in data.items():
            if not isinstance(tags, list) or not tags or not all(isinstance(t, str) and t for t in tags):
                self.add(("categories", name), f"categories.{name}: {tags!r}; expected a list of tags, such as [mic]")
                continue
            out[str(name)] = tuple(tags)
        if not out and not self.problems:
            self.add(("categories",), "categories is empty; expected at least one category: [tags]")
        return out


def parse_duration_or_none(text: str) -> float | None:
    try:
        return parse_duration(text)
    except ValueError:
        return None


def format_headroom(h: float) -> str:
    return f"{h * 100:g}%"
