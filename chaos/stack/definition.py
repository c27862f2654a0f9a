"""What a compose file declares: its nodes, its links, its Toxiproxy service and images.

Nodes are compose services. Links are Toxiproxy proxies declared on the service that carries
the `deadair.toxiproxy` label, one label per link:

    deadair.link.mic: "0.0.0.0:8001 -> origin:8000"

so a user's own compose file is described the same way, without Python constants. Reading a
definition needs no engine: the language checks an experiment's targets against it.

Where simulated listeners get in is a fact about the stack too, so it is a label on the same
service (`deadair.listeners.join`, `.via`, `.path`); a stack without them has no audio, and an
experiment on it has no listeners unless it says how they join.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.errors import EnvironmentNotReady
from chaos.stack.composefile import ComposeFileError, read_compose_file

COMPOSE_FILE_NAMES = ("docker-compose.yml", "compose.yaml", "compose.yml", "docker-compose.yaml")
_LINK_LABEL = re.compile(r"^deadair\.link\.([a-z0-9][a-z0-9_.-]*)$")
_LISTENERS_LABEL = re.compile(r"^deadair\.listeners\.([a-z]+)$")
LISTENER_KEYS = ("join", "via", "stream", "path")  # what a stack may say about its listeners
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
    listeners: dict[str, str] = field(default_factory=dict)  # the stack's deadair.listeners.* labels; {}: no audio
    document: dict[str, Any] = field(default_factory=dict, repr=False)  # the whole file as read (configs, secrets)

    @property
    def nodes(self) -> list[str]:
        """Fault targets: every service but Toxiproxy, which is the instrument itself."""
        return [s for s in self.services if s != self.toxiproxy_service]

    @property
    def images(self) -> list[str]:
        return sorted({str(s["image"]) for s in self.services.values() if s.get("image")})

    @classmethod
    def load(cls, compose_file: Path, name: str | None = None) -> StackDefinition:
        doc = _read_compose(compose_file)
        services = doc.get("services") or {}
        if not isinstance(services, dict) or not services:
            raise StackError(f"{compose_file}: no services")
        tox_service, api_port, links, listeners = None, 8474, {}, {}
        for svc, spec in services.items():
            if not isinstance(spec, dict):
                raise StackError(
                    f"{compose_file}: service {str(svc)[:80]!r} is {type(spec).__name__}; expected a mapping"
                )
            try:
                labels = labels_of(spec)
            except (TypeError, AttributeError) as exc:
                raise StackError(f"{compose_file}: service {str(svc)[:80]}: labels: {exc}") from None
            if "deadair.toxiproxy" not in labels:
                misplaced = [k for k in labels if k.startswith(("deadair.link", "deadair.listener"))]
                if misplaced:  # read nowhere else: ignored, a stack with audio would silently have none
                    raise StackError(
                        f"{compose_file}: service {svc} carries {misplaced[0]}, which belongs on the service "
                        "with the deadair.toxiproxy label (links and listeners are declared there)"
                    )
            if "deadair.toxiproxy" in labels:
                tox_service = svc
                try:
                    api_port = int(labels["deadair.toxiproxy"] or 8474)
                except ValueError:
                    raise StackError(
                        f"{compose_file}: label deadair.toxiproxy={labels['deadair.toxiproxy'][:80]!r}: "
                        "expected Toxiproxy's API port, such as 8474"
                    ) from None
                try:
                    links = links_from_labels(labels)
                    listeners = listeners_from_labels(labels)
                except ValueError as exc:
                    raise StackError(f"{compose_file}: {exc}") from None
        if tox_service is None:
            raise StackError(f"{compose_file}: no service carries the label deadair.toxiproxy")
        for link in links.values():
            if link.upstream_node not in services:
                raise StackError(f"{compose_file}: link {link.name} goes to {link.upstream_node}, not a service")
        for key in ("via", "stream"):
            if key in listeners and listeners[key] not in links:
                raise StackError(
                    f"{compose_file}: deadair.listeners.{key} names {listeners[key]!r}, not a link; "
                    f"links: {', '.join(links)}"
                )
        return cls(
            name or compose_file.parent.name, compose_file, services, tox_service, api_port, links, listeners, doc
        )


def _read_compose(compose_file: Path) -> dict[str, Any]:
    """A compose file as a mapping, read as Compose reads it (chaos.stack.composefile); anything
    else is a StackError at its place, never a traceback."""
    try:
        return read_compose_file(compose_file).doc
    except ComposeFileError as exc:
        raise StackError(str(exc)) from None


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


def listeners_from_labels(labels: dict[str, str]) -> dict[str, str]:
    """Where the stack's listeners get in (`deadair.listeners.join: room-api|direct`, `.via: LINK`
    for that way in, `.stream: LINK` where a listener told `join: direct` streams from when the
    stack's own way is room-api, `.path: /live`); {} when the stack says nothing, which means it
    has no audio to listen to."""
    found = {}
    for key, value in labels.items():
        if not key.startswith("deadair.listener"):
            continue
        m = _LISTENERS_LABEL.match(key)
        if not m or m.group(1) not in LISTENER_KEYS:  # a misspelt label would silently mean "no audio"
            raise ValueError(f"label {key}: unknown; expected one of deadair.listeners.{{{','.join(LISTENER_KEYS)}}}")
        found[m.group(1)] = str(value).strip()
    if not found.get("path", "/").startswith("/"):
        raise ValueError(f"label deadair.listeners.path={found['path']!r}: expected a path such as /live")
    if found:
        found.setdefault("join", "direct")
    if found and "via" not in found:
        raise ValueError("deadair.listeners.* labels need deadair.listeners.via (the link listeners use)")
    if found.get("join", "direct") not in ("room-api", "direct"):
        raise ValueError(f"label deadair.listeners.join={found['join']!r}: expected room-api or direct")
    return found


def port_env(service: str, container_port: int) -> str:
    """The variable a compose file may use to publish a port on a host port deadair picks once:
    `"127.0.0.1:${DEADAIR_PORT_TOXIPROXY_8474:-}:8474"`. Ephemeral ports change whenever a
    container restarts; a pinned one keeps every host address valid across restarts."""
    return f"DEADAIR_PORT_{re.sub('[^A-Z0-9]', '_', service.upper())}_{container_port}"


def labels_of(spec: dict[str, Any]) -> dict[str, str]:
    """A compose service's labels as a dict, whichever of the two forms the file uses."""
    labels = spec.get("labels") or {}
    if isinstance(labels, list):  # ["a=b", ...]
        if not all(isinstance(item, (str, int, float)) for item in labels):
            raise TypeError("a list of labels holds KEY=VALUE strings")
        pairs = (str(item).partition("=") for item in labels)
        return {key: value for key, _, value in pairs}
    if not isinstance(labels, dict) or not all(isinstance(v, (str, int, float, type(None))) for v in labels.values()):
        raise TypeError("labels are a mapping of names to strings, or a list of KEY=VALUE")
    return {str(k): "" if v is None else str(v) for k, v in labels.items()}


def link_env(name: str) -> str:
    return f"DEADAIR_LINK_{re.sub('[^A-Z0-9]', '_', name.upper())}_URL"


def repo_root() -> Path:
    """The checkout this package runs from (holds compose/ and experiments/)."""
    return Path(__file__).resolve().parents[2]


def _is_file(path: Path) -> bool:
    """Path.is_file(), but a name the file system cannot hold (ENAMETOOLONG) is simply not there."""
    try:
        return path.is_file()
    except OSError:
        return False


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
        if _is_file(cand):
            return StackDefinition.load(cand, name_or_path if not cand.suffix else cand.parent.name)
        for fname in COMPOSE_FILE_NAMES:
            if _is_file(cand / fname):
                return StackDefinition.load(cand / fname, cand.name)
    raise StackError(
        f"no stack named {name_or_path!r}: looked for compose/{name_or_path}/docker-compose.yml "
        f"from {near or Path.cwd()} upwards and in {repo_root()}"
    )
