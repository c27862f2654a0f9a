"""The stack under test: a Docker Compose project whose nodes and links come from labels.

Nodes are compose services. Links are Toxiproxy proxies declared on the service that
carries the `deadair.toxiproxy` label, one label per link:

    deadair.link.mic: "0.0.0.0:8001 -> origin:8000"

so a user's own compose file can be described the same way, without Python constants.
Compose (v2 `docker compose` or v1 `docker-compose`) starts and stops the project; the
Docker SDK inspects it and acts on single containers.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable

import yaml
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed
from docker.errors import DockerException, ImageNotFound, NotFound

from . import engine
from .errors import EnvironmentNotReady
from .toxiproxy import Toxiproxy, ToxiproxyError

COMPOSE_FILE_NAMES = ("docker-compose.yml", "compose.yaml", "compose.yml", "docker-compose.yaml")
_LINK_LABEL = re.compile(r"^deadair\.link\.([a-z0-9][a-z0-9_.-]*)$")
_LINK_SPEC = re.compile(r"^\s*(\S+:\d+)\s*->\s*(\S+:\d+)\s*$")


class StackError(EnvironmentNotReady):
    """The stack could not be started, reached or inspected."""


@dataclass(frozen=True)
class Link:
    """A Toxiproxy proxy between two services (or between the host and a service)."""

    name: str
    listen: str  # host:port inside the stack's network
    upstream: str  # service:port

    @property
    def listen_port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def upstream_node(self) -> str:
        return self.upstream.rsplit(":", 1)[0]


@dataclass(frozen=True)
class StackDefinition:
    """What a compose file declares: nodes, links, the Toxiproxy service and images."""

    name: str
    compose_file: Path
    services: dict[str, dict[str, Any]]
    toxiproxy_service: str
    toxiproxy_api_port: int
    links: dict[str, Link]

    @property
    def nodes(self) -> list[str]:
        """Fault targets: every service but Toxiproxy, which is the instrument itself."""
        return [s for s in self.services if s != self.toxiproxy_service]

    def ear_settings(self):
        """What golden ears listen for, from the sources' `deadair.audio.*` labels (defaults otherwise)."""
        from .ears import EarSettings

        values: dict = {}
        for spec in self.services.values():
            labels = _labels(spec)
            title = labels.get("deadair.audio.title")
            if title in ("live", "hold") and "deadair.audio.pilot_hz" in labels:
                values[f"{title}_pilot"] = float(labels["deadair.audio.pilot_hz"])
            if "deadair.audio.beep_hz" in labels:
                values["beep_freqs"] = tuple(float(f) for f in labels["deadair.audio.beep_hz"].split(","))
            if "deadair.audio.beep_every" in labels:
                values["beep_every"] = int(labels["deadair.audio.beep_every"])
        return EarSettings(**values)

    @property
    def images(self) -> list[str]:
        return sorted({str(s["image"]) for s in self.services.values() if s.get("image")})

    @classmethod
    def load(cls, compose_file: Path, name: str | None = None) -> "StackDefinition":
        try:
            doc = yaml.safe_load(compose_file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise StackError(f"cannot read the stack's compose file {compose_file}: {exc}") from exc
        services = (doc or {}).get("services") or {}
        if not isinstance(services, dict) or not services:
            raise StackError(f"{compose_file}: no services")
        tox_service, api_port, links = None, 8474, {}
        for svc, spec in services.items():
            labels = _labels(spec)
            if "deadair.toxiproxy" in labels:
                tox_service = svc
                api_port = int(labels["deadair.toxiproxy"] or 8474)
                try:
                    links = links_from_labels(labels)
                except ValueError as exc:
                    raise StackError(f"{compose_file}: {exc}") from None
        if tox_service is None:
            raise StackError(f"{compose_file}: no service carries the label deadair.toxiproxy")
        for link in links.values():
            if link.upstream_node not in services:
                raise StackError(f"{compose_file}: link {link.name} goes to {link.upstream_node}, not a service")
        return cls(name or compose_file.parent.name, compose_file, services, tox_service, api_port, links)


def links_from_labels(labels: dict[str, str]) -> dict[str, Link]:
    """The links a Toxiproxy service declares (`deadair.link.NAME: "LISTEN -> UPSTREAM"`).

    Read from the compose file before a start, and from the running container's own labels when
    Toxiproxy must be restarted and its links recreated without the compose file."""
    links = {}
    for key, value in labels.items():
        m = _LINK_LABEL.match(key)
        if not m:
            continue
        spec_m = _LINK_SPEC.match(str(value))
        if not spec_m:
            raise ValueError(f"label {key}={value!r} is not 'LISTEN_HOST:PORT -> SERVICE:PORT'")
        links[m.group(1)] = Link(m.group(1), spec_m.group(1), spec_m.group(2))
    return links


def port_env(service: str, container_port: int) -> str:
    """The variable a compose file may use to publish a port on a host port deadair picks once:
    `"127.0.0.1:${DEADAIR_PORT_TOXIPROXY_8474:-}:8474"`. Ephemeral ports change whenever a
    container restarts; a pinned one keeps every host address valid across restarts."""
    return f"DEADAIR_PORT_{re.sub('[^A-Z0-9]', '_', service.upper())}_{container_port}"


def _labels(spec: dict[str, Any]) -> dict[str, str]:
    labels = spec.get("labels") or {}
    if isinstance(labels, list):  # ["a=b", ...]
        return dict(str(item).split("=", 1) if "=" in str(item) else (str(item), "") for item in labels)
    return {str(k): "" if v is None else str(v) for k, v in labels.items()}


def _link_env(name: str) -> str:
    return f"DEADAIR_LINK_{re.sub('[^A-Z0-9]', '_', name.upper())}_URL"


def repo_root() -> Path:
    """The checkout this package runs from (holds compose/ and experiments/)."""
    return Path(__file__).resolve().parent.parent


def find_stack(name_or_path: str, near: Path | None = None) -> StackDefinition:
    """Resolve `audio-room` (a folder under some compose/) or a path to a compose file or folder."""
    candidates: list[Path] = []
    given = Path(name_or_path)
    if given.is_absolute() or os.sep in name_or_path or name_or_path.endswith((".yml", ".yaml")):
        base = given if given.is_absolute() else ((near or Path.cwd()) / given)
        candidates.append(base)
    else:
        starts = [p for p in (near, Path.cwd(), repo_root()) if p is not None]
        for start in starts:
            for parent in [start.resolve(), *start.resolve().parents]:
                candidates.append(parent / "compose" / name_or_path)
    for cand in candidates:
        if cand.is_file():
            return StackDefinition.load(cand, name_or_path if not cand.suffix else cand.parent.name)
        for fname in COMPOSE_FILE_NAMES:
            if (cand / fname).is_file():
                return StackDefinition.load(cand / fname, cand.name)
    raise StackError(f"no stack named {name_or_path!r}: looked for compose/{name_or_path}/docker-compose.yml "
                     f"from {near or Path.cwd()} upwards and in {repo_root()}")


def ensure_links(tox: Toxiproxy, links: "Iterable[Link]") -> None:
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
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, **(env or {})})
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
    raise EnvironmentNotReady("no Docker Compose found (neither `docker compose` nor `docker-compose`); "
                              "run `deadair setup` or install Docker Compose")


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
        return all(n.state == "running" and n.health in ("healthy", "none") and n.networks > 0
                   for n in self.nodes) and all(
            link.present and link.enabled and not link.toxics for link in self.links)


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
            raise StackError(f"{node!r} is not a node of stack {self.definition.name} "
                             f"(nodes: {', '.join(self.definition.nodes)})")
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
        raise StackError(f"port {container_port} of {service} is not published on the host; "
                         f"add \"127.0.0.1::{container_port}\" to its ports")

    def toxiproxy(self) -> Toxiproxy:
        host, port = self.published(self.definition.toxiproxy_service, self.definition.toxiproxy_api_port)
        return Toxiproxy(f"http://{host}:{port}")

    def link(self, name: str) -> Link:
        try:
            return self.definition.links[name]
        except KeyError:
            raise StackError(f"{name!r} is not a link of stack {self.definition.name} "
                             f"(links: {', '.join(self.definition.links)})") from None

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
            out[_link_env(link.name)] = f"http://{host}:{port}"
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
        if self.definition.toxiproxy_service in by_service and by_service[self.definition.toxiproxy_service].status == "running":
            try:
                proxies = self.toxiproxy().proxies()
            except (ToxiproxyError, StackError):
                proxies = {}
        urls = self.link_urls() if proxies else {}
        for link in self.definition.links.values():
            p = proxies.get(link.name)
            links.append(LinkStatus(link.name, link.listen, link.upstream, p is not None,
                                    bool(p and p.enabled),
                                    [f"{t.name}({t.type})" for t in p.toxics] if p else [],
                                    urls.get(_link_env(link.name))))
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
        if missing:
            raise EnvironmentNotReady(f"image(s) {', '.join(missing)} not built; run `deadair setup`")

    def up(self, timeout: float = 120.0) -> float:
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
                self.compose.run("up", "-d", "--no-build", self.definition.toxiproxy_service, timeout=timeout, env=ports)
            except StackError as exc:  # another stack took a port between our check and its start
                if "port is already allocated" not in str(exc):
                    raise
                ports = self.pinned_ports()
                self.compose.run("up", "-d", "--no-build", self.definition.toxiproxy_service, timeout=timeout, env=ports)
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
                cport = text.rsplit(":", 1)[-1].split("/")[0]
                if cport.isdigit():
                    wanted.append((svc, int(cport)))
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
                            mine[(c.labels.get("com.docker.compose.service", ""), int(key.split("/")[0]))] = \
                                int(b["HostPort"])
            for key, binds in ((c.attrs.get("NetworkSettings") or {}).get("Ports") or {}).items():
                for b in binds or []:
                    if str(b.get("HostPort") or "").isdigit() and ":" not in str(b.get("HostIp") or ""):
                        taken.add(int(b["HostPort"]))
                        if c.labels.get("com.docker.compose.project") == self.project:
                            mine.setdefault((c.labels.get("com.docker.compose.service", ""),
                                             int(key.split("/")[0])), int(b["HostPort"]))
        out = {}
        for svc, cport in wanted:
            port = mine.get((svc, cport)) or _free_port(taken)
            taken.add(port)
            out[port_env(svc, cport)] = str(port)
        return out

    def create_links(self, deadline: float) -> None:
        tox = self.toxiproxy()
        try:
            for attempt in Retrying(stop=stop_after_delay(max(0.0, deadline - time.monotonic())),
                                    wait=wait_fixed(0.1), retry=retry_if_exception_type(ToxiproxyError), reraise=True):
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
            last = [f"{n.name}: {n.state}/{n.health}" for n in status.nodes
                    if n.name in wanted and not (n.state == "running" and n.health in ("healthy", "none"))]
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
