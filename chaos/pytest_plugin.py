"""The pytest plugin (entry point `pytest11`): experiment YAML files become test items.

As Tavern does for API tests, each experiment file under the folders named by the ini
option `deadair_paths` (default: `experiments`) is collected as one item, and so is a file
named on the command line wherever it is (`pytest /tmp/my-exp.yaml`) if it is an experiment
(a top-level `method`, `steady_state` or `steady-state-hypothesis`, or a `title` without Tavern's
`stages`, in any YAML style: another plugin's YAML, such as Tavern's, stays that plugin's). `deadair_paths` alone decides what a directory walk collects,
a directory named on the command line too (`pytest elsewhere/` outside it collects nothing of
deadair's: add the folder to `deadair_paths`). A file named twice, or by its path and through a
symlink, is one item. An invalid file is a collection error with `file:line:column`. Experiment tags become markers, and
every item carries the `deadair` marker, so `pytest -m "deadair and smoke"` works.

Stacks are shared by the session: the first item (or the `deadair_stack` fixture) that
needs a stack starts it, and the session takes down what it started unless
`--deadair-keep-stack` is given. A stack the session starts is written to a rollback ledger
first, as a run does, so a session that is killed leaves a ledger that the next run or
`deadair sweep` uses to take the stack down.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos.errors import DeadairError, ExperimentError
from chaos.faults.ledger import Ledger
from chaos.language import chaostoolkit
from chaos.language.limits import MAX_FILE_BYTES
from chaos.language.loader import load_experiment
from chaos.language.model import Experiment
from chaos.runner.run import RunOptions, RunResult, run
from chaos.stack.compose import Stack
from chaos.stack.definition import find_stack

_STACKS = pytest.StashKey["_Stacks"]()


class _Stacks:
    """Stacks started by this session, shared by every item and fixture."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.started: dict[str, Stack] = {}
        self.known: dict[str, Stack] = {}
        self.ledger: Ledger | None = None  # the stacks this session started, for sweep if it is killed

    def get(self, name: str = "audio-room", near: Path | None = None) -> Stack:
        project = self.config.getoption("deadair_project")
        stack = Stack(find_stack(name, near=near), project)
        if stack.project in self.known:
            return self.known[stack.project]
        if not stack.is_running():
            if not self.config.getoption("deadair_keep_stack"):
                if self.ledger is None:
                    self.ledger = Ledger(meta={"owner": "pytest session"})
                self.ledger.intend(
                    f"stack {stack.project}",
                    {
                        "action": "stack.down",
                        "project": stack.project,
                        "compose_file": str(stack.definition.compose_file),
                    },
                )
            stack.up()
            self.started[stack.project] = stack
        self.known[stack.project] = stack
        return stack

    def close(self) -> None:
        if self.ledger is not None:
            report = self.ledger.rollback()  # takes down what this session started
            self.ledger.close()
            for entry, err in report.failed:
                print(f"deadair: could not take down {entry['fault']}: {err}; ledger kept at {self.ledger.path}")
        self.started.clear()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("deadair", "deadair chaos experiments")
    group.addoption(
        "--deadair-keep-stack",
        action="store_true",
        dest="deadair_keep_stack",
        help="leave stacks this session started running",
    )
    group.addoption(
        "--deadair-journal-dir",
        dest="deadair_journal_dir",
        default=None,
        help="where run journals go (default: <rootdir>/.deadair/runs)",
    )
    group.addoption(
        "--deadair-project",
        dest="deadair_project",
        default=None,
        help="compose project name of the stack (default deadair-<stack>)",
    )
    group.addoption(
        "--deadair-inconclusive-retries",
        dest="deadair_inconclusive_retries",
        type=int,
        default=1,
        metavar="N",
        help="measure an inconclusive run (exit 4) again up to N times (default 1)",
    )
    group.addoption(
        "--deadair-results",
        dest="deadair_results",
        default=None,
        metavar="PATH|URL",
        help="the results store every run is appended to: a path or sqlite:///PATH "
        "(default $DEADAIR_RESULTS, else results.sqlite beside the journals' folder)",
    )
    group.addoption(
        "--deadair-var",
        dest="deadair_var",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set an experiment variable, or a key by its dotted path (listeners.count=500)",
    )
    group.addoption(
        "--deadair-dry",
        dest="deadair_dry",
        choices=("faults", "all"),
        default=None,
        help="faults: run every experiment but inject no fault (verdicts still judged); all: only plan "
        "(no stack, no engine call)",
    )
    parser.addini(
        "deadair_paths",
        type="linelist",
        default=["experiments"],
        help="folders whose *.yaml files are deadair experiments",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "deadair: a deadair experiment (collected from YAML)")
    config.stash[_STACKS] = _Stacks(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    stacks = config.stash.get(_STACKS, None)
    if stacks is not None:
        stacks.close()


def _is_experiment_path(path: Path, config: pytest.Config) -> bool:
    if path.suffix not in (".yaml", ".yml", ".json"):
        return False
    root = Path(str(config.rootpath))
    for folder in config.getini("deadair_paths"):
        base = (root / folder).resolve()
        if base == path.resolve().parent or base in path.resolve().parents:
            return True
    return False


_TOP_KEY = re.compile(r"^(?:method|steady_state|steady-state-hypothesis)\s*:", re.MULTILINE)


_EXPERIMENT_KEYS = {"method", "steady_state", "steady-state-hypothesis"}
_OTHER_PLUGINS_KEYS = {"stages", "test_name", "includes"}  # Tavern's


def _top_level_keys(text: str) -> set[str] | None:
    """The first document's top-level keys, read from YAML events (any style: block, flow
    `{title: t, method: [...]}`, quoted `"method":`), without building the document: no alias is
    expanded, and the file was read bounded. None if it is not YAML."""
    import yaml

    keys: set[str] = set()
    depth, is_key = 0, True
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.DocumentEndEvent):
                break
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                if depth == 0 and not isinstance(event, yaml.MappingStartEvent):
                    return keys  # a list at the top: no experiment
                depth += 1
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
                is_key = not is_key if depth == 1 else is_key  # a key's or value's collection ended
            elif depth == 1 and isinstance(event, (yaml.ScalarEvent, yaml.AliasEvent)):
                if is_key and isinstance(event, yaml.ScalarEvent):
                    keys.add(event.value)
                is_key = not is_key
    except yaml.YAMLError:
        return keys or None
    return keys


def _looks_like_experiment(path: Path) -> bool:
    """A file named on the command line is claimed only if it is an experiment (deadair or Chaos
    Toolkit): a top-level `method`, `steady_state` or `steady-state-hypothesis`. Another plugin's
    YAML (Tavern's `test_api.tavern.yaml`) stays that plugin's."""
    try:
        with path.open("rb") as f:
            text = f.read(MAX_FILE_BYTES + 1).decode("utf-8", errors="replace")
    except OSError:
        return True  # let the loader say what is wrong with it
    if path.suffix != ".json":
        keys = _top_level_keys(text)
        if keys is None:  # not YAML: claimed if it looks like one of ours, for a located error
            return bool(_TOP_KEY.search(text))
        return bool(keys & _EXPERIMENT_KEYS) or ("title" in keys and not keys & _OTHER_PLUGINS_KEYS)
    import json

    try:
        data = json.loads(text)
    except ValueError:
        return bool(re.search(r'"(?:method|steady_state|steady-state-hypothesis)"\s*:', text))
    return isinstance(data, dict) and ("method" in data or "steady_state" in data or chaostoolkit.looks_like(data))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml", ".json"):
        return None
    walked = _is_experiment_path(file_path, parent.config)
    named = not walked and parent.session.isinitpath(file_path) and _looks_like_experiment(file_path)
    if not (walked or named):  # named on the command line: wherever it is, if it is an experiment
        return None
    return ExperimentFile.from_parent(parent, path=file_path)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The same experiment file by two paths (its own and a symlink's): one item, the first."""
    seen: set[str] = set()
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        if isinstance(item, ExperimentItem):
            real = os.path.realpath(item.path)
            if real in seen:
                dropped.append(item)
                continue
            seen.add(real)
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


class ExperimentFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from chaos.language.variables import parse_var

        try:
            overrides = dict(parse_var(v) for v in self.config.getoption("deadair_var"))
        except ValueError as exc:
            raise self.CollectError(str(exc)) from None
        try:
            exp = load_experiment(self.path, overrides=overrides)
        except ExperimentError as exc:
            raise self.CollectError(f"invalid deadair experiment:\n{exc}") from None
        yield ExperimentItem.from_parent(self, name=exp.title, experiment=exp)


class ExperimentFailed(Exception):
    def __init__(self, result: RunResult):
        self.result = result
        super().__init__(result.status)


class ExperimentItem(pytest.Item):
    """One experiment run as a test: passes when every verdict passes."""

    def __init__(self, *, experiment: Experiment, **kwargs: Any):
        super().__init__(**kwargs)
        self.experiment = experiment
        self.result: RunResult | None = None
        self.store_error: str | None = None
        self.add_marker("deadair")
        for tag in experiment.tags:
            self.config.addinivalue_line("markers", f"{tag}: deadair experiment tag")
            self.add_marker(tag)

    def runtest(self) -> None:
        dry = self.config.getoption("deadair_dry")
        if dry == "all":  # only the plan: no stack, no engine call, nothing written
            from chaos.report.live_options import plan_only

            self.add_report_section("call", "deadair", plan_only(self.experiment))
            return
        stacks: _Stacks = self.config.stash[_STACKS]
        stacks.get(self.experiment.stack, near=self.path.parent)
        journal = self.config.getoption("deadair_journal_dir") or str(
            Path(str(self.config.rootpath)) / ".deadair" / "runs"
        )
        lines: list[str] = []
        result: RunResult | None = None
        # Inconclusive (exit 4) means nothing failed but the load generator's own lag could have
        # decided a verdict: the answer is to measure again, not to pass or fail the system. A run
        # that failed is never retried.
        for attempt in range(1 + max(0, self.config.getoption("deadair_inconclusive_retries"))):
            if result is not None:
                lines.append(f"inconclusive ({result.journal}): measuring again, attempt {attempt + 1}")
            result = self.result = run(
                self.experiment,
                RunOptions(
                    keep_stack=True,
                    journal_dir=Path(journal),
                    project=self.config.getoption("deadair_project"),
                    progress=lines.append,
                    dry=dry,
                ),
            )
            self._record_run(result, Path(journal))
            from chaos.report.html import after_run as write_html_report

            if write_html_report(result, lines.append):  # report.html beside the journal (each attempt's)
                lines.append(f"report: {result.report}")
            if result.exit_code != 4:
                break
        self.add_report_section("call", "deadair", "\n".join(lines))
        assert result is not None
        self._properties(result)
        if result.exit_code != 0:
            raise ExperimentFailed(result)

    def _record_run(self, result: RunResult, journal_dir: Path) -> None:
        """Every run (each inconclusive attempt too) goes into the results store (chaos.results)."""
        from chaos.results.store import ResultsError, record_run

        try:
            record_run(result.summary, self.config.getoption("deadair_results"), journal_dir)
        except ResultsError as exc:
            self.store_error = str(exc)

    def _properties(self, result: RunResult) -> None:
        """The run's numbers as the item's JUnit properties (chaos.report.junit names them), with
        the journal's and the HTML report's paths; pytest's --junitxml writes them."""
        import json

        from chaos.report.junit import properties

        if result.summary is not None and result.summary.is_file():
            summary = json.loads(result.summary.read_text())
            self.user_properties.extend(properties(summary, result.summary.parent))
        if self.store_error and result.exit_code == 0:
            raise DeadairError(f"the results store was not updated: {self.store_error}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None) -> str:
        if isinstance(excinfo.value, ExperimentFailed):
            from chaos.report.text import render

            return render(excinfo.value.result)
        if isinstance(excinfo.value, DeadairError):
            return f"deadair: {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, 0, f"deadair experiment: {self.name}"


@pytest.fixture(scope="session")
def deadair_stack(request: pytest.FixtureRequest) -> Stack:
    """The audio-room stack, running and healthy; started once per session if needed."""
    stacks: _Stacks = request.config.stash[_STACKS]
    return stacks.get("audio-room", near=Path(str(request.config.rootpath)))
