"""The listener-like shard the engine benchmarks place in a plain process, a Ray actor or a Dask
actor: the same class everywhere, so what differs is only the engine around it.

Not a script: bench.py, plain_shard.py, faults.py and multinode_driver.py import it. A Shard holds
N `asyncio.Protocol` connections to server.py on a uvloop loop in a thread of its own (connected
in batches of 200), with a 50 ms lag timer, a per-read gap, and a DDSketch fed every tenth read
(the stand-in for a listener's per-page work). `measure(s)` blocks s seconds and returns this
process's own CPU from getrusage(RUSAGE_SELF) over the window (every thread: the engine's too)
and the worst loop lag. Needs uvloop and ddsketch (both in deadair[cluster]'s environment).
"""

from __future__ import annotations

import asyncio
import os
import resource
import threading
import time
from typing import Any

BATCH = 200  # connections opened before yielding 50 ms
LAG_TICK = 0.05  # s


class Listener(asyncio.Protocol):
    """One connection: bytes, reads, the longest gap between reads while measuring."""

    __slots__ = ("bytes", "idx", "last", "lost", "maxgap", "reads", "sh", "t")

    def __init__(self, sh: Shard, idx: int):
        self.sh = sh
        self.idx = idx
        self.bytes = 0
        self.reads = 0
        self.last = 0.0
        self.maxgap = 0.0
        self.lost = False
        self.t: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.t = transport
        self.last = time.monotonic()

    def data_received(self, data: bytes) -> None:
        now = time.monotonic()
        gap = now - self.last
        if gap > self.maxgap and self.sh.measuring:
            self.maxgap = gap
        self.last = now
        self.bytes += len(data)
        self.reads += 1
        if self.sh.measuring and self.sh.sketch is not None and self.reads % 10 == 0:
            self.sh.sketch.add(gap * 1000.0)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True


class Shard:
    """N listeners on a uvloop loop in a thread of its own; every method is a plain call."""

    def __init__(self, name: str = "shard"):
        self.name = name
        self.measuring = False
        self.sketch: Any = None
        self.listeners: list[Listener] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.lag_max = 0.0

    def pid(self) -> int:
        return os.getpid()

    def now(self) -> float:
        """This process's wall clock, for the clock-offset pings (faults.py)."""
        return time.time()

    def start(self, host: str, port: int, n: int, use_sketch: bool = True) -> int:
        """Connect n listeners (blocks until done, at most 120 s); how many are connected."""
        if use_sketch:
            from ddsketch import DDSketch

            self.sketch = DDSketch(relative_accuracy=0.01)
        ready = threading.Event()

        def run() -> None:
            import uvloop

            self.loop = uvloop.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(self._connect(host, port, n, ready))
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        ready.wait(120)
        return sum(1 for x in self.listeners if not x.lost)

    async def _connect(self, host: str, port: int, n: int, ready: threading.Event) -> None:
        loop = asyncio.get_running_loop()
        for i in range(n):
            lis = Listener(self, i)
            try:
                await loop.create_connection(lambda lis=lis: lis, host, port)  # type: ignore[misc]
            except OSError:
                lis.lost = True
            self.listeners.append(lis)
            if i % BATCH == BATCH - 1:
                await asyncio.sleep(0.05)
        self._lag_task = loop.create_task(self._lag())
        ready.set()

    async def _lag(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            t = loop.time()
            await asyncio.sleep(LAG_TICK)
            lag = loop.time() - t - LAG_TICK
            if self.measuring and lag > self.lag_max:
                self.lag_max = lag

    def measure(self, seconds: float) -> dict[str, Any]:
        """Block `seconds`; this process's CPU (all threads) over the window, and more."""
        for x in self.listeners:
            x.maxgap = 0.0
        r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        b0 = sum(x.bytes for x in self.listeners)
        self.measuring, self.lag_max = True, 0.0
        time.sleep(seconds)
        self.measuring = False
        r1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        b1 = sum(x.bytes for x in self.listeners)
        return {
            "pid": os.getpid(),
            "n": len(self.listeners),
            "alive": sum(1 for x in self.listeners if not x.lost),
            "wall": w1 - w0,
            "cpu": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
            "utime": r1.ru_utime - r0.ru_utime,
            "stime": r1.ru_stime - r0.ru_stime,
            "bytes": b1 - b0,
            "lag_max": self.lag_max,
            "threads": threading.active_count(),
            "nthreads_os": len(os.listdir("/proc/self/task")),
        }

    def summaries(self) -> list[tuple]:
        """Per-listener summaries (what a shard ships instead of events): their pickled size."""
        return [(x.idx, x.bytes, x.reads, round(x.maxgap, 4), x.lost) for x in self.listeners]

    def sketch_bytes(self) -> bytes:
        from ddsketch.pb.proto import DDSketchProto

        return DDSketchProto.to_proto(self.sketch).SerializeToString()

    def stop(self) -> bool:
        """Close every connection and stop the loop's thread (at most 5 s)."""
        loop = self.loop
        if loop is None:
            return True

        def close() -> None:
            for x in self.listeners:
                if not x.lost and x.t is not None:
                    x.t.close()
            loop.call_later(0.5, loop.stop)

        loop.call_soon_threadsafe(close)
        if self.thread is not None:
            self.thread.join(5)
        return True
