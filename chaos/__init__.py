"""deadair: chaos engineering for live audio rooms.

The public API, in the order a run uses it:
    load_experiment(path)          -> Experiment   (validated; ExperimentError lists problems)
    find_stack(name) / Stack(...)  -> the compose project under test
    run(experiment, RunOptions())  -> RunResult    (verdicts, journal, exit code)
    History / judge                -> re-judge a recorded journal
"""
__version__ = "0.1.0"

from .errors import DeadairError, EnvironmentNotReady, ExperimentError, Problem, TargetError  # noqa: E402
from .experiment import Check, Experiment, Step, load_experiment, parse_experiment  # noqa: E402
from .hypotheses import Distribution, History, Verdict, Window, check, parse_expectation  # noqa: E402
from .runner import RunOptions, RunResult, judge, run  # noqa: E402
from .stack import Stack, StackDefinition, find_stack  # noqa: E402
from .timeline import Clock, Event, Timeline  # noqa: E402

__all__ = [
    "__version__", "DeadairError", "EnvironmentNotReady", "ExperimentError", "Problem", "TargetError",
    "Check", "Experiment", "Step", "load_experiment", "parse_experiment",
    "Distribution", "History", "Verdict", "Window", "check", "parse_expectation",
    "RunOptions", "RunResult", "judge", "run", "Stack", "StackDefinition", "find_stack",
    "Clock", "Event", "Timeline",
]
