"""With `listeners.prebuffer`, a listener hears its first audio when playback starts, not when a
first page arrives. Before, `listener.first_audio` came with the first page: a listener that got
100 ms and then nothing, never enough to play (prebuffer 300 ms), left its joining wait, was never
in a stall (stalls begin only once playback has), and passed `dead_air max < 1s` with 0."""

from __future__ import annotations

import asyncio

from oggbuild import stream

from chaos.checkers.history import History, Window
from chaos.checkers.verdicts import check
from chaos.listen.listener import ListenerSettings, PlayoutSettings, StreamAddress
from chaos.listen.swarm import Swarm
from chaos.timeline import Timeline

LISTEN = 3.0  # seconds the listener stays


def _one_listener(pages: int, prebuffer: float, later: int = 0, pause: float = 0.0) -> Timeline:
    """One listener against a server that sends `pages` pages of 100 ms at once, then, `pause`
    seconds later, `later` more, then nothing."""

    async def main() -> Timeline:
        async def handle(reader, writer):
            await reader.read(1024)
            whole = stream(7, "live", pages + later)
            first = stream(7, "live", pages)
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: audio/ogg\r\n\r\n" + first)
            await writer.drain()
            if later:
                await asyncio.sleep(pause)
                writer.write(whole[len(first) :])
                await writer.drain()
            await asyncio.sleep(30)

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        tl = Timeline()
        settings = ListenerSettings(
            count=1,
            stream=StreamAddress("127.0.0.1", port, "/live"),
            playout=PlayoutSettings(prebuffer=prebuffer, read_timeout=60.0),
        )
        swarm = Swarm(settings, tl)
        await swarm.start()
        await asyncio.sleep(LISTEN)
        await swarm.stop()
        server.close()
        tl.record("run.end", "run")
        return tl

    return asyncio.run(main())


def test_a_listener_that_never_filled_its_prebuffer_heard_nothing():
    tl = _one_listener(pages=1, prebuffer=0.3)
    assert not [e for e in tl.events if e.kind == "listener.first_audio"]
    h = History(tl.events)
    w = Window(0.5, h.end)
    verdict = check(h, "dead_air", "max < 1s", w, "during")
    assert verdict.outcome == "fail" and verdict.value >= LISTEN - 0.5, (verdict.outcome, verdict.value)
    assert check(h, "listeners.connected_ratio", "min >= 0.99", w, "during").outcome == "fail"


def test_a_listener_heard_once_its_prebuffer_is_in():
    """Four pages (400 ms) fill a 300 ms prebuffer at once: heard at the first page's arrival time,
    then dry after 400 ms of audio: dead air from about 0.4 s on."""
    tl = _one_listener(pages=4, prebuffer=0.3)
    first = [e.t for e in tl.events if e.kind == "listener.first_audio"]
    assert len(first) == 1
    h = History(tl.events)
    verdict = check(h, "dead_air", "max < 1s", Window(0.0, h.end), "during")
    assert verdict.outcome == "fail" and verdict.value >= LISTEN - 0.4 - 0.5, verdict.value


def test_first_audio_is_when_the_prebuffer_fills_not_the_first_page():
    """One page (100 ms) at once, three more 0.6 s later: playback, so first audio, at about 0.6 s."""
    tl = _one_listener(pages=1, prebuffer=0.3, later=3, pause=0.6)
    connected = next(e.t for e in tl.events if e.kind == "listener.connected")
    first = [e.t for e in tl.events if e.kind == "listener.first_audio"]
    assert len(first) == 1 and first[0] - connected >= 0.55, (first, connected)
