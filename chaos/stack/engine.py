"""The Docker engine connection: one place that knows how to reach it and how to say it cannot."""

from __future__ import annotations

import os
from typing import Any

import docker
from docker.errors import DockerException, NotFound

from chaos.errors import EnvironmentNotReady

# Every Docker SDK request gets this timeout (seconds) unless a call passes its own;
# stop/kill add their grace period on top of it inside the SDK.
DOCKER_TIMEOUT = 15.0


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")


def connect(timeout: float = DOCKER_TIMEOUT) -> docker.DockerClient:
    """A client for the engine that answers, or an error that says what to run."""
    try:
        client = docker.from_env(timeout=timeout)
        client.ping()
        return client
    except DockerException as exc:
        raise EnvironmentNotReady(
            f"no Docker engine answers at {engine_address()} ({_short(exc)}); "
            "run `deadair setup` (as root on Debian it installs and starts one), "
            "or start Docker and set DOCKER_HOST"
        ) from exc


def try_connect(timeout: float = 3.0) -> docker.DockerClient | None:
    """The engine if one answers quickly, else None (used by setup to decide what to do)."""
    try:
        return connect(timeout)
    except EnvironmentNotReady:
        return None


def list_containers(
    client: docker.DockerClient, *, all: bool = False, filters: dict[str, Any] | None = None, attempts: int = 5
) -> list:
    """`client.containers.list`, safe against containers that go while it runs. The SDK lists,
    then inspects each container it listed; one removed in between (compose recreating a service,
    a stack coming down) makes the whole call raise NotFound for a container that no longer
    exists. Seen in CI with every core busy. A fresh listing does not name it any more."""
    for attempt in range(attempts):
        try:
            return client.containers.list(all=all, filters=filters or {})
        except NotFound:
            if attempt == attempts - 1:
                raise
    return []


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]
