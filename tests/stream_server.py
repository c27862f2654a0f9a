"""A tiny Ogg/Opus stream server on loopback for unit tests of the swarm: HTTP 200, the stream's
headers, a burst of pages, then one 100 ms page every `interval` seconds (0.1: real time; 0.1176:
85 % of real time, the stutter case). It runs in its own thread with its own event loop, so
that a test may starve the swarm's loop without starving the server."""

from __future__ import annotations

import asyncio
import threading

from oggbuild import opus_head, opus_packet, opus_tags, page


class StreamServer:
    def __init__(self, interval: float = 0.1, burst_pages: int = 4, title: str = "live", serial: int = 7):
        self.interval, self.burst, self.title, self.serial = interval, burst_pages, title, serial
        self.port = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StreamServer:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        await self._stop.wait()
        server.close()
        for task in asyncio.all_tasks() - {asyncio.current_task()}:
            task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: audio/ogg\r\n\r\n")
        writer.write(page(self.serial, 0, 0, [opus_head()], flags=2) + page(self.serial, 1, 0, [opus_tags(self.title)]))
        seq, granule = 2, 0

        def next_page() -> bytes:
            nonlocal seq, granule
            granule += 4800
            seq += 1
            return page(self.serial, seq - 1, granule, [opus_packet(20)] * 5)

        writer.write(b"".join(next_page() for _ in range(self.burst)))
        loop = asyncio.get_running_loop()
        due = loop.time()
        try:
            while True:
                due += self.interval
                await asyncio.sleep(max(0.0, due - loop.time()))
                writer.write(next_page())
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
