"""Floods: load in a process of its own (chaos.faults.flooder), aimed only at the stack.

Where a flood may send is decided before the ledger or any packet, by the stack-address
policy; the flood process checks it again on its own.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from chaos.faults import flooder as floods
from chaos.faults.base import Fault, Param, default_note
from chaos.faults.ledger import state_dir
from chaos.language.registry import register_fault
from chaos.stack.addresses import GuardError, guard, guard_url, stack_addresses


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
        return [
            f"{target!r} is neither a link nor a node of stack {stack_def.name}{default_note(cls, target)}; "
            f"links: {', '.join(stack_def.links)}; nodes: {', '.join(stack_def.nodes)}"
        ]

    @classmethod
    def check_duration(cls, duration: float | None) -> list[str]:
        if duration and duration > floods.MAX_DURATION:
            return [f"fault {cls.name} lasts at most {floods.MAX_DURATION:g}s"]
        return []

    @classmethod
    def check_with(cls, stack_def, target: str | None, params: dict[str, Any]) -> list[str]:
        """What can be refused from the file alone: a URL outside the stack, a node without port."""
        problems = []
        if params.get("count", 0) > floods.MAX_COUNT:
            problems.append(f"{cls.name} count: at most {floods.MAX_COUNT}")
        if params.get("url"):
            try:
                guard_url(params["url"], {n: None for n in stack_def.nodes}, require_running=False)
            except GuardError as exc:
                problems.append(str(exc))
        elif target is None:
            problems.append(f"fault {cls.name} needs a target (a link or a node) or a url")
        elif target in stack_def.nodes and target not in stack_def.links and not params.get("port"):
            problems.append(f"fault {cls.name} aimed at node {target} needs a port (the container port)")
        return problems

    def address(self) -> tuple[str, int, str, tuple[str, ...]]:
        """(ip, port, path, stack addresses): the guard's answer; GuardError before any packet."""
        nodes = stack_addresses(self.stack.containers(all=False))
        allowed = tuple(ip for ip in nodes.values() if ip)
        path = self.params.get("path", "/")
        if self.params.get("url"):
            ip, port, path = guard_url(self.params["url"], nodes, allowed)
        elif self.target in self.stack.definition.links:
            host, port = self.stack.link_address(self.target)
            ip = guard(host, nodes, allowed)
        else:
            ip, port = guard(self.target, nodes, allowed), int(self.params["port"])
        return ip, port, path, allowed

    def flood_id(self) -> str:
        return f"deadair-flood-{os.getpid()}-{self.token}"

    def results_path(self) -> Path:
        return state_dir() / "floods" / f"{self.flood_id()}.json"

    def prepare(self) -> None:
        """Resolve where the flood may send now: refused here, before the ledger or any packet."""
        self.extra["address"] = self.address()

    def undo(self) -> dict[str, Any]:
        return {"action": "flood.stop", "flood": self.flood_id(), "node": self.target}

    def spec(self) -> floods.FloodSpec:
        ip, port, path, allowed = self.extra.get("address") or self.address()
        p = self.params
        return floods.FloodSpec(
            kind=self.kind,
            ip=ip,
            port=port,
            path=path,
            rate=p["rate"],
            count=p["count"],
            duration=float(self.extra.get("duration") or 0),
            concurrency=p.get("concurrency", 64),
            method=p.get("method", "GET"),
            body=p.get("body"),
            room=p.get("room"),
            listen=p.get("listen", True),
            mode=p.get("mode", "stream"),
            allowed=allowed,
            results=str(self.results_path()),
            id=self.flood_id(),
            until=time.time() + float(self.extra.get("duration") or 0),
        )

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
            except Exception:
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


for _kind in (FloodJoins, FloodHttp, FloodConnections):
    register_fault(_kind)
