"""Faults (Jepsen's nemesis): things done to the stack that can be undone.

A fault resolves its target against the stack before anything acts, then `apply()`s
itself. Before acting it hands the runner an *undo action*: a plain dict (what to do, and
where by the stack's identity: compose project, link name, container id) that the rollback
ledger writes to disk and can replay without the experiment, even from another process after
a SIGKILL (chaos.undo). Undo actions are idempotent and each has a verification.

Faults on one target compose (see chaos.undo): an apply that finds its target already down
because of another active fault leaves it down rather than failing, and a fault that would
bring a target back (a flap's up phase, an instant restart) does not while another holds it.
"""
from __future__ import annotations

import difflib
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from docker.errors import DockerException

from . import floods, undo as undo_actions
from .errors import FaultError, TargetError
from .stack import Stack, networks_of
from .toxiproxy import Toxic, Toxiproxy, ToxiproxyError
from .units import parse_duration


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
            from .units import parse_rate

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
        if cls.target_kind == "link" and target not in stack_def.links:
            return [f"{target!r} is not a link of stack {stack_def.name}; links: {', '.join(stack_def.links)}"]
        if cls.target_kind == "node" and target not in stack_def.nodes:
            return [f"{target!r} is not a node of stack {stack_def.name}; nodes: {', '.join(stack_def.nodes)}"]
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


# -- links -------------------------------------------------------------------------------------


@dataclass
class LinkDown(Fault):
    """The link stops accepting connections and every open one is closed."""

    name: ClassVar[str] = "link.down"
    summary: ClassVar[str] = "disable a Toxiproxy proxy: connections closed, new ones refused"

    def _tox(self) -> Toxiproxy:
        return self.stack.toxiproxy()

    def undo(self) -> dict[str, Any]:
        return {"action": "link.enable", "stack": self.stack_ref(), "proxy": self.target}

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
    """Toxiproxy toxics on a link; `stream: both` puts one on each direction."""

    toxic_type: ClassVar[str] = ""
    default_stream: ClassVar[str] = "downstream"
    common: ClassVar[dict[str, Param]] = {
        "stream": Param("stream", default="downstream", help="upstream, downstream or both"),
        "toxicity": Param("toxicity", default=1.0, help="the chance, per connection, that the toxic applies"),
    }

    def attributes(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if k not in ("stream", "toxicity")}

    def streams(self) -> list[str]:
        stream = self.params.get("stream", self.default_stream)
        return ["upstream", "downstream"] if stream == "both" else [stream]

    def toxics(self) -> list[Toxic]:
        """What goes on the link; names carry the run's token so that rollback removes only ours."""
        return [Toxic(f"deadair_{self.token}_{s}", self.toxic_type, s, self.params.get("toxicity", 1.0),
                      self.attributes()) for s in self.streams()]

    def undo(self) -> dict[str, Any]:
        """Removes this fault's toxics only; `specs` let a Toxiproxy restart put them back while
        the fault is still meant to be active."""
        toxics = self.toxics()
        return {"action": "toxics.remove", "stack": self.stack_ref(), "proxy": self.target,
                "toxics": [t.name for t in toxics],
                "specs": [{"name": t.name, "type": t.type, "stream": t.stream, "toxicity": t.toxicity,
                           "attributes": t.attributes} for t in toxics]}

    def apply(self) -> None:
        tox = self.stack.toxiproxy()
        for toxic in self.toxics():
            tox.add_toxic(self.target, toxic)


def _toxic(name: str, toxic_type: str, summary: str, default_target: str | None = None,
           stream: str = "downstream", **params: Param) -> type[ToxicFault]:
    common = {**ToxicFault.common, "stream": Param("stream", default=stream, help="upstream, downstream or both")}
    cls = type(name.replace(".", "_").title().replace("_", ""), (ToxicFault,), {
        "__annotations__": {}, "name": name, "toxic_type": toxic_type, "summary": summary,
        "default_target": default_target, "default_stream": stream,
        "params_spec": {**params, **common}, "__doc__": summary})
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

# The microphone path: the speaker's uplink carries its data upstream (mic -> Toxiproxy -> origin).
MicStall = _toxic("mic.stall", "bandwidth", "the uplink stays open but carries nothing (Icecast's source-timeout case)",
                  default_target="mic", stream="upstream", rate=Param("rate", default=0, help="a rate; 0 stalls"))
MicReset = _toxic("mic.reset", "reset_peer", "the speaker's connection is reset (TCP RST), and every reconnect too",
                  default_target="mic", stream="upstream", timeout=Param("ms", default="0ms", help="a duration"))


@dataclass
class LinkPartition(ToxicFault):
    """Nothing passes either way and nothing is closed: a network partition as peers see it
    (no RST, no FIN; only their own timeouts tell them). `link.down` is the other case: the far
    side refuses (connections closed, new ones refused)."""

    name: ClassVar[str] = "link.partition"
    summary: ClassVar[str] = "drop all data both ways; connections stay open (a black hole, not a refusal)"
    params_spec: ClassVar[dict[str, Param]] = {}

    def toxics(self) -> list[Toxic]:
        return [Toxic(f"deadair_{self.token}_{s}", "timeout", s, 1.0, {"timeout": 0})
                for s in ("upstream", "downstream")]


@dataclass
class MicDegrade(ToxicFault):
    """A bad uplink: latency and jitter, a bandwidth cap, or both, on the speaker's data."""

    name: ClassVar[str] = "mic.degrade"
    default_target: ClassVar[str | None] = "mic"
    default_stream: ClassVar[str] = "upstream"
    summary: ClassVar[str] = "latency, jitter and/or a bandwidth cap on the microphone uplink"
    params_spec: ClassVar[dict[str, Param]] = {
        "latency": Param("ms", help="a duration such as 300ms"),
        "jitter": Param("ms", help="a duration such as 100ms"),
        "rate": Param("rate", help="a rate such as 6KB/s (the speaker sends about 8 KB/s)"),
        "stream": Param("stream", default="upstream", help="upstream, downstream or both"),
        "toxicity": Param("toxicity", default=1.0, help="the chance, per connection, that the toxics apply"),
    }

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        out, problems = super().check_params(params)
        if not problems and not any(k in out for k in ("latency", "jitter", "rate")):
            problems.append("fault mic.degrade needs at least one of latency, jitter, rate")
        return out, problems

    def toxics(self) -> list[Toxic]:
        out, tox = [], self.params.get("toxicity", 1.0)
        for s in self.streams():
            if "latency" in self.params or "jitter" in self.params:
                out.append(Toxic(f"deadair_{self.token}_lat_{s}", "latency", s, tox,
                                 {"latency": self.params.get("latency", 0), "jitter": self.params.get("jitter", 0)}))
            if "rate" in self.params:
                out.append(Toxic(f"deadair_{self.token}_bw_{s}", "bandwidth", s, tox, {"rate": self.params["rate"]}))
        return out


# -- link flapping: a thread in the runner's process toggles the link until rollback stops it ----


@dataclass
class LinkFlap(Fault):
    """The link goes down and up on a schedule (down first) until the step's `for` ends.

    The toggling runs in a thread of the runner; its undo stops the thread and enables the link.
    After a SIGKILL the thread is gone with its process and sweep only has to enable the link.
    """

    name: ClassVar[str] = "link.flap"
    summary: ClassVar[str] = "take a link down and up on a schedule (down, up, down, ...) for the step's `for`"
    needs_duration: ClassVar[bool] = True
    params_spec: ClassVar[dict[str, Param]] = {
        "down": Param("ms", default="1s", help="how long each outage lasts"),
        "up": Param("ms", default="1s", help="how long the link stays up between outages"),
    }

    @classmethod
    def check_params(cls, params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        out, problems = super().check_params(params)
        for k in ("down", "up"):
            if k in out and out[k] < 50:
                problems.append(f"{cls.name} {k}: at least 50ms (Toxiproxy's API is not a packet scheduler)")
        return out, problems

    def undo(self) -> dict[str, Any]:
        return {"action": "link.flap.stop", "stack": self.stack_ref(), "proxy": self.target,
                "flapper": f"{os.getpid()}:{self.token}"}

    def apply(self) -> None:
        tox = self.stack.toxiproxy()
        key = f"{os.getpid()}:{self.token}"
        stop = threading.Event()
        down, up = self.params.get("down", 1000) / 1000, self.params.get("up", 1000) / 1000
        me = {"proxy": self.target, "stack": self.stack_ref()}
        # the link is down while any flap on it is in a down phase, or a steady down fault is active
        phases = undo_actions.FLAP_PHASES.setdefault(undo_actions.link_key(me), {})
        phases[key] = True
        tox.set_enabled(self.target, False)  # the first outage starts now, as the fault's start says

        def flap() -> None:
            while not stop.wait(down if phases.get(key) else up):
                phases[key] = not phases.get(key, True)
                if stop.is_set():
                    break
                held = any(phases.values()) or undo_actions.on_same_link(me, self.others(), ("link.enable",))
                try:
                    tox.set_enabled(self.target, not held)
                except ToxiproxyError:
                    pass  # set again at the next turn; rollback enables it anyway

        t = threading.Thread(target=flap, name=f"deadair-flap-{self.target}", daemon=True)
        undo_actions.FLAPPERS[key] = (stop, t)
        t.start()


@dataclass
class MicFlap(LinkFlap):
    """The speaker's uplink drops and comes back, again and again (a bad mobile connection)."""

    name: ClassVar[str] = "mic.flap"
    default_target: ClassVar[str | None] = "mic"
    summary: ClassVar[str] = "the microphone uplink goes down and up on a schedule"


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
        self.on_container("stop", lambda c: c.stop(timeout=2), when_down="left down")


@dataclass
class NodeKill(NodeStop):
    """The node's main process gets a signal (SIGKILL by default): a crash, no goodbye."""

    name: ClassVar[str] = "node.kill"
    summary: ClassVar[str] = "send a signal (default SIGKILL) to a node's container; rollback starts it"
    params_spec: ClassVar[dict[str, Param]] = {"signal": Param("signal", default="SIGKILL", help="a signal name")}

    def apply(self) -> None:
        self.on_container("kill", lambda c: c.kill(signal=self.params.get("signal", "SIGKILL")), when_down="left down")


@dataclass
class NodePause(NodeStop):
    """The node's processes are frozen (cgroup freezer): sockets stay open, nothing answers.
    The nastiest failure for a health checker: no RST, no FIN, only timeouts."""

    name: ClassVar[str] = "node.pause"
    summary: ClassVar[str] = "freeze a node's container (docker pause); rollback unpauses it"

    def apply(self) -> None:
        self.on_container("pause", lambda c: c.pause(), when_down="left down (a stopped node cannot be paused)")


@dataclass
class NodeRestart(NodeStop):
    """The node restarts (stop with a grace period, then start): a deploy or a crash loop's turn.
    Without `for` it is instantaneous; with `for` the node stays down that long before it starts."""

    name: ClassVar[str] = "node.restart"
    summary: ClassVar[str] = "restart a node's container; with `for`, it stays down that long"
    params_spec: ClassVar[dict[str, Param]] = {"grace": Param("ms", default="2s", help="time between SIGTERM and SIGKILL")}

    def apply(self) -> None:
        def restart(c) -> None:
            c.stop(timeout=max(0, round(self.params.get("grace", 2000) / 1000)))
            if not self.extra.get("duration"):
                mine = {"container": c.id}
                if undo_actions.on_same_node(mine, self.others(), undo_actions.NODE_DOWN):
                    self.extra["note"] = f"{self.target} left down: another fault holds it down"
                    return
                c.start()

        self.on_container("restart", restart, when_down="left down")


@dataclass
class NodeDisconnect(Fault):
    """The node is cut off its networks (docker network disconnect): its peers' packets go
    nowhere. Rollback reconnects it with the same aliases (and address, where Docker allows)."""

    name: ClassVar[str] = "node.disconnect"
    target_kind: ClassVar[str] = "node"
    summary: ClassVar[str] = "disconnect a node's container from its networks; rollback reconnects it"

    def undo(self) -> dict[str, Any]:
        c = self.stack.container(self.target)
        nets = []
        for name, ep in networks_of(c).items():
            nets.append({"network": ep.get("NetworkID") or name, "name": name,
                         "aliases": [a for a in (ep.get("Aliases") or []) if a != c.id[:12]],
                         "ipv4": ep.get("IPAddress") or None})
        # On no network: another disconnect is active; the last one to end reconnects the union.
        return {"action": "network.connect", "container": c.id, "node": self.target, "networks": nets,
                "project": self.stack.project}

    def apply(self) -> None:
        def disconnect(c) -> None:
            for name in networks_of(c):
                self.stack.docker.networks.get(name).disconnect(c, force=True)

        self.on_container("disconnect", disconnect)


@dataclass
class ContainerSignal(Fault):
    """Base of faults that are a signal to a node's main process and are undone by another."""

    target_kind: ClassVar[str] = "node"
    signal: ClassVar[str] = ""
    undo_signal: ClassVar[str] = ""
    undone_log: ClassVar[str] = ""  # a line the process prints once the undo signal took effect

    def undo(self) -> dict[str, Any]:
        c = self.stack.container(self.target)
        return {"action": "container.signal", "container": c.id, "node": self.target,
                "signal": self.undo_signal, "log": self.undone_log, "project": self.stack.project}

    def apply(self) -> None:
        self.on_container("signal", lambda c: c.kill(signal=self.signal), when_down="it is silent already")


@dataclass
class MicMute(ContainerSignal):
    """The speaker goes on streaming, but digital silence: Icecast and every byte counter see a
    healthy stream; only decoding listeners (ears) hear the dead air."""

    name: ClassVar[str] = "mic.mute"
    default_target: ClassVar[str | None] = "mic"
    summary: ClassVar[str] = "the speaker streams digital silence (only decoding listeners notice)"
    signal: ClassVar[str] = "SIGUSR1"
    undo_signal: ClassVar[str] = "SIGUSR2"
    undone_log: ClassVar[str] = "speaker: unmuted"


@dataclass
class MicCrash(NodeKill):
    """The speaker's encoder dies (SIGKILL to the mic container): its uplink closes at once,
    unlike a cut link. Rollback starts it again."""

    name: ClassVar[str] = "mic.crash"
    default_target: ClassVar[str | None] = "mic"
    summary: ClassVar[str] = "kill the speaker process (the source crashes); rollback starts it"


# -- floods: load in a process of its own, aimed only at the stack (see floods.py) -----------------


@dataclass
class Flood(Fault):
    """Base of the floods: a target link (its host address) or node (its container), or a `url`;
    bounded by `rate`, `count` and the step's `for`, after which the process stops by itself."""

    target_kind: ClassVar[str] = "entry"  # a link or a node
    needs_duration: ClassVar[bool] = True
    kind: ClassVar[str] = ""
    bounds: ClassVar[dict[str, Param]] = {
        "rate": Param("per_second", required=True, help="a rate such as 200/s"),
        "count": Param("count", required=True, help="how many at most"),
        "url": Param("url", help="an http:// URL on loopback or a node of the stack, instead of the target"),
        "port": Param("count", help="the container port, when the target is a node"),
    }

    @classmethod
    def check_target(cls, stack_def, target: str | None) -> list[str]:
        if target is None or target in stack_def.links or target in stack_def.nodes:
            return []
        return [f"{target!r} is neither a link nor a node of stack {stack_def.name}; "
                f"links: {', '.join(stack_def.links)}; nodes: {', '.join(stack_def.nodes)}"]

    @classmethod
    def check_with(cls, stack_def, target: str | None, params: dict[str, Any]) -> list[str]:
        """What can be refused from the file alone: a URL outside the stack, a node without port."""
        problems = []
        if params.get("count", 0) > floods.MAX_COUNT:
            problems.append(f"{cls.name} count: at most {floods.MAX_COUNT}")
        if params.get("url"):
            try:
                floods.guard_url(params["url"], {n: None for n in stack_def.nodes}, require_running=False)
            except floods.GuardError as exc:
                problems.append(str(exc))
        elif target is None:
            problems.append(f"fault {cls.name} needs a target (a link or a node) or a url")
        elif target in stack_def.nodes and target not in stack_def.links and not params.get("port"):
            problems.append(f"fault {cls.name} aimed at node {target} needs a port (the container port)")
        return problems

    def address(self) -> tuple[str, int, str, tuple[str, ...]]:
        """(ip, port, path, stack addresses): the guard's answer; GuardError before any packet."""
        nodes = floods.stack_addresses(self.stack.containers(all=False))
        allowed = tuple(ip for ip in nodes.values() if ip)
        path = self.params.get("path", "/")
        if self.params.get("url"):
            ip, port, path = floods.guard_url(self.params["url"], nodes, allowed)
        elif self.target in self.stack.definition.links:
            host, port = self.stack.link_address(self.target)
            ip = floods.guard(host, nodes, allowed)
        else:
            ip, port = floods.guard(self.target, nodes, allowed), int(self.params["port"])
        return ip, port, path, allowed

    def flood_id(self) -> str:
        return f"deadair-flood-{os.getpid()}-{self.token}"

    def results_path(self) -> Path:
        from .ledger import state_dir

        return state_dir() / "floods" / f"{self.flood_id()}.json"

    def undo(self) -> dict[str, Any]:
        self.extra["address"] = self.address()  # refused here, before the ledger or any packet
        return {"action": "flood.stop", "flood": self.flood_id(), "node": self.target}

    def spec(self) -> floods.FloodSpec:
        ip, port, path, allowed = self.extra.get("address") or self.address()
        p = self.params
        return floods.FloodSpec(kind=self.kind, ip=ip, port=port, path=path, rate=p["rate"], count=p["count"],
                                duration=float(self.extra.get("duration") or 0), concurrency=p.get("concurrency", 64),
                                method=p.get("method", "GET"), body=p.get("body"), room=p.get("room"),
                                listen=p.get("listen", True), mode=p.get("mode", "stream"), allowed=allowed,
                                results=str(self.results_path()), id=self.flood_id(),
                                until=time.time() + float(self.extra.get("duration") or 0))

    def apply(self) -> None:
        spec = self.spec()
        self.results_path().parent.mkdir(parents=True, exist_ok=True)
        self.results_path().unlink(missing_ok=True)
        proc = floods.start(spec)
        self.extra["process"] = proc

    def report(self) -> dict[str, Any] | None:
        """The flood's own numbers (requests sent, statuses, latencies), once its process ended."""
        proc = self.extra.get("process")
        if proc is not None:
            try:
                proc.wait(timeout=5)
            except Exception:  # noqa: BLE001 - stopped by rollback anyway
                pass
        path = self.results_path()
        try:
            data = json.loads(path.read_text())
            path.unlink()
            return data
        except (OSError, ValueError):
            err = proc.stderr.read().decode(errors="replace")[-500:] if proc is not None and proc.stderr else ""
            return {"error": "the flood wrote no results" + (f": {err}" if err else "")}


@dataclass
class FloodHttp(Flood):
    """Requests at a rate on a service (room-api by default): what a retry storm or a scraper
    does to a small API."""

    name: ClassVar[str] = "flood.http"
    kind: ClassVar[str] = "http"
    default_target: ClassVar[str | None] = "entry-api"
    summary: ClassVar[str] = "HTTP requests at a rate (room-api by default), bounded by count and `for`"
    params_spec: ClassVar[dict[str, Param]] = {
        **Flood.bounds,
        "path": Param("path", default="/health", help="the request path"),
        "method": Param("http_method", default="GET", help="GET, POST, ..."),
        "body": Param("text", help="a request body (JSON)"),
        "concurrency": Param("count", default=64, help="requests in flight at most"),
    }


@dataclass
class FloodJoins(Flood):
    """A join storm: listeners join a room through room-api at a rate and then stream what the
    join answered (through lb) until the step ends: the 2023 and 2024 launch minutes."""

    name: ClassVar[str] = "flood.joins"
    kind: ClassVar[str] = "joins"
    default_target: ClassVar[str | None] = "entry-api"
    summary: ClassVar[str] = "listeners join at a rate through room-api and stream through lb"
    params_spec: ClassVar[dict[str, Param]] = {
        **Flood.bounds,
        "room": Param("text", help="a room id (default: the storm opens its own room)"),
        "listen": Param("flag", default=True, help="stream after joining (true) or only join (false)"),
        "concurrency": Param("count", default=64, help="join requests in flight at most"),
    }


@dataclass
class FloodConnections(Flood):
    """Connections opened at a rate and held until the step ends (a slow-reader swarm, or idle
    sockets that only the server's timeouts clear), to exhaust lb's connection slots."""

    name: ClassVar[str] = "flood.connections"
    kind: ClassVar[str] = "connections"
    default_target: ClassVar[str | None] = "entry-lb"
    summary: ClassVar[str] = "TCP connections at a rate, held open (lb by default)"
    params_spec: ClassVar[dict[str, Param]] = {
        **Flood.bounds,
        "path": Param("path", default="/live", help="what a streaming connection requests"),
        "mode": Param("choice:stream,idle", default="stream", help="stream (request and drain) or idle (send nothing)"),
    }


FAULTS: dict[str, type[Fault]] = {f.name: f for f in (
    LinkDown, LinkPartition, LinkFlap, LinkLatency, LinkBandwidth, LinkSlowClose, LinkTimeout, LinkResetPeer,
    LinkSlicer, LinkLimitData,
    NodeKill, NodeStop, NodePause, NodeRestart, NodeDisconnect,
    MicCut, MicStall, MicDegrade, MicFlap, MicReset, MicCrash, MicMute,
    FloodJoins, FloodHttp, FloodConnections)}


def make_fault(stack: Stack, name: str, target: str | None, params: dict[str, Any], token: str = "x",
               duration: float | None = None) -> Fault:
    """A fault bound to a running stack; TargetError when the target is not part of it."""
    cls = FAULTS[name]
    target = target or cls.default_target
    problems = cls.check_target(stack.definition, target)
    converted, more = cls.check_params(params)
    if not problems and not more:
        more = cls.check_with(stack.definition, target, converted)
    if cls.needs_duration and not duration:
        more.append(f"fault {name} acts over time and needs `for`")
    if issubclass(cls, Flood) and duration and duration > floods.MAX_DURATION:
        more.append(f"fault {name} lasts at most {floods.MAX_DURATION:g}s")
    if problems or more:
        raise TargetError("; ".join(problems + more))
    assert target is not None
    return cls(stack, target, converted, token, {"duration": duration})
