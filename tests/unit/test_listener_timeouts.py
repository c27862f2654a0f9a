"""A listener gives up on a request that gets no answer after `response_timeout`, as a real player
does (issue 11, point 7): before, it waited for whatever proxy timeout came first on the way
(HAProxy's 10 s), and a harness in the path decided the reconnect time."""

import asyncio

from chaos.listen.listener import ListenerSettings, PlayoutSettings, StreamAddress
from chaos.listen.swarm import Swarm
from chaos.timeline import Timeline


async def _silent_server(accepted: list) -> asyncio.AbstractServer:
    async def handle(reader, writer):  # accepts, reads the request, never answers
        accepted.append(asyncio.get_running_loop().time())
        await reader.read(1024)
        await asyncio.sleep(30)

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_a_request_without_an_answer_is_given_up_after_the_response_timeout():
    async def main():
        accepted: list = []
        server = await _silent_server(accepted)
        port = server.sockets[0].getsockname()[1]
        tl = Timeline()
        settings = ListenerSettings(
            count=1,
            stream=StreamAddress("127.0.0.1", port, "/live"),
            backoff=(0.0, 0.0),
            playout=PlayoutSettings(response_timeout=0.6, read_timeout=10.0),
        )
        swarm = Swarm(settings, tl)
        await swarm.start()
        await asyncio.sleep(1.6)
        await swarm.stop()
        server.close()
        return tl, accepted

    tl, accepted = asyncio.run(main())
    lost = [e for e in tl.events if e.kind == "listener.disconnect" and e.data["reason"] != "closed"]
    connects = [e.t for e in tl.events if e.kind == "listener.connect"]
    assert lost and lost[0].data["reason"] == "response_timeout"
    # the watchdog looks every 0.25 s: given up within (timeout, timeout + 0.25 s + slack]
    assert 0.6 <= lost[0].t - connects[0] <= 0.6 + 0.25 + 0.2, lost[0].t - connects[0]
    assert len(accepted) >= 2, "the listener did not try again"


def test_the_default_response_timeout_is_a_real_players():
    """ExoPlayer's DefaultHttpDataSource waits 8 s (its default read timeout) for an answer."""
    assert PlayoutSettings().response_timeout == 8.0
