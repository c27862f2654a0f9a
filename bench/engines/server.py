"""The synthetic stream server the engine benchmarks listen to (not a measurement by itself).

    python bench/engines/server.py PORT

One asyncio (uvloop when installed) TCP server on 127.0.0.1: every connection gets PAGE bytes
every TICK seconds (1,600 B every 100 ms, 16 KB/s: the real stream's page cadence), from one timer
for all connections, so the server's cost does not grow with timers. A connection whose send
buffer is full is skipped for that tick rather than buffered without bound. Runs until killed;
the scripts that need it (bench.py, async_bench.py, faults.py, multinode_driver.py) take its PORT.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

PAGE = b"O" * 1600
TICK = 0.1  # s
MAX_BUFFERED = 64_000  # bytes a slow connection may have queued before it misses a page

connections: set[Any] = set()  # transports (uvloop's are not asyncio.Transport subclasses)


class Conn(asyncio.Protocol):
    """One listener's connection: remembered for the timer, nothing read."""

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        connections.add(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        connections.discard(self.transport)


async def serve(port: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_server(Conn, "127.0.0.1", port, backlog=4096)
    due = loop.time()
    while True:
        due += TICK
        for t in list(connections):
            if t.get_write_buffer_size() < MAX_BUFFERED:
                t.write(PAGE)
        await asyncio.sleep(max(0.0, due - loop.time()))


def main() -> None:
    port = int(sys.argv[1])
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(port))


if __name__ == "__main__":
    main()
