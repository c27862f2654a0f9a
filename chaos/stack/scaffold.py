"""`deadair init`: a stack definition for a user's own compose file, which is never modified.

deadair reads one compose file per stack (StackDefinition.load) and compose v1 has no `include:`,
so the overlay is a whole file: `DIR/compose/<name>/docker-compose.yml` holds the user's services
plus a Toxiproxy service whose `deadair.link.*` labels declare the chosen links. A client reaches
a dependency through its link only if its address says `toxiproxy:LISTEN`, so the addresses in
the services' `environment` are rewritten in the generated file (`db:6379`, `redis://db`, a
`DB_HOST`/`DB_PORT` pair); what cannot be rewritten (a bare host name alone, an address in a
command, a config file or the code) is listed for the user to change by hand. Relative paths
(build contexts, bind mounts, env files) are rewritten to stay valid from the new folder.

Nothing here touches the engine; chaos.cli writes the files and validates the experiment.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chaos.errors import ExperimentError, Problem
from chaos.stack.composefile import ComposeFile, ComposeFileError, plain_reads_as_text, read_compose_file
from chaos.stack.definition import labels_of, port_env

TOXIPROXY_IMAGE = "deadair/toxiproxy:2.12.0"
API_PORT = 8474
FIRST_LINK_PORT = 8001  # dependency links: 8001, 8002, ...
FIRST_ENTRY_PORT = 8100  # host -> service links, published on the host
_SERVICE_PORT = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*):(\d{1,5})(/[^\s$]*)?$")
MAX_SERVICES = 500
MAX_NAME = 64  # a stack name: a folder name and part of compose project and container names
# a URL's default port, for `redis://db` (no port): rewritten only when it is the linked port
DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "ws": 80,
    "redis": 6379,
    "rediss": 6379,
    "postgres": 5432,
    "postgresql": 5432,
    "mysql": 3306,
    "mariadb": 3306,
    "mongodb": 27017,
    "amqp": 5672,
    "nats": 4222,
    "memcached": 11211,
}
# extension fields compose v1 reads only from version 2.1 on (healthcheck, sysctls)
_OLD_VERSIONS = ("1", "2", "2.0")


class ScaffoldError(ExperimentError):
    """Bad input to `deadair init`: located problems, exit 2, nothing written."""


@dataclass(frozen=True)
class Target:
    """SERVICE:PORT on the command line (`--link db:6379`, `--entry web:8080/health`)."""

    service: str
    port: int
    path: str = "/"
    given: str = ""

    @classmethod
    def parse(cls, text: str, option: str, with_path: bool = False) -> Target:
        m = _SERVICE_PORT.match(text.strip())
        if not m or not 0 < int(m.group(2)) < 65536 or (m.group(3) and not with_path):
            shape = "SERVICE:PORT[/PATH]" if with_path else "SERVICE:PORT"
            raise ScaffoldError([Problem(f"{option} {text}", 0, 0, f"expected {shape}, such as db:6379")])
        return cls(m.group(1), int(m.group(2)), m.group(3) or "/", f"{option} {text}")


@dataclass(frozen=True)
class PlannedLink:
    name: str
    listen_port: int
    service: str
    port: int

    @property
    def label(self) -> str:
        return f"0.0.0.0:{self.listen_port} -> {self.service}:{self.port}"


@dataclass
class Scaffold:
    """What `deadair init` writes (file -> text) and what it tells the user."""

    name: str
    files: dict[Path, str]
    links: list[PlannedLink]
    entry: PlannedLink
    rewritten: list[str] = field(default_factory=list)  # "web: REDIS_URL redis://db:6379 -> redis://toxiproxy:8001"
    by_hand: list[str] = field(default_factory=list)  # what the user must change themselves
    notes: list[str] = field(default_factory=list)
    used: set[str] = field(default_factory=set)  # links some address was rewritten to
    compose_out: Path = Path()
    experiment_out: Path = Path()
    regenerate: str = "deadair init --force"  # the command that writes this again


USER_COMPOSE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")  # Compose's order
OVERRIDE_NAMES = (
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yaml",
    "docker-compose.override.yml",
)


def find_compose_file(folder: Path) -> Path:
    """The user's compose file as `docker compose` picks it in a folder (compose.yaml first)."""
    for fname in USER_COMPOSE_NAMES:
        if (folder / fname).is_file():
            return folder / fname
    raise ScaffoldError(
        [Problem(str(folder), 0, 0, f"no compose file ({', '.join(USER_COMPOSE_NAMES)}); expected --compose FILE")]
    )


class _BothDumper(yaml.SafeDumper):
    """Writes a string quoted when YAML 1.1 (compose v1) or 1.2 (compose v2) would read it as
    something else: PyYAML quotes only for 1.1, and 1.2 reads a plain `1e3` as 1000.0, `0o17` as 15."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    node = dumper.represent_str(value)
    if not plain_reads_as_text(value) and isinstance(node, yaml.ScalarNode) and node.style is None:
        node.style = '"'
    return node


_BothDumper.add_representer(str, _represent_str)


def read_compose(path: Path) -> ComposeFile:
    """The user's compose file read as Compose reads it (chaos.stack.composefile: YAML 1.2 scalars,
    libyaml's tabs, bounded), and its node tree (for the line and column of what is wrong); it
    must have services, at most MAX_SERVICES."""
    try:
        compose = read_compose_file(path)
    except ComposeFileError as exc:
        raise ScaffoldError([Problem(str(path), exc.line, exc.column, exc.message)]) from None
    doc = compose.doc
    services = doc.get("services")
    if not isinstance(services, dict) or not services or not all(isinstance(s, dict) for s in services.values()):
        raise ScaffoldError([Problem(str(path), 1, 1, "no services; expected a compose file with a services mapping")])
    if len(services) > MAX_SERVICES:
        raise ScaffoldError([Problem(str(path), 1, 1, f"{len(services)} services; expected at most {MAX_SERVICES}")])
    doc["services"] = {str(k): v for k, v in services.items()}  # `123:` is a service named "123"
    return compose


def _where(compose: ComposeFile, *keys: str) -> tuple[int, int]:
    """Line and column of services.KEY... in the compose file (1, 1 when not found)."""
    found = (1, 1)
    node: yaml.Node = compose.node
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            break
        for k, v in node.value:
            if k.value == key:
                found, node = compose.lines.of(k.start_mark), v
                break
        else:
            break
    return found


def known_ports(doc: dict[str, Any]) -> dict[str, set[int]]:
    """The ports each service is known to listen on: its `ports` (container side), its `expose`,
    and the `svc:port` or `scheme://svc` addresses other services' environments name."""
    services: dict[str, dict[str, Any]] = doc["services"]
    out: dict[str, set[int]] = {svc: set() for svc in services}
    for svc, spec in services.items():
        for entry in spec.get("ports") or []:
            target = entry.get("target") if isinstance(entry, dict) else str(entry).rsplit(":", 1)[-1]
            digits = str(target).split("/")[0]
            if digits.isdigit():
                out[svc].add(int(digits))
        for entry in spec.get("expose") or []:
            digits = str(entry).split("/")[0]
            if digits.isdigit():
                out[svc].add(int(digits))
    if not services:
        return out
    names = "|".join(re.escape(svc) for svc in sorted(services, key=len, reverse=True))
    host_port = re.compile(rf"(?<![\w.-])({names}):(\d{{1,5}})(?!\d)")  # one pattern for every service
    url = re.compile(rf"([a-z][a-z0-9+.-]*)://(?:[^/@\s]*@)?({names})(?![\w.:-])")
    for spec in services.values():
        env = environment_of(spec)
        for key, value in env.items():
            for host, port in host_port.findall(value):
                out[host].add(int(port))
            for scheme, host in url.findall(value):
                if scheme in DEFAULT_PORTS:
                    out[host].add(DEFAULT_PORTS[scheme])
            port_key = _port_key(key, env) if value in services else None
            if port_key is not None and env[port_key].isdigit():  # DB_HOST=db beside DB_PORT=5432
                out[value].add(int(env[port_key]))
    return out


def _port_key(host_key: str, env: dict[str, str]) -> str | None:
    """DB_PORT for DB_HOST (REDIS_PORT for REDIS_ADDR, ...), when the environment has it."""
    prefix = re.sub(r"(HOST|HOSTNAME|ADDR|SERVER)$", "", host_key)
    if prefix == host_key:
        return None
    return next((k for k in (f"{prefix}PORT", f"{prefix}_PORT") if k in env), None)


def _text(value: Any) -> str:
    """An environment value as the container sees it (true, not Python's True; null: empty)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def environment_of(spec: dict[str, Any]) -> dict[str, str]:
    env = spec.get("environment") or {}
    if isinstance(env, list):
        pairs = (str(item).partition("=") for item in env)
        return {k: v for k, sep, v in pairs if sep}
    if not isinstance(env, dict):
        return {}
    return {str(k): _text(v) for k, v in env.items()}


def _rewrite_value(value: str, link: PlannedLink, proxy: str) -> str:
    """`db:6379`, `redis://db` (when 6379 is redis's default) -> the link's address."""
    h = re.escape(link.service)
    value = re.sub(rf"(?<![\w.-]){h}:{link.port}(?!\d)", f"{proxy}:{link.listen_port}", value)

    def url(m: re.Match) -> str:
        if DEFAULT_PORTS.get(m.group(1)) != link.port:
            return m.group(0)
        return f"{m.group(1)}://{m.group(2) or ''}{proxy}:{link.listen_port}"

    return re.sub(rf"([a-z][a-z0-9+.-]*)://([^/@\s]*@)?{h}(?![\w.:-])", url, value)


def _safe_name(text: str) -> str:
    return re.sub(r"[^a-z0-9_-]+", "-", text.lower()).strip("-_") or "mystack"


def plan(
    compose_file: Path,
    out_dir: Path,
    links: list[Target],
    entry: Target | None,
    name: str | None = None,
) -> Scaffold:
    """Everything `deadair init` writes, or a ScaffoldError naming every bad input."""
    compose = read_compose(compose_file)
    doc = compose.doc
    services: dict[str, dict[str, Any]] = doc["services"]
    src = str(compose_file)
    problems: list[Problem] = []
    tox_labelled = [s for s, spec in services.items() if "deadair.toxiproxy" in labels_of(spec)]
    if tox_labelled:
        problems.append(
            Problem(
                src,
                *_where(compose, "services", tox_labelled[0], "labels"),
                f"service {tox_labelled[0]} already carries deadair.toxiproxy: this file is a deadair stack "
                "already; expected a compose file with no deadair labels",
            )
        )
    ports = known_ports(doc)
    if entry is None:
        published = [(s, p) for s, spec in services.items() for p in sorted(_published_ports(spec))]
        if len(published) != 1:
            found = ", ".join(f"{s}:{p}" for s, p in published) or "none"
            problems.append(
                Problem(
                    "--entry",
                    0,
                    0,
                    "which service:port do probes reach from the host? expected --entry SERVICE:PORT[/PATH] "
                    f"(published ports in {src}: {found})",
                )
            )
        else:
            entry = Target(*published[0], "/", "--entry")
    for t in [*links, *([entry] if entry else [])]:
        if t.service not in services:
            problems.append(
                Problem(t.given, 0, 0, f"no service {t.service!r} in {src}; services: {', '.join(services)}")
            )
        elif t.port not in ports[t.service]:
            known = ", ".join(str(p) for p in sorted(ports[t.service])) or "none"
            problems.append(
                Problem(
                    t.given,
                    0,
                    0,
                    f"service {t.service} has no port {t.port} in {src} (its ports, expose, or an address such as "
                    f"{t.service}:{t.port} in another service's environment; known: {known}); expected one of "
                    f'those, or add `expose: ["{t.port}"]` to {t.service}',
                )
            )
    for t in [*links, *([entry] if entry else [])]:
        mode = services.get(t.service, {}).get("network_mode")
        if mode:  # host, service:X, none...: not on the stack's network, so Toxiproxy cannot reach it by name
            problems.append(
                Problem(
                    src,
                    *_where(compose, "services", t.service, "network_mode"),
                    f"{t.given}: service {t.service} has network_mode {mode}, so Toxiproxy cannot reach it by "
                    f"name; expected a service on the stack's network (remove network_mode, or choose another)",
                )
            )
    if not links:
        problems.append(Problem("--link", 0, 0, "expected at least one --link SERVICE:PORT: a dependency to fault"))
    if len({(t.service, t.port) for t in links}) != len(links):
        problems.append(Problem("--link", 0, 0, "the same SERVICE:PORT given twice"))
    if problems:
        raise ScaffoldError(problems)
    assert entry is not None
    stack_name = _safe_name(name or compose_file.resolve().parent.name)
    if len(stack_name) > MAX_NAME:
        raise ScaffoldError(
            [
                Problem(
                    "--name" if name else src,
                    0,
                    0,
                    f"a stack name of {len(stack_name)} characters; expected at most {MAX_NAME}",
                )
            ]
        )
    proxy, n = "toxiproxy", 1
    while proxy in services:  # the user's own toxiproxy (or deadair-toxiproxy) stays theirs
        n += 1
        proxy = "deadair-toxiproxy" if n == 2 else f"deadair-toxiproxy-{n - 1}"
    planned = _name_links(links)
    entry_link = PlannedLink(
        _unique(f"entry-{_safe_name(entry.service)}", planned), FIRST_ENTRY_PORT, entry.service, entry.port
    )
    compose_out = out_dir / "compose" / stack_name / "docker-compose.yml"
    if compose_out.resolve() == compose_file.resolve():  # --force would overwrite the user's own file
        raise ScaffoldError(
            [
                Problem(
                    src,
                    0,
                    0,
                    f"the generated file would replace this compose file ({compose_out}); expected --name "
                    "ANOTHER or another DIR",
                )
            ]
        )
    sc = Scaffold(stack_name, {}, planned, entry_link, compose_out=compose_out)
    flags = ["deadair", "init", str(out_dir), "--compose", str(compose_file)]
    flags += [x for t in links for x in ("--link", f"{t.service}:{t.port}")]
    flags += ["--entry", f"{entry.service}:{entry.port}{entry.path if entry.path != '/' else ''}"]
    sc.regenerate = shlex.join([*flags, *(["--name", name] if name else []), "--force"])
    new_services = {proxy: _toxiproxy_service(proxy, planned, entry_link, doc)}
    chosen = {entry.service, *(t.service for t in links)}
    needed = _with_dependencies(chosen, services)
    for svc, spec in services.items():
        spec = dict(spec)
        if svc in needed and spec.get("profiles"):  # compose starts it only with --profile; deadair starts defaults
            why = "the experiment needs it" if svc in chosen else "a service the experiment needs depends on it"
            sc.notes.append(
                f"{svc}: profiles {spec.pop('profiles')} dropped in the generated file: compose starts a service "
                f"with profiles only when one is asked for, and {why}"
            )
        new_services[svc] = _service(svc, spec, planned, proxy, compose_file, compose_out.parent, sc)
    for link in planned:
        if link.name not in sc.used:
            sc.by_hand.append(
                f"no service's environment names {link.service}:{link.port}: point its clients at "
                f"{proxy}:{link.listen_port} (link {link.name}) by hand, or their traffic bypasses the link"
            )
    pulled = sorted({str(spec["image"]) for spec in services.values() if spec.get("image") and not spec.get("build")})
    if pulled:
        sc.notes.append(
            f"deadair starts the stack without pulling or building images: `docker pull` {' '.join(pulled)} first "
            "(`deadair setup` builds only deadair's own images)"
        )
    out_doc = {k: v for k, v in doc.items() if k != "services"}
    out_doc["services"] = new_services
    out_doc = _relocate_top(out_doc, compose_file, compose_out.parent)
    overrides = [compose_file.parent / f for f in OVERRIDE_NAMES if (compose_file.parent / f).is_file()]
    if overrides:
        sc.notes.append(
            f"{overrides[0]} is not read: Compose merges it into your file, deadair reads one file; to keep its "
            f"settings, generate from the merged file (`docker compose config > merged.yml`, then --compose merged.yml)"
        )
    if (compose_file.parent / ".env").is_file():
        sc.notes.append(
            f"{compose_file.parent / '.env'} sets variables for your compose file; compose reads .env from the "
            f"compose file's folder: copy it to {compose_out.parent}"
        )
    sc.files[compose_out] = _compose_text(out_doc, compose_file, sc)
    sc.experiment_out = out_dir / "experiments" / f"{stack_name}-first.yaml"
    sc.files[sc.experiment_out] = experiment_text(sc, entry, compose_file)
    return sc


def _with_dependencies(chosen: set[str], services: dict[str, dict[str, Any]]) -> set[str]:
    """These services and every service they `depends_on`, transitively (list or mapping form)."""
    out, todo = set(chosen), list(chosen)
    while todo:
        deps = services.get(todo.pop(), {}).get("depends_on") or []
        for dep in deps if isinstance(deps, (list, dict)) else []:
            if isinstance(dep, str) and dep in services and dep not in out:
                out.add(dep)
                todo.append(dep)
    return out


def _published_ports(spec: dict[str, Any]) -> set[int]:
    out = set()
    for entry in spec.get("ports") or []:
        target = entry.get("target") if isinstance(entry, dict) else str(entry).rsplit(":", 1)[-1]
        digits = str(target).split("/")[0]
        if digits.isdigit() and not str(target).endswith("/udp"):
            out.add(int(digits))
    return out


def _unique(name: str, taken: list[PlannedLink]) -> str:
    names = {link.name for link in taken}
    if name not in names:
        return name
    n = 2
    while f"{name}-{n}" in names:
        n += 1
    return f"{name}-{n}"


def _name_links(links: list[Target]) -> list[PlannedLink]:
    """A link per dependency, named after it (`db`, or `db-6380` when it has several)."""
    per_service: dict[str, int] = {}
    for t in links:
        per_service[t.service] = per_service.get(t.service, 0) + 1
    out: list[PlannedLink] = []
    for i, t in enumerate(links):
        base = _safe_name(t.service) + (f"-{t.port}" if per_service[t.service] > 1 else "")
        out.append(PlannedLink(_unique(base, out), FIRST_LINK_PORT + i, t.service, t.port))
    return out


def _toxiproxy_service(name: str, links: list[PlannedLink], entry: PlannedLink, doc: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "image": TOXIPROXY_IMAGE,
        "command": ["-host=0.0.0.0", f"-port={API_PORT}"],
        "ports": [
            f"127.0.0.1:${{{port_env(name, API_PORT)}:-}}:{API_PORT}",
            f"127.0.0.1:${{{port_env(name, entry.listen_port)}:-}}:{entry.listen_port}",
        ],
    }
    modern = str(doc.get("version", "3")) not in _OLD_VERSIONS
    if modern:  # a dead upstream refuses within ~2 s, not after the kernel's ~72 s (see the README)
        spec["sysctls"] = {
            "net.ipv4.neigh.eth0.base_reachable_time_ms": "200",
            "net.ipv4.neigh.eth0.delay_first_probe_time": "0",
            "net.ipv4.neigh.eth0.ucast_solicit": "1",
            "net.ipv4.neigh.eth0.mcast_solicit": "1",
            "net.ipv4.neigh.eth0.retrans_time_ms": "200",
        }
    labels = {"deadair.toxiproxy": str(API_PORT), f"deadair.link.{entry.name}": entry.label}
    labels.update({f"deadair.link.{link.name}": link.label for link in links})
    spec["labels"] = labels
    networks = _networks_for(doc, [entry.service, *(link.service for link in links)])
    if networks:
        spec["networks"] = networks
    if modern:
        spec["healthcheck"] = {
            "test": ["CMD", "/toxiproxy-cli", "list"],
            "interval": "1s",
            "timeout": "2s",
            "retries": 3,
            "start_period": "15s",
        }
    return spec


def _networks_for(doc: dict[str, Any], services: list[str]) -> list[str]:
    """The networks Toxiproxy must join to reach these services (none: the default network)."""
    out: list[str] = []
    for svc in services:
        nets = doc["services"][svc].get("networks")
        for net in nets or []:
            if net not in out:
                out.append(str(net))
        if not nets and "default" not in out and any(s.get("networks") for s in doc["services"].values()):
            out.append("default")
    return out


def _service(
    svc: str,
    spec: dict[str, Any],
    links: list[PlannedLink],
    proxy: str,
    compose_file: Path,
    new_dir: Path,
    sc: Scaffold,
) -> dict[str, Any]:
    """One of the user's services as the generated file has it."""
    old_dir = compose_file.resolve().parent
    if spec.get("network_mode"):
        sc.by_hand.append(f"{svc}: network_mode {spec['network_mode']}: Toxiproxy cannot sit between it and others")
    if "container_name" in spec:
        sc.notes.append(
            f"{svc}: container_name {spec.pop('container_name')!r} dropped (it would clash with your own stack)"
        )
    if spec.get("environment") and not spec.get("network_mode"):  # else `toxiproxy` is no name it can resolve
        spec["environment"] = _environment(svc, spec, links, proxy, sc)
    for key in ("command", "entrypoint", "healthcheck"):
        for link in links:
            named = rf"(?<![\w.-]){re.escape(link.service)}(?![\w-])"
            if link.service == svc or not any(re.search(named, text) for text in _strings(spec.get(key))):
                continue
            if key == "healthcheck":  # kept off links on purpose
                sc.notes.append(
                    f"{svc}: its healthcheck names {link.service}: leave it so, not through {proxy}: rollback of "
                    f"a node fault waits for the node to be healthy, and a healthcheck through a faulted link "
                    f"would make it wait for the link fault too"
                )
            else:
                sc.by_hand.append(
                    f"{svc}: its {key} names {link.service}: point it at {proxy}:{link.listen_port} (link {link.name}) by hand"
                )
    if "ports" in spec:
        spec["ports"] = [p for p in (_port(svc, entry, sc) for entry in spec["ports"] or []) if p is not None]
        if not spec["ports"]:
            del spec["ports"]
    build = spec.get("build")
    if isinstance(build, str):
        spec["build"] = _relocate(build, old_dir, new_dir)
    elif isinstance(build, dict) and "context" in build:
        spec["build"] = {**build, "context": _relocate(str(build["context"]), old_dir, new_dir)}
    elif isinstance(build, dict):
        spec["build"] = {"context": _relocate(".", old_dir, new_dir), **build}
    if build is not None and "image" not in spec:
        sc.notes.append(
            f"{svc} is built from source: deadair starts stacks with --no-build; build it first: "
            f"`docker-compose -p deadair-{sc.name} -f {sc.compose_out} build {svc}` (or docker compose)"
        )
    env_file = spec.get("env_file")
    if isinstance(env_file, str):
        spec["env_file"] = _relocate(env_file, old_dir, new_dir)
    elif isinstance(env_file, list):
        spec["env_file"] = [_env_file(f, old_dir, new_dir) for f in env_file]
    if spec.get("volumes"):
        spec["volumes"] = [_volume(v, old_dir, new_dir) for v in spec["volumes"]]
    if isinstance(spec.get("extends"), dict) and "file" in spec["extends"]:
        spec["extends"] = {**spec["extends"], "file": _relocate(str(spec["extends"]["file"]), old_dir, new_dir)}
    return spec


def _strings(value: Any) -> list[str]:
    """The texts in a command, entrypoint or healthcheck (a string, or lists and mappings of them),
    without building one string of all of them."""
    out: list[str] = []
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
        elif item is not None:
            out.append(_text(item))
    return out


_USERINFO = re.compile(r"(://[^/@\s:]*):[^/@\s]*@")


def _masked(value: str) -> str:
    """A value as printed and written in the header: `postgres://u:pw@db` -> `postgres://u:***@db`."""
    return _USERINFO.sub(r"\1:***@", value)


_DEFAULTED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?[-=]")


def _environment(svc: str, spec: dict[str, Any], links: list[PlannedLink], proxy: str, sc: Scaffold) -> Any:
    """The service's environment with the addresses of linked dependencies rewritten; every other
    value exactly as the user wrote it (a boolean, a null that takes the value from the shell)."""
    env = environment_of(spec)
    new: dict[str, str] = {}
    for key, value in env.items():
        changed, through = value, []
        for link in links:
            if link.service != svc and (after := _rewrite_value(changed, link, proxy)) != changed:
                changed = after
                through.append(link)
                sc.used.add(link.name)
        if through:
            new[key] = changed
            names = ", ".join(f"link {link.name} -> {link.service}:{link.port}" for link in through)
            sc.rewritten.append(f"{svc}: {key}={_masked(value)} -> {_masked(changed)} ({names})")
            for var in _DEFAULTED.findall(value):  # ${REDIS_URL:-redis://db:6379}: the shell's or .env's value wins
                sc.by_hand.append(
                    f"{svc}: {key} is ${{{var}:-...}}: only its default was rewritten; where {var} is set (your "
                    f"shell, a .env file), set it to go through {proxy} too, or that traffic bypasses the link"
                )
    for key, value in env.items():  # a host alone: DB_HOST=db (with DB_PORT=6379 beside it, or not)
        for link in links:
            if link.service == svc or value != link.service:
                continue
            port_key = _port_key(key, env)
            if port_key is not None and env[port_key] == str(link.port):
                new[key], new[port_key] = proxy, str(link.listen_port)
                sc.used.add(link.name)
                sc.rewritten.append(
                    f"{svc}: {key}={value} {port_key}={env[port_key]} -> {key}={proxy} {port_key}={link.listen_port} "
                    f"(link {link.name} -> {link.service}:{link.port})"
                )
            else:
                sc.by_hand.append(
                    f"{svc}: {key}={value} names {link.service} without its port: point it at "
                    f"{proxy}:{link.listen_port} (link {link.name}) by hand"
                )
    given = spec["environment"]
    if isinstance(given, list):
        out = []
        for item in given:
            key, sep, _ = str(item).partition("=")
            out.append(f"{key}={new[key]}" if sep and key in new else item)
        return out
    if not new:
        return given
    return {k: new.get(str(k), v) for k, v in given.items()}


def _port(svc: str, entry: Any, sc: Scaffold) -> Any:
    """A publication on the host -> a loopback port deadair picks and keeps, so that the user's own
    stack, running beside this one, keeps its ports: `8080`, `8080:8080`, `127.0.0.1:8080:8080`,
    `9090:9090/udp` and the long syntax `{target: 8080, published: 8080}`. A range is dropped:
    it cannot be moved port by port (probes reach the stack through the entry link anyway)."""
    if isinstance(entry, dict):
        target, proto = entry.get("target"), str(entry.get("protocol") or "tcp")
    else:
        text = str(entry)
        spec, _, proto = text.partition("/")
        target = spec.rsplit(":", 1)[-1]
        proto = proto or "tcp"
    digits = str(target)
    if not digits.isdigit():
        sc.notes.append(f"{svc}: port {entry!r} not published (a range cannot be moved to ports deadair picks)")
        return None
    suffix = "" if proto == "tcp" else f"/{proto}"
    return f"127.0.0.1:${{{port_env(svc, int(digits))}:-}}:{digits}{suffix}"


def _relocate(path: str, old_dir: Path, new_dir: Path) -> str:
    """A path relative to the user's compose file, made relative to the generated one."""
    if not path or path.startswith(("/", "~", "$")) or re.match(r"^[a-z]+://", path) or path.startswith("git@"):
        return path
    absolute = (old_dir / path).resolve()
    new_abs = new_dir.resolve()
    if os.path.commonpath([absolute, new_abs]) == absolute.anchor:
        return str(absolute)
    return os.path.relpath(absolute, new_abs)


def _env_file(entry: Any, old_dir: Path, new_dir: Path) -> Any:
    """`web.env`, or the long syntax `{path: web.env, required: false}`."""
    if isinstance(entry, str):
        return _relocate(entry, old_dir, new_dir)
    if isinstance(entry, dict) and isinstance(entry.get("path"), str):
        return {**entry, "path": _relocate(entry["path"], old_dir, new_dir)}
    return entry


def _volume(entry: Any, old_dir: Path, new_dir: Path) -> Any:
    if isinstance(entry, dict):
        if entry.get("type") == "bind" and "source" in entry:
            return {**entry, "source": _relocate(str(entry["source"]), old_dir, new_dir)}
        return entry
    source, sep, rest = str(entry).partition(":")
    if sep and source.startswith("."):  # ./data:/data (a named volume has no dot or slash)
        return f"{_relocate(source, old_dir, new_dir)}:{rest}"
    return entry


def _relocate_top(doc: dict[str, Any], compose_file: Path, new_dir: Path) -> dict[str, Any]:
    """Top-level configs and secrets with a `file:`, and `include:` entries (a path, a list of
    paths, or `{path: ..., env_file: ..., project_directory: ...}`), relative to the user's file."""
    old_dir = compose_file.resolve().parent

    def move(value: Any) -> Any:
        if isinstance(value, str):
            return _relocate(value, old_dir, new_dir)
        return [move(v) for v in value] if isinstance(value, list) else value

    if isinstance(doc.get("include"), list):
        doc["include"] = [
            {**item, **{k: move(item[k]) for k in ("path", "env_file", "project_directory") if k in item}}
            if isinstance(item, dict)
            else move(item)
            for item in doc["include"]
        ]
    for key in ("configs", "secrets"):
        section = doc.get(key)
        if isinstance(section, dict):
            for item in section.values():
                if isinstance(item, dict) and isinstance(item.get("file"), str):
                    item["file"] = _relocate(item["file"], old_dir, new_dir)
    return doc


_LINE_BREAKS = re.compile("[\n\r\x85\u2028\u2029]")


def _one_line(text: str) -> str:
    """A comment line that stays one: a multi-line value (`ML: |`) would end the comment and
    leave its next line as YAML, so such a line is written JSON-escaped."""
    return json.dumps(text)[1:-1] if _LINE_BREAKS.search(text) else text


def _compose_text(doc: dict[str, Any], compose_file: Path, sc: Scaffold) -> str:
    source = os.path.relpath(compose_file.resolve(), sc.compose_out.parent.resolve())
    head = [
        f"# Written by `deadair init` from {source}, which it did not change.",
        "# Your services, plus Toxiproxy: deadair creates the links below (labels deadair.link.*) before",
        "# it starts the other services. Edit this file, or regenerate it (from the folder init ran in):",
        f"#   {_one_line(sc.regenerate)}",
        "#",
    ]
    for link in [sc.entry, *sc.links]:
        head.append(f"#   link {link.name}: {link.label}")
    if sc.rewritten:
        head.append("# Addresses rewritten to go through the links:")
        head += [f"#   {_one_line(line)}" for line in sc.rewritten]
    if sc.by_hand:
        head.append("# NOT rewritten (change by hand, or the traffic bypasses the link):")
        head += [f"#   {_one_line(line)}" for line in sc.by_hand]
    body = yaml.dump(doc, Dumper=_BothDumper, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)
    return "\n".join(head) + "\n" + body


def experiment_text(sc: Scaffold, entry: Target, compose_file: Path) -> str:
    """A first experiment: the entry answers 200 before, during and after a little latency on the
    first link. Small on purpose: it should pass on a healthy stack, and is a model to copy."""
    first = sc.links[0]
    others = "".join(
        f"  #   link.latency on {link.name}, node.kill on {link.service}, link.down on {link.name}\n"
        for link in sc.links[1:]
    )

    def q(text: str) -> str:  # a double-quoted YAML scalar: quotes, backslashes, `2024`, `true` stay text
        return json.dumps(text, ensure_ascii=False)

    def prose(text: str) -> str:  # free text in the description: no `${...}` for the loader to substitute
        return text.replace("${", "$ {")

    return f"""title: {q(f"{sc.name} answers through {sc.entry.name} while {first.service} is a little slow")}
description: >
  {prose(f"Written by `deadair init` from {compose_file}: a first experiment to run and then edit.")}
  {prose(f"A probe asks {entry.service} for {json.dumps(entry.path)} through the link {sc.entry.name} (the host's way in) every")}
  second; during the method every reply from {first.service} is 50 ms late (link {first.name}).
tags: [smoke]
stack: {q(sc.name)}
windows: {{gate: 2s, recovery: 2s}}
steady_state:
  - probe: {q(f"{entry.service} answers")}
    http: {{url: {q(f"${{links.{sc.entry.name}}}{entry.path}")}, timeout: 2s}}
    tolerance: 200
    every: 1s
method:
  - at: 0s
    fault: link.latency
    target: {q(first.name)}
    for: 4s
    with: {{latency: 50ms}}
  # More to try (`deadair list --faults`):
  #   - {{at: 0s, fault: node.kill, target: {first.service}, for: 4s}}
  #   - {{at: 0s, fault: link.down, target: {first.name}, for: 4s}}
{others}"""


PYTEST_INI = """[pytest]
# deadair's pytest plugin collects experiment files under these folders (`pytest` runs them);
# a file named on the command line is collected wherever it is.
deadair_paths = experiments
"""


def pytest_config(out_dir: Path) -> tuple[Path | None, str]:
    """(pytest.ini to write, or None when DIR or a folder above it has a pytest configuration
    already; what to add to it, empty when it has `deadair_paths` already, as on a rerun).

    pytest looks for its configuration from the folder it runs in upwards, and every file it
    reads counts (a pytest.ini, even empty, wins over the others), so a pytest.ini written below
    one would hide the user's own settings."""
    for folder in [out_dir.resolve(), *out_dir.resolve().parents]:
        ini, snippet = _pytest_config_in(folder)
        if ini is None:
            return ini, snippet
    return out_dir / "pytest.ini", PYTEST_INI


def _pytest_config_in(out_dir: Path) -> tuple[Path | None, str]:
    toml = 'deadair_paths = ["experiments"]'
    ini = "deadair_paths = experiments"
    for name, markers, snippet in (
        ("pytest.ini", ("",), ini),
        (".pytest.ini", ("",), ini),
        ("pytest.toml", ("",), toml),
        (".pytest.toml", ("",), toml),
        ("pyproject.toml", ("[tool.pytest.ini_options]", "[tool.pytest]"), toml),
        ("tox.ini", ("[pytest]",), ini),
        ("setup.cfg", ("[tool:pytest]",), ini),
    ):
        f = out_dir / name
        try:
            text = f.read_text() if f.is_file() else None
        except (OSError, UnicodeDecodeError):
            text = None
        found = next((m for m in markers if text is not None and m in text), None)
        if found is not None and "deadair_paths" in (text or ""):
            return None, ""
        if found is not None:
            return None, f"{f} configures pytest already: add `{snippet}` under {found or '[pytest]'}"
    return out_dir / "pytest.ini", PYTEST_INI
