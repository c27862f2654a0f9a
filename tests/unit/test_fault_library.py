"""The fault library without a stack: what each fault accepts, and the flood guard as a function."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from chaos.errors import ExperimentError
from chaos.faults import flooder as floods
from chaos.language.loader import load_experiment
from chaos.language.registry import FAULTS
from chaos.stack.addresses import GuardError, guard, guard_url

# The stack as Docker would describe it: nodes and their container addresses.
NODES = {"room-api": "172.18.0.9", "lb": "172.18.0.8", "redis": None}
STACK_IPS = ("172.18.0.9", "172.18.0.8")


@pytest.fixture
def no_network(monkeypatch):
    """The guard must decide without sending anything: no DNS lookup, no socket."""

    def refuse(*a, **k):
        raise AssertionError("the guard touched the network")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "gethostbyname", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize(
    "host,kind",
    [
        ("10.20.30.40", "a private address"),  # another private range
        ("192.168.1.1", "a private address"),
        ("172.18.0.77", "a private address"),  # the stack's own subnet, but no container of it
        ("172.31.255.1", "a private address"),
        ("8.8.8.8", "a public address"),
        ("1.1.1.1", "a public address"),
        ("2001:4860:4860::8888", "a public address"),
        ("169.254.169.254", "a link-local address"),  # a cloud metadata service
        ("224.0.0.1", "a multicast address"),
        ("0.0.0.0", "a private address"),
    ],
)
def test_guard_refuses_addresses_outside_the_stack(no_network, host, kind):
    with pytest.raises(GuardError, match=kind):
        guard(host, NODES, STACK_IPS)


@pytest.mark.parametrize(
    "host", ["example.com", "flood-target.invalid", "lb.example.com", "room-api.", "ROOM-API.evil", "redis2"]
)
def test_guard_refuses_hostnames_outside_the_stack_without_looking_them_up(no_network, host):
    with pytest.raises(GuardError, match="not part of the stack.*never looked up"):
        guard(host, NODES, STACK_IPS)


@pytest.mark.parametrize(
    "host,ip",
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.3.2.1", "127.3.2.1"),
        ("::1", "::1"),
        ("[::1]", "::1"),
        ("localhost", "127.0.0.1"),
        ("LocalHost", "127.0.0.1"),
        ("room-api", "172.18.0.9"),
        ("172.18.0.8", "172.18.0.8"),
    ],
)
def test_guard_allows_loopback_and_the_stacks_containers(no_network, host, ip):
    assert guard(host, NODES, STACK_IPS) == ip


def test_a_node_without_a_running_container_is_refused_at_run_time_and_allowed_in_files(no_network):
    with pytest.raises(GuardError, match="no running container"):
        guard("redis", NODES, STACK_IPS)
    assert guard("redis", NODES, STACK_IPS, require_running=False) == ""


@pytest.mark.parametrize(
    "url,message",
    [
        ("https://127.0.0.1/", "not an http:// URL"),
        ("ftp://lb/", "not an http:// URL"),
        ("http://127.0.0.1:99999/", "bad port"),
        ("http:///x", "not an http:// URL"),
        ("http://10.0.0.1:8080/rooms", "private address"),
    ],
)
def test_guard_url(no_network, url, message):
    with pytest.raises(GuardError, match=message):
        guard_url(url, NODES, STACK_IPS)


def test_guard_url_gives_address_port_and_path(no_network):
    assert guard_url("http://room-api:8080/rooms?x=1", NODES, STACK_IPS) == ("172.18.0.9", 8080, "/rooms?x=1")
    assert guard_url("http://localhost/", NODES, STACK_IPS) == ("127.0.0.1", 80, "/")


def test_the_flood_process_checks_the_guard_and_its_bounds_again(no_network):
    spec = floods.FloodSpec(kind="http", ip="10.1.1.1", port=80, path="/", rate=10, count=5, duration=1)
    with pytest.raises(GuardError):
        spec.check()
    for bad in (
        dict(rate=floods.MAX_RATE + 1),
        dict(count=floods.MAX_COUNT + 1),
        dict(duration=0),
        dict(duration=floods.MAX_DURATION + 1),
    ):
        spec = floods.FloodSpec(
            **{**dict(kind="http", ip="127.0.0.1", port=80, path="/", rate=10, count=5, duration=1), **bad}
        )
        with pytest.raises(GuardError, match="bounds"):
            spec.check()


def test_a_refused_flood_process_sends_nothing_and_says_why(no_network, tmp_path):
    out = tmp_path / "r.json"
    spec = floods.FloodSpec(
        kind="http", ip="8.8.8.8", port=80, path="/", rate=10, count=5, duration=1, results=str(out)
    )
    assert floods.main([__import__("json").dumps(spec.__dict__)]) == 2
    assert "public address" in out.read_text()


# -- what each fault accepts, checked when the experiment is loaded ---------------------------------

STACK = Path(__file__).resolve().parents[2] / "compose" / "audio-room"


def problems(tmp_path: Path, step: str) -> list[str]:
    f = tmp_path / "e.yaml"
    f.write_text(
        f"title: t\nstack: {STACK}\nsteady_state: [{{measure: dead_air, expect: '< 5s'}}]\nmethod:\n  - {step}\n"
    )
    try:
        load_experiment(f)
    except ExperimentError as exc:
        return [p.message for p in exc.problems]
    return []


@pytest.mark.parametrize(
    "step",
    [
        "{at: 1s, fault: link.partition, target: relay-1, for: 2s}",
        "{at: 1s, fault: link.flap, target: entry-api, for: 4s, with: {down: 300ms, up: 1s}}",
        "{at: 1s, fault: node.pause, target: edge-1, for: 2s}",
        "{at: 1s, fault: node.restart, target: room-api}",
        "{at: 1s, fault: node.restart, target: room-api, for: 3s, with: {grace: 0s}}",
        "{at: 1s, fault: node.disconnect, target: edge-2, for: 2s}",
        "{at: 1s, fault: node.kill, target: {one_of: [edge-1, edge-2]}, with: {signal: term}}",
        "{at: 1s, fault: mic.stall, for: 5s}",
        "{at: 1s, fault: mic.degrade, for: 5s, with: {latency: 300ms, jitter: 80ms, rate: 6KB/s}}",
        "{at: 1s, fault: mic.flap, for: 9s}",
        "{at: 1s, fault: mic.reset, for: 2s}",
        "{at: 1s, fault: mic.crash, for: 2s}",
        "{at: 1s, fault: mic.mute, for: 4s}",
        "{at: 1s, fault: flood.joins, for: 10s, with: {rate: 100/s, count: 1000}}",
        "{at: 1s, fault: flood.http, for: 10s, with: {rate: 500/s, count: 5000, path: /rooms, method: post}}",
        "{at: 1s, fault: flood.http, target: room-api, for: 10s, with: {rate: 50/s, count: 100, port: 8080}}",
        "{at: 1s, fault: flood.http, for: 10s, with: {rate: 5/s, count: 10, url: 'http://localhost:8080/health'}}",
        "{at: 1s, fault: flood.connections, for: 10s, with: {rate: 1000/s, count: 5000, mode: idle}}",
    ],
)
def test_valid_fault_steps(tmp_path, step):
    assert problems(tmp_path, step) == []


@pytest.mark.parametrize(
    "step,message",
    [
        ("{at: 1s, fault: link.flap, target: mic}", "acts over time: give it a duration"),
        ("{at: 1s, fault: link.flap, target: mic, for: 2s, with: {down: 10ms}}", "at least 50ms"),
        ("{at: 1s, fault: mic.degrade, for: 5s}", "needs at least one of latency, jitter, rate"),
        ("{at: 1s, fault: flood.http, for: 5s, with: {rate: 10/s}}", "needs parameter 'count'"),
        ("{at: 1s, fault: flood.http, with: {rate: 10/s, count: 5}}", "acts over time"),
        ("{at: 1s, fault: flood.http, for: 5s, with: {rate: 99999/s, count: 5}}", "not a rate between 0 and 5000/s"),
        ("{at: 1s, fault: flood.http, for: 5s, with: {rate: 10/s, count: 50000}}", "count: at most 20000"),
        ("{at: 1s, fault: flood.http, target: room-api, for: 5s, with: {rate: 10/s, count: 5}}", "needs a port"),
        (
            "{at: 1s, fault: flood.http, target: nowhere, for: 5s, with: {rate: 10/s, count: 5}}",
            "neither a link nor a node",
        ),
        (
            "{at: 1s, fault: flood.http, for: 5s, with: {rate: 10/s, count: 5, url: 'http://example.com/'}}",
            "not part of the stack",
        ),
        (
            "{at: 1s, fault: flood.joins, for: 5s, with: {rate: 10/s, count: 5, url: 'http://192.168.0.10/'}}",
            "private address",
        ),
        (
            "{at: 1s, fault: flood.connections, for: 5s, with: {rate: 10/s, count: 5, mode: loud}}",
            "not one of stream, idle",
        ),
        ("{at: 1s, fault: node.pause, target: mic-2}", "not a node"),
        ("{at: 1s, fault: link.partition, target: mic, with: {toxicity: 0.5}}", "takes no parameters"),
    ],
)
def test_invalid_fault_steps(tmp_path, step, message):
    found = problems(tmp_path, step)
    assert any(message in p for p in found), found


def test_every_fault_has_a_summary_and_a_readme_entry():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name, cls in FAULTS.items():
        assert cls.summary, name
        assert f"`{name}`" in readme, f"{name} is not documented in the README"


def test_sweep_finds_a_flood_process_started_by_the_version_before_the_subpackages():
    """Its command line says `chaos.floods`, as a ledger of that version expects."""
    import subprocess
    import sys

    flood_id = f"deadair-flood-old-{os.getpid()}"
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "chaos.floods", flood_id])
    try:
        deadline = time.monotonic() + 5
        while not floods.flood_pids(flood_id) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert floods.flood_pids(flood_id) == [proc.pid]
        floods.stop_floods(flood_id, grace=2.0)
        assert proc.wait(timeout=5) is not None and not floods.flood_pids(flood_id)
    finally:
        proc.kill()


def test_a_stopped_flood_writes_its_numbers_before_it_goes(tmp_path):
    """SIGTERM: the numbers are written at once and the process exits, leaving its sockets to the
    kernel (a stop must not lose them to a slow teardown of thousands of connections)."""
    import asyncio
    import json
    import signal
    import threading

    held: list = []
    ready = threading.Event()
    port: list[int] = []

    def serve() -> None:
        async def main() -> None:
            async def on(reader, writer) -> None:
                held.append(writer)  # accept and never answer: the requests stay in flight
                await asyncio.sleep(60)

            srv = await asyncio.start_server(on, "127.0.0.1", 0)
            port.append(srv.sockets[0].getsockname()[1])
            ready.set()
            await asyncio.sleep(60)

        asyncio.run(main())

    threading.Thread(target=serve, daemon=True).start()
    assert ready.wait(10)
    out = tmp_path / "r.json"
    spec = floods.FloodSpec(
        kind="http",
        ip="127.0.0.1",
        port=port[0],
        path="/",
        rate=500,
        count=5000,
        duration=60,
        concurrency=50,
        results=str(out),
        id=f"deadair-flood-term-{os.getpid()}",
    )
    proc = floods.start(spec)
    try:
        deadline = time.monotonic() + 30
        while len(held) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(held) >= 50
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        numbers = json.loads(out.read_text())
        assert numbers["stopped"] == "SIGTERM" and numbers["sent"] == 50, numbers  # the launcher waits for a slot
    finally:
        proc.kill()


def test_stopping_a_flood_does_not_stop_one_whose_id_it_prefixes():
    """A repeated flood step's first occurrence (`..._3_1`) is a prefix of its tenth (`..._3_10`):
    matched as a substring, reverting the first SIGTERMed the tenth as well."""
    import json
    import subprocess
    import sys

    base = f"deadair-flood-prefix-{os.getpid()}_3_"
    procs = {
        n: subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import time; time.sleep(30)",
                floods.MARKER,
                json.dumps({"id": base + n, "rate": 1}),
            ]
        )
        for n in ("1", "10")
    }
    try:
        deadline = time.monotonic() + 5
        while not (floods.flood_pids(base + "1") and floods.flood_pids(base + "10")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert floods.flood_pids(base + "1") == [procs["1"].pid]
        assert floods.flood_pids(base + "10") == [procs["10"].pid]
        floods.stop_floods(base + "1", grace=2.0)
        assert procs["1"].wait(timeout=5) is not None
        assert procs["10"].poll() is None and floods.flood_pids(base + "10") == [procs["10"].pid]
    finally:
        for p in procs.values():
            p.kill()
