"""Where shards run: Ray actors, on a local cluster the run starts and stops by itself (the
embedded default) or on an existing cluster (`--cluster ADDRESS`); or in this process (tests).

Why Ray (README "Running the swarm on a cluster"; measured in bench/): an async actor runs our
asyncio listeners as they are, at about the CPU of a plain process; actors are placed across
nodes; KubeRay runs the same on Kubernetes. Every call has a deadline; a shard that dies raises
at once, and one that freezes is caught by the fleet's heartbeat, not by Ray's health checks
(about a minute by default).
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chaos.errors import EnvironmentNotReady

CONNECT_TIMEOUT = 180.0  # s: a local cluster starts in 6-17 s on a busy 2-core host (research, bench/)


class ShardLost(Exception):
    """A shard cannot answer: its worker died, its node is gone, or it did not answer in time."""


class ShardFailed(Exception):
    """A shard answered with an error of its own (e.g. a limit of its host)."""


@dataclass
class ShardHandle:
    """One shard as the runner sees it: where it runs, and how to call it."""

    index: int
    node: str  # the engine's node id (or "local")
    _call: Callable[[str, tuple], Any]
    _kill: Callable[[], None]
    info: dict[str, Any] = field(default_factory=dict)

    async def call(self, method: str, *args: Any, timeout: float) -> Any:
        """Call a method of the shard; ShardLost or ShardFailed when it cannot answer."""
        try:
            return await asyncio.wait_for(self._call(method, args), timeout)
        except TimeoutError as exc:
            raise ShardLost(f"no answer to {method} in {timeout:g}s") from exc

    def kill(self) -> None:
        try:
            self._kill()
        except Exception:
            pass  # already gone


class InProcessEngine:
    """Shards on this process's event loop: the fleet's logic without an engine (tests)."""

    name = "in-process"

    def __init__(self) -> None:
        self.shards: list[Any] = []

    def connect(self) -> dict[str, Any]:
        return {"engine": self.name, "nodes": 1, "cpus": os.cpu_count() or 1}

    def spawn(self, n: int, make_args: Callable[[int], tuple]) -> list[ShardHandle]:
        from chaos.listen.shards.shard import Shard

        handles = []
        for i in range(n):
            shard = Shard(*make_args(i))
            self.shards.append(shard)

            def call(method: str, args: tuple, shard: Any = shard) -> Any:
                if getattr(shard, "dead", False):
                    raise ShardLost("the shard was killed")
                return getattr(shard, method)(*args)

            handles.append(ShardHandle(i, "local", call, functools.partial(self._kill, shard)))
        return handles

    @staticmethod
    def _kill(shard: Any) -> None:
        """As a dead worker: it answers nothing more, and its listeners' connections close."""
        shard.dead = True
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop left: its listeners went with it
        if shard.swarm is not None:
            asyncio.ensure_future(shard.swarm.stop())

    def close(self) -> None:
        for shard in self.shards:
            if not getattr(shard, "dead", False):
                self._kill(shard)


class RayEngine:
    """Shards as Ray actors. With no address, a local cluster of this host's cores that lives as
    long as the run; with one, the actors are placed on that cluster and only they are removed."""

    name = "ray"

    def __init__(self, address: str | None = None, cpus: int | None = None):
        self.address = address
        self.cpus = cpus or os.cpu_count() or 1
        self._ray: Any = None
        self._actors: list[Any] = []

    def connect(self) -> dict[str, Any]:
        """Start or join the cluster (blocking: the runner calls it in a worker thread)."""
        try:
            import ray
        except ImportError as exc:
            raise EnvironmentNotReady(
                "listeners.workers and --cluster need Ray: pip install 'deadair[cluster]' (scripts/bootstrap does)"
            ) from exc
        self._ray = ray
        kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        try:
            if self.address:
                ray.init(address=self.address, **kwargs)
            else:  # "local": never a stale cluster recorded under /tmp/ray
                ray.init(address="local", num_cpus=self.cpus, **kwargs)
        except Exception as exc:  # Ray raises ConnectionError, ValueError, RuntimeError, ...
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray cluster"
            raise EnvironmentNotReady(f"cannot start or join {where}: {type(exc).__name__}: {exc}") from exc
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        cpus = float(ray.cluster_resources().get("CPU", 0.0))
        return {"engine": self.name, "address": self.address or "local", "nodes": len(nodes), "cpus": cpus}

    def spawn(self, n: int, make_args: Callable[[int], tuple]) -> list[ShardHandle]:
        """n actors spread over the nodes (each asks for its share of the cluster's CPUs, so any
        n fits); `make_args(i)` are shard i's constructor arguments."""
        ray = self._ray
        from chaos.listen.shards.shard import Shard

        cpus = float(ray.cluster_resources().get("CPU", 1.0)) or 1.0
        share = min(1.0, cpus / n)
        actor_class = ray.remote(Shard)
        handles = []
        for i in range(n):
            actor = actor_class.options(
                num_cpus=share, max_restarts=0, max_task_retries=0, scheduling_strategy="SPREAD"
            ).remote(*make_args(i))
            self._actors.append(actor)
            handles.append(ShardHandle(i, "", self._caller(actor), functools.partial(ray.kill, actor, no_restart=True)))
        return handles

    def _caller(self, actor: Any) -> Callable[[str, tuple], Any]:
        ray = self._ray

        async def call(method: str, args: tuple) -> Any:
            ref = getattr(actor, method).remote(*args)
            try:
                return await asyncio.wrap_future(ref.future())
            except ray.exceptions.RayTaskError as exc:  # the shard's own error, e.g. a host limit
                cause = getattr(exc, "cause", None) or exc
                raise ShardFailed(str(cause)) from exc
            except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
                raise ShardLost(_first_line(exc)) from exc
            except ray.exceptions.RayError as exc:
                raise ShardLost(_first_line(exc)) from exc

        return call

    def node_of(self, handle: ShardHandle) -> str:
        return handle.info.get("node", "")

    def close(self) -> None:
        """Remove our actors; stop the local cluster, or only disconnect from a shared one."""
        ray = self._ray
        if ray is None:
            return
        for actor in self._actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:
                pass
        self._actors.clear()
        try:
            ray.shutdown()
        except Exception:
            pass
        self._ray = None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
