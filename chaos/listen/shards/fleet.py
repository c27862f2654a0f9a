"""The runner's side of a distributed swarm: one object with the one-process Swarm's interface
(start, add_crowd, cancel_crowds, hearing, wait_all_hearing, sync, stop) over many shards.

- Who joins where: listener i of the run goes to shard i mod n, with the one-process swarm's ids
  and arrival offsets (the same seed gives the same offsets); the fleet paces the arrivals and
  tells each shard who joins now, so a join step's crowd follows the method's clock (paused in
  step mode) exactly as in one process.
- One timeline: before a shard starts, the fleet pings it PINGS times and takes the offset of the
  ping with the shortest round trip (uncertainty: half that round trip); the shard then records
  on the run's clock. Its events arrive every FLUSH_EVERY; `sync` fetches them now (before any
  judging). Each shard's swarm.health carries its clock's uncertainty, which the verdicts count
  as instrument error like the event loop's lag.
- Lost workers: a flush is the shard's heartbeat. A shard that raises (its worker or node died)
  or does not answer within HEARTBEAT is lost: `swarm.shard_lost` says which and why, and each of
  its listeners gets `listener.lost` at the last moment its events are known (the last flush):
  the verdicts leave them out from there and say so (chaos.checkers.verdicts), never as dead air
  of the system under test, never silently.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from chaos.errors import EnvironmentNotReady
from chaos.language.arrival import arrival_offsets
from chaos.listen.listener import ListenerSettings
from chaos.listen.shards.digest import Undigester
from chaos.listen.shards.engine import ShardFailed, ShardHandle, ShardLost
from chaos.listen.swarm import Crowd, Until, cancel_crowds, from_now
from chaos.timeline import Event, Timeline

FLUSH_EVERY = 0.5  # s between a shard's batches (and heartbeats)
HEARTBEAT = 10.0  # s without an answer before a shard is declared lost (busy hosts included)
CALL_TIMEOUT = 30.0  # s for start, admit and stop
PINGS = 15
BATCH = 2000  # listeners told to join per call, at most


class ShardState:
    """What the fleet knows of one shard."""

    def __init__(self, handle: ShardHandle):
        self.handle = handle
        self.undigest = Undigester()
        self.offset = 0.0
        self.uncertainty = 0.0
        self.last_seen = 0.0  # run clock: the shard's events are known up to here
        self.hearing = 0
        self.listeners = 0
        self.lag_max = 0.0
        self.lost: str | None = None
        self.members: list[str] = []
        self.pump: asyncio.Task | None = None
        self.lock = asyncio.Lock()  # batches merge in the order the shard made them
        self.shipped = 0  # bytes of batches received (estimated from their contents)


class ShardedSwarm:
    """Many shards, one swarm to the runner."""

    def __init__(
        self,
        settings: ListenerSettings,
        timeline: Timeline,
        engine: Any,
        workers: int,
        rng: random.Random | None = None,
        ear_settings: Any = None,
        sample: int = 20,
        capacity: int | None = None,
        bandwidth: float = 0.0,
        say: Callable[[str], None] = lambda _m: None,
    ):
        self.settings = settings
        self.timeline = timeline
        self.engine = engine
        self.workers = max(1, workers)
        self.rng = rng or random.Random(0)
        self.ear_settings = ear_settings
        self.sample = sample
        self.capacity = capacity if capacity is not None else settings.count
        self.say = say
        self.bandwidth = bandwidth  # bits/s per worker (listeners.bandwidth; 0: no budget)
        self.shards: list[ShardState] = []
        self.crowds: list[Crowd] = []
        self.listeners: list[str] = []  # ids told to join so far
        self.owner: dict[str, int] = {}
        self.lag_max = 0.0
        self.sketches: dict[str, Any] = {}  # DDSketches merged over shards (for reports; never verdicts)
        self._next = 0  # round-robin over shards
        self._arrivals: asyncio.Task | None = None
        self._stopped = False

    # -- start -----------------------------------------------------------------------------------
    async def start(self) -> None:
        """Place the shards, find each one's clock offset, start them, and begin the arrivals."""
        s = self.settings
        loop = asyncio.get_running_loop()
        spawn = loop.run_in_executor(None, self.engine.spawn, self.workers, lambda i: (i, s, self.ear_settings))
        try:
            handles = await asyncio.wait_for(spawn, CALL_TIMEOUT)
        except TimeoutError as exc:
            raise EnvironmentNotReady(f"the engine did not place {self.workers} shard(s) in {CALL_TIMEOUT:g}s") from exc
        self.shards = [ShardState(h) for h in handles]
        per_shard = -(-self.capacity // len(self.shards))  # ceil
        try:
            await asyncio.gather(*(self._start_shard(st, per_shard) for st in self.shards))
        except ShardLost as exc:
            raise EnvironmentNotReady(
                f"a shard of the swarm did not start: {exc} (a worker waits for its share of a CPU: "
                "is the cluster's CPU taken by other actors?)"
            ) from exc
        self._check_ports(per_shard)
        for st in self.shards:
            st.pump = asyncio.ensure_future(self._pump(st))
        width = max(4, len(str(s.count)))
        ears = min(s.ears, s.count)
        ids = [(f"E{i:0{width}d}", True) for i in range(ears)]
        ids += [(f"L{i:0{width}d}", False) for i in range(ears, s.count)]
        offsets = arrival_offsets(s.arrival, len(ids), s.arrival_over, s.arrival_rate, s.arrival_rate_to, self.rng)
        order = sorted(range(len(ids)), key=lambda i: offsets[i])  # stable: ties keep the ids' order
        sampled = _every(len(ids) - ears, self.sample)
        members = [(ids[i][0], ids[i][1], ids[i][1] or (i - ears) in sampled) for i in order]
        self._arrivals = asyncio.ensure_future(self._arrive([offsets[i] for i in order], members, from_now(loop)))

    def _check_ports(self, per_shard: int) -> None:
        """Ephemeral ports toward one destination are per source address of a host, shared by every
        shard on it: the shards of one host together must fit (each checked its own share)."""
        by_host: dict[str, list[ShardState]] = {}
        for st in self.shards:
            by_host.setdefault(str(st.handle.info.get("host", "")), []).append(st)
        sources = max(1, len(self.settings.source_addresses))
        for host, states in by_host.items():
            ports = int(states[0].handle.info.get("ports_per_source") or 0) * sources
            need = per_shard * len(states)
            if ports and need > ports:
                raise ShardLimitExceeded(
                    f"{len(states)} shards on {host} hold up to {need} listeners, who need as many ephemeral "
                    f"ports toward one destination; {sources} source address(es) give {ports} "
                    "(ip_local_port_range): spread the workers over more hosts or set listeners.source_addresses"
                )

    async def _start_shard(self, st: ShardState, capacity: int) -> None:
        clock = self.timeline.clock
        best: tuple[float, float] | None = None  # (round trip, offset)
        for _ in range(PINGS):
            d0 = time.monotonic()
            remote = await st.handle.call("ping", timeout=CALL_TIMEOUT)
            d1 = time.monotonic()
            if best is None or d1 - d0 < best[0]:
                best = (d1 - d0, remote - (d0 + d1) / 2)
        assert best is not None
        st.uncertainty, st.offset = best[0] / 2, best[1]
        try:
            st.handle.info = await st.handle.call(
                "start", clock.origin + st.offset, capacity, self.bandwidth, timeout=CALL_TIMEOUT
            )
        except ShardFailed as exc:
            raise ShardLimitExceeded(str(exc)) from exc
        st.handle.node = st.handle.info.get("node") or st.handle.info.get("host", "")
        st.last_seen = clock.now()
        self.timeline.record(
            "swarm.shard",
            f"swarm/{st.handle.index}",
            shard=st.handle.index,
            node=st.handle.node,
            host=st.handle.info.get("host"),
            pid=st.handle.info.get("pid"),
            clock_offset=round(st.offset, 6),
            clock_uncertainty=round(st.uncertainty, 6),
            open_files=st.handle.info.get("open_files"),
            ports_per_source=st.handle.info.get("ports_per_source"),
        )

    # -- arrivals --------------------------------------------------------------------------------
    async def _arrive(
        self, offsets: list[float], members: list[tuple[str, bool, bool]], until: Until, joined: list | None = None
    ) -> None:
        """Tell the shards who joins as each one's offset comes (batched, round-robin); `joined`
        (a crowd's) gets their ids as they are told."""
        i, n = 0, len(offsets)
        while i < n:
            now = await until(offsets[i])
            j = i
            while j < n and (j == i or offsets[j] <= now) and j - i < BATCH:
                j += 1
            if joined is not None:
                joined += [m[0] for m in members[i:j]]
            await self._admit(members[i:j])
            i = j

    async def _admit(self, members: list[tuple[str, bool, bool]]) -> None:
        by_shard: dict[int, list[tuple[str, bool, bool]]] = {}
        for m in members:
            k = self._next % len(self.shards)
            self._next += 1
            by_shard.setdefault(k, []).append(m)
            self.owner[m[0]] = k
            self.shards[k].members.append(m[0])
            self.listeners.append(m[0])
        await asyncio.gather(*(self._tell(self.shards[k], batch) for k, batch in by_shard.items()))

    async def _tell(self, st: ShardState, batch: list[tuple[str, bool, bool]]) -> None:
        if st.lost is not None:
            self._record_lost(st, [lid for lid, _e, _s in batch], st.last_seen)
            return
        try:
            await st.handle.call("admit", batch, timeout=CALL_TIMEOUT)
        except (ShardLost, ShardFailed) as exc:
            self._lose(st, str(exc))

    def add_crowd(
        self, step: int, offsets: list[float] | tuple[float, ...], until: Until | None = None, key: str = ""
    ) -> Crowd:
        """A join step's crowd, paced here on the method's clock (`until`), ids `J<step>-<n>`."""
        crowd = Crowd(step, key or f"{step}.0", sorted(offsets))
        width = max(4, len(str(len(crowd.offsets))))
        sampled = _every(len(crowd.offsets), self.sample)
        members = [(f"J{step}-{j:0{width}d}", False, j in sampled) for j in range(len(crowd.offsets))]
        until = until or from_now(asyncio.get_running_loop())
        crowd.task = asyncio.ensure_future(self._arrive(crowd.offsets, members, until, crowd.listeners))
        self.crowds.append(crowd)
        return crowd

    def cancel_crowds(self, reason: str) -> int:
        """As Swarm.cancel_crowds: pending arrivals never happen, recorded per crowd."""
        return cancel_crowds(self.crowds, self.timeline, reason)

    # -- batches ---------------------------------------------------------------------------------
    async def _pump(self, st: ShardState) -> None:
        while st.lost is None:
            await asyncio.sleep(FLUSH_EVERY)
            await self._flush(st)

    async def _flush(self, st: ShardState, method: str = "flush", timeout: float = HEARTBEAT) -> None:
        """One batch, merged; one at a time per shard (a batch names its new listeners once, so
        batches must merge in the order the shard made them)."""

        async def once() -> None:
            async with st.lock:
                if st.lost is not None:
                    return
                try:
                    batch = await st.handle.call(method, timeout=timeout)
                except (ShardLost, ShardFailed) as exc:
                    self._lose(st, str(exc))  # a batch it made but never delivered is lost with it
                    return
                try:
                    self._merge(st, batch)
                except ValueError as exc:
                    self._lose(st, str(exc))

        # shielded: a waiter cancelled (the pump at stop, a signal during sync) must not drop a
        # batch the shard has already handed over
        await asyncio.shield(asyncio.ensure_future(once()))

    def _merge(self, st: ShardState, batch: dict[str, Any]) -> None:
        k = st.handle.index
        events: list[Event] = []
        for t, kind, src, data in batch["events"]:
            if kind == "swarm.limit":
                src, data = f"swarm/{k}", {**data, "shard": k}
            if kind == "swarm.health":
                src = f"swarm/{k}"
                data = {**data, "shard": k, "clock_uncertainty": round(st.uncertainty, 6)}
                if "rx_bps" in batch:
                    data["rx_bps"] = batch["rx_bps"]
            events.append(Event(t, kind, src, data))
        events += st.undigest.events(batch["names"], batch["digest"], batch.get("names_from"))
        self.timeline.events += events
        for name, sketch in (batch.get("sketches") or {}).items():
            self._sketch(name, sketch)
        st.last_seen = max(st.last_seen, float(batch["now"]))
        st.hearing, st.listeners = int(batch["hearing"]), int(batch["listeners"])
        st.lag_max = max(st.lag_max, float(batch["lag_max"]))
        self.lag_max = max(self.lag_max, st.lag_max)
        st.shipped += _size(batch)

    def _sketch(self, name: str, sketch: Any) -> None:
        if name in self.sketches:
            self.sketches[name].merge(sketch)
        else:
            self.sketches[name] = sketch

    async def sync(self) -> None:
        """Every shard's events up to now (before the runner judges)."""
        await asyncio.gather(*(self._flush(st) for st in self.shards))

    # -- lost shards -----------------------------------------------------------------------------
    def _lose(self, st: ShardState, why: str) -> None:
        if st.lost is not None or self._stopped:
            return
        st.lost = why
        k = st.handle.index
        self.timeline.record(
            "swarm.shard_lost",
            f"swarm/{k}",
            shard=k,
            node=st.handle.node,
            host=st.handle.info.get("host"),
            why=why,
            listeners=len(st.members),
            last_heard=round(st.last_seen, 6),
        )
        self._record_lost(st, st.members, st.last_seen)
        self.say(
            f"  the load generator lost shard {k} (node {st.handle.node or '?'}): {why}; "
            f"its {len(st.members)} listener(s) are reported lost from t={st.last_seen:.2f}s"
        )

    def _record_lost(self, st: ShardState, lids: list[str], at: float) -> None:
        k = st.handle.index
        for lid in lids:
            self.timeline.record("listener.lost", lid, at, shard=k, why="the load generator lost its worker")

    # -- state -----------------------------------------------------------------------------------
    def hearing(self) -> int:
        return sum(st.hearing for st in self.shards if st.lost is None)

    async def wait_all_hearing(self, timeout: float) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            await self.sync()
            n = self.hearing()
            alive = sum(len(st.members) for st in self.shards if st.lost is None)
            done = self._arrivals is None or self._arrivals.done()
            if (done and n >= alive) or loop.time() >= deadline:
                return n
            await asyncio.sleep(FLUSH_EVERY)

    @property
    def bytes_shipped(self) -> int:
        return sum(st.shipped for st in self.shards)

    async def stop(self) -> None:
        """Arrivals end, every live shard's listeners leave and its last batch is merged; then the
        shards are removed. A shard that cannot answer is lost (its listeners recorded)."""
        self.cancel_crowds("the run ended")
        if self._arrivals is not None:
            self._arrivals.cancel()
        for st in self.shards:
            if st.pump is not None:
                st.pump.cancel()
        await asyncio.gather(*(self._flush(st, "stop", CALL_TIMEOUT) for st in self.shards))
        self._stopped = True
        lost = [st for st in self.shards if st.lost is not None]
        self.timeline.record(
            "swarm.shards",
            "swarm",
            workers=len(self.shards),
            lost=len(lost),
            bytes_shipped=self.bytes_shipped,
            listeners=len(self.listeners),
            sketches={name: _quantiles(sk) for name, sk in self.sketches.items()},
        )
        # the shards are done: free their workers now (a shared cluster's CPUs), bounded; the
        # engine's close does it again on every exit path
        loop = asyncio.get_running_loop()
        kill = loop.run_in_executor(None, self._kill_all)
        try:
            await asyncio.wait_for(kill, CALL_TIMEOUT)
        except TimeoutError:
            self.say(f"  the swarm's shards did not go in {CALL_TIMEOUT:g}s; the engine's close removes them")

    def _kill_all(self) -> None:
        for st in self.shards:
            st.handle.kill()


class ShardLimitExceeded(EnvironmentNotReady):
    """A shard's host cannot hold its share of the listeners (chaos.listen.shards.limits)."""


def _every(n: int, k: int) -> set[int]:
    """k indices spread evenly over range(n) (all when k >= n)."""
    if k <= 0 or n <= 0:
        return set()
    if k >= n:
        return set(range(n))
    return {i * n // k for i in range(k)}


def _size(batch: dict[str, Any]) -> int:
    """What a batch weighs on the wire (pickled, as Ray ships it)."""
    import pickle

    return len(pickle.dumps(batch, protocol=5))


def _quantiles(sketch: Any) -> dict[str, float]:
    return {
        "count": float(sketch.count),
        **{f"p{q}": round(float(sketch.get_quantile_value(q / 100)), 6) for q in (50, 95, 99)},
        "max": round(float(sketch.get_quantile_value(1.0)), 6),
    }
