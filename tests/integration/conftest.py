"""Integration tests: a real engine, real Toxiproxy, real Icecast and ffmpeg.

They need `deadair setup` to have run (the README's test command does it). Every test
ends by checking that the stack is as it was: every node running and healthy, every link
enabled, no toxic left.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaos.stack.compose import Stack

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = ROOT / "experiments" / "mic-cut-hold-music.yaml"


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack(deadair_stack: Stack) -> Stack:
    return deadair_stack


@pytest.fixture(autouse=True)
def stack_left_clean(stack: Stack):
    """Every test must leave the stack as it found it. One that does not fails, and the stack is
    repaired so that the tests after it are not failed by it too."""
    yield
    from chaos.faults.flooder import flood_pids

    deadline = time.monotonic() + 30
    while True:
        status = stack.status()
        floods = flood_pids("deadair-flood-")
        if status.healthy and not floods:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    _repair(stack)
    pytest.fail(
        f"stack not restored after the test: nodes {status.nodes}, links {status.links}, flood processes {floods}"
    )


def _repair(stack: Stack) -> None:
    from chaos.faults.flooder import stop_floods

    stop_floods("deadair-flood-")
    network = f"{stack.project}_default"
    for c in stack.containers():
        if not (c.attrs.get("NetworkSettings", {}).get("Networks") or {}):
            stack.docker.networks.get(network).connect(c, aliases=[c.labels["com.docker.compose.service"]])
        if c.status == "paused":
            c.unpause()
        elif c.status != "running":
            c.start()
    stack.toxiproxy().reset()  # every link enabled, every toxic removed
    stack.wait_healthy(time.monotonic() + 60)


@pytest.fixture
def state_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "state"
    monkeypatch.setenv("DEADAIR_STATE", str(d))
    return d


def deadair(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "chaos", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def listen(stack: Stack, count: int, seconds: float, during=None, warmup: float = 15.0):
    """Run `count` listeners that join a fresh live room through room-api; call `during()` (blocking,
    in a thread) once they all hear audio; keep listening `seconds` more. Returns the timeline."""
    import asyncio

    from chaos.listen.listener import ListenerSettings
    from chaos.listen.swarm import Swarm
    from chaos.stack.room import RoomApi
    from chaos.timeline import Timeline

    host, port = stack.link_address("entry-api")
    room = RoomApi(f"http://{host}:{port}").live_room("integration test")
    tl = Timeline()

    async def main():
        swarm = Swarm(ListenerSettings(count=count, join_api=(host, port), room=room), tl)
        await swarm.start()
        heard = await swarm.wait_all_hearing(warmup)
        assert heard == count, f"only {heard} of {count} listeners hear audio"
        tl.record("test.ready", "test")
        if during is not None:
            await asyncio.to_thread(during)
        await asyncio.sleep(seconds)
        await swarm.stop()

    asyncio.run(main())
    return tl


def icecast_stats(stack: Stack, node: str) -> dict:
    """Icecast's own numbers, read on its published port (not through any link)."""
    import requests

    host, port = stack.published(node, 8000)
    sources = requests.get(f"http://{host}:{port}/status-json.xsl", timeout=5).json()["icestats"].get("source", [])
    sources = [sources] if isinstance(sources, dict) else sources
    return {s["listenurl"].rsplit("/", 1)[1]: s for s in sources}


def haproxy_status(stack: Stack) -> dict[str, str]:
    """Server name -> status (UP, DOWN, ...) from HAProxy's stats CSV."""
    import csv
    import io

    import requests

    host, port = stack.published("lb", 8404)
    text = requests.get(f"http://{host}:{port}/stats;csv", timeout=5).text.lstrip("# ")
    return {row["svname"]: row["status"] for row in csv.DictReader(io.StringIO(text)) if row["pxname"] == "edges"}
