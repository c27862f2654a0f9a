"""The suite: the experiments of a directory (or one file), each one scenario of the scorecard.

A scenario is named by its file's stem (what `required:` and `waive:` name). One with a
`capacity:` section is a capacity sweep (chaos.capacity), detected in the YAML mapping itself, so
that the suite can be read before the language knows the section. Everything is checked before
anything runs: an invalid experiment, a `--var` that no experiment declares, a waiver naming no
scenario are exit 2 with every problem located.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.errors import ExperimentError, Problem
from chaos.language.loader import load_experiment
from chaos.language.model import Experiment
from chaos.language.positions import Positions, load_yaml
from chaos.language.schema import schema
from chaos.language.variables import apply_overrides
from chaos.readiness.policy import Policy
from chaos.runner.outputs import experiment_id

PATTERNS = ("*.yaml", "*.yml", "*.json")


@dataclass
class Scenario:
    path: Path
    stem: str
    title: str
    tags: tuple[str, ...]
    experiment_id: str  # the results store's key: <file>::<title>
    capacity: dict[str, Any] | None = None  # the `capacity:` section as written: a sweep
    overrides: dict[str, str] = field(default_factory=dict)  # the --var settings this experiment declares
    experiment: Experiment | None = None  # loaded and checked (None: a sweep the language cannot load yet)

    @property
    def is_capacity(self) -> bool:
        return self.capacity is not None


def suite_files(where: Path) -> list[Path]:
    """The experiment files of a directory (its own, not its subdirectories'), or the one file."""
    if where.is_dir():
        return sorted({f for pattern in PATTERNS for f in where.glob(pattern) if f.is_file()})
    return [where]


def load_suite(where: str | Path, overrides: dict[str, str], policy: Policy) -> list[Scenario]:
    """Every scenario of the suite, checked; ExperimentError (exit 2) lists every problem."""
    root = Path(where)
    if not root.exists():
        raise ExperimentError([Problem(str(where), 0, 0, "no such file or directory; expected a suite of experiments")])
    files = suite_files(root)
    if not files:
        raise ExperimentError(
            [Problem(str(where), 0, 0, f"no experiment in the directory; expected files {', '.join(PATTERNS)}")]
        )
    problems: list[Problem] = []
    raw: dict[Path, dict[str, Any]] = {}
    for f in files:
        try:
            text = f.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(str(f), 0, 0, f"cannot read the file: {exc}"))
            continue
        data, _, found = load_yaml(text, str(f))
        if found:
            problems += found
        elif not isinstance(data, dict):
            problems.append(Problem(str(f), 1, 1, "expected an experiment: a mapping with title and method"))
        else:
            raw[f] = data
    per_file, var_problems = _distribute(raw, overrides)
    problems += var_problems
    scenarios: list[Scenario] = []
    seen: dict[str, Path] = {}
    for f, data in raw.items():
        if f.stem in seen:
            problems.append(
                Problem(str(f), 0, 0, f"scenario {f.stem!r} is also {seen[f.stem]}; expected one file per stem")
            )
            continue
        seen[f.stem] = f
        is_sweep = "capacity" in data
        exp = None
        if not is_sweep or "capacity" in schema()["properties"]:  # a sweep is checked once the language knows it
            try:
                exp = load_experiment(f, overrides=per_file[f])
                if is_sweep:  # every step's experiment too, as the sweep will load it
                    from chaos.capacity.sweep import step_experiments

                    step_experiments(f, per_file[f])
            except ExperimentError as exc:
                problems += exc.problems
                continue
        title = exp.title if exp else str(data.get("title") or f.stem)
        tags = exp.tags if exp else tuple(str(t) for t in data.get("tags") or ())
        scenarios.append(
            Scenario(
                path=f,
                stem=f.stem,
                title=title,
                tags=tags,
                experiment_id=experiment_id(f, title),
                capacity=dict(data["capacity"]) if is_sweep and isinstance(data["capacity"], dict) else None,
                overrides=per_file[f],
                experiment=exp,
            )
        )
    for stem in policy.waive:
        if stem not in seen and raw:
            problems.append(
                policy.problem(
                    ("waive", stem),
                    f"waive.{stem}: no scenario {stem!r} in {where}; expected one of: {', '.join(sorted(seen))}",
                    key=True,
                )
            )
    if problems:
        raise ExperimentError(problems)
    return scenarios


def _distribute(
    raw: dict[Path, dict[str, Any]], overrides: dict[str, str]
) -> tuple[dict[Path, dict[str, str]], list[Problem]]:
    """Each `--var NAME=VALUE` goes to every experiment that declares it: one whose `vars` has
    NAME, or that has the dotted key (what `deadair run --var` itself accepts). An error if none does."""
    per_file: dict[Path, dict[str, str]] = {f: {} for f in raw}
    problems = []
    for key, value in overrides.items():
        takers = [f for f, data in raw.items() if not apply_overrides(copy.deepcopy(data), {key: value}, Positions())]
        for f in takers:
            per_file[f][key] = value
        if not takers and raw:
            declared = sorted({str(v) for data in raw.values() for v in (data.get("vars") or {})})
            problems.append(
                Problem(
                    f"--var {key}={value}",
                    0,
                    0,
                    f"no experiment of the suite declares {key!r}; expected a variable declared under vars "
                    f"({', '.join(declared) or 'none'}) or a key of the experiments",
                )
            )
    return per_file, problems
