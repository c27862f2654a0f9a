"""Finding a stack's parts by identity: its Toxiproxy and containers, from what an undo action names.

By compose project and service labels, never by host port, so another process (`deadair sweep`
after a SIGKILL) finds the same Toxiproxy and containers after they restarted, and can tell
when they are gone with their stack (`Gone`: nothing left to revert, not a failure). Tests
replace `LOCATOR` with an in-memory one.
"""

from __future__ import annotations

from typing import Any, Protocol

from docker.errors import NotFound

from chaos.errors import FaultError
from chaos.stack import engine
from chaos.stack.toxiproxy import Toxiproxy, ToxiproxyError


class Gone(Exception):
    """The target went away with its stack: nothing is left to revert (not a failure)."""


class Locator(Protocol):
    """Finds a stack's Toxiproxy and containers from what an undo action names."""

    def toxiproxy(self, ref: dict[str, Any], timeout: float) -> Toxiproxy: ...

    def restart_toxiproxy(self, ref: dict[str, Any]) -> dict[str, str]: ...

    def container(self, action: dict[str, Any]) -> Any: ...


class DockerLocator:
    """The default: the Docker engine, by compose project and service labels."""

    def __init__(self) -> None:
        self._client: Any = None

    def client(self) -> Any:
        """One engine connection for every revert (each call still has the client's timeout)."""
        if self._client is None:
            self._client = engine.connect()
        return self._client

    def _toxiproxy_container(self, ref: dict[str, Any]) -> Any:
        labels = [f"com.docker.compose.project={ref['project']}", f"com.docker.compose.service={ref['service']}"]
        found = engine.list_containers(self.client(), all=True, filters={"label": labels})
        if not found:
            raise Gone(f"stack {ref['project']} has no Toxiproxy container any more: gone with the stack")
        c = found[0]
        if c.status == "paused":
            raise FaultError(
                f"Toxiproxy of {ref['project']} is paused and cannot answer; unpause it, then run `deadair sweep`"
            )
        if c.status != "running":
            others = engine.list_containers(
                self.client(), filters={"label": f"com.docker.compose.project={ref['project']}"}
            )
            if others:  # the stack runs without its links: broken, not gone
                raise FaultError(
                    f"Toxiproxy of {ref['project']} is {c.status} while the rest of the stack runs: "
                    "every link is down; run `deadair stack up`, then `deadair sweep`"
                )
            raise Gone(
                f"Toxiproxy of {ref['project']} is {c.status}, and so is the rest of its stack: "
                "the links' state went with its process"
            )
        return c

    def toxiproxy(self, ref: dict[str, Any], timeout: float) -> Toxiproxy:
        c = self._toxiproxy_container(ref)
        for b in (c.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(f"{ref['port']}/tcp") or []:
            host = b.get("HostIp") or "127.0.0.1"
            if ":" in host:
                continue
            host = "127.0.0.1" if host in ("0.0.0.0", "") else host
            return Toxiproxy(f"http://{host}:{b['HostPort']}", timeout=timeout)
        raise FaultError(f"the API port {ref['port']} of Toxiproxy of {ref['project']} is not published")

    def restart_toxiproxy(self, ref: dict[str, Any]) -> dict[str, str]:
        c = self._toxiproxy_container(ref)
        c.restart(timeout=1)
        return dict(c.labels)

    def container(self, action: dict[str, Any]) -> Any:
        client = self.client()
        try:
            return client.containers.get(action["container"])
        except NotFound:
            pass
        node, project = action.get("node"), action.get("project")
        if project:
            now = engine.list_containers(
                client,
                all=True,
                filters={"label": [f"com.docker.compose.project={project}", f"com.docker.compose.service={node}"]},
            )
            if now:
                raise Gone(f"node {node}'s container was replaced (its stack was recreated): the fault went with it")
            raise Gone(f"node {node} of {project} is gone with its stack")
        raise Gone(f"node {node}'s container {action['container'][:12]} is gone")


LOCATOR: Locator = DockerLocator()


def toxiproxy_of(action: dict[str, Any], timeout: float = 5.0) -> Toxiproxy:
    """The Toxiproxy an action names: by stack identity, or (ledgers of older versions) by URL;
    such a URL that refuses connections and that no container publishes is gone."""
    if "stack" in action:
        return LOCATOR.toxiproxy(action["stack"], timeout)
    tox = Toxiproxy(action["toxiproxy"], timeout=timeout)
    try:
        tox.version(timeout=3.0)
    except ToxiproxyError as exc:
        if exc.timed_out:
            raise
        port = action["toxiproxy"].rsplit(":", 1)[-1].strip("/")
        for c in engine.list_containers(engine.connect()):
            for binds in (c.attrs.get("NetworkSettings", {}).get("Ports") or {}).values():
                if any(str(b.get("HostPort")) == port for b in binds or []):
                    raise
        raise Gone(
            f"nothing answers at {action['toxiproxy']} and no container publishes it "
            "(a ledger of an older deadair, whose stack is gone)"
        ) from exc
    return tox
