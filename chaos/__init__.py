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
    "experiment": ["Check", "Experiment", "Step", "load_experiment", "parse_experiment"],
    "hypotheses": ["Distribution", "History", "Verdict", "Window", "check", "parse_expectation"],
    "runner": ["RunOptions", "RunResult", "judge", "run"],
    "stack": ["Stack", "StackDefinition", "find_stack"],
    "timeline": ["Clock", "Event", "Timeline"],
    "faults": ["FAULTS"],
    "floods": ["guard", "GuardError"],
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
    from .errors import DeadairError, EnvironmentNotReady, ExperimentError, Problem, TargetError  # noqa: F401
    from .experiment import Check, Experiment, Step, load_experiment, parse_experiment  # noqa: F401
    from .faults import FAULTS  # noqa: F401
    from .floods import GuardError, guard  # noqa: F401
    from .hypotheses import Distribution, History, Verdict, Window, check, parse_expectation  # noqa: F401
    from .runner import RunOptions, RunResult, judge, run  # noqa: F401
    from .stack import Stack, StackDefinition, find_stack  # noqa: F401
    from .timeline import Clock, Event, Timeline  # noqa: F401
