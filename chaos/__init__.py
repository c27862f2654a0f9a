"""deadair: chaos engineering for live audio rooms.

The public API, in the order a run uses it:
    load_experiment(path)          -> Experiment   (validated; ExperimentError lists problems)
    find_stack(name) / Stack(...)  -> the compose project under test
    run(experiment, RunOptions())  -> RunResult    (verdicts, journal, exit code)
    History / judge                -> re-judge a recorded journal

Names are imported on first use (PEP 562), so that a process that needs one module (a flood
process, `deadair validate`) does not pay for the Docker SDK and numpy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_WHERE = {
    "errors": ["DeadairError", "EnvironmentNotReady", "ExperimentError", "Problem", "TargetError"],
    "language.model": ["Check", "Experiment", "Step"],
    "language.loader": ["load_experiment", "parse_experiment"],
    "language.expectations": ["parse_expectation"],
    "language.registry": ["FAULTS", "MEASURES"],
    "checkers.history": ["Distribution", "History", "Window"],
    "checkers.verdicts": ["Verdict", "check"],
    "runner.run": ["RunOptions", "RunResult", "judge", "run"],
    "stack.compose": ["Stack"],
    "stack.definition": ["StackDefinition", "find_stack"],
    "stack.addresses": ["guard", "GuardError"],
    "timeline": ["Clock", "Event", "Timeline"],
}
_MODULE_OF = {name: module for module, names in _WHERE.items() for name in names}
__all__ = ["__version__", *_MODULE_OF]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'chaos' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and editors
    from .checkers.history import Distribution, History, Window  # noqa: F401
    from .checkers.verdicts import Verdict, check  # noqa: F401
    from .errors import DeadairError, EnvironmentNotReady, ExperimentError, Problem, TargetError  # noqa: F401
    from .language.expectations import parse_expectation  # noqa: F401
    from .language.loader import load_experiment, parse_experiment  # noqa: F401
    from .language.model import Check, Experiment, Step  # noqa: F401
    from .language.registry import FAULTS, MEASURES  # noqa: F401
    from .runner.run import RunOptions, RunResult, judge, run  # noqa: F401
    from .stack.addresses import GuardError, guard  # noqa: F401
    from .stack.compose import Stack  # noqa: F401
    from .stack.definition import StackDefinition, find_stack  # noqa: F401
    from .timeline import Clock, Event, Timeline  # noqa: F401
