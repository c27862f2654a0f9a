"""Node faults on a compose service's container: stop, kill, pause, restart, disconnect, signals.

A node stays down while any fault holds it down (chaos.faults.undo composes them), so an
instant restart does not bring back a node another fault stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from chaos.faults import composition
from chaos.faults.base import Fault, Param
from chaos.language.registry import register_fault
from chaos.stack.compose import networks_of


@dataclass
class NodeStop(Fault):
    """The node's container is stopped (SIGTERM, then SIGKILL after 2 s)."""

    name: ClassVar[str] = "node.stop"
    target_kind: ClassVar[str] = "node"
    summary: ClassVar[str] = "stop a node's container; rollback starts it and waits until healthy"

    def prepare(self) -> None:
        self.extra["container"] = self.stack.container(self.target).id

    def undo(self) -> dict[str, Any]:
        return {
            "action": "container.start",
            "container": self.prepared("container"),
            "node": self.target,
            "project": self.stack.project,
        }

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
    params_spec: ClassVar[dict[str, Param]] = {
        "grace": Param("ms", default="2s", help="time between SIGTERM and SIGKILL")
    }

    def apply(self) -> None:
        def restart(c) -> None:
            c.stop(timeout=max(0, round(self.params.get("grace", 2000) / 1000)))
            if not self.extra.get("duration"):
                mine = {"container": c.id}
                if composition.on_same_node(mine, self.others(), composition.NODE_DOWN):
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

    def prepare(self) -> None:
        c = self.stack.container(self.target)
        nets = []
        for name, ep in networks_of(c).items():
            nets.append(
                {
                    "network": ep.get("NetworkID") or name,
                    "name": name,
                    "aliases": [a for a in (ep.get("Aliases") or []) if a != c.id[:12]],
                    "ipv4": ep.get("IPAddress") or None,
                }
            )
        # On no network: another disconnect is active; the last one to end reconnects the union.
        self.extra["container"], self.extra["networks"] = c.id, nets

    def undo(self) -> dict[str, Any]:
        return {
            "action": "network.connect",
            "container": self.prepared("container"),
            "node": self.target,
            "networks": self.prepared("networks"),
            "project": self.stack.project,
        }

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

    def prepare(self) -> None:
        self.extra["container"] = self.stack.container(self.target).id

    def undo(self) -> dict[str, Any]:
        return {
            "action": "container.signal",
            "container": self.prepared("container"),
            "node": self.target,
            "signal": self.undo_signal,
            "log": self.undone_log,
            "project": self.stack.project,
        }

    def apply(self) -> None:
        self.on_container("signal", lambda c: c.kill(signal=self.signal), when_down="it is silent already")


for _kind in (NodeKill, NodeStop, NodePause, NodeRestart, NodeDisconnect):
    register_fault(_kind)
