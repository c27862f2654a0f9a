"""Faults (Jepsen's nemesis): things done to the stack that can be undone. The base of every
fault family (network, node, mic, flood), their parameters, and `make_fault`.

A fault resolves its target against the stack before anything acts, then `apply()`s
itself. Before acting it hands the runner an *undo action*: a plain dict (what to do, and
where by the stack's identity: compose project, link name, container id) that the rollback
ledger writes to disk and can replay without the experiment, even from another process after
a SIGKILL (chaos.faults.undo). Undo actions are idempotent and each has a verification.

Faults on one target compose (see chaos.faults.undo): an apply that finds its target already down
because of another active fault leaves it down rather than failing, and a fault that would
bring a target back (a flap's up phase, an instant restart) does not while another holds it.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from docker.errors import DockerException

from chaos.errors import FaultError, TargetError
from chaos.faults import flooder as floods
from chaos.language.registry import FAULTS
from chaos.language.units import parse_duration, parse_rate
from chaos.stack.compose import Stack

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
        if k == "per_second":
            rate = parse_rate(value)
            if not 0 < rate <= floods.MAX_RATE:
                raise ValueError(f"{value!r} is not a rate between 0 and {floods.MAX_RATE:g}/s")
            return rate
        if k in ("url", "text", "path", "http_method"):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{value!r} is not a non-empty string")
            if k == "path" and not value.startswith("/"):
                raise ValueError(f"{value!r} is not a path starting with /")
            if k == "http_method" and value.upper() not in ("GET", "POST", "PUT", "DELETE", "HEAD", "PATCH"):
                raise ValueError(f"{value!r} is not an HTTP method")
            return value.upper() if k == "http_method" else value
        if k == "flag":
            if not isinstance(value, bool):
                raise ValueError(f"{value!r} is not true or false")
            return value
        if k.startswith("choice:"):
            choices = k.split(":", 1)[1].split(",")
            if value not in choices:
                raise ValueError(f"{value!r} is not one of {', '.join(choices)}")
            return value
        raise ValueError(f"unknown parameter kind {k}")

    def show(self, value: Any) -> str:
        unit = {"ms": "ms", "us": "us", "bytes": "B", "rate": "KB/s", "per_second": "/s"}.get(self.kind, "")
        return f"{value}{unit}"


@dataclass
class Fault:
    """Base of every fault. Subclasses set `name`, `target_kind` and implement apply()."""

    name: ClassVar[str] = ""
    target_kind: ClassVar[str] = "link"  # "link" or "node"
    default_target: ClassVar[str | None] = None
    summary: ClassVar[str] = ""
    needs_duration: ClassVar[bool] = False  # a fault that acts over time (flap, flood) needs `for`

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
        note = default_note(cls, target)
        if cls.target_kind == "link" and target not in stack_def.links:
            return [f"{target!r} is not a link of stack {stack_def.name}{note}; links: {', '.join(stack_def.links)}"]
        if cls.target_kind == "node" and target not in stack_def.nodes:
            return [f"{target!r} is not a node of stack {stack_def.name}{note}; nodes: {', '.join(stack_def.nodes)}"]
        return []

    @classmethod
    def check_with(cls, stack_def, target: str | None, params: dict[str, Any]) -> list[str]:
        """Problems of target and parameters together (converted parameters), from the files alone."""
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
                problems.append(
                    f"fault {cls.name} has no parameter {key!r}{did}; parameters: {', '.join(cls.params_spec)}"
                )
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
        shown = ", ".join(
            f"{k} {spec.show(self.params[k])}"
            for k, spec in self.params_spec.items()
            if k in self.params and self.params[k] != (spec.convert(spec.default) if spec.default is not None else None)
        )
        return f"{self.name} {self.target}" + (f" ({shown})" if shown else "")

    @classmethod
    def check_duration(cls, duration: float | None) -> list[str]:
        """Problems with the step's `for`, once it is known."""
        return []

    def prepare(self) -> None:
        """Resolve what the fault needs from the running stack before its undo action is recorded;
        a refusal here leaves nothing to undo. Most faults need nothing."""

    def undo(self) -> dict[str, Any]:
        """The undo action, computed before apply() (so it is on disk before the fault acts). It
        only describes what prepare() resolved: no call to the engine or to Toxiproxy."""
        raise NotImplementedError

    def prepared(self, key: str) -> Any:
        """What prepare() resolved; a clear error for a caller that skipped it."""
        try:
            return self.extra[key]
        except KeyError:
            raise RuntimeError(f"{self.name}: call prepare() before undo() ({key} is resolved there)") from None

    def stack_ref(self) -> dict[str, Any]:
        """How an undo action finds this stack's Toxiproxy later: by identity, not by host port."""
        d = self.stack.definition
        return {"project": self.stack.project, "service": d.toxiproxy_service, "port": d.toxiproxy_api_port}

    def others(self) -> list[dict[str, Any]]:
        """The other faults active now (ledger entries); the runner wires this to its ledger."""
        fn = self.extra.get("others")
        return list(fn()) if fn else []

    def on_container(self, verb: str, act: Callable[[Any], None], when_down: str | None = None) -> None:
        """Do something to the target's container; a Docker failure becomes a FaultError naming it.

        With `when_down`, a container that is not running (another fault took it down) is left
        as it is and the fact is noted: the node is down already, which is what this fault wants."""
        try:
            c = self.stack.container(self.target)
            if when_down is not None:
                c.reload()
                if c.status != "running":
                    self.extra["note"] = f"{self.target} was already {c.status}: {when_down}"
                    return
            act(c)
        except DockerException as exc:
            raise FaultError(f"could not {verb} {self.target}: {exc}") from exc

    def apply(self) -> None:
        raise NotImplementedError


def default_note(cls: type[Fault], target: str | None) -> str:
    """Why a target nobody wrote is missing: the fault's default is a name of the audio-room stack
    (its entry links, its microphone link), which another stack need not have."""
    if target is not None and target == cls.default_target:
        return f" ({cls.name} aims at it when no target is given: a name of the audio-room stack)"
    return ""


def make_fault(
    stack: Stack, name: str, target: str | None, params: dict[str, Any], token: str = "x", duration: float | None = None
) -> Fault:
    """A fault bound to a running stack; TargetError when the target is not part of it."""
    cls = cast("type[Fault]", FAULTS[name])
    target = target or cls.default_target
    problems = cls.check_target(stack.definition, target)
    converted, more = cls.check_params(params)
    if not problems and not more:
        more = cls.check_with(stack.definition, target, converted)
    if cls.needs_duration and not duration:
        more.append(f"fault {name} acts over time and needs `for`")
    more += cls.check_duration(duration)
    if problems or more:
        raise TargetError("; ".join(problems + more))
    assert target is not None
    return cls(stack, target, converted, token, {"duration": duration})
