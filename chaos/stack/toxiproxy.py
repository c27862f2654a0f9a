"""A small Toxiproxy v2 API client with a timeout on every call.

Why not toxiproxy-python (named in the design): its 0.1.1 release (2019) keeps the
server address in class attributes (one server per process), sets no request
timeouts, lets 500/503 answers pass silently and has no toxic update or
/populate. Every call here has a timeout and every non-2xx answer raises.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import requests

from chaos.errors import EnvironmentNotReady

DEFAULT_TIMEOUT = 5.0


class ToxiproxyError(Exception):
    """Toxiproxy answered with an error, or did not answer in time.

    `timed_out` tells a request that was sent and got no answer in time (Toxiproxy may still
    carry it out) from one that was refused or answered with an error.
    """

    def __init__(self, message: str, timed_out: bool = False, status: int | None = None):
        super().__init__(message)
        self.timed_out = timed_out
        self.status = status


@dataclass
class Toxic:
    name: str
    type: str
    stream: str = "downstream"
    toxicity: float = 1.0
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Proxy:
    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: list[Toxic] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Proxy:
        return cls(
            name=data["name"],
            listen=data["listen"],
            upstream=data["upstream"],
            enabled=bool(data["enabled"]),
            toxics=[
                Toxic(
                    t["name"],
                    t["type"],
                    t.get("stream", "downstream"),
                    float(t.get("toxicity", 1.0)),
                    dict(t.get("attributes") or {}),
                )
                for t in data.get("toxics") or []
            ],
        )


class Toxiproxy:
    """One Toxiproxy server, addressed by its API URL (e.g. http://127.0.0.1:32768)."""

    def __init__(self, url: str, timeout: float = DEFAULT_TIMEOUT):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._http = requests.Session()

    def _call(self, method: str, path: str, body: Any = None, timeout: float | None = None) -> Any:
        try:
            r = self._http.request(method, self.url + path, json=body, timeout=timeout or self.timeout)
        except requests.Timeout as exc:
            raise ToxiproxyError(
                f"Toxiproxy at {self.url} did not answer {method} {path} within {timeout or self.timeout:g}s",
                timed_out=True,
            ) from exc
        except requests.RequestException as exc:
            raise ToxiproxyError(f"Toxiproxy at {self.url} did not answer {method} {path}: {_reason(exc)}") from exc
        if not 200 <= r.status_code < 300:
            try:
                detail = r.json().get("error") or r.text
            except ValueError:
                detail = r.text or "(empty body)"
            raise ToxiproxyError(f"Toxiproxy {method} {path}: HTTP {r.status_code}: {detail}", status=r.status_code)
        if r.status_code == 204 or not r.content:
            return None
        return r.json()

    def ensure_reachable(self) -> str:
        """Return the server version, or raise an error that says what to do."""
        try:
            return str(self._call("GET", "/version")["version"])
        except (ToxiproxyError, KeyError, TypeError) as exc:
            raise EnvironmentNotReady(
                f"Toxiproxy is unreachable at {self.url} ({exc}); start the stack with `deadair stack up`"
            ) from exc

    def version(self, timeout: float | None = None) -> str:
        """The server's version. GET /version takes no proxy's lock: it answers even while a
        removal is stuck on one proxy, which tells a stuck proxy from a hung server."""
        return str(self._call("GET", "/version", timeout=timeout)["version"])

    def proxies(self) -> dict[str, Proxy]:
        return {name: Proxy.from_json(p) for name, p in self._call("GET", "/proxies").items()}

    def proxy(self, name: str, timeout: float | None = None) -> Proxy:
        return Proxy.from_json(self._call("GET", f"/proxies/{name}", timeout=timeout))

    def create_proxy(self, name: str, listen: str, upstream: str) -> Proxy:
        return Proxy.from_json(
            self._call("POST", "/proxies", {"name": name, "listen": listen, "upstream": upstream, "enabled": True})
        )

    def delete_proxy(self, name: str) -> None:
        self._call("DELETE", f"/proxies/{name}")

    def set_enabled(self, name: str, enabled: bool) -> Proxy:
        return Proxy.from_json(self._call("PATCH", f"/proxies/{name}", {"enabled": enabled}))

    def add_toxic(self, proxy: str, toxic: Toxic) -> Toxic:
        self._call(
            "POST",
            f"/proxies/{proxy}/toxics",
            {
                "name": toxic.name,
                "type": toxic.type,
                "stream": toxic.stream,
                "toxicity": toxic.toxicity,
                "attributes": toxic.attributes,
            },
        )
        return toxic

    def update_toxic(self, proxy: str, name: str, attributes: dict[str, Any], toxicity: float | None = None) -> None:
        body: dict[str, Any] = {"attributes": attributes}
        if toxicity is not None:
            body["toxicity"] = toxicity
        self._call("PATCH", f"/proxies/{proxy}/toxics/{name}", body)

    def remove_toxic(self, proxy: str, name: str, timeout: float | None = None) -> bool:
        """Remove a toxic; False when it was already gone (idempotent rollback).

        A removal may legitimately take seconds (a toxic and the removal each wait up to 5 s to
        flush a held chunk), so callers give it a longer timeout than other calls."""
        try:
            self._call("DELETE", f"/proxies/{proxy}/toxics/{name}", timeout=timeout)
        except ToxiproxyError as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""
        self._call("POST", "/reset")


def _reason(exc: Exception) -> str:
    """The last line of a requests error: 'Connection refused', not three nested reprs."""
    text = str(exc)
    for marker in ("Connection refused", "Connection reset", "Name or service not known", "No route to host"):
        if marker in text:
            return marker.lower()
    return text.splitlines()[-1][-200:] if text else type(exc).__name__
