"""One shard of a distributed swarm: the one-process Swarm on a worker's event loop, told by the
runner who joins and when, its events batched for the runner every flush.

A flush is also the shard's heartbeat: the runner (chaos.listen.shards.fleet) asks for one every
FLUSH_EVERY and declares the shard lost when none comes within its deadline. What a flush ships:
full events for the sampled listeners (the golden ears among them) and for the shard itself
(swarm.health), per-listener digests (chaos.listen.shards.digest) for the others, how many hear
audio now, and every few seconds mergeable sketches of the shard's distributions for reports.
The shard records on the run's clock: the runner measured the offset between the clocks and
gave it the run's origin in this process's monotonic seconds.

Engine-agnostic: chaos.listen.shards.engine wraps it as a Ray actor; tests run it in-process.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from typing import Any

from chaos.listen.listener import ListenerSettings
from chaos.listen.shards.digest import Digester
from chaos.listen.shards.limits import HostLimits, ShardLimitError
from chaos.listen.swarm import Swarm
from chaos.timeline import Clock, Event, Timeline

SKETCH_EVERY = 5.0  # s between the sketches a shard ships (they are for reports, not verdicts)
SKETCH_ACCURACY = 0.01  # DDSketch's relative accuracy (1 %: ~2 KB per sketch)


class ShardTimeline(Timeline):
    """A timeline that keeps full events only for the sampled listeners and everything that is not
    a listener's; the others' events go to the digester. Every dead-air span, join latency and
    time to first audio also goes into the shard's sketches."""

    def __init__(self, clock: Clock, sampled: set[str]):
        super().__init__(clock)
        self.sampled = sampled
        self.digester = Digester()
        self.sketches: dict[str, Any] = {}
        self._joined_at: dict[str, float] = {}

    def record(self, kind: str, src: str, t: float | None = None, **data: Any) -> Event:
        ev = Event(self.clock.now() if t is None else t, kind, src, data)
        self._sketch(ev)
        if src in self.sampled or not self.digester.add(ev):
            self.events.append(ev)
        return ev

    def _sketch(self, ev: Event) -> None:
        if ev.kind in ("listener.stall_end", "listener.slip"):
            self._add("dead_air_span", float(ev.data.get("duration", 0.0)))
        elif ev.kind in ("listener.joined", "listener.join_failed") and "latency" in ev.data:
            self._add("join_latency", float(ev.data["latency"]))
        elif ev.kind == "listener.join" and ev.src not in self._joined_at:
            self._joined_at[ev.src] = ev.t
        elif ev.kind == "listener.first_audio" and ev.src in self._joined_at:
            self._add("time_to_first_audio", ev.t - self._joined_at.pop(ev.src))

    def _add(self, name: str, value: float) -> None:
        from ddsketch import DDSketch

        sketch = self.sketches.get(name)
        if sketch is None:
            sketch = self.sketches[name] = DDSketch(relative_accuracy=SKETCH_ACCURACY)
        sketch.add(max(value, 1e-6))  # DDSketch keeps zeros apart; a 0 s wait is 1 us here

    def take(self) -> tuple[list[tuple], list[str], list[tuple]]:
        events = [(e.t, e.kind, e.src, e.data) for e in self.events]
        self.events = []
        names, records = self.digester.take()
        return events, names, records


class Shard:
    """A shard: `start` once, `admit` as listeners are due, `flush` every heartbeat, `stop` once."""

    def __init__(self, index: int, settings: ListenerSettings, ear_settings: Any = None):
        self.index = index
        self.settings = dataclasses.replace(settings, count=0)  # who joins is said by `admit`
        self.ear_settings = ear_settings
        self.swarm: Swarm | None = None
        self.timeline: ShardTimeline | None = None
        self.seq = 0
        self._sketched = 0.0
        self._rx = (time.monotonic(), 0)
        self.bandwidth = 0.0

    async def ping(self) -> float:
        """This process's monotonic clock (the runner pairs it with its own to find the offset)."""
        return time.monotonic()

    async def start(self, origin: float, capacity: int, bandwidth: float = 0.0) -> dict[str, Any]:
        """Start on the run's clock (`origin`: the run's t=0 in this process's monotonic seconds),
        having checked that this host can hold `capacity` listeners. Raises ShardLimitError.
        `bandwidth` (bits/s, 0: none): above it, every flush records `swarm.limit`."""
        limits = HostLimits.here()
        why = limits.problem(capacity, len(self.settings.source_addresses))
        if why is not None:
            raise ShardLimitError(f"shard {self.index} on {os.uname().nodename}: {why}")
        self.bandwidth = bandwidth
        clock = Clock()
        clock.origin = origin
        self.timeline = ShardTimeline(clock, set())
        self.swarm = Swarm(self.settings, self.timeline, ear_settings=self.ear_settings)
        await self.swarm.start()
        node = ""
        if "ray" in sys.modules:  # on a Ray worker: the node it runs on (placement, and which node was lost)
            try:
                node = sys.modules["ray"].get_runtime_context().get_node_id()
            except Exception:
                node = ""
        return {
            "host": os.uname().nodename,
            "pid": os.getpid(),
            "node": node,
            "open_files": limits.open_files,
            "ports_per_source": limits.ports_per_source,
        }

    async def admit(self, members: list[tuple[str, bool, bool]]) -> None:
        """(lid, ear, sampled) join now; a sampled listener ships every event."""
        assert self.swarm is not None and self.timeline is not None
        self.timeline.sampled.update(lid for lid, _ear, sampled in members if sampled)
        self.swarm.admit([(lid, ear) for lid, ear, _sampled in members])

    async def flush(self, sketches: bool = False) -> dict[str, Any]:
        """What happened since the last flush (the shard's heartbeat)."""
        assert self.swarm is not None and self.timeline is not None
        self.seq += 1
        now = self.timeline.clock.now()
        events, names, records = self.timeline.take()
        batch: dict[str, Any] = {
            "seq": self.seq,
            "names_from": self.timeline.digester.named - len(names),
            "now": now,
            "events": events,
            "names": names,
            "digest": records,
            "hearing": self.swarm.hearing(),
            "listeners": len(self.swarm.listeners),
            "lag_max": self.swarm.lag_max,
        }
        mono, rx = time.monotonic(), self.swarm.rx_bytes
        if mono > self._rx[0]:
            batch["rx_bps"] = bps = round(8 * (rx - self._rx[1]) / (mono - self._rx[0]))
            if self.bandwidth and bps > self.bandwidth:  # the worker's own link may be what listeners hear
                events.append(
                    (
                        now,
                        "swarm.limit",
                        "swarm",
                        {
                            "limit": "bandwidth",
                            "rx_bps": bps,
                            "budget_bps": self.bandwidth,
                            "since": now - (mono - self._rx[0]),
                        },
                    )
                )
        self._rx = (mono, rx)
        if sketches or now - self._sketched >= SKETCH_EVERY:
            batch["sketches"], self.timeline.sketches = self.timeline.sketches, {}
            self._sketched = now
        return batch

    async def stop(self) -> dict[str, Any]:
        """Every listener leaves (open stalls close); the last flush, sketches included."""
        assert self.swarm is not None
        await self.swarm.stop()
        await asyncio.sleep(0)
        return await self.flush(sketches=True)
