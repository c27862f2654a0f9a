"""Faults (Jepsen's nemesis): things done to the stack that can be undone.

A fault resolves its target against the stack before anything acts, then `apply()`s
itself. Before acting it hands the runner an *undo action*: a plain dict (what to do,
where: the Toxiproxy URL and proxy, the container id) that the rollback ledger writes to
disk and can replay without the experiment, even from another process after a SIGKILL.
Undo actions are idempotent and each has a verification.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from docker.errors import APIError, DockerException, NotFound
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from . import engine
from .errors import TargetError
from .stack import Stack, StackError
from .toxiproxy import Toxic, Toxiproxy, ToxiproxyError
from .units import parse_duration


class FaultError(Exception):
    """A fault could not be applied, reverted or verified."""


# -- parameters ------------------------------------------------------------------------------------

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB)?\s*$", re.I)
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(KB/s|kbit/s|MB/s|Mbit/s)\s*$", re.I)


@dataclass(frozen=True)
class Param:
    """A fault parameter: its kind decides what is accepted and what the fault receives."""

    kind: str  # ms (a duration -> milliseconds), us, bytes, rate (-> KB/s), stream, toxicity, count
    required: bool = False
    default: Any = None
    help: str = ""

    def convert(self, value: Any) -> Any:
        k = self.kind
        if k in ("ms", "us"):
            seconds = parse_duration(value)
            return int(round(seconds * (1000 if k == "ms" else 1_000_000)))
        if k == "bytes":
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
            m = _SIZE.match(str(value)) if isinstance(value, str) else None
            if not m:
                raise ValueError(f"{value!r} is not a size such as 1024, 64KB or 1MB")
            return int(float(m.group(1)) * {"b": 1, "kb": 1024, "mb": 1024 * 1024}[(m.group(2) or "B").lower()])
        if k == "rate":
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
                return int(value)
            m = _RATE.match(str(value)) if isinstance(value, str) else None
            if not m:
                raise ValueError(f"{value!r} is not a rate such as 64KB/s, 512kbit/s or 1MB/s (a number means KB/s)")
            scale = {"kb/s": 1.0, "kbit/s": 1 / 8, "mb/s": 1024.0, "mbit/s": 1024 / 8}[m.group(2).lower()]
            return int(round(float(m.group(1)) * scale))
        if k == "stream":
            if value not in ("upstream", "downstream", "both"):
                raise ValueError(f"{value!r} is not upstream, downstream or both")
            return value
        if k == "toxicity":
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise ValueError(f"{value!r} is not a toxicity between 0 and 1")
            return float(value)
        if k == "signal":
            import signal as _signal

            name = str(value).upper()
            name = name if name.startswith("SIG") else "SIG" + name
            if not hasattr(_signal, name):
                raise ValueError(f"{value!r} is not a signal name such as SIGKILL, SIGTERM or SIGSEGV")
            return name
        if k == "count":
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{value!r} is not a whole number of at least 1")
            return value
        raise ValueError(f"unknown parameter kind {k}")

    def show(self, value: Any) -> str:
        unit = {"ms": "ms", "us": "us", "bytes": "B", "rate": "KB/s"}.get(self.kind, "")
        return f"{value}{unit}"


@dataclass
class Fault:
    """Base of every fault. Subclasses set `name`, `target_kind` and implement apply()."""

    name: ClassVar[str] = ""
    target_kind: ClassVar[str] = "link"  # "link" or "node"
    default_target: ClassVar[str | None] = None
    summary: ClassVar[str] = ""

    params_spec: ClassVar[dict[str, Param]] = {}

    stack: Stack
    target: str
    params: dict[str, Any]  # converted (see Param)
    token: str = "x"  # unique per occurrence in a run: names what the fault creates
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def check_target(cls, stack_def, target: str | None) -> list[str]:
        """Problems with a target, checked against the stack's compose file before anything starts."""
        if target is None:
            return [f"fault {cls.name} needs a target ({cls.target_kind})"]
        if cls.target_kind == "link" and target not in stack_def.links:
            return [f"{target!r} is not a link of stack {stack_def.name}; links: {', '.join(stack_def.links)}"]
        if cls.target_kind == "node" and target not in stack_def.nodes:
            return [f"{target!r} is not a node of stack {stack_def.name}; nodes: {', '.join(stack_def.nodes)}"]
        return []

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """Converted parameters (defaults filled in) and the problems found."""
        out: dict[str, Any] = {}
        problems: list[str] = []
        for key in params:
            if key not in cls.params_spec:
                if not cls.params_spec:
                    problems.append(f"fault {cls.name} takes no parameters (got {key!r})")
                    continue
                hint = difflib.get_close_matches(str(key), list(cls.params_spec), n=1)
                did = f" (did you mean {hint[0]!r}?)" if hint else ""
                problems.append(f"fault {cls.name} has no parameter {key!r}{did}; "
                                f"parameters: {', '.join(cls.params_spec)}")
        for key, spec in cls.params_spec.items():
            if key in params:
                try:
                    out[key] = spec.convert(params[key])
                except ValueError as exc:
                    problems.append(f"{cls.name} {key}: {exc}")
            elif spec.required:
                problems.append(f"fault {cls.name} needs parameter {key!r} ({spec.help})")
            elif spec.default is not None:
                out[key] = spec.convert(spec.default)
        return out, problems

    def describe(self) -> str:
        shown = ", ".join(f"{k} {spec.show(self.params[k])}" for k, spec in self.params_spec.items()
                          if k in self.params and self.params[k] != (spec.convert(spec.default) if spec.default is not None else None))
        return f"{self.name} {self.target}" + (f" ({shown})" if shown else "")

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


@dataclass
class ToxicFault(Fault):
    """A Toxiproxy toxic on a link; `stream: both` puts one on each direction."""

    toxic_type: ClassVar[str] = ""
    common: ClassVar[dict[str, Param]] = {
        "stream": Param("stream", default="downstream", help="upstream, downstream or both"),
        "toxicity": Param("toxicity", default=1.0, help="the chance, per connection, that the toxic applies"),
    }

    def attributes(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if k not in ("stream", "toxicity")}

    def _names(self) -> list[tuple[str, str]]:
        streams = ["upstream", "downstream"] if self.params.get("stream") == "both" else [self.params.get("stream", "downstream")]
        return [(f"deadair_{self.token}_{s}", s) for s in streams]

    def undo(self) -> dict[str, Any]:
        tox = self.stack.toxiproxy()
        return {"action": "toxics.remove", "toxiproxy": tox.url, "proxy": self.target,
                "toxics": [n for n, _ in self._names()], "enabled": tox.proxy(self.target).enabled}

    def apply(self) -> None:
        tox = self.stack.toxiproxy()
        for name, stream in self._names():
            tox.add_toxic(self.target, Toxic(name, self.toxic_type, stream, self.params.get("toxicity", 1.0),
                                             self.attributes()))


def _toxic(name: str, toxic_type: str, summary: str, **params: Param) -> type[ToxicFault]:
    cls = type(name.replace(".", "_").title().replace("_", ""), (ToxicFault,), {
        "__annotations__": {}, "name": name, "toxic_type": toxic_type, "summary": summary,
        "params_spec": {**params, **ToxicFault.common}, "__doc__": summary})
    return dataclass(cls)


LinkLatency = _toxic("link.latency", "latency", "add latency (and jitter) to every chunk of data on a link",
                     latency=Param("ms", required=True, help="a duration such as 500ms"),
                     jitter=Param("ms", default="0ms", help="a duration such as 50ms"))
LinkBandwidth = _toxic("link.bandwidth", "bandwidth", "cap a link's throughput (0 stalls it without closing)",
                       rate=Param("rate", required=True, help="a rate such as 64KB/s or 512kbit/s"))
LinkSlowClose = _toxic("link.slow_close", "slow_close", "delay the close of connections on a link",
                       delay=Param("ms", required=True, help="a duration"))
LinkTimeout = _toxic("link.timeout", "timeout", "drop all data; close after the timeout (0ms: never)",
                     timeout=Param("ms", required=True, help="a duration, 0ms for never"))
LinkResetPeer = _toxic("link.reset_peer", "reset_peer", "reset connections (TCP RST) after the timeout",
                       timeout=Param("ms", default="0ms", help="a duration"))
LinkSlicer = _toxic("link.slicer", "slicer", "slice data into small delayed chunks",
                    average_size=Param("bytes", required=True, help="bytes"),
                    size_variation=Param("bytes", default=0, help="bytes"),
                    delay=Param("us", default="0ms", help="a duration between chunks"))
LinkLimitData = _toxic("link.limit_data", "limit_data", "close connections after a number of bytes",
                       bytes=Param("bytes", required=True, help="a size such as 64KB"))


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


@dataclass
class NodeKill(NodeStop):
    """The node's main process gets a signal (SIGKILL by default): a crash, no goodbye."""

    name: ClassVar[str] = "node.kill"
    summary: ClassVar[str] = "send a signal (default SIGKILL) to a node's container; rollback starts it"
    params_spec: ClassVar[dict[str, Param]] = {"signal": Param("signal", default="SIGKILL", help="a signal name")}

    def apply(self) -> None:
        try:
            self.stack.container(self.target).kill(signal=self.params.get("signal", "SIGKILL"))
        except DockerException as exc:
            raise FaultError(f"could not kill {self.target}: {exc}") from exc


FAULTS: dict[str, type[Fault]] = {f.name: f for f in (
    LinkDown, MicCut, LinkLatency, LinkBandwidth, LinkSlowClose, LinkTimeout, LinkResetPeer, LinkSlicer,
    LinkLimitData, NodeStop, NodeKill)}


def make_fault(stack: Stack, name: str, target: str | None, params: dict[str, Any], token: str = "x") -> Fault:
    """A fault bound to a running stack; TargetError when the target is not part of it."""
    cls = FAULTS[name]
    target = target or cls.default_target
    problems = cls.check_target(stack.definition, target)
    converted, more = cls.check_params(params)
    if problems or more:
        raise TargetError("; ".join(problems + more))
    assert target is not None
    return cls(stack, target, converted, token)


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


def _remove_toxics(action: dict[str, Any]) -> None:
    """Remove the fault's toxics. Toxiproxy can block a removal while a stalled connection holds the
    toxic (its issues 210, 412, 558: seen here with a rate-0 bandwidth toxic); closing the link's
    connections (disable, then restore) lets the removal finish."""
    tox = Toxiproxy(action["toxiproxy"], timeout=3.0)
    proxy = action["proxy"]
    stuck = []
    for name in action["toxics"]:
        try:
            tox.remove_toxic(proxy, name)
        except ToxiproxyError as exc:
            if "did not answer" not in str(exc):
                raise
            stuck.append(name)
    enabled = bool(action.get("enabled", True))  # the link's state when the fault was applied
    if stuck:
        # Only for a stuck toxic: if Toxiproxy itself does not answer, a PATCH sent now could be
        # carried out long after we gave up; this GET tells the two apart.
        tox.proxy(proxy)
        tox.set_enabled(proxy, False)
        tox.set_enabled(proxy, enabled)
        for name in stuck:
            tox.remove_toxic(proxy, name)
    if tox.proxy(proxy).enabled != enabled:
        tox.set_enabled(proxy, enabled)


def _verify_toxics(action: dict[str, Any]) -> None:
    p = Toxiproxy(action["toxiproxy"]).proxy(action["proxy"])
    left = {t.name for t in p.toxics} & set(action["toxics"])
    if left:
        raise FaultError(f"toxics {', '.join(sorted(left))} still on link {action['proxy']}")
    if p.enabled != bool(action.get("enabled", True)):
        raise FaultError(f"link {action['proxy']} is {'up' if p.enabled else 'down'}, it was not when the fault began")


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


def _stack_down(action: dict[str, Any]) -> None:
    from .stack import Compose

    Compose(action["project"], Path(action["compose_file"])).run("down", "--remove-orphans", "-v", "-t", "2")


def _verify_stack_down(action: dict[str, Any]) -> None:
    left = engine.connect().containers.list(all=True, filters={"label": f"com.docker.compose.project={action['project']}"})
    if left:
        raise FaultError(f"{len(left)} container(s) of {action['project']} still exist")


UNDO: dict[str, tuple[Callable[[dict], None], Callable[[dict], None]]] = {
    "link.enable": (_enable_link, _verify_link),
    "toxics.remove": (_remove_toxics, _verify_toxics),
    "container.start": (_start_container, _verify_container),
    "stack.down": (_stack_down, _verify_stack_down),
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
