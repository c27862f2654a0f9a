"""room-api against bad input and a missing Redis: a 4xx or 503 with a JSON error, never a 500 or a hang."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from chaos.stack.compose import Stack


@pytest.fixture
def api(stack: Stack) -> str:
    host, port = stack.link_address("entry-api")
    return f"http://{host}:{port}"


def _room(api: str, state: str = "created") -> str:
    rid = requests.post(f"{api}/rooms", json={"title": "t", "host": "h"}, timeout=5).json()["id"]
    for action in {"created": [], "open": ["open"], "live": ["open", "start"], "ended": ["end"]}[state]:
        requests.post(f"{api}/rooms/{rid}/{action}", timeout=5).raise_for_status()
    return rid


def _error(r: requests.Response, status: int, fragment: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["status"] == status and fragment in body["error"], body


def test_room_lifecycle_roster_and_counts(api):
    rid = _room(api)
    _error(requests.post(f"{api}/rooms/{rid}/join", json={}, timeout=5), 409, "room is created")
    assert requests.post(f"{api}/rooms/{rid}/open", timeout=5).json()["state"] == "open"
    j = requests.post(f"{api}/rooms/{rid}/join", json={"user": "u1"}, timeout=5).json()
    assert j["stream_url"].startswith("http://127.0.0.1:") and j["stream_url"].endswith("/live")
    assert requests.post(f"{api}/rooms/{rid}/heartbeat", json={"listener_id": j["listener_id"]}, timeout=5).ok
    assert requests.get(f"{api}/rooms/{rid}/listeners", timeout=5).json()["count"] == 1
    roster = requests.post(f"{api}/rooms/{rid}/speakers", json={"user": "guest"}, timeout=5).json()["speakers"]
    assert roster == [{"user": "guest", "role": "speaker"}, {"user": "h", "role": "host"}]
    assert requests.delete(f"{api}/rooms/{rid}/speakers/guest", timeout=5).ok
    assert requests.post(f"{api}/rooms/{rid}/leave", json={"listener_id": j["listener_id"]}, timeout=5).ok
    assert requests.get(f"{api}/rooms/{rid}/listeners", timeout=5).json()["count"] == 0
    assert requests.post(f"{api}/rooms/{rid}/start", timeout=5).json()["state"] == "live"
    assert requests.post(f"{api}/rooms/{rid}/end", timeout=5).json()["state"] == "ended"


def test_bad_input_gets_4xx_json_never_500(api):
    rid = _room(api, "live")
    before = requests.get(f"{api}/stats", timeout=5).json()["errors_5xx"]
    post = lambda path, **kw: requests.post(f"{api}{path}", timeout=5, **kw)  # noqa: E731
    _error(
        post(f"/rooms/{rid}/join", data=b"{not json", headers={"Content-Type": "application/json"}),
        400,
        "malformed JSON",
    )
    _error(
        post(f"/rooms/{rid}/join", data=b"\xff\xfe\x00", headers={"Content-Type": "application/json"}),
        400,
        "malformed JSON",
    )
    _error(post(f"/rooms/{rid}/join", json=[1, 2]), 400, "expected a JSON object")
    _error(post("/rooms", json={"title": "x"}), 400, "missing field 'host'")
    _error(post("/rooms", json={"title": 5, "host": "h"}), 400, "'title' must be a non-empty string")
    _error(post("/rooms/nope/join", json={}), 404, "no room 'nope'")
    _error(post("/rooms/../../etc/join", json={}), 404, "")
    _error(requests.get(f"{api}/rooms/{'x' * 300}", timeout=5), 404, "no room")
    _error(post(f"/rooms/{rid}/join", data=b"{" + b" " * 20000 + b"}"), 413, "over 16384 bytes")
    r = requests.put(f"{api}/rooms/{rid}/join", json={}, timeout=5)
    _error(r, 405, "method PUT not allowed")
    assert "POST" in r.headers["Allow"]
    _error(requests.get(f"{api}/no/such/path", timeout=5), 404, "no such resource")
    _error(post(f"/rooms/{rid}/open"), 409, "cannot open a room that is live")
    _error(post(f"/rooms/{rid}/leave", json={"listener_id": "ghost"}), 404, "no listener 'ghost'")
    _error(post(f"/rooms/{rid}/speakers", json={"user": "a", "role": "king"}), 400, "'host' or 'speaker'")
    _error(post(f"/rooms/{_room(api, 'ended')}/join", json={}), 409, "room is ended")
    # a raw request that is not HTTP at all: a JSON 400 and the service lives on
    host, port = api.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        s.sendall(b"\x16\x03\x01garbage\r\n\r\n")
        raw = b""
        while chunk := s.recv(4096):
            raw += chunk
    head, _, payload = raw.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split()[1] == b"400"
    assert b"application/json" in head and b'"malformed HTTP request"' in payload
    stats = requests.get(f"{api}/stats", timeout=5).json()
    assert stats["errors_5xx"] == before
    assert requests.get(f"{api}/health", timeout=5).status_code == 200


@pytest.mark.parametrize("how", ["link down", "redis paused"])
def test_redis_down_makes_join_fail_fast_with_503(stack: Stack, api, how):
    rid = _room(api, "live")
    tox, redis = stack.toxiproxy(), stack.container("redis")
    if how == "link down":
        tox.set_enabled("api-redis", False)
    else:
        redis.pause()
    try:
        for _ in range(3):
            t0 = time.monotonic()
            r = requests.post(f"{api}/rooms/{rid}/join", json={}, timeout=10)
            elapsed = time.monotonic() - t0
            _error(r, 503, "room store unavailable")
            assert elapsed < 1.5, f"join took {elapsed:.2f}s to fail"
        assert requests.get(f"{api}/health", timeout=5).status_code == 503
    finally:
        if how == "link down":
            tox.set_enabled("api-redis", True)
        else:
            redis.unpause()
    deadline = time.monotonic() + 10
    while requests.post(f"{api}/rooms/{rid}/join", json={}, timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "room-api did not recover after Redis came back"
        time.sleep(0.2)
