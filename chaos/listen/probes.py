"""Running probes: an experiment's HTTP and process probes, and the servers' own reports.

What a probe is and how its output is judged (tolerances) is chaos.language.probes.
HTTP probes go to loopback only (the stack's published links, `${links.NAME}`): safe by
default. Every probe has a timeout (default 5 s).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import requests

from chaos.language.probes import LINK_VAR, ProbeSpec
from chaos.stack.addresses import GuardError, guard_url

BODY_LIMIT = 65536  # bytes of a body kept in the journal


class ProbeError(Exception):
    """The probe could not run (refused, timed out, not found): it is a failed sample."""


def interpolate_links(text: str, links: dict[str, str]) -> str:
    """Replace ${links.NAME} with the link's host URL (known once the stack runs)."""

    def one(m: re.Match) -> str:
        name = m.group(1)
        if name not in links:
            raise ProbeError(f"${{links.{name}}}: no published link {name!r} (published: {', '.join(links) or 'none'})")
        return links[name]

    return LINK_VAR.sub(one, text)


def check_loopback_url(url: str) -> None:
    """The stack-address policy for probes: loopback only (the stack's published links)."""
    try:
        guard_url(url, who="probe URL", schemes=("http", "https"), aliases=False)
    except GuardError as exc:
        raise ProbeError(f"{exc} (probes go to loopback addresses only: the stack's links)") from None


def run_probe(spec: ProbeSpec, links: dict[str, str]) -> dict[str, Any]:
    """Run a probe once; ProbeError when it cannot produce an output."""
    if spec.kind == "http":
        return _run_http(spec, links)
    return _run_process(spec, links)


def _root_cause(exc: BaseException) -> str:
    """What went wrong underneath requests' and urllib3's wrappers, in the system's words
    (`connection refused`, `connection reset by peer`): the reason a user needs to tell a dead
    node from a reset link."""
    seen: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in seen:
        seen.append(cur)
        nxt = cur.__cause__ or cur.__context__
        if nxt is None and cur.args and isinstance(cur.args[0], BaseException):
            nxt = cur.args[0]
        reason = getattr(cur, "reason", None)
        if nxt is None and isinstance(reason, BaseException):
            nxt = reason
        cur = nxt
    for e in reversed(seen):
        if isinstance(e, OSError) and e.strerror:
            return e.strerror.lower()
    return str(seen[-1])[:200] or type(seen[-1]).__name__


def _run_http(spec: ProbeSpec, links: dict[str, str]) -> dict[str, Any]:
    url = interpolate_links(spec.http["url"], links)
    check_loopback_url(url)
    method = spec.http.get("method", "GET")
    headers = {k: interpolate_links(v, links) for k, v in (spec.http.get("headers") or {}).items()}
    body = spec.http.get("body")
    kwargs: dict[str, Any] = {}
    if body is not None:
        kwargs["json" if isinstance(body, (dict, list)) else "data"] = body
    try:
        r = requests.request(method, url, headers=headers, timeout=spec.timeout, **kwargs)
    except requests.Timeout:
        raise ProbeError(f"{method} {url}: no answer within {spec.timeout:g}s") from None
    except requests.RequestException as exc:
        raise ProbeError(f"{method} {url}: {type(exc).__name__}: {_root_cause(exc)}") from None
    content: Any = r.text[:BODY_LIMIT]
    if r.headers.get("Content-Type", "").startswith("application/json"):
        try:
            content = r.json()
        except ValueError:
            pass
    return {"status": r.status_code, "headers": dict(r.headers), "body": content}


def _run_process(spec: ProbeSpec, links: dict[str, str]) -> dict[str, Any]:
    path = shutil.which(os.path.expanduser(spec.process["path"]))
    if path is None:
        raise ProbeError(f"{spec.process['path']!r} is not an executable on PATH")
    args = [interpolate_links(str(a), links) for a in spec.process.get("arguments", [])]
    try:
        proc = subprocess.run([path, *args], capture_output=True, timeout=spec.timeout)
    except subprocess.TimeoutExpired:
        raise ProbeError(f"{spec.describe()}: still running after {spec.timeout:g}s") from None
    return {
        "status": proc.returncode,
        "stdout": proc.stdout.decode("utf-8", "replace")[:BODY_LIMIT],
        "stderr": proc.stderr.decode("utf-8", "replace")[:BODY_LIMIT],
    }


# -- server-side probes: what the servers themselves report ----------------------------------------


@dataclass(frozen=True)
class ServerProbe:
    """A node that reports on itself, declared by compose labels:

    deadair.probe: "icecast:8000"          (kinds: icecast, haproxy, room-api; the container port)
    deadair.probe.auth: "admin:password"   (if the stats need it)
    """

    node: str
    kind: str
    port: int
    auth: tuple[str, str] | None = None

    def sample(self, base: str, timeout: float = 2.0) -> dict[str, Any]:
        """One reading of the node's own numbers; ProbeError when it does not answer."""
        try:
            if self.kind == "icecast":
                return self._icecast(base, timeout)
            if self.kind == "haproxy":
                return self._haproxy(base, timeout)
            r = requests.get(f"{base}/stats", timeout=timeout)
            r.raise_for_status()
            stats = r.json()
            return {k: stats[k] for k in ("requests", "errors_4xx", "errors_5xx", "joins") if k in stats}
        except (requests.RequestException, ValueError, KeyError) as exc:
            raise ProbeError(f"{self.node}: {type(exc).__name__}") from None

    def _icecast(self, base: str, timeout: float) -> dict[str, Any]:
        import xml.etree.ElementTree as ET

        r = requests.get(f"{base}/admin/stats", auth=self.auth, timeout=timeout)
        r.raise_for_status()
        root = ET.fromstring(r.content)
        sources = root.findall("source")
        return {
            "listeners": sum(int(s.findtext("listeners") or 0) for s in sources),
            "slow_listeners": sum(int(s.findtext("slow_listeners") or 0) for s in sources),
            "clients": int(root.findtext("clients") or 0),
            "sources": len(sources),
        }

    def _haproxy(self, base: str, timeout: float) -> dict[str, Any]:
        import csv
        import io

        r = requests.get(f"{base}/stats;csv", timeout=timeout)
        r.raise_for_status()
        rows = [
            row
            for row in csv.DictReader(io.StringIO(r.text.lstrip("# ")))
            if row.get("svname") not in ("FRONTEND", "BACKEND") and row.get("pxname") != "stats"
        ]
        up = sum(1 for row in rows if row.get("status", "").startswith("UP"))
        return {"up": up, "down": len(rows) - up, "sessions": sum(int(row.get("scur") or 0) for row in rows)}


def server_probes(services: dict[str, dict[str, Any]]) -> list[ServerProbe]:
    """The nodes of a compose file that carry a deadair.probe label."""
    from chaos.stack.definition import labels_of as _labels

    out = []
    for node, spec in services.items():
        labels = _labels(spec)
        if "deadair.probe" not in labels:
            continue
        kind, _, port = labels["deadair.probe"].partition(":")
        auth = labels.get("deadair.probe.auth")
        out.append(ServerProbe(node, kind, int(port or 80), tuple(auth.split(":", 1)) if auth else None))  # type: ignore[arg-type]
    return out
