"""A small Prometheus Pushgateway client: one PUT of a run's metrics, with a timeout.

Why not prometheus_client's push_to_gateway: it takes a CollectorRegistry (the metrics would be
built twice, once for the file and once for it) and turns every failure into a bare URLError;
here the text pushed is the text written, and a failure says which gateway and why.

The group is `job=<experiment id>`: PUT replaces the experiment's previous run in the gateway, so
the gateway holds the latest run of each experiment, and Prometheus, scraping it, keeps the trend.
"""

from __future__ import annotations

import base64
from urllib.parse import quote, urlsplit

from chaos.errors import DeadairError

TIMEOUT = (3.0, 10.0)  # seconds to connect, seconds to wait for the answer
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what every Pushgateway parses


class PushError(DeadairError):
    """The gateway could not be reached or refused the metrics (an environment problem)."""

    exit_code = 3


def check_url(url: str) -> str:
    """An http(s) URL with a host, without a query: bad input is refused before anything runs."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not a Pushgateway URL; expected http://HOST:PORT (e.g. http://127.0.0.1:9091)")
    if parts.query or parts.fragment:
        raise ValueError(f"{url!r}: a Pushgateway URL has no query or fragment")
    return url.rstrip("/")


def group_url(url: str, job: str, grouping: dict[str, str] | None = None) -> str:
    """The group's path, `/metrics/job/<job>[/<label>/<value>...]`: a value with a slash (or
    empty) goes base64url-encoded, as the Pushgateway's API asks."""
    path = ""
    for name, value in {"job": job, **(grouping or {})}.items():
        if "/" in value or not value:
            path += f"/{name}@base64/{base64.urlsafe_b64encode(value.encode()).decode() or '='}"
        else:
            path += f"/{name}/{quote(value, safe='')}"
    return f"{check_url(url)}/metrics{path}"


def push(
    url: str,
    job: str,
    text: str,
    grouping: dict[str, str] | None = None,
    timeout: float | tuple[float, float] = TIMEOUT,
) -> str:
    """PUT the text (Prometheus text format) as the group's metrics; returns the group's URL."""
    import requests  # here, not at the top: `deadair --help` should not pay for it

    target = group_url(url, job, grouping)
    try:
        resp = requests.put(target, data=text.encode(), headers={"Content-Type": CONTENT_TYPE}, timeout=timeout)
    except requests.Timeout:
        raise PushError(f"Pushgateway {url} did not answer within {_secs(timeout)}") from None
    except requests.RequestException as exc:
        raise PushError(f"Pushgateway {url} unreachable: {_reason(exc)}") from None
    if not 200 <= resp.status_code < 300:
        raise PushError(f"Pushgateway {url} refused the metrics: HTTP {resp.status_code} {resp.text.strip()[:300]}")
    return target


def _secs(timeout: float | tuple[float, float]) -> str:
    if isinstance(timeout, tuple):
        return f"{timeout[0]:g}s to connect, {timeout[1]:g}s to answer"
    return f"{timeout:g}s"


def _reason(exc: Exception) -> str:
    """The innermost cause (`Connection refused`), not urllib3's nested repr."""
    cause: BaseException = exc
    while cause.__cause__ is not None or cause.__context__ is not None:
        cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
    text = str(cause)
    if "] " in text:  # "[Errno 111] Connection refused" -> "Connection refused"
        text = text.split("] ", 1)[1]
    return text or type(cause).__name__
