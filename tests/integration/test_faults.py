"""The fault library against the real stack: each fault's effect is visible where it should be,
and after rollback (through the ledger, verified) the stack is back as it was. The autouse
fixture `stack_left_clean` (conftest) then checks every node running, healthy and on its
network, every link enabled without toxics, and no flood process left."""

from __future__ import annotations

import csv
import io
import json
import socket
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests
import yaml
from conftest import ROOT, deadair, haproxy_status, icecast_stats

from chaos.checkers.history import History, Window
from chaos.checkers.verdicts import check
from chaos.faults import flooder as floods
from chaos.faults.base import Fault, make_fault
from chaos.faults.ledger import Ledger
from chaos.language.loader import load_experiment
from chaos.runner.run import RunOptions, run
from chaos.stack.compose import Stack
from chaos.timeline import Timeline

STACK = str(ROOT / "compose" / "audio-room")


@contextmanager
def fault(
    stack: Stack, name: str, target: str | None = None, duration: float | None = None, **params
) -> Iterator[Fault]:
    """Apply a fault as the runner does (undo on the ledger first) and revert it through the ledger."""
    f = make_fault(stack, name, target, params, uuid.uuid4().hex[:6], duration)
    led = Ledger()
    f.prepare()
    entry = led.intend(f.describe(), f.undo())
    f.apply()
    led.mark(entry, "applied")
    try:
        yield f
    finally:
        err = led.revert_entry(led.entries[entry])
        led.close()
        assert err is None, err


def api(stack: Stack) -> str:
    host, port = stack.link_address("entry-api")
    return f"http://{host}:{port}"


def first_byte(url: str, timeout: float = 5.0) -> float:
    """Seconds from sending a GET on a new connection to the first byte of the answer."""
    host, port = url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        t = time.monotonic()
        s.sendall(f"GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        assert s.recv(1), "closed without an answer"
        return time.monotonic() - t


def health_ok(url: str, timeout: float = 2.0) -> bool:
    try:
        return requests.get(url + "/health", timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def wait_for(pred, timeout: float, what: str) -> float:
    t0 = time.monotonic()
    while not pred():
        assert time.monotonic() - t0 < timeout, f"{what}: not within {timeout}s"
        time.sleep(0.05)
    return time.monotonic() - t0


# -- network -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", ["downstream", "upstream", "both"])
def test_latency_adds_at_least_the_delay_to_first_byte(stack: Stack, stream: str):
    url = api(stack)
    before = statistics.median(first_byte(url) for _ in range(5))
    with fault(stack, "link.latency", "entry-api", latency="300ms", jitter="20ms", stream=stream):
        during = statistics.median(first_byte(url) for _ in range(5))
    after = statistics.median(first_byte(url) for _ in range(5))
    expected = 0.3 * (2 if stream == "both" else 1) - 0.02
    print(f"\nlatency {stream}: first byte {before * 1000:.1f} -> {during * 1000:.1f} -> {after * 1000:.1f} ms")
    assert during - before >= expected, (before, during)
    assert after < before + 0.1


def test_latency_with_toxicity_zero_changes_nothing(stack: Stack):
    url = api(stack)
    with fault(stack, "link.latency", "entry-api", latency="500ms", toxicity=0.0):
        assert max(first_byte(url) for _ in range(5)) < 0.3


def stream_bytes(stack: Stack, seconds: float, link: str = "entry-lb") -> tuple[int, bool]:
    """Bytes of /live read through a link in `seconds`, and whether the server closed the stream."""
    host, port = stack.link_address(link)
    got, closed = 0, False
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            s.settimeout(max(0.01, end - time.monotonic()))
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            got += len(chunk)
    return got, closed


@pytest.mark.rollback
def test_bandwidth_caps_the_stream(stack: Stack):
    free, _ = stream_bytes(stack, 3)
    with fault(stack, "link.bandwidth", "entry-lb", rate="2KB/s"):
        capped, _ = stream_bytes(stack, 3)
    print(f"\n3 s of /live: {free} bytes free, {capped} bytes at 2 KB/s")
    assert capped <= 3 * 2048 + 4096, capped  # the toxic's first chunk may pass whole
    assert free > 3 * capped


def test_limit_data_closes_the_connection_after_the_bytes(stack: Stack):
    with fault(stack, "link.limit_data", "entry-lb", bytes="10KB"):
        got, closed = stream_bytes(stack, 5)
    assert closed and got <= 10 * 1024, (got, closed)
    got, closed = stream_bytes(stack, 2)
    assert not closed and got > 10 * 1024


def raw_request(url: str, timeout: float = 5.0, close: bool = True) -> tuple[bytes, float, str]:
    """Send one GET /health (Connection: close unless told); (answer, seconds to EOF or error, how it ended)."""
    host, port = url.split("//")[1].split(":")
    data = b""
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        t = time.monotonic()
        connection = "close" if close else "keep-alive"
        s.sendall(f"GET /health HTTP/1.1\r\nHost: {host}\r\nConnection: {connection}\r\n\r\n".encode())
        chunks = 0
        while True:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                return data, time.monotonic() - t, "timeout"
            except ConnectionResetError:
                return data, time.monotonic() - t, "reset"
            if not chunk:
                return data, time.monotonic() - t, f"eof after {chunks} chunks"
            chunks += 1
            data += chunk


def test_slow_close_delays_the_close(stack: Stack):
    url = api(stack)
    _, quick, _ = raw_request(url)
    with fault(stack, "link.slow_close", "entry-api", delay="1s"):
        answer, slow, how = raw_request(url)
    assert b"200" in answer.split(b"\r\n")[0]
    assert slow >= 0.95 and quick < 0.5, (quick, slow, how)


def test_timeout_answers_nothing_and_closes_after_the_timeout(stack: Stack):
    with fault(stack, "link.timeout", "entry-api", timeout="1s"):  # keep-alive: the server does not close
        answer, took, how = raw_request(api(stack), close=False)
    assert answer == b"" and how.startswith("eof") and 0.9 <= took < 3, (answer, took, how)


def test_reset_peer_resets(stack: Stack):
    with fault(stack, "link.reset_peer", "entry-api", stream="upstream"):
        answer, took, how = raw_request(api(stack))
    assert answer == b"" and how in ("reset", "eof after 0 chunks") and took < 1, (answer, took, how)


def test_slicer_cuts_the_answer_into_small_delayed_pieces(stack: Stack):
    url = api(stack)
    whole, quick, how0 = raw_request(url)
    with fault(stack, "link.slicer", "entry-api", average_size=8, delay="5ms"):
        sliced, slow, how = raw_request(url)
    chunks = int(how.split()[2])
    assert sliced.split(b"\r\n")[0] == whole.split(b"\r\n")[0]
    assert chunks >= len(sliced) // 16 and slow > quick, (chunks, len(sliced), how0, quick, slow)


def test_down_refuses_and_partition_swallows(stack: Stack):
    """link.down: the far side says no at once. link.partition: nothing comes back and nothing is
    closed, both ways; only the client's own timeout ends the wait."""
    url = api(stack)
    with fault(stack, "link.down", "entry-api"):
        t = time.monotonic()
        with pytest.raises(requests.ConnectionError):
            requests.get(url + "/health", timeout=5)
        refused = time.monotonic() - t
    with fault(stack, "link.partition", "entry-api"):
        answer, took, how = raw_request(url, timeout=2.0)
    print(f"\nlink.down refused in {refused * 1000:.1f} ms; link.partition: {how} after {took:.2f}s")
    assert refused < 0.5
    assert answer == b"" and how == "timeout" and took >= 1.9
    assert health_ok(url)


def test_flap_takes_the_link_down_and_up_on_its_schedule(stack: Stack):
    url = api(stack)
    states: list[tuple[float, bool]] = []
    with fault(stack, "link.flap", "entry-api", duration=3.0, down="500ms", up="500ms"):
        t0 = time.monotonic()
        while time.monotonic() - t0 < 2.9:
            states.append((time.monotonic() - t0, health_ok(url, timeout=0.3)))
            time.sleep(0.05)
    changes = [t for (t, a), (_, b) in zip(states, states[1:]) if a != b]
    print(f"\nflap 500ms/500ms: state changes at {[round(c, 2) for c in changes]}")
    assert not states[0][1], "the first outage starts with the fault"
    assert len(changes) >= 4, changes
    assert all(0.3 < b - a < 0.8 for a, b in zip(changes, changes[1:])), changes
    assert health_ok(url)


# -- nodes ---------------------------------------------------------------------------------------


def test_pause_freezes_an_edge_and_lb_takes_it_out(stack: Stack):
    with fault(stack, "node.pause", "edge-2"):
        assert stack.container("edge-2").status == "paused"
        took = wait_for(lambda: haproxy_status(stack)["edge-2"] == "DOWN", 3, "edge-2 out of lb")
    print(f"\npaused edge-2 out of lb after {took:.2f}s")
    wait_for(lambda: haproxy_status(stack)["edge-2"] == "UP", 10, "edge-2 back in lb")


def test_restart_restarts_and_with_for_stays_down(stack: Stack):
    before = stack.container("room-api").attrs["State"]["StartedAt"]
    with fault(stack, "node.restart", "room-api"):
        pass  # instantaneous: stopped and started by apply
    assert stack.container("room-api").attrs["State"]["StartedAt"] != before
    assert health_ok(api(stack))
    with fault(stack, "node.restart", "redis", duration=2.0):
        assert stack.container("redis").status == "exited"
        r = requests.post(api(stack) + "/rooms", json={"title": "t", "host": "h"}, timeout=5)
        assert r.status_code == 503, r.text
    r = requests.post(api(stack) + "/rooms", json={"title": "t", "host": "h"}, timeout=5)
    assert r.status_code in (200, 201), r.text


def test_stop_keeps_a_node_down_until_rollback(stack: Stack):
    with fault(stack, "node.stop", "redis"):
        assert stack.container("redis").status == "exited"
        r = requests.post(api(stack) + "/rooms", json={"title": "t", "host": "h"}, timeout=5)
        assert r.status_code == 503
    assert stack.container("redis").status == "running"


def test_disconnect_cuts_an_edge_off_and_reconnect_restores_its_address(stack: Stack):
    c = stack.container("edge-1")
    [(net, ep)] = c.attrs["NetworkSettings"]["Networks"].items()
    with fault(stack, "node.disconnect", "edge-1"):
        assert not stack.container("edge-1").attrs["NetworkSettings"]["Networks"]
        took = wait_for(lambda: haproxy_status(stack)["edge-1"] == "DOWN", 3, "edge-1 out of lb")
        assert stack.container("edge-1").status == "running"  # alive, only unreachable
        assert not stack.status().healthy  # `deadair stack status` says it is off its networks
    ep2 = stack.container("edge-1").attrs["NetworkSettings"]["Networks"][net]
    assert ep2["IPAddress"] == ep["IPAddress"] and "edge-1" in ep2["Aliases"]
    print(f"\ndisconnected edge-1 out of lb after {took:.2f}s; back at {ep2['IPAddress']}")
    wait_for(lambda: haproxy_status(stack)["edge-1"] == "UP", 10, "edge-1 back in lb")


def experiment(tmp_path: Path, method: list, count: int = 6, ears: int = 0, **extra) -> Path:
    doc = {
        "title": "fault test",
        "stack": STACK,
        "seed": extra.pop("seed", 1),
        "listeners": {"count": count, "ears": ears, "backoff": ["250ms"] * 80},
        "windows": {"gate": "2s", "recovery": "4s"},
        "steady_state": [{"measure": "dead_air.max", "expect": "< 60s", "when": ["before"]}],
        "method": method,
        **extra,
    }
    f = tmp_path / "exp.yaml"
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    return f


def run_file(f: Path, tmp_path: Path) -> tuple[History, dict]:
    result = run(load_experiment(f), RunOptions(journal_dir=tmp_path / "runs", progress=print))
    assert result.exit_code in (0, 1), result.error
    summary = json.loads(result.summary.read_text())
    return History(Timeline.read_journal(result.journal).events), summary


def test_kill_with_a_signal_among_a_seeded_set_drops_that_edges_listeners(stack: Stack, tmp_path, state_dir):
    f = experiment(
        tmp_path,
        [
            {
                "at": "1s",
                "fault": "node.kill",
                "target": {"one_of": ["edge-1", "edge-2"]},
                "with": {"signal": "SIGKILL"},
                "for": "2s",
            }
        ],
        seed=11,
    )
    plan = deadair("plan", str(f))
    h, summary = run_file(f, tmp_path)
    [span] = h.faults.values()
    assert span.target in plan.stdout and span.target in summary["plan"][0]["what"]
    on_it = {
        e.src
        for e in h.events
        if e.kind == "listener.connected" and e.data.get("server") == span.target and e.t < span.start
    }
    dropped = {e.src for e in h.events if e.kind == "listener.disconnect" and span.start <= e.t <= span.end + 1}
    print(f"\nseed 11 chose {span.target}: {len(on_it)} listeners on it, {len(dropped)} dropped")
    assert on_it and on_it <= dropped
    assert dropped <= on_it  # the other edge's listeners did not notice
    reconnect = check(h, "reconnect_time", "p95 < 5s", Window(span.start, span.end + 4), "test")
    assert reconnect.passed, reconnect


# -- the microphone path (listeners through room-api and lb) ---------------------------------------


def switches(h: History, w: Window) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in h.events:
        if e.kind == "listener.switch" and w.start <= e.t <= w.end:
            out.setdefault(e.src, []).append(e.data["to"])
    return out


@pytest.mark.parametrize(
    "name,params,hold_within",
    [
        ("mic.stall", {}, 4.0),  # Icecast's source-timeout is 2 s
        ("mic.reset", {}, 1.5),
        ("mic.crash", {}, 1.5),
    ],
)
def test_mic_path_fault_sends_listeners_to_hold_and_back(stack: Stack, tmp_path, state_dir, name, params, hold_within):
    f = experiment(tmp_path, [{"at": "1s", "fault": name, "for": "5s", **({"with": params} if params else {})}])
    h, summary = run_file(f, tmp_path)
    [span] = h.faults.values()
    onset = check(h, "hold_music.onset", f"max < {hold_within}s", Window(span.start, span.end), "test")
    resume = check(h, "live.resume", "max < 5s", Window(span.end, span.end + 4), "test")
    print(f"\n{name}: hold onset max {onset.value:.2f}s, live resume max {resume.value:.2f}s")
    assert onset.passed and onset.summary["count"] == 6, onset
    assert resume.passed and resume.summary["count"] == 6, resume


def test_mic_degrade_starves_listeners_without_hold_music(stack: Stack, tmp_path, state_dir):
    """An uplink at an eighth of the speaker's rate: the source trickles, so Icecast keeps it (no
    hold music) and listeners hear dead air until the cap is lifted."""
    f = experiment(tmp_path, [{"at": "1s", "fault": "mic.degrade", "for": "5s", "with": {"rate": "1KB/s"}}], count=4)
    h, _ = run_file(f, tmp_path)
    [span] = h.faults.values()
    w = Window(span.start, span.end + 1)
    starved = check(h, "stall_ratio", "p50 < 1", Window(span.start + 1, span.end), "test")
    after = [e for e in h.events if e.kind == "listener.stall_end" and e.t > span.end]
    print(
        f"\nmic.degrade 1KB/s for 5 s: median stall ratio {starved.value:.2f} (many short stalls); "
        f"switches {switches(h, w)}"
    )
    assert starved.value >= 0.5, starved
    assert not switches(h, w)
    assert {e.src for e in after} == set(h.listeners), "audio came back to every listener after the cap"


def test_mic_flap_switches_between_live_and_hold(stack: Stack, tmp_path, state_dir):
    f = experiment(
        tmp_path, [{"at": "1s", "fault": "mic.flap", "for": "9s", "with": {"down": "3s", "up": "3s"}}], count=4
    )
    h, _ = run_file(f, tmp_path)
    [span] = h.faults.values()
    seen = switches(h, Window(span.start, span.end + 4))
    print(f"\nmic.flap 3s/3s: {seen}")
    assert len(seen) == 4
    for titles in seen.values():
        assert titles[:4] == ["hold", "live", "hold", "live"], titles


def test_mic_mute_is_dead_air_only_decoding_listeners_hear(stack: Stack, tmp_path, state_dir):
    f = experiment(tmp_path, [{"at": "1s", "fault": "mic.mute", "for": "4s"}], count=4, ears=2)
    h, _ = run_file(f, tmp_path)
    [span] = h.faults.values()
    w = Window(span.start, span.end + 2)
    silence = check(h, "silence", "max < 60s", w, "test")
    stalls = [e for e in h.events if e.kind == "listener.stall_start" and w.start <= e.t <= w.end]
    print(
        f"\nmic.mute 4 s: ears heard silence max {silence.value:.2f}s; byte-level stalls {len(stalls)}; "
        f"switches {switches(h, w)}"
    )
    assert silence.summary["count"] >= 2 and 3.0 <= silence.value <= 5.0, silence
    assert not stalls and not switches(h, w), "the stream itself went on"


# -- floods --------------------------------------------------------------------------------------


def room_api_latency(stack: Stack, n: int = 20) -> float:
    host, port = stack.published("room-api", 8080)  # past the entry-api link: the service itself
    out = []
    for _ in range(n):
        t = time.monotonic()
        requests.get(f"http://{host}:{port}/health", timeout=10)
        out.append(time.monotonic() - t)
        time.sleep(0.03)
    return statistics.median(out)


def room_api_requests(stack: Stack) -> int:
    host, port = stack.published("room-api", 8080)
    return int(requests.get(f"http://{host}:{port}/stats", timeout=10).json()["requests"])


def test_http_flood_reaches_room_api_within_its_bounds_and_stops(stack: Stack):
    """What the fault promises, whatever the CPU has to spare: requests reach room-api (its own
    counter says so), never more than `count`, and stop at the deadline. How much latency they add
    depends on how much CPU the flood's client gets; it is printed, not asserted (CI saw a busy
    machine's client send 547 of 8,000 in 5 s)."""
    before, served0 = room_api_latency(stack), room_api_requests(stack)
    with fault(stack, "flood.http", duration=5.0, rate="2000/s", count=8000, concurrency=256) as f:
        time.sleep(1.0)
        during = room_api_latency(stack)
    report = f.report()
    served = room_api_requests(stack) - served0
    after = room_api_latency(stack)
    print(
        f"\nhttp flood 2000/s: room-api median latency {before * 1000:.1f} -> {during * 1000:.1f} -> "
        f"{after * 1000:.1f} ms; flood: {report['sent']} sent, {report['ok']} ok; room-api served {served}"
    )
    assert report["ok"] > 100 and report["sent"] <= 8000
    assert served >= report["ok"], "room-api did not see the requests the flood says it answered"
    assert not floods.flood_pids(f.flood_id())


def lb_sessions(stack: Stack) -> int:
    host, port = stack.published("lb", 8404)
    text = requests.get(f"http://{host}:{port}/stats;csv", timeout=5).text.lstrip("# ")
    return sum(
        int(r["scur"])
        for r in csv.DictReader(io.StringIO(text))
        if r["pxname"] == "listeners" and r["svname"] == "FRONTEND"
    )


def edge_listeners(stack: Stack) -> int:
    return sum(icecast_stats(stack, e)["live"]["listeners"] for e in ("edge-1", "edge-2"))


def test_join_storm_through_the_runner_fills_the_edges_and_reports(stack: Stack, tmp_path, state_dir):
    f = experiment(
        # 450 joins at 150/s take 3 s; the step lasts four times that, so a flooder the CPU slows
        # down (CI on a busy machine: 392 sent in 6 s) still sends them all
        tmp_path,
        [{"at": "1s", "fault": "flood.joins", "for": "12s", "with": {"rate": "150/s", "count": 450}}],
        count=2,
    )
    h, summary = run_file(f, tmp_path)
    [report] = [e for e in h.events if e.kind == "fault.report"]
    [span] = h.faults.values()
    edges = [
        max(
            e.data.get("listeners", 0)
            for e in h.events
            if e.kind == "server.sample" and e.src == node and span.start <= e.t <= span.end
        )
        for node in ("edge-1", "edge-2")
    ]
    print(
        f"\njoin storm 150/s x 450: {report.data['ok']} joined, join p95 {report.data['latency']['p95']}s, "
        f"edge listeners at most {edges}"
    )
    # the storm's contract: its listeners joined and streamed at once (its own count of open streams);
    # how many of them the once-a-second server samples catch on the edges depends on the CPU
    # (CI on a busy machine: 255 of 450 caught), so that is printed, and must only be seen at all
    assert report.data["ok"] >= 400 and report.data["max_open"] >= 400, report.data
    assert sum(edges) > 0
    wait_for(lambda: edge_listeners(stack) <= 2, 10, "the storm's listeners gone")


def test_connection_flood_fills_lb_and_stops_by_itself(stack: Stack, state_dir):
    """Not reverted early: the flood's own deadline ends it (as after a SIGKILL of the runner)."""
    f = make_fault(stack, "flood.connections", None, {"rate": "1000/s", "count": 1500, "mode": "idle"}, "selfstop", 3.0)
    f.prepare()
    f.apply()
    try:
        during, deadline = 0, time.monotonic() + 2.8  # the most lb held at once before the flood's end
        while time.monotonic() < deadline and during < 1400:
            during = max(during, lb_sessions(stack))
            time.sleep(0.1)
        took = wait_for(lambda: not floods.flood_pids(f.flood_id()), 8, "the flood stopping by itself")
    finally:
        floods.stop_floods(f.flood_id())
    report = f.report()
    print(f"\nconnection flood 1500: lb sessions {during}; stopped by itself {took:.1f}s after")
    # the flood held its connections (its own count); how many lb has accepted by a given moment
    # depends on the CPU lb gets (CI on a busy machine: 609 of 1,500), so lb must only see them
    assert report["max_open"] >= 1400 and during > 0, (during, report)
    assert report["stopped"] == "deadline"  # its own deadline, not a signal
    wait_for(lambda: lb_sessions(stack) < 20, 5, "lb sessions released")


def test_sweep_stops_a_flood_left_by_a_dead_run(stack: Stack, state_dir):
    f = make_fault(stack, "flood.connections", None, {"rate": "10/s", "count": 10}, "orphan", 60.0)
    led = Ledger()
    f.prepare()
    led.intend(f.describe(), f.undo())
    led.release()  # its lock goes, as when the run's process dies
    f.apply()
    wait_for(lambda: bool(floods.flood_pids(f.flood_id())), 5, "flood started")
    proc = deadair("sweep")
    assert proc.returncode == 0, proc.stderr
    assert not floods.flood_pids(f.flood_id())


# -- the guard: floods go to the stack or nowhere -----------------------------------------------------


@pytest.mark.parametrize("url", ["http://10.20.30.40:8080/", "http://8.8.8.8/", "http://flood-target.invalid/"])
def test_a_flood_aimed_outside_the_stack_is_refused_before_anything_starts(stack: Stack, tmp_path, state_dir, url):
    before = {c.id: c.status for c in stack.containers()}
    f = experiment(
        tmp_path, [{"at": "1s", "fault": "flood.http", "for": "2s", "with": {"rate": "10/s", "count": 5, "url": url}}]
    )
    proc = deadair("run", str(f), "--journal-dir", str(tmp_path / "runs"))
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 2
    assert "outside the stack" in proc.stderr or "not part of the stack" in proc.stderr
    assert not floods.flood_pids("deadair-flood-")
    assert not (tmp_path / "runs").exists()  # no run began
    assert {c.id: c.status for c in stack.containers()} == before
