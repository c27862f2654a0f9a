"""Probes: HTTP requests and processes whose output is checked against a tolerance.

A probe is the Chaos Toolkit's idea, kept compatible with it: an HTTP probe's output is
{status, headers, body} (body parsed when it is JSON), a process probe's is {status (the exit
code), stdout, stderr}; tolerances have the Chaos Toolkit's forms and meanings:

    200 / true / "ok"          equality (an integer is compared with the output's status)
    [200, 204]                 membership (the status, or the value)
    [0, 10]                    two numbers: an inclusive range
    {type: range, range: [a, b], target: status}
    {type: regex, pattern: "...", target: body}
    {type: jsonpath, path: "$.a.b", expect: 1, count: 1, target: body}

HTTP probes go to loopback only (the stack's published links, `${links.NAME}`): safe by
default. Every probe has a timeout (default 5 s).
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlsplit

import requests

DEFAULT_TIMEOUT = 5.0
BODY_LIMIT = 65536  # bytes of a body kept in the journal
_VAR = re.compile(r"\$\{links\.([A-Za-z0-9_.-]+)\}")


class ProbeError(Exception):
    """The probe could not run (refused, timed out, not found): it is a failed sample."""


@dataclass(frozen=True)
class ProbeSpec:
    name: str
    kind: str  # "http" or "process"
    http: dict[str, Any] = field(default_factory=dict)
    process: dict[str, Any] = field(default_factory=dict)
    timeout: float = DEFAULT_TIMEOUT

    def describe(self) -> str:
        if self.kind == "http":
            return f"{self.http.get('method', 'GET')} {self.http['url']}"
        return " ".join([self.process["path"], *map(str, self.process.get("arguments", []))])


def interpolate_links(text: str, links: dict[str, str]) -> str:
    """Replace ${links.NAME} with the link's host URL (known once the stack runs)."""
    def one(m: re.Match) -> str:
        name = m.group(1)
        if name not in links:
            raise ProbeError(f"${{links.{name}}}: no published link {name!r} (published: {', '.join(links) or 'none'})")
        return links[name]

    return _VAR.sub(one, text)


def link_names(text: str) -> list[str]:
    return _VAR.findall(text)


def check_loopback_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProbeError(f"{url!r} is not an http:// URL")
    host = parts.hostname
    if host == "localhost":
        return
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ProbeError(f"{url!r}: probes go to loopback addresses only (the stack's links), not {host!r}") from None
    if not ip.is_loopback:
        raise ProbeError(f"{url!r}: probes go to loopback addresses only (the stack's links), not {host}")


def run_probe(spec: ProbeSpec, links: dict[str, str]) -> dict[str, Any]:
    """Run a probe once; ProbeError when it cannot produce an output."""
    if spec.kind == "http":
        return _run_http(spec, links)
    return _run_process(spec, links)


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
        raise ProbeError(f"{method} {url}: {type(exc).__name__}") from None
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
    return {"status": proc.returncode, "stdout": proc.stdout.decode("utf-8", "replace")[:BODY_LIMIT],
            "stderr": proc.stderr.decode("utf-8", "replace")[:BODY_LIMIT]}


# -- tolerances ---------------------------------------------------------------------------------


def tolerance_problems(tol: Any) -> list[str]:
    """What is wrong with a tolerance, checked when the experiment is loaded."""
    if isinstance(tol, dict):
        kind = tol.get("type")
        if kind == "regex":
            if "pattern" not in tol:
                return ["a regex tolerance needs a pattern"]
            try:
                re.compile(tol["pattern"])
            except re.error as exc:
                return [f"regex {tol['pattern']!r} does not compile: {exc}"]
        elif kind == "jsonpath":
            if "path" not in tol:
                return ["a jsonpath tolerance needs a path"]
            try:
                parse_jsonpath(tol["path"])
            except ValueError as exc:
                return [str(exc)]
        elif kind == "range":
            if "range" not in tol:
                return ["a range tolerance needs range: [low, high]"]
            low, high = tol["range"]
            if low > high:
                return [f"range {tol['range']}: the low bound is above the high bound"]
    return []


def within_tolerance(tol: Any, output: Any) -> bool:
    """The Chaos Toolkit's tolerance semantics, applied to a probe's output."""
    if isinstance(tol, bool) or isinstance(tol, str):
        return output == tol
    if isinstance(tol, int):
        if isinstance(output, dict) and "status" in output:
            return output["status"] == tol
        return output == tol
    if isinstance(tol, list):
        if isinstance(output, dict) and "status" in output:
            return output["status"] in tol
        if len(tol) == 2 and all(isinstance(x, (int, float)) for x in tol):
            try:
                return tol[0] <= output <= tol[1]
            except TypeError:
                return False
        return output in tol
    if isinstance(tol, dict):
        value = output
        target = tol.get("target")
        if target and isinstance(output, dict):
            value = output.get(target, output)
        kind = tol["type"]
        if kind == "regex":
            return isinstance(value, str) and re.search(tol["pattern"], value) is not None
        if kind == "range":
            try:
                v = Decimal(str(value))
            except (InvalidOperation, ValueError):
                return False
            return Decimal(str(tol["range"][0])) <= v <= Decimal(str(tol["range"][1]))
        if kind == "jsonpath":
            if isinstance(value, (bytes, str)):
                try:
                    value = json.loads(value)
                except ValueError:
                    return False
            found = jsonpath(value, tol["path"])
            result = len(found) > 0
            if "count" in tol:
                result = len(found) == tol["count"]
            if "expect" in tol:
                expect = tol["expect"]
                result = found == (expect if isinstance(expect, list) else [expect])
            return result
    return False


# -- JSONPath, the subset tolerances use: $, .name, ['name'], [n], [*], .* ------------------------

_TOKEN = re.compile(r"\.(\*|[A-Za-z_][A-Za-z0-9_-]*)|\[(\*|-?\d+|'[^']*'|\"[^\"]*\")\]")


def parse_jsonpath(path: str) -> list[str | int]:
    """Steps of a JSONPath; ValueError (saying what is supported) for anything else."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise ValueError(f"JSONPath {path!r} must start with $")
    steps: list[str | int] = []
    pos = 1
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m:
            raise ValueError(f"JSONPath {path!r}: unsupported syntax at {path[pos:]!r}; "
                             "supported: $, .name, ['name'], [index], [*], .*")
        name, index = m.group(1), m.group(2)
        if name is not None:
            steps.append(name)
        elif index == "*":
            steps.append("*")
        elif index[0] in "'\"":
            steps.append(index[1:-1])
        else:
            steps.append(int(index))
        pos = m.end()
    return steps


def jsonpath(doc: Any, path: str) -> list[Any]:
    nodes = [doc]
    for step in parse_jsonpath(path):
        out = []
        for node in nodes:
            if step == "*":
                out.extend(node.values() if isinstance(node, dict) else node if isinstance(node, list) else [])
            elif isinstance(step, int):
                if isinstance(node, list) and -len(node) <= step < len(node):
                    out.append(node[step])
            elif isinstance(node, dict) and step in node:
                out.append(node[step])
        nodes = out
    return nodes


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
        return {"listeners": sum(int(s.findtext("listeners") or 0) for s in sources),
                "slow_listeners": sum(int(s.findtext("slow_listeners") or 0) for s in sources),
                "clients": int(root.findtext("clients") or 0), "sources": len(sources)}

    def _haproxy(self, base: str, timeout: float) -> dict[str, Any]:
        import csv
        import io

        r = requests.get(f"{base}/stats;csv", timeout=timeout)
        r.raise_for_status()
        rows = [row for row in csv.DictReader(io.StringIO(r.text.lstrip("# ")))
                if row.get("svname") not in ("FRONTEND", "BACKEND") and row.get("pxname") != "stats"]
        up = sum(1 for row in rows if row.get("status", "").startswith("UP"))
        return {"up": up, "down": len(rows) - up, "sessions": sum(int(row.get("scur") or 0) for row in rows)}


def server_probes(services: dict[str, dict[str, Any]]) -> list[ServerProbe]:
    """The nodes of a compose file that carry a deadair.probe label."""
    from .stack import _labels

    out = []
    for node, spec in services.items():
        labels = _labels(spec)
        if "deadair.probe" not in labels:
            continue
        kind, _, port = labels["deadair.probe"].partition(":")
        auth = labels.get("deadair.probe.auth")
        out.append(ServerProbe(node, kind, int(port or 80), tuple(auth.split(":", 1)) if auth else None))  # type: ignore[arg-type]
    return out
