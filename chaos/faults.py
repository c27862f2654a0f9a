"""Faults (Jepsen's nemesis): things done to the stack that can be undone.

A fault resolves its target against the stack before anything acts, then `apply()`s
itself. Before acting it hands the runner an *undo action*: a plain dict (what to do,
where: the Toxiproxy URL and proxy, the container id) that the rollback ledger writes to
disk and can replay without the experiment, even from another process after a SIGKILL.
Undo actions are idempotent and each has a verification.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

from docker.errors import APIError, DockerException, NotFound
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from . import engine
from .errors import TargetError
from .stack import Stack, StackError
from .toxiproxy import Toxiproxy, ToxiproxyError


class FaultError(Exception):
    """A fault could not be applied, reverted or verified."""


@dataclass
class Fault:
    """Base of every fault. Subclasses set `name`, `target_kind` and implement apply()."""

    name: ClassVar[str] = ""
    target_kind: ClassVar[str] = "link"  # "link" or "node"
    default_target: ClassVar[str | None] = None
    summary: ClassVar[str] = ""

    stack: Stack
    target: str
    params: dict[str, Any]

    @classmethod
    def validate(cls, stack_def, target: str | None, params: dict[str, Any]) -> list[str]:
        """Problems with a step's target and parameters, checked before anything starts."""
        problems = []
        target = target or cls.default_target
        if target is None:
            problems.append(f"fault {cls.name} needs a target ({cls.target_kind})")
        elif cls.target_kind == "link" and target not in stack_def.links:
            problems.append(f"{target!r} is not a link of stack {stack_def.name}; links: {', '.join(stack_def.links)}")
        elif cls.target_kind == "node" and target not in stack_def.nodes:
            problems.append(f"{target!r} is not a node of stack {stack_def.name}; nodes: {', '.join(stack_def.nodes)}")
        if params:
            problems.append(f"fault {cls.name} takes no parameters (got {', '.join(params)})")
        return problems

    def describe(self) -> str:
        return f"{self.name} {self.target}"

    def undo(self) -> dict[str, Any]:
        """The undo action, computed before apply() (so it is on disk before the fault acts)."""
        raise NotImplementedError

    def apply(self) -> None:
        raise NotImplementedError


# -- links -------------------------------------------------------------------------------------


@dataclass
class LinkDown(Fault):
    """The link stops accepting connections and every open one is closed."""

    name: ClassVar[str] = "link.down"
    summary: ClassVar[str] = "disable a Toxiproxy proxy: connections closed, new ones refused"

    def _tox(self) -> Toxiproxy:
        return self.stack.toxiproxy()

    def undo(self) -> dict[str, Any]:
        return {"action": "link.enable", "toxiproxy": self._tox().url, "proxy": self.target}

    def apply(self) -> None:
        self._tox().set_enabled(self.target, False)


@dataclass
class MicCut(LinkDown):
    """The speaker's uplink to the origin is cut: Icecast must fall back to hold music."""

    name: ClassVar[str] = "mic.cut"
    default_target: ClassVar[str | None] = "mic"
    summary: ClassVar[str] = "cut the microphone uplink (mic -> origin link down)"


# -- nodes -------------------------------------------------------------------------------------


@dataclass
class NodeStop(Fault):
    """The node's container is stopped (SIGTERM, then SIGKILL after 2 s)."""

    name: ClassVar[str] = "node.stop"
    target_kind: ClassVar[str] = "node"
    summary: ClassVar[str] = "stop a node's container; rollback starts it and waits until healthy"

    def undo(self) -> dict[str, Any]:
        c = self.stack.container(self.target)
        return {"action": "container.start", "container": c.id, "node": self.target, "project": self.stack.project}

    def apply(self) -> None:
        try:
            self.stack.container(self.target).stop(timeout=2)
        except DockerException as exc:
            raise FaultError(f"could not stop {self.target}: {exc}") from exc


FAULTS: dict[str, type[Fault]] = {f.name: f for f in (LinkDown, MicCut, NodeStop)}


def make_fault(stack: Stack, name: str, target: str | None, params: dict[str, Any]) -> Fault:
    cls = FAULTS[name]
    target = target or cls.default_target
    problems = cls.validate(stack.definition, target, params)
    if problems:
        raise TargetError("; ".join(problems))
    assert target is not None
    return cls(stack, target, dict(params))


# -- undo actions --------------------------------------------------------------------------------
# Each takes the action dict and reverts (idempotently); each verify raises FaultError unless the
# stack is back as it was. They use only what the dict holds, so a later process can run them.

VERIFY_TIMEOUT = 30.0


def _enable_link(action: dict[str, Any]) -> None:
    Toxiproxy(action["toxiproxy"]).set_enabled(action["proxy"], True)


def _verify_link(action: dict[str, Any]) -> None:
    p = Toxiproxy(action["toxiproxy"]).proxy(action["proxy"])
    if not p.enabled:
        raise FaultError(f"link {action['proxy']} is still down")


def _start_container(action: dict[str, Any]) -> None:
    c = engine.connect().containers.get(action["container"])
    c.reload()
    if c.status == "paused":
        c.unpause()
    elif c.status != "running":
        c.start()


def _verify_container(action: dict[str, Any]) -> None:
    client = engine.connect()

    def check() -> None:
        state = client.containers.get(action["container"]).attrs.get("State", {})
        health = (state.get("Health") or {}).get("Status", "none")
        if not (state.get("Status") == "running" and health in ("healthy", "none")):
            raise FaultError(f"node {action.get('node')} is {state.get('Status')}/{health}, not running and healthy")

    for attempt in Retrying(stop=stop_after_delay(VERIFY_TIMEOUT), wait=wait_fixed(0.2),
                            retry=retry_if_exception_type(FaultError), reraise=True):
        with attempt:
            check()


UNDO: dict[str, tuple[Callable[[dict], None], Callable[[dict], None]]] = {
    "link.enable": (_enable_link, _verify_link),
    "container.start": (_start_container, _verify_container),
}


def revert(action: dict[str, Any]) -> None:
    """Run an undo action and verify it; raises FaultError when the stack is not restored."""
    try:
        do, verify = UNDO[action["action"]]
    except KeyError:
        raise FaultError(f"unknown undo action {action.get('action')!r}") from None
    try:
        do(action)
        verify(action)
    except NotFound as exc:
        raise FaultError(f"cannot revert {action['action']}: {exc}") from exc
    except (ToxiproxyError, APIError, DockerException, StackError) as exc:
        raise FaultError(f"reverting {action['action']} failed: {exc}") from exc
