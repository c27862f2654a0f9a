"""The microphone path: the speaker's uplink (mic -> Toxiproxy -> origin) and the speaker itself.

The same mechanisms as the network and node families, aimed at the microphone by default,
with the speaker's own signals (SIGUSR1 mutes, SIGUSR2 unmutes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from chaos.faults.base import Param
from chaos.faults.network import LinkDown, LinkFlap, ToxicFault, _toxic
from chaos.faults.node import ContainerSignal, NodeKill
from chaos.language.registry import register_fault
from chaos.stack.toxiproxy import Toxic


@dataclass
class MicCut(LinkDown):
    """The speaker's uplink to the origin is cut: Icecast must fall back to hold music."""

    name: ClassVar[str] = "mic.cut"
    default_target: ClassVar[str | None] = "mic"
    summary: ClassVar[str] = "cut the microphone uplink (mic -> origin link down)"


# The microphone path: the speaker's uplink carries its data upstream (mic -> Toxiproxy -> origin).
MicStall = _toxic(
    "mic.stall",
    "bandwidth",
    "the uplink stays open but carries nothing (Icecast's source-timeout case)",
    default_target="mic",
    stream="upstream",
    rate=Param("rate", default=0, help="a rate; 0 stalls"),
)


MicReset = _toxic(
    "mic.reset",
    "reset_peer",
    "the speaker's connection is reset (TCP RST), and every reconnect too",
    default_target="mic",
    stream="upstream",
    timeout=Param("ms", default="0ms", help="a duration"),
)


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
                out.append(
                    Toxic(
                        f"deadair_{self.token}_lat_{s}",
                        "latency",
                        s,
                        tox,
                        {"latency": self.params.get("latency", 0), "jitter": self.params.get("jitter", 0)},
                    )
                )
            if "rate" in self.params:
                out.append(Toxic(f"deadair_{self.token}_bw_{s}", "bandwidth", s, tox, {"rate": self.params["rate"]}))
        return out


@dataclass
class MicFlap(LinkFlap):
    """The speaker's uplink drops and comes back, again and again (a bad mobile connection)."""

    name: ClassVar[str] = "mic.flap"
    default_target: ClassVar[str | None] = "mic"
    summary: ClassVar[str] = "the microphone uplink goes down and up on a schedule"


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


for _kind in (MicCut, MicStall, MicDegrade, MicFlap, MicReset, MicCrash, MicMute):
    register_fault(_kind)
