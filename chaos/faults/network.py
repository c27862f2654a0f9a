"""Network faults on a link (a Toxiproxy proxy): down, partitioned, flapping, and Toxiproxy's toxics.

A toxic fault adds only its own toxics (named `deadair_<token>_...`) and removes only those;
only down faults touch a proxy's `enabled`. A flap is a thread in the runner's process that
toggles the link until rollback stops it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any, ClassVar

from chaos.faults import composition, undo_network
from chaos.faults.base import Fault, Param
from chaos.language.registry import register_fault
from chaos.stack.toxiproxy import Toxic, Toxiproxy, ToxiproxyError


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
        return [
            Toxic(f"deadair_{self.token}_{s}", self.toxic_type, s, self.params.get("toxicity", 1.0), self.attributes())
            for s in self.streams()
        ]

    def undo(self) -> dict[str, Any]:
        """Removes this fault's toxics only; `specs` let a Toxiproxy restart put them back while
        the fault is still meant to be active."""
        toxics = self.toxics()
        return {
            "action": "toxics.remove",
            "stack": self.stack_ref(),
            "proxy": self.target,
            "toxics": [t.name for t in toxics],
            "specs": [
                {"name": t.name, "type": t.type, "stream": t.stream, "toxicity": t.toxicity, "attributes": t.attributes}
                for t in toxics
            ],
        }

    def apply(self) -> None:
        tox = self.stack.toxiproxy()
        for toxic in self.toxics():
            tox.add_toxic(self.target, toxic)


def _toxic(
    name: str,
    toxic_type: str,
    summary: str,
    default_target: str | None = None,
    stream: str = "downstream",
    **params: Param,
) -> type[ToxicFault]:
    common = {**ToxicFault.common, "stream": Param("stream", default=stream, help="upstream, downstream or both")}
    cls = type(
        name.replace(".", "_").title().replace("_", ""),
        (ToxicFault,),
        {
            "__annotations__": {},
            "name": name,
            "toxic_type": toxic_type,
            "summary": summary,
            "default_target": default_target,
            "default_stream": stream,
            "params_spec": {**params, **common},
            "__doc__": summary,
        },
    )
    return dataclass(cls)


LinkLatency = _toxic(
    "link.latency",
    "latency",
    "add latency (and jitter) to every chunk of data on a link",
    latency=Param("ms", required=True, help="a duration such as 500ms"),
    jitter=Param("ms", default="0ms", help="a duration such as 50ms"),
)


LinkBandwidth = _toxic(
    "link.bandwidth",
    "bandwidth",
    "cap a link's throughput (0 stalls it without closing)",
    rate=Param("rate", required=True, help="a rate such as 64KB/s or 512kbit/s"),
)


LinkSlowClose = _toxic(
    "link.slow_close",
    "slow_close",
    "delay the close of connections on a link",
    delay=Param("ms", required=True, help="a duration"),
)


LinkTimeout = _toxic(
    "link.timeout",
    "timeout",
    "drop all data; close after the timeout (0ms: never)",
    timeout=Param("ms", required=True, help="a duration, 0ms for never"),
)


LinkResetPeer = _toxic(
    "link.reset_peer",
    "reset_peer",
    "reset connections (TCP RST) after the timeout",
    timeout=Param("ms", default="0ms", help="a duration"),
)


LinkSlicer = _toxic(
    "link.slicer",
    "slicer",
    "slice data into small delayed chunks",
    average_size=Param("bytes", required=True, help="bytes"),
    size_variation=Param("bytes", default=0, help="bytes"),
    delay=Param("us", default="0ms", help="a duration between chunks"),
)


LinkLimitData = _toxic(
    "link.limit_data",
    "limit_data",
    "close connections after a number of bytes",
    bytes=Param("bytes", required=True, help="a size such as 64KB"),
)


@dataclass
class LinkPartition(ToxicFault):
    """Nothing passes either way and nothing is closed: a network partition as peers see it
    (no RST, no FIN; only their own timeouts tell them). `link.down` is the other case: the far
    side refuses (connections closed, new ones refused)."""

    name: ClassVar[str] = "link.partition"
    summary: ClassVar[str] = "drop all data both ways; connections stay open (a black hole, not a refusal)"
    params_spec: ClassVar[dict[str, Param]] = {}

    def toxics(self) -> list[Toxic]:
        return [
            Toxic(f"deadair_{self.token}_{s}", "timeout", s, 1.0, {"timeout": 0}) for s in ("upstream", "downstream")
        ]


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
        return {
            "action": "link.flap.stop",
            "stack": self.stack_ref(),
            "proxy": self.target,
            "flapper": f"{os.getpid()}:{self.token}",
        }

    def apply(self) -> None:
        tox = self.stack.toxiproxy()
        key = f"{os.getpid()}:{self.token}"
        stop = threading.Event()
        down, up = self.params.get("down", 1000) / 1000, self.params.get("up", 1000) / 1000
        me = {"proxy": self.target, "stack": self.stack_ref()}
        # the link is down while any flap on it is in a down phase, or a steady down fault is active
        phases = undo_network.FLAP_PHASES.setdefault(composition.link_key(me), {})
        phases[key] = True
        tox.set_enabled(self.target, False)  # the first outage starts now, as the fault's start says

        def flap() -> None:
            while not stop.wait(down if phases.get(key) else up):
                phases[key] = not phases.get(key, True)
                if stop.is_set():
                    break
                held = any(phases.values()) or composition.on_same_link(me, self.others(), ("link.enable",))
                try:
                    tox.set_enabled(self.target, not held)
                except ToxiproxyError:
                    pass  # set again at the next turn; rollback enables it anyway

        t = threading.Thread(target=flap, name=f"deadair-flap-{self.target}", daemon=True)
        undo_network.FLAPPERS[key] = (stop, t)
        t.start()


for _kind in (
    LinkDown,
    LinkPartition,
    LinkFlap,
    LinkLatency,
    LinkBandwidth,
    LinkSlowClose,
    LinkTimeout,
    LinkResetPeer,
    LinkSlicer,
    LinkLimitData,
):
    register_fault(_kind)
