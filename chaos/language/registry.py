"""The names the language knows: fault kinds and measures, registered by the code that runs them.

The loader validates an experiment against these two registries and never imports a fault or a
measure. Plugins fill them when imported; the modules to import are the `deadair.plugins`
entry-point group, where the built-in faults (`chaos.faults`) and measures
(`chaos.checkers.measures`) are declared in pyproject.toml like any other plugin (Tavern's
backends work the same way). A package of one's own can add faults or measures with one line.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Mapping
from importlib.metadata import entry_points
from typing import Any, ClassVar, Generic, Protocol, TypeVar, cast

from chaos.errors import EnvironmentNotReady

PLUGIN_GROUP = "deadair.plugins"
STATS = ("max", "min", "mean", "count", "p50", "p90", "p95", "p99")


class FaultKind(Protocol):
    """A fault as the language sees it: a name, its parameters and what it may target."""

    name: ClassVar[str]
    summary: ClassVar[str]
    target_kind: ClassVar[str]  # what `target` names: "link", "node" or "entry" (either)
    params_spec: ClassVar[Mapping[str, Any]]
    default_target: ClassVar[str | None]
    needs_duration: ClassVar[bool]

    @classmethod
    def check_target(cls, stack_def: Any, target: str | None) -> list[str]: ...

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]: ...

    @classmethod
    def check_with(cls, stack_def: Any, target: str | None, params: dict[str, Any]) -> list[str]: ...


class MeasureKind(Protocol):
    """A measure as the language sees it: a name, and whether it needs golden ears."""

    @property
    def name(self) -> str: ...

    @property
    def unit(self) -> str: ...  # "duration", "ratio" or "count": which bounds make sense

    @property
    def scope(self) -> str: ...  # "window", or measured from a step's fault ("fault_start", "fault_end")

    @property
    def ears(self) -> bool: ...


T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """Name -> item, filled by plugins on import; reading it loads the plugins first."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        if name in self._items and self._items[name] is not item:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._items[name] = item
        return item

    def __getitem__(self, name: str) -> T:
        load_plugins()
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        load_plugins()
        return iter(self._items)

    def __len__(self) -> int:
        load_plugins()
        return len(self._items)


FAULTS: Registry[FaultKind] = Registry("fault")
MEASURES: Registry[MeasureKind] = Registry("measure")

_state = {"loaded": False, "loading": False}


def load_plugins() -> None:
    """Import every module of the `deadair.plugins` group once (they register on import).

    A plugin that fails to import is an EnvironmentNotReady naming it, every time the registries
    are read, never a registry silently missing its faults."""
    if _state["loaded"] or _state["loading"]:  # loading: a plugin reading a registry as it imports
        return
    found = entry_points(group=PLUGIN_GROUP)
    if not found:
        raise EnvironmentNotReady(
            f"no {PLUGIN_GROUP} entry points: deadair is not installed in this "
            "Python (pip install -e . in the checkout, or run scripts/bootstrap)"
        )
    _state["loading"] = True
    try:
        for ep in found:
            try:
                importlib.import_module(ep.value.partition(":")[0])
            except Exception as exc:
                raise EnvironmentNotReady(
                    f"the deadair plugin {ep.name} = {ep.value} does not import: {type(exc).__name__}: {exc}"
                ) from exc
        _state["loaded"] = True
    finally:
        _state["loading"] = False


K = TypeVar("K", bound=type)


def register_fault(cls: K) -> K:
    """Register a fault kind (a class with the FaultKind attributes) under its `name`."""
    kind = cast(FaultKind, cls)
    FAULTS.register(kind.name, kind)
    return cls


def resolve_measure(name: str) -> tuple[MeasureKind, str | None]:
    """`dead_air.max` -> (dead_air, "max"); `hold_music.onset` -> (hold_music.onset, None)."""
    if name in MEASURES:
        return MEASURES[name], None
    base, _, stat = name.rpartition(".")
    if base in MEASURES and (stat in STATS or re.fullmatch(r"p\d{1,2}", stat)):
        return MEASURES[base], stat
    raise KeyError(name)
