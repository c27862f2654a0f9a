"""The stack under test, running: a Docker Compose project and its Toxiproxy links.

Compose (v2 `docker compose` or v1 `docker-compose`) starts and stops the project; the
Docker SDK inspects it and acts on single containers. What the compose file declares is
chaos.stack.definition.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from docker.errors import DockerException, ImageNotFound, NotFound
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from chaos.errors import EnvironmentNotReady
from chaos.stack import engine
from chaos.stack.definition import (
    Link,
    StackDefinition,
    StackError,
    link_env,
    port_env,
)
from chaos.stack.toxiproxy import Toxiproxy, ToxiproxyError


def ensure_links(tox: Toxiproxy, links: Iterable[Link]) -> None:
    """Create missing links; leave existing ones alone (their connections and state).

    Not /populate: Toxiproxy reports `0.0.0.0:8001` back as `[::]:8001`, so populate would
    see every proxy as changed and recreate it, dropping every connection through it.
    """
    existing = tox.proxies()
    for link in links:
        p = existing.get(link.name)
        if p is not None and p.upstream == link.upstream and p.listen.rsplit(":", 1)[1] == str(link.listen_port):
            continue
        if p is not None:
            tox.delete_proxy(link.name)
        tox.create_proxy(link.name, link.listen, link.upstream)


class Compose:
    """The compose CLI: v2 (`docker compose`) where present, else v1 (`docker-compose`)."""

    def __init__(self, project: str, compose_file: Path):
        self.project = project
        self.compose_file = compose_file
        self.command = compose_command()

    def run(self, *args: str, timeout: float = 180.0, env: dict[str, str] | None = None) -> str:
        cmd = [*self.command, "-p", self.project, "-f", str(self.compose_file), *args]
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
            )
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"`{' '.join(cmd)}` did not finish within {timeout:.0f}s") from exc
        if proc.returncode != 0:
            tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
            raise StackError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{tail}")
        return proc.stdout


def compose_command() -> list[str]:
    """The compose CLI to use, or an error saying how to get one."""
    override = os.environ.get("DEADAIR_COMPOSE")
    if override:
        return override.split()
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=20)
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise EnvironmentNotReady(
        "no Docker Compose found (neither `docker compose` nor `docker-compose`); "
        "run `deadair setup` or install Docker Compose"
    )


PORT_RANGE = (20000, 32767)  # below Linux's ephemeral range (32768-60999): clients' source ports stay clear


def _free_port(taken: set[int]) -> int:
    """A loopback port nothing listens on and no container has claimed, outside the ephemeral range
    that outgoing connections (and Docker's own ephemeral choices) draw from. With Docker's
    userland proxy off, a published port holds no host socket, hence the check against `taken`."""
    import random
    import socket

    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randint(*PORT_RANGE)
        if port in taken:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise StackError("found no free loopback port to publish on")


def networks_of(container) -> dict[str, dict]:
    """Network name -> endpoint (IPAddress, Aliases, NetworkID) of a container, from Docker's view."""
    return container.attrs.get("NetworkSettings", {}).get("Networks") or {}


@dataclass
class NodeStatus:
    name: str
    state: str  # running, exited, paused, missing, ...
    health: str  # healthy, unhealthy, starting, none
    container_id: str | None = None
    networks: int = 1  # networks the container is attached to (0: cut off, as node.disconnect does)


@dataclass
class LinkStatus:
    name: str
    listen: str
    upstream: str
    present: bool
    enabled: bool
    toxics: list[str] = field(default_factory=list)
    host_url: str | None = None  # where a process on the host reaches the link, if published


@dataclass
class StackStatus:
    project: str
    nodes: list[NodeStatus]
    links: list[LinkStatus]

    @property
    def healthy(self) -> bool:
        return all(
            n.state == "running" and n.health in ("healthy", "none") and n.networks > 0 for n in self.nodes
        ) and all(link.present and link.enabled and not link.toxics for link in self.links)


class Stack:
    """A running (or startable) compose project of one stack definition."""

    def __init__(self, definition: StackDefinition, project: str | None = None):
        self.definition = definition
        self.project = project or os.environ.get("DEADAIR_PROJECT") or f"deadair-{definition.name}"
        self.project = re.sub(r"[^a-z0-9_-]", "", self.project.lower())

    @cached_property
    def docker(self):
        return engine.connect()

    @cached_property
    def compose(self) -> Compose:
        return Compose(self.project, self.definition.compose_file)

    # -- inspection -------------------------------------------------------------------------
    def containers(self, service: str | None = None, all: bool = True) -> list:
        labels = [f"com.docker.compose.project={self.project}"]
        if service:
            labels.append(f"com.docker.compose.service={service}")
        try:
            return engine.list_containers(self.docker, all=all, filters={"label": labels})
        except DockerException as exc:
            raise StackError(f"cannot list the containers of {self.project}: {exc}") from exc

    def container(self, node: str):
        """The container of a node; an error when the node is not part of this stack."""
        if node not in self.definition.services:
            raise StackError(
                f"{node!r} is not a node of stack {self.definition.name} (nodes: {', '.join(self.definition.nodes)})"
            )
        found = self.containers(node)
        if not found:
            raise StackError(f"node {node} of {self.project} has no container; is the stack up?")
        return found[0]

    def is_running(self) -> bool:
        """Every service has a running container."""
        running = {c.labels.get("com.docker.compose.service") for c in self.containers(all=False)}
        return set(self.definition.services) <= running

    def published(self, service: str, container_port: int) -> tuple[str, int]:
        """The host address where a container port is published (ports are never fixed)."""
        c = self.container(service)
        c.reload()
        bindings = (c.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(f"{container_port}/tcp") or []
        for b in bindings:
            host = b.get("HostIp") or "127.0.0.1"
            if host in ("0.0.0.0", "::", ""):
                host = "127.0.0.1"
            if ":" in host:  # skip IPv6 bindings
                continue
            return host, int(b["HostPort"])
        raise StackError(
            f"port {container_port} of {service} is not published on the host; "
            f'add "127.0.0.1::{container_port}" to its ports'
        )

    def toxiproxy(self) -> Toxiproxy:
        host, port = self.published(self.definition.toxiproxy_service, self.definition.toxiproxy_api_port)
        return Toxiproxy(f"http://{host}:{port}")

    def link(self, name: str) -> Link:
        try:
            return self.definition.links[name]
        except KeyError:
            raise StackError(
                f"{name!r} is not a link of stack {self.definition.name} (links: {', '.join(self.definition.links)})"
            ) from None

    def link_address(self, name: str) -> tuple[str, int]:
        """Where a process on the host reaches a link (for the listeners' entry points)."""
        return self.published(self.definition.toxiproxy_service, self.link(name).listen_port)

    def link_urls(self) -> dict[str, str]:
        """DEADAIR_LINK_<NAME>_URL for every link published on the host (compose interpolates them)."""
        out = {}
        for link in self.definition.links.values():
            try:
                host, port = self.link_address(link.name)
            except StackError:
                continue
            out[link_env(link.name)] = f"http://{host}:{port}"
        return out

    def status(self) -> StackStatus:
        nodes = []
        by_service = {c.labels.get("com.docker.compose.service"): c for c in self.containers()}
        for svc in self.definition.services:
            c = by_service.get(svc)
            if c is None:
                nodes.append(NodeStatus(svc, "missing", "none"))
                continue
            state = c.attrs.get("State", {})
            health = (state.get("Health") or {}).get("Status", "none")
            nets = len(networks_of(c))
            nodes.append(NodeStatus(svc, state.get("Status", c.status), health, c.id, nets))
        links = []
        proxies = {}
        if (
            self.definition.toxiproxy_service in by_service
            and by_service[self.definition.toxiproxy_service].status == "running"
        ):
            try:
                proxies = self.toxiproxy().proxies()
            except (ToxiproxyError, StackError):
                proxies = {}
        urls = self.link_urls() if proxies else {}
        for link in self.definition.links.values():
            p = proxies.get(link.name)
            links.append(
                LinkStatus(
                    link.name,
                    link.listen,
                    link.upstream,
                    p is not None,
                    bool(p and p.enabled),
                    [f"{t.name}({t.type})" for t in p.toxics] if p else [],
                    urls.get(link_env(link.name)),
                )
            )
        return StackStatus(self.project, nodes, links)

    # -- lifecycle --------------------------------------------------------------------------
    def check_images(self) -> None:
        missing = []
        for image in self.definition.images:
            try:
                self.docker.images.get(image)
            except ImageNotFound:
                missing.append(image)
            except DockerException as exc:
                raise StackError(f"cannot inspect image {image}: {exc}") from exc
        own = [i for i in missing if i.startswith("deadair/")]  # `deadair setup` builds these, and only these
        others = [i for i in missing if i not in own]
        if missing:
            raise EnvironmentNotReady(
                "; ".join(
                    ([f"image(s) {', '.join(own)} not built; run `deadair setup`"] if own else [])
                    + (
                        [f"image(s) {', '.join(others)} not present here; `docker pull` or build them"]
                        if others
                        else []
                    )
                )
            )

    def up(self, timeout: float = 300.0) -> float:
        """Start the stack and wait until every node is healthy and every link exists.

        Toxiproxy starts first so that its proxies exist before any service dials them.
        Returns the seconds it took.
        """
        t0 = time.monotonic()
        self.check_images()
        was_running = bool(self.containers())
        ports = self.pinned_ports()
        try:
            try:
                self.compose.run(
                    "up", "-d", "--no-build", self.definition.toxiproxy_service, timeout=timeout, env=ports
                )
            except StackError as exc:  # another stack took a port between our check and its start
                if "port is already allocated" not in str(exc):
                    raise
                ports = self.pinned_ports()
                self.compose.run(
                    "up", "-d", "--no-build", self.definition.toxiproxy_service, timeout=timeout, env=ports
                )
            self.create_links(deadline=t0 + timeout)
            self.compose.run("up", "-d", "--no-build", timeout=timeout, env={**ports, **self.link_urls()})
            self.wait_healthy(deadline=t0 + timeout)
        except BaseException:
            if not was_running:  # leave nothing behind from a start that failed
                try:
                    self.down()
                except StackError:
                    pass
            raise
        return time.monotonic() - t0

    def pinned_ports(self) -> dict[str, str]:
        """A host port for every published container port, for compose files that publish through
        `port_env` variables: the one a container of this project already has, else a free one."""
        wanted: list[tuple[str, int]] = []
        for svc, spec in self.definition.services.items():
            for entry in spec.get("ports") or []:
                text = str(entry.get("target") if isinstance(entry, dict) else entry)
                digits = text.rsplit(":", 1)[-1].split("/")[0]
                if digits.isdigit():
                    wanted.append((svc, int(digits)))
        try:
            every = engine.list_containers(self.docker, all=True)
        except DockerException as exc:
            raise StackError(f"cannot list containers: {exc}") from exc
        taken: set[int] = set()
        mine: dict[tuple[str, int], int] = {}
        for c in every:
            bindings = (c.attrs.get("HostConfig") or {}).get("PortBindings") or {}
            for key, binds in bindings.items():
                for b in binds or []:
                    if str(b.get("HostPort") or "").isdigit():
                        taken.add(int(b["HostPort"]))
                        if c.labels.get("com.docker.compose.project") == self.project:
                            mine[(c.labels.get("com.docker.compose.service", ""), int(key.split("/")[0]))] = int(
                                b["HostPort"]
                            )
            for key, binds in ((c.attrs.get("NetworkSettings") or {}).get("Ports") or {}).items():
                for b in binds or []:
                    if str(b.get("HostPort") or "").isdigit() and ":" not in str(b.get("HostIp") or ""):
                        taken.add(int(b["HostPort"]))
                        if c.labels.get("com.docker.compose.project") == self.project:
                            mine.setdefault(
                                (c.labels.get("com.docker.compose.service", ""), int(key.split("/")[0])),
                                int(b["HostPort"]),
                            )
        out = {}
        for svc, cport in wanted:
            port = mine.get((svc, cport)) or _free_port(taken)
            taken.add(port)
            out[port_env(svc, cport)] = str(port)
        return out

    def create_links(self, deadline: float) -> None:
        tox = self.toxiproxy()
        try:
            for attempt in Retrying(
                stop=stop_after_delay(max(0.0, deadline - time.monotonic())),
                wait=wait_fixed(0.1),
                retry=retry_if_exception_type(ToxiproxyError),
                reraise=True,
            ):
                with attempt:
                    tox.version()
        except ToxiproxyError as exc:
            raise StackError(f"Toxiproxy of {self.project} did not come up: {exc}") from exc
        self.ensure_links(tox)

    def ensure_links(self, tox: Toxiproxy) -> None:
        ensure_links(tox, self.definition.links.values())

    def wait_healthy(self, deadline: float, nodes: list[str] | None = None) -> None:
        """Wait until the given nodes (default all) run and pass their healthchecks."""
        wanted = set(nodes or self.definition.services)
        last: list[str] = []
        while True:
            status = self.status()
            last = [
                f"{n.name}: {n.state}/{n.health}"
                for n in status.nodes
                if n.name in wanted and not (n.state == "running" and n.health in ("healthy", "none"))
            ]
            if not last:
                return
            if time.monotonic() > deadline:
                raise StackError(f"stack {self.project} not healthy in time: {'; '.join(last)}")
            time.sleep(0.2)

    def down(self, timeout: float = 120.0) -> None:
        self.compose.run("down", "--remove-orphans", "-v", "-t", "2", timeout=timeout)

    def logs(self, service: str | None = None, tail: int = 200) -> str:
        args = ["logs", "--no-color", f"--tail={tail}"]
        if service:
            args.append(service)
        return self.compose.run(*args, timeout=60)

    def node_exists(self, node: str) -> bool:
        try:
            self.container(node)
            return True
        except (StackError, NotFound):
            return False
