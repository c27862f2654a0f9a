"""The swarm: many listeners (and a few golden ears) on one event loop, joining as the
experiment's arrival shape says, with the swarm's own health (its event loop's lag) recorded
beside what the listeners heard, so that verdicts can tell the instrument's error apart.

A running swarm takes more listeners (`add_crowd`: a `join` step's crowd, ids `J<step>-<n>`);
the watchdog, the health reports and `stop` cover them as they cover the first ones. A crowd's
listeners are made as they arrive, by one task walking its sorted offsets in batches (a crowd of
100,000 must not hold the event loop, and with it every listener's clock, while it is built);
`cancel_crowds` stops the arrivals still pending and records how many never joined.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from chaos.language.arrival import arrival_offsets
from chaos.listen.listener import HEALTH_EVERY, LAG_TICK, Listener, ListenerSettings, StreamAddress
from chaos.timeline import Timeline

CROWD_BATCH = 200  # a crowd's listeners made per turn of the event loop, at most

# Waits until `offset` seconds into a crowd's arrivals, then says how far into them it is now (the
# runner's: on the method's clock, which stands still while the operator is asked in step mode)
Until = Callable[[float], Awaitable[float]]


@dataclass
class Crowd:
    """A join step's crowd as it arrives: `listeners` those made so far, in offset order."""

    step: int
    key: str  # the occurrence ("step.n")
    offsets: list[float]
    listeners: list = field(default_factory=list)  # Listener objects (one process) or their ids (shards)
    task: asyncio.Task | None = None
    cancelled: str = ""  # why its pending arrivals were cancelled ("": they were not)

    @property
    def pending(self) -> int:
        return len(self.offsets) - len(self.listeners)


def from_now(loop: asyncio.AbstractEventLoop) -> Until:
    """Offsets counted from now on the loop's clock (a crowd with no method clock to follow)."""
    start = loop.time()

    async def until(offset: float) -> float:
        await asyncio.sleep(max(0.0, start + offset - loop.time()))
        return loop.time() - start

    return until


def cancel_crowds(crowds: list[Crowd], timeline: Timeline, reason: str) -> int:
    """Stop every crowd's pending arrivals (the method stopped early, or the run ends): each crowd
    with listeners that never joined gets a `step.join_cancelled` event saying how many and why.
    Returns how many never joined. Shared by the one-process and the distributed swarm."""
    never = 0
    for crowd in crowds:
        if crowd.task is not None and not crowd.task.done():
            crowd.task.cancel()  # it waits at an await: it makes no listener after this
        if crowd.pending and not crowd.cancelled:
            crowd.cancelled = reason
            never += crowd.pending
            timeline.record(
                "step.join_cancelled",
                "swarm",
                step=crowd.step,
                occurrence=crowd.key,
                count=len(crowd.offsets),
                joined=len(crowd.listeners),
                cancelled=crowd.pending,
                reason=reason,
            )
    return never


class Swarm:
    """Many listeners on one event loop, with one watchdog for all of them."""

    def __init__(
        self,
        settings: ListenerSettings,
        timeline: Timeline,
        rng: random.Random | None = None,
        prefix: str = "L",
        ear_settings=None,
    ):
        self.settings = settings
        self.timeline = timeline
        self.rng = rng or random.Random(0)
        self.ear_settings = ear_settings
        width = max(4, len(str(settings.count)))
        ears = min(settings.ears, settings.count)
        self.listeners: list[Listener] = []
        if ears:
            from chaos.listen.ears import GoldenEar

            self.listeners += [GoldenEar(f"E{i:0{width}d}", self, ear_settings) for i in range(ears)]
        self.listeners += [Listener(f"{prefix}{i:0{width}d}", self) for i in range(ears, settings.count)]
        self._tasks: set[asyncio.Task] = set()
        self._watchdog: asyncio.Task | None = None
        self._monitor: asyncio.Task | None = None
        self._flush_health: Callable[[], None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.crowds: list[Crowd] = []  # join steps' crowds, arriving or arrived
        self.lag_max = 0.0  # the largest event-loop lag seen in the whole run
        self.rx_bytes = 0  # received by all listeners (chaos.listen.shards: bandwidth per worker)

    def arrival_offsets(self) -> list[float]:
        """When each listener joins, from the start: all at once, a ramp, a seeded Poisson process,
        or a rising rate (chaos.language.arrival)."""
        s = self.settings
        return arrival_offsets(
            s.arrival, len(self.listeners), s.arrival_over, s.arrival_rate, s.arrival_rate_to, self.rng
        )

    async def start(self) -> None:
        """Listeners join according to the arrival pattern (this returns at once)."""
        self._loop = asyncio.get_running_loop()
        for listener, offset in zip(self.listeners, self.arrival_offsets()):
            if offset <= 0:
                self._spawn(self._connect(listener))
            else:
                self._loop.call_later(offset, self._join_later, listener)
        self._watchdog = asyncio.create_task(self._watch())
        self._monitor = asyncio.create_task(self._health())

    def add_crowd(
        self, step: int, offsets: list[float] | tuple[float, ...], until: Until | None = None, key: str = ""
    ) -> Crowd:
        """More listeners into the running swarm (a join step's crowd): one per offset, joining that
        many seconds from now (or as `until` says), ids `J<step>-<n>` in offset order (n padded like
        the first listeners' ids). They stay until `stop`; `crowd.task` ends once the last one's
        join is recorded."""
        assert self._loop is not None, "add_crowd needs a started swarm"
        crowd = Crowd(step, key or f"{step}.0", sorted(offsets))
        crowd.task = asyncio.ensure_future(self._arrive(crowd, until or from_now(self._loop)))
        self.crowds.append(crowd)
        return crowd

    async def _arrive(self, crowd: Crowd, until: Until) -> None:
        """One timer for the whole crowd: wait for the next offset, then make every listener due by
        now, CROWD_BATCH at a time, yielding to the loop between batches (the ones spawned record
        their join before the next batch, and before this ends)."""
        offsets, n = crowd.offsets, len(crowd.offsets)
        width = max(4, len(str(n)))
        i = 0
        while i < n:
            now = await until(offsets[i])
            j = i
            while j < n and (j == i or offsets[j] <= now) and j - i < CROWD_BATCH:
                listener = Listener(f"J{crowd.step}-{j:0{width}d}", self)
                crowd.listeners.append(listener)
                self.listeners.append(listener)
                self._spawn(self._connect(listener))
                j += 1
            i = j
            await asyncio.sleep(0)

    def cancel_crowds(self, reason: str) -> int:
        """Stop every crowd's pending arrivals (chaos.listen.swarm.cancel_crowds)."""
        return cancel_crowds(self.crowds, self.timeline, reason)

    def admit(self, members: list[tuple[str, bool]]) -> None:
        """Listeners named by someone else join now: a shard of a distributed swarm
        (chaos.listen.shards) is told who joins and when; `(lid, ear)` pairs, ears decoding."""
        for lid, ear in members:
            if ear:
                from chaos.listen.ears import GoldenEar

                listener: Listener = GoldenEar(lid, self, self.ear_settings)
            else:
                listener = Listener(lid, self)
            self.listeners.append(listener)
            self._spawn(self._connect(listener))

    def _join_later(self, listener: Listener) -> None:
        self._spawn(self._connect(listener))

    async def _health(self) -> None:
        """The swarm watches itself: a timer that should fire every LAG_TICK; how late it fires is
        the event loop's lag, and every listener timestamp is late by up to as much. Once a
        second: the worst lag since the last report, and the process's CPU (of one core)."""
        loop = asyncio.get_running_loop()
        clock = self.timeline.clock
        state = {"worst": 0.0, "since": loop.time(), "cpu0": time.process_time()}

        def report() -> None:
            now, cpu = loop.time(), time.process_time()
            if now <= state["since"]:
                return
            self.lag_max = max(self.lag_max, state["worst"])
            self.timeline.record(
                "swarm.health",
                "swarm",
                clock.now(),
                lag_max=round(state["worst"], 6),
                cpu=round((cpu - state["cpu0"]) / (now - state["since"]), 4),
                listeners=len(self.listeners),
                since=round(clock.now() - (now - state["since"]), 6),
            )
            state.update(worst=0.0, since=now, cpu0=cpu)

        self._flush_health = report
        while True:
            due = loop.time() + LAG_TICK
            await asyncio.sleep(LAG_TICK)
            state["worst"] = max(state["worst"], loop.time() - due)
            if loop.time() - state["since"] >= HEALTH_EVERY:
                report()

    def _spawn(self, coro) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _join(self, listener: Listener) -> bool:
        """Ask room-api for a stream URL. False (and a retry scheduled) when it fails."""
        s = self.settings
        assert s.join_api is not None and s.room is not None
        t0 = time.monotonic()
        self.timeline.record(
            "listener.join", listener.lid, attempt=listener.attempt, **({"ear": True} if listener.is_ear else {})
        )
        answer: dict[str, Any] = {}
        status, reason = 0, ""
        try:
            status, answer = await asyncio.wait_for(
                post_json(s.join_api[0], s.join_api[1], f"/rooms/{s.room}/join", {"user": listener.lid}),
                timeout=s.join_timeout,
            )
            if status == 200:
                listener.stream = StreamAddress.from_url(str(answer.get("stream_url")))
                listener.listener_id = answer.get("listener_id")
                self.timeline.record(
                    "listener.joined", listener.lid, status=status, latency=round(time.monotonic() - t0, 6)
                )
                return True
            reason = str(answer.get("error", ""))[:200]
        except TimeoutError:
            reason = "timeout"
        except ValueError as exc:
            reason = str(exc)
        except OSError as exc:
            reason = type(exc).__name__
        self.timeline.record(
            "listener.join_failed",
            listener.lid,
            status=status,
            reason=reason,
            latency=round(time.monotonic() - t0, 6),
            timeout=s.join_timeout,  # a timeout the swarm's own lag may have caused (join_success_ratio)
        )
        self.schedule_retry(listener)
        return False

    async def _connect(self, listener: Listener) -> None:
        if listener.stopped:
            return
        s = self.settings
        if listener.stream is None:
            if not await self._join(listener):
                return
        elif s.join_api is None and listener.attempt == 0 and not listener.playout.started:
            self.timeline.record("listener.join", listener.lid, attempt=0, **({"ear": True} if listener.is_ear else {}))
        self.timeline.record("listener.connect", listener.lid, attempt=listener.attempt)
        stream = listener.stream
        assert self._loop is not None and stream is not None
        sources = s.source_addresses
        local = (sources[zlib.crc32(listener.lid.encode()) % len(sources)], 0) if sources else None
        try:
            await asyncio.wait_for(
                self._loop.create_connection(lambda: listener, stream.host, stream.port, local_addr=local),
                timeout=s.playout.connect_timeout,
            )
        except TimeoutError:
            listener._disconnected("connect_timeout")
        except ConnectionRefusedError:
            listener._disconnected("refused")
        except (OSError, socket.gaierror) as exc:
            listener._disconnected(type(exc).__name__)

    def schedule_retry(self, listener: Listener) -> None:
        schedule = self.settings.backoff
        if listener.attempt >= len(schedule):
            listener.gave_up = True
            self.timeline.record("listener.gave_up", listener.lid, attempts=listener.attempt)
            return
        delay = schedule[listener.attempt]
        listener.attempt += 1
        self.timeline.record("listener.reconnect", listener.lid, attempt=listener.attempt, delay=delay)
        assert self._loop is not None
        self._loop.call_later(delay, lambda: self._spawn(self._connect(listener)))

    async def _watch(self) -> None:
        clock = self.timeline.clock
        while True:
            await asyncio.sleep(0.25)
            now = clock.now()
            for listener in self.listeners:
                listener.check(now)

    async def sync(self) -> None:
        """Every event up to now is on the timeline already (a distributed swarm fetches them)."""

    def hearing(self) -> int:
        """Listeners whose buffer holds audio right now."""
        now = self.timeline.clock.now()
        return sum(1 for lst in self.listeners if lst.playout.started and lst.playout.dry_at() > now)

    async def wait_all_hearing(self, timeout: float) -> int:
        """Wait until every listener hears audio (or the timeout); returns how many do."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            n = self.hearing()
            if n == len(self.listeners) or loop.time() >= deadline:
                return n
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        self.cancel_crowds("the run ended")  # arrivals still pending (a signal, an error): never joined
        now = self.timeline.clock.now()
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._monitor is not None:
            self._monitor.cancel()
            if self._flush_health is not None:
                self._flush_health()  # the last, partial interval: the end of a run has a lag too
        for listener in self.listeners:
            listener.close(now)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.sleep(0)


async def post_json(host: str, port: int, path: str, body: dict) -> tuple[int, dict]:
    """A one-shot HTTP/1.1 POST with a JSON body; returns (status, parsed JSON or {})."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        payload = json.dumps(body).encode()
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        raw = await reader.read(-1)
    finally:
        writer.close()
    head, _, content = raw.partition(b"\r\n\r\n")
    parts = head.split(b"\r\n", 1)[0].split()
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
    try:
        answer = json.loads(content) if content else {}
    except ValueError:
        answer = {}
    return status, answer if isinstance(answer, dict) else {}
