"""Where deadair may send traffic: one stack-address policy for listeners, probes and floods.

Traffic goes to loopback (127.0.0.0/8, `localhost`: the stack's published links) or to a node of
the stack's compose project (by service name, or by its container's current address). Any
other address (another private one, a public one) or hostname is refused, and hostnames are
never resolved through DNS, so a refused name costs not even a DNS query. Listeners and
probes are given no nodes, so for them the policy is "loopback only"; floods may also aim at
the stack's containers. The policy decides before anything is sent.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from chaos.errors import TargetError


class GuardError(TargetError, ValueError):
    """An address outside the stack: refused before any packet."""


def guard(
    host: str,
    nodes: Mapping[str, str | None] | None = None,
    stack_ips: Iterable[str] = (),
    require_running: bool = True,
    who: str = "flood target",
    aliases: bool = True,
) -> str:
    """The IP address that may be sent to for `host`, or GuardError saying why not.

    nodes: the stack's node names -> their container's current address (None when not running);
    none given: loopback only. stack_ips: every current address of the project's containers.
    require_running=False: a node name is accepted without an address (checks before the stack
    is up); the result is then "" for it. `who` names the sender in the message.
    aliases=False: of the names of loopback, only `localhost` itself. For callers that connect by
    the name rather than to the address returned (listeners, probes), so that no other name is
    ever resolved; floods connect to the address returned and may use the aliases.
    """
    nodes = nodes or {}
    allowed = {ip for ip in stack_ips if ip} | {ip for ip in nodes.values() if ip}
    allowed_to = (
        "loopback (127.0.0.0/8) or the stack's own containers" if allowed or nodes else "loopback (127.0.0.0/8)"
    )
    name = host.strip().strip("[]").lower()
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if ip is not None:
        if ip.is_loopback or str(ip) in allowed:
            return str(ip)
        kind = (
            "a link-local address"
            if ip.is_link_local
            else "a multicast address"
            if ip.is_multicast
            else "a private address"
            if ip.is_private
            else "a public address"
        )
        raise GuardError(f"{who} {host} is {kind} outside the stack; deadair sends only to {allowed_to}")
    if name == "localhost" or (aliases and (name == "localhost.localdomain" or name.endswith(".localhost"))):
        return "127.0.0.1"
    if name in nodes:
        if not nodes[name] and not require_running:
            return ""
        if not nodes[name]:
            raise GuardError(f"{who} {host} is a node of the stack with no running container")
        return str(nodes[name])
    also = f", or a node: {', '.join(sorted(nodes))}" if nodes else " (the stack's published links)"
    raise GuardError(
        f"{who} {host!r} is not part of the stack (deadair sends to loopback, localhost{also}); "
        "names are never looked up in DNS"
    )


def guard_url(
    url: str,
    nodes: Mapping[str, str | None] | None = None,
    stack_ips: Iterable[str] = (),
    require_running: bool = True,
    who: str = "flood target",
    schemes: tuple[str, ...] = ("http",),
    aliases: bool = True,
) -> tuple[str, int, str]:
    """(ip, port, path and query) of a URL the policy allows; GuardError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise GuardError(f"{who} {url!r} is not an http:// URL")
    try:
        port = parts.port
    except ValueError:
        raise GuardError(f"{who} {url!r} has a bad port") from None
    ip = guard(parts.hostname, nodes, stack_ips, require_running, who, aliases)
    path = parts.path or "/"
    return ip, port or (443 if parts.scheme == "https" else 80), path + (f"?{parts.query}" if parts.query else "")


def stack_addresses(containers: Iterable[Any]) -> dict[str, str | None]:
    """Node name -> the first address of its container, from Docker's view of the project."""
    out: dict[str, str | None] = {}
    for c in containers:
        service = c.labels.get("com.docker.compose.service")
        nets = (c.attrs.get("NetworkSettings") or {}).get("Networks") or {}
        ips = [n.get("IPAddress") for n in nets.values() if n.get("IPAddress")]
        if service:
            out[service] = ips[0] if ips and c.status == "running" else out.get(service)
    return out
