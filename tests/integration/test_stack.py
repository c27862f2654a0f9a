"""The whole audio-room stack: the listener path, edges, lb, the mic link, status."""

from __future__ import annotations

import time

import requests
from conftest import deadair, haproxy_status, icecast_stats, listen

from chaos.stack.compose import Stack
from chaos.stack.room import RoomApi
from chaos.stack.toxiproxy import Toxic


def test_every_node_is_healthy_and_every_link_is_declared(stack: Stack):
    status = stack.status()
    assert status.healthy
    assert {n.name for n in status.nodes} == {
        "toxiproxy",
        "origin",
        "edge-1",
        "edge-2",
        "lb",
        "mic",
        "hold-music",
        "redis",
        "room-api",
    }
    assert {link.name for link in status.links} == {
        "mic",
        "hold",
        "relay-1",
        "relay-2",
        "lb-edge-1",
        "lb-edge-2",
        "api-redis",
        "entry-lb",
        "entry-api",
        "entry-origin",
    }


def test_a_listener_joins_through_room_api_and_hears_audio_through_lb_edge_origin(stack: Stack):
    tl = listen(stack, count=6, seconds=2.0)
    joined = tl.of_kind("listener.joined")
    assert len(joined) == 6 and all(e.data["status"] == 200 for e in joined)
    servers = {e.data["server"] for e in tl.of_kind("listener.connected")}
    assert servers == {"edge-1", "edge-2"}  # leastconn spreads them over both edges
    assert {e.data["title"] for e in tl.of_kind("listener.first_audio")} == {"live"}
    # independently: the origin serves exactly the two edge relays, each edge serves listeners
    origin = icecast_stats(stack, "origin")
    assert origin["live"]["listeners"] == 2
    for edge in ("edge-1", "edge-2"):
        assert icecast_stats(stack, edge)["live"]["listener_peak"] >= 1


def test_edge_killed_new_joins_are_served_by_edge_2(stack: Stack):
    edge1 = stack.container("edge-1")
    host, port = stack.link_address("entry-api")
    api = RoomApi(f"http://{host}:{port}")
    room = api.live_room("edge kill")
    try:
        t0 = time.monotonic()
        edge1.kill()
        while haproxy_status(stack)["edge-1"] != "DOWN":
            assert time.monotonic() - t0 < 3.0, "lb did not take edge-1 out"
            time.sleep(0.05)
        taken_out = time.monotonic() - t0
        served = []
        for _ in range(10):
            url = api.join(room)["stream_url"]
            with requests.get(url, stream=True, timeout=5) as r:
                assert r.status_code == 200
                served.append(r.headers.get("X-Served-By"))
        assert served == ["edge-2"] * 10
        assert taken_out < 1.5, f"edge-1 taken out after {taken_out:.2f}s"
    finally:
        edge1.start()
        stack.wait_healthy(time.monotonic() + 30, ["edge-1"])
        deadline = time.monotonic() + 10
        while haproxy_status(stack)["edge-1"] != "UP":
            assert time.monotonic() < deadline
            time.sleep(0.1)


def test_mic_link_down_moves_listeners_on_both_edges_to_hold_and_back(stack: Stack):
    tox = stack.toxiproxy()

    def cut():
        tox.set_enabled("mic", False)
        try:
            time.sleep(4.0)
        finally:
            tox.set_enabled("mic", True)

    tl = listen(stack, count=8, seconds=4.0, during=cut)
    by_server: dict[str, set[str]] = {}
    for e in tl.of_kind("listener.connected"):
        by_server.setdefault(e.data["server"], set()).add(e.src)
    assert set(by_server) == {"edge-1", "edge-2"}
    for lid in {e.src for e in tl.of_kind("listener.connected")}:
        titles = [e.data["to"] for e in tl.of_kind("listener.switch") if e.src == lid]
        assert titles == ["live", "hold", "live"], (lid, titles)


def test_status_shows_active_toxics(stack: Stack):
    tox = stack.toxiproxy()
    tox.add_toxic("relay-1", Toxic("status_probe", "latency", attributes={"latency": 10}))
    try:
        proc = deadair("stack", "status")
        assert proc.returncode == 1  # not healthy while a toxic is active
        assert "toxics: status_probe(latency)" in proc.stdout
        assert "NOT healthy" in proc.stdout
    finally:
        tox.remove_toxic("relay-1", "status_probe")


def test_reusing_a_running_stack_keeps_its_connections(stack: Stack):
    """Creating links must not recreate existing proxies (that drops every connection through them)."""
    before = {e: icecast_stats(stack, e)["live"]["stream_start_iso8601"] for e in ("edge-1", "edge-2")}
    mic_before = icecast_stats(stack, "origin")["live"]["stream_start_iso8601"]
    stack.create_links(deadline=time.monotonic() + 10)
    time.sleep(1.5)
    assert {e: icecast_stats(stack, e)["live"]["stream_start_iso8601"] for e in ("edge-1", "edge-2")} == before
    assert icecast_stats(stack, "origin")["live"]["stream_start_iso8601"] == mic_before
