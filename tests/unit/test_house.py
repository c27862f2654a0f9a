"""The house: the public API, modules that import on their own, the language knowing faults and
measures only through its registries, one stack-address policy, and faults that prepare apart
from describing their undo. (Lint, types and the layer contracts run in scripts/check.)"""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

import chaos
from chaos.errors import ExperimentError
from chaos.faults.base import make_fault
from chaos.language import registry
from chaos.language.loader import parse_experiment
from chaos.listen.listener import StreamAddress
from chaos.listen.probes import ProbeError, check_loopback_url
from chaos.stack.addresses import GuardError, guard, guard_url

PUBLIC = {
    "__version__",
    "DeadairError", "EnvironmentNotReady", "ExperimentError", "Problem", "TargetError",
    "Check", "Experiment", "Step", "load_experiment", "parse_experiment", "parse_expectation",
    "FAULTS", "MEASURES",
    "Distribution", "History", "Window", "Verdict", "check",
    "RunOptions", "RunResult", "judge", "run",
    "Stack", "StackDefinition", "find_stack", "guard", "GuardError",
    "Clock", "Event", "Timeline",
}  # fmt: skip
MODULES = sorted(m.name for m in pkgutil.walk_packages(chaos.__path__, "chaos.") if not m.name.endswith("__main__"))


def test_the_public_api_is_what_the_package_says():
    assert set(chaos.__all__) == PUBLIC
    for name in chaos.__all__:
        assert getattr(chaos, name) is not None, name
    with pytest.raises(AttributeError):
        chaos.no_such_name  # noqa: B018


def test_public_names_are_not_shadowed_by_subpackages():
    """`chaos.run` and `chaos.judge` are functions even after every subpackage is imported (a
    subpackage of the same name would replace them on the package)."""
    code = (
        "import importlib, pkgutil, types, chaos\n"
        "for m in pkgutil.walk_packages(chaos.__path__, 'chaos.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "bad = [n for n in chaos.__all__ if isinstance(getattr(chaos, n), types.ModuleType)]\n"
        "assert not bad, bad\n"
        "ns = {}\n"
        "exec('from chaos import *', ns)\n"
        "assert callable(ns['run']) and callable(ns['judge']) and callable(ns['check']), ns['run']\n"
    )
    proc = subprocess.run([sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports_on_its_own_without_warnings(module):
    """A fresh interpreter per module (pytest's own check): an import cycle or a module that
    only works after another was imported fails here."""
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", f"import {module}"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_language_loads_without_the_code_that_runs_faults_and_measures():
    code = (
        "import sys, chaos.language.loader\n"
        "bad = [m for m in sys.modules if m.startswith(('chaos.faults', 'chaos.checkers', 'chaos.listen', "
        "'chaos.runner', 'docker', 'numpy'))]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]


FAULT_ORDER = [
    "link.down", "link.partition", "link.flap", "link.latency", "link.bandwidth", "link.slow_close",
    "link.timeout", "link.reset_peer", "link.slicer", "link.limit_data",
    "node.kill", "node.stop", "node.pause", "node.restart", "node.disconnect",
    "mic.cut", "mic.stall", "mic.degrade", "mic.flap", "mic.reset", "mic.crash", "mic.mute",
    "flood.joins", "flood.http", "flood.connections",
]  # fmt: skip


def test_the_builtin_faults_and_measures_arrive_through_the_plugin_entry_points_in_order():
    """`deadair list --faults` and "expected one of" show the registry's order: families as
    documented, not as an import sorter would put them."""
    code = "from chaos.language import registry\nprint(','.join(registry.FAULTS)); print(len(registry.MEASURES))\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    faults, measures = proc.stdout.split()
    assert faults.split(",") == FAULT_ORDER
    assert int(measures) == len(registry.MEASURES) > 10


def test_a_plugin_that_does_not_import_is_an_environment_error_every_time():
    code = (
        "from importlib.metadata import EntryPoint\n"
        "from chaos.language import registry\n"
        "from chaos.errors import EnvironmentNotReady\n"
        "registry.entry_points = lambda group: [EntryPoint('broken', 'no_such_plugin_module', group)]\n"
        "for _ in range(2):\n"
        "    try:\n"
        "        list(registry.FAULTS)\n"
        "    except EnvironmentNotReady as exc:\n"
        "        assert 'broken = no_such_plugin_module' in str(exc), exc\n"
        "    else:\n"
        "        raise SystemExit('a broken plugin left a registry that reads as empty')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]


EXPERIMENT = """\
title: a fault kind from a plugin
stack: audio-room
listeners: {count: 1}
steady_state:
  - {measure: dead_air.max, expect: "< 1s"}
method:
  - {at: 1s, fault: %s, target: redis, for: 1s, with: {depth: 3}}
"""


@dataclass
class _Drill:
    """A fault kind a plugin might add: the loader sees it only through the registry."""

    name: ClassVar[str] = "test.drill"
    summary: ClassVar[str] = "a drill"
    target_kind: ClassVar[str] = "node"
    default_target: ClassVar[str | None] = None
    needs_duration: ClassVar[bool] = True
    params_spec: ClassVar[dict[str, Any]] = {"depth": None}

    @classmethod
    def check_target(cls, stack_def: Any, target: str | None) -> list[str]:
        return [] if target in stack_def.nodes else [f"{target!r} is not a node"]

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        return dict(params), [] if params.get("depth", 0) <= 5 else ["depth: at most 5"]

    @classmethod
    def check_with(cls, stack_def: Any, target: str | None, params: dict[str, Any]) -> list[str]:
        return []


def test_a_fault_kind_registered_by_a_plugin_is_validated_by_the_language(tmp_path, monkeypatch):
    path = tmp_path / "drill.yaml"
    with pytest.raises(ExperimentError, match="unknown fault 'test.drill'"):
        parse_experiment(EXPERIMENT % "test.drill", path)
    monkeypatch.setitem(registry.FAULTS._items, "test.drill", _Drill)
    exp = parse_experiment(EXPERIMENT % "test.drill", path)
    assert exp.method[0].fault == "test.drill" and exp.method[0].params == {"depth": 3}
    with pytest.raises(ExperimentError, match="depth: at most 5"):
        parse_experiment((EXPERIMENT % "test.drill").replace("depth: 3", "depth: 9"), path)


# -- one stack-address policy -------------------------------------------------------------------


@pytest.mark.parametrize(
    "host,allowed",
    [("127.0.0.1", True), ("127.9.9.9", True), ("localhost", True), ("10.1.2.3", False),
     ("172.18.0.8", False), ("8.8.8.8", False), ("example.com", False), ("[::1]", True)],
)  # fmt: skip
def test_listeners_probes_and_floods_share_one_address_policy(host, allowed):
    """The same addresses pass or fail for all three, with the policy's own error."""
    url = f"http://{host}:8000/live"
    callers = {
        "listener": lambda: StreamAddress.from_url(url),
        "probe": lambda: check_loopback_url(url),
        "flood": lambda: guard_url(url),  # a flood with no stack nodes given: loopback only
    }
    for who, call in callers.items():
        if allowed:
            call()
        else:
            with pytest.raises((GuardError, ProbeError), match="outside the stack|not part of the stack") as info:
                call()
            assert who != "listener" or isinstance(info.value, GuardError)
    if allowed:
        assert guard(host) in ("127.0.0.1", host.strip("[]"))


@pytest.mark.parametrize("host", ["localhost.localdomain", "evil.localhost"])
def test_listeners_and_probes_never_connect_by_a_name_other_than_localhost(host):
    """They connect by name, so a loopback alias that DNS or /etc/hosts could send elsewhere is
    refused; a flood connects to the address the policy returns, so it may use the alias."""
    url = f"http://{host}:8000/live"
    with pytest.raises(GuardError):
        StreamAddress.from_url(url)
    with pytest.raises(ProbeError):
        check_loopback_url(url)
    assert guard_url(url)[0] == "127.0.0.1"


# -- prepare() apart from undo() ------------------------------------------------------------------


class _Untouchable:
    """A stack that fails on any use: undo() must only describe."""

    definition = None

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"undo() touched the stack ({name})")


def test_a_flood_resolves_its_address_in_prepare_and_undo_only_describes(monkeypatch):
    from chaos.faults.flood import FloodHttp

    fault = FloodHttp(_Untouchable(), "entry-lb", {"rate": 10.0, "count": 5}, "t")  # type: ignore[arg-type]
    action = fault.undo()
    assert action["action"] == "flood.stop" and "address" not in fault.extra
    with pytest.raises(AssertionError, match="touched the stack"):
        fault.prepare()


def test_make_fault_refuses_a_flood_longer_than_the_limit():
    from chaos.faults import flooder
    from chaos.stack.definition import find_stack

    definition = find_stack("audio-room", near=Path(__file__).parent)

    class _Stack:
        pass

    stack = _Stack()
    stack.definition = definition  # type: ignore[attr-defined]
    with pytest.raises(chaos.TargetError, match="lasts at most"):
        make_fault(stack, "flood.http", "entry-lb", {"rate": "10/s", "count": 5}, "t", flooder.MAX_DURATION + 1)  # type: ignore[arg-type]


class _CountingStack:
    """A stack whose container lookups are counted: prepare() may look, undo() may not."""

    project = "deadair-p"

    def __init__(self) -> None:
        self.lookups = 0

    def container(self, node: str) -> Any:
        self.lookups += 1
        nets = {"net": {"NetworkID": "n1", "Aliases": ["edge-1"], "IPAddress": "172.18.0.5"}}
        return type("C", (), {"id": "c0ffee", "attrs": {"NetworkSettings": {"Networks": nets}}})()


@pytest.mark.parametrize("kind", ["node.stop", "node.kill", "node.disconnect", "mic.mute", "mic.crash"])
def test_node_faults_resolve_their_container_in_prepare_and_undo_only_describes(kind):
    from chaos.faults.base import Fault

    cls = registry.FAULTS[kind]
    stack = _CountingStack()
    fault: Fault = cls(stack, "edge-1", {}, "t")  # type: ignore[operator]
    with pytest.raises(RuntimeError, match="prepare"):
        fault.undo()
    fault.prepare()
    assert stack.lookups == 1
    action = fault.undo()
    assert stack.lookups == 1 and action["container"] == "c0ffee", action
