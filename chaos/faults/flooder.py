"""The flood process: bounded load that only ever goes to the stack (a join storm, an HTTP
flood, a connection flood).

Where a flood may aim is the stack-address policy (chaos.stack.addresses): loopback, or a node
of the stack's compose project; it is decided before anything is sent.

A flood runs in its own process (`python -m chaos.faults.flooder SPEC`), so that its CPU does not
distort the listeners' measurements in the runner's process, and it stops by itself at its
deadline and after its count, whatever happens to the runner. The process checks the guard
again on the address it is given, and on every stream URL room-api hands back.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.stack.addresses import GuardError, guard, guard_url

MARKER = "chaos.faults.flooder"  # in a flood process's command line: stop_process kills only floods
# ... and what it was before the package had subpackages: a ledger left by that version still
# names floods whose processes carry the old marker, and sweep must find them.
MARKERS = (MARKER, "chaos.floods")
MAX_RATE = 5000.0  # per second
MAX_COUNT = 20000
MAX_DURATION = 600.0  # seconds


# -- the spec a flood process runs -------------------------------------------------------------------


@dataclass
class FloodSpec:
    kind: str  # http, joins, connections
    ip: str
    port: int
    path: str
    rate: float  # per second
    count: int
    duration: float  # seconds: the process's own deadline
    concurrency: int = 64  # http and joins: requests in flight at most
    method: str = "GET"
    body: str | None = None
    room: str | None = None  # joins: the room to join (created when None)
    listen: bool = True  # joins: stream what the join answers, until the deadline
    mode: str = "stream"  # connections: stream (GET the path and drain) or idle (send nothing)
    allowed: tuple[str, ...] = ()  # container addresses of the stack, for the process's own guard
    results: str = ""  # where the process writes its numbers
    until: float = 0.0  # wall-clock deadline (time.time()); 0: start + duration
    id: str = ""  # deadair-flood-<token>: in the command line, so any process can find and stop it

    def check(self) -> None:
        if not (0 < self.rate <= MAX_RATE and 0 < self.count <= MAX_COUNT and 0 < self.duration <= MAX_DURATION):
            raise GuardError(
                f"flood bounds out of range: rate {self.rate}/s (max {MAX_RATE:g}), count {self.count} "
                f"(max {MAX_COUNT}), duration {self.duration}s (max {MAX_DURATION:g})"
            )
        guard(self.ip, {}, self.allowed)


def start(spec: FloodSpec) -> subprocess.Popen:
    """Start a flood process (the guard has been checked; the process checks it again)."""
    spec.check()
    cmd = [sys.executable, "-m", MARKER, json.dumps(spec.__dict__)]
    return subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )


def flood_pids(flood_id: str) -> list[int]:
    """Running flood processes whose command line carries this id (found through /proc, so a
    later process, such as `deadair sweep`, finds them as well as the runner that started them)."""
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if any(m.encode() in cmd for m in MARKERS) and _carries(cmd, flood_id):
            if state == "Z":  # a finished child of ours: reap it
                try:
                    os.waitpid(int(entry.name), os.WNOHANG)
                except ChildProcessError:
                    pass
                continue
            out.append(int(entry.name))
    return out


def _carries(cmdline: bytes, flood_id: str) -> bool:
    """Whether a command line carries exactly this id, as a whole JSON value: the id of a step's
    first occurrence (`..._3_1`) is a prefix of its tenth (`..._3_10`), and stopping the first
    must not stop the tenth."""
    quoted = json.dumps(flood_id).encode()
    return any(arg == flood_id.encode() or quoted + b"," in arg or quoted + b"}" in arg for arg in cmdline.split(b"\0"))


def stop_floods(flood_id: str, grace: float = 3.0) -> None:
    """SIGTERM the flood's processes, SIGKILL what is left after `grace` seconds."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 1.0)):
        pids = flood_pids(flood_id)
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and flood_pids(flood_id):
            time.sleep(0.05)


# -- the workloads (run in the flood process) ----------------------------------------------------------


class _Tally:
    def __init__(self) -> None:
        self.launched = self.sent = self.ok = self.failed = self.refused = self.open = self.max_open = 0
        self.status: dict[str, int] = {}
        self.latencies: list[float] = []
        self.errors: dict[str, int] = {}

    def error(self, exc: BaseException | str) -> None:
        key = exc if isinstance(exc, str) else type(exc).__name__
        self.errors[key] = self.errors.get(key, 0) + 1
        self.failed += 1

    def opened(self, n: int = 1) -> None:
        self.open += n
        self.max_open = max(self.max_open, self.open)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)

        def q(p: float) -> float | None:
            return round(lat[min(len(lat) - 1, int(p * len(lat)))], 6) if lat else None

        return {
            "launched": self.launched,
            "sent": self.sent,
            "ok": self.ok,
            "failed": self.failed,
            "refused": self.refused,
            "max_open": self.max_open,
            "status": self.status,
            "errors": self.errors,
            "latency": {"count": len(lat), "p50": q(0.5), "p95": q(0.95), "max": lat[-1] if lat else None},
        }


async def _http(
    ip: str, port: int, method: str, path: str, body: str | None, timeout: float
) -> tuple[int, bytes, asyncio.StreamReader, asyncio.StreamWriter]:
    """One request on a new connection: status, body; the connection is left open for the caller."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout)
    data = (body or "").encode()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: deadair-flood\r\n"
        f"Content-Length: {len(data)}\r\nContent-Type: application/json\r\n\r\n"
    ).encode()
    writer.write(head + data)
    status_line = await asyncio.wait_for(reader.readline(), timeout)
    headers = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    status = int(status_line.split()[1]) if len(status_line.split()) > 1 else 0
    length = 0
    for line in headers.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    payload = await asyncio.wait_for(reader.readexactly(length), timeout) if length else b""
    return status, payload, reader, writer


async def _drain(reader: asyncio.StreamReader, deadline: float) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < deadline:
        chunk = await asyncio.wait_for(reader.read(65536), max(0.01, deadline - loop.time()))
        if not chunk:
            return


def _close(writer: asyncio.StreamWriter) -> None:
    try:
        writer.close()
    except Exception:
        pass


async def run_flood(spec: FloodSpec, tally: _Tally | None = None) -> dict[str, Any]:
    """Send the flood: requests (or connections) at `rate`, `count` at most, until the deadline
    (`until` on the wall clock when given, so that process start-up does not extend it)."""
    spec.check()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    deadline = t0 + spec.duration
    if spec.until:
        deadline = min(deadline, t0 + max(0.0, spec.until - time.time()))
    tally = tally if tally is not None else _Tally()
    slots = asyncio.Semaphore(spec.concurrency)
    tasks: set[asyncio.Task] = set()
    room = spec.room

    if spec.kind == "joins" and not room:
        try:
            status, payload, _, w = await _http(
                spec.ip, spec.port, "POST", "/rooms", json.dumps({"title": "deadair join storm", "host": "deadair"}), 5
            )
            _close(w)
            room = json.loads(payload)["id"]
            for action in ("open", "start"):
                _, _, _, w = await _http(spec.ip, spec.port, "POST", f"/rooms/{room}/{action}", None, 5)
                _close(w)
        except (TimeoutError, OSError, ValueError, KeyError, asyncio.IncompleteReadError) as exc:
            tally.error(exc)
            return {"kind": spec.kind, "error": f"could not create a room: {exc}", **tally.summary()}

    async def request() -> tuple[int, bytes] | None:
        """One request on a new connection: (status, body), or None when it failed."""
        t = loop.time()
        tally.sent += 1
        writer = None
        body: str | None
        try:
            if spec.kind == "joins":
                path, method, body = f"/rooms/{room}/join", "POST", json.dumps({"user": "deadair-storm"})
            else:
                path, method, body = spec.path, spec.method, spec.body
            status, payload, _, writer = await _http(spec.ip, spec.port, method, path, body, 10)
        except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError) as exc:
            tally.error(exc)
            return None
        finally:
            if writer is not None:
                _close(writer)
        tally.latencies.append(loop.time() - t)
        tally.status[str(status)] = tally.status.get(str(status), 0) + 1
        tally.ok += 200 <= status < 300
        if not 200 <= status < 300:
            tally.failed += 1
        return status, payload

    async def one_request() -> None:
        """A request in the slot the launcher took for it; a join that got in then listens."""
        try:
            answer = await request()
        finally:
            slots.release()
        if answer and spec.kind == "joins" and spec.listen and 200 <= answer[0] < 300:
            await listen(answer[1])

    async def listen(payload: bytes) -> None:
        """Stream what the join answered, through lb, until the deadline (a listener that stays)."""
        try:
            url = json.loads(payload)["stream_url"]
            ip, port, path = guard_url(url, {}, spec.allowed)
        except (ValueError, KeyError, GuardError) as exc:
            tally.refused += isinstance(exc, GuardError)
            tally.errors[type(exc).__name__] = tally.errors.get(type(exc).__name__, 0) + 1
            return
        await hold(ip, port, path, "stream")

    async def hold(ip: str, port: int, path: str, mode: str) -> None:
        writer = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 5)
            tally.opened()
            tally.ok += spec.kind == "connections"
            try:
                if mode == "stream":
                    writer.write(
                        f"GET {path} HTTP/1.1\r\nHost: {ip}:{port}\r\nUser-Agent: deadair-flood\r\n\r\n".encode()
                    )
                await _drain(reader, deadline)
            finally:
                tally.open -= 1
        except TimeoutError:
            pass  # the deadline came while the connection held
        except (OSError, asyncio.IncompleteReadError) as exc:
            tally.error(exc)
        finally:
            if writer is not None:
                _close(writer)

    async def one_connection() -> None:
        tally.sent += 1
        await hold(spec.ip, spec.port, spec.path, spec.mode)

    make = one_connection if spec.kind == "connections" else one_request
    i = 0
    while i < spec.count and loop.time() < deadline:
        due = t0 + i / spec.rate
        if due > loop.time():
            await asyncio.sleep(due - loop.time())
            if loop.time() >= deadline:
                break
        if make is one_request:
            # Requests in flight are capped at `concurrency`: wait for a slot here, so that no
            # backlog of launched requests is left to start after the deadline (or to delay a stop).
            if slots.locked():
                try:
                    await asyncio.wait_for(slots.acquire(), max(0.0, deadline - loop.time()))
                except TimeoutError:
                    break
            else:
                await slots.acquire()  # free: taken at once
        task = asyncio.ensure_future(make())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        tally.launched += 1
        i += 1
    if tasks:
        await asyncio.wait(tasks, timeout=max(0.0, deadline - loop.time()) + 0.5)
    for task in tasks:
        task.cancel()
    return {"kind": spec.kind, "room": room, "elapsed": round(loop.time() - t0, 3), **tally.summary()}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    spec = FloodSpec(**json.loads(args[0]))
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
    tally = _Tally()
    result: dict[str, Any] = {}
    written: list[bool] = []

    def on_term(signum: int, frame: object) -> None:
        # The numbers are known now; closing thousands of sockets is not, and a busy loop may not
        # reach a loop-level handler for seconds. Python runs this one at once: write the numbers
        # and go (the kernel closes the sockets), so a stop (stop_floods: SIGTERM, a grace, then
        # SIGKILL) never loses them to a slow teardown on a busy machine.
        try:
            if not written:
                _write_results(spec.results, {"kind": spec.kind, "stopped": "SIGTERM", **tally.summary()})
        finally:
            os._exit(0)

    signal.signal(signal.SIGTERM, on_term)

    async def body() -> None:
        try:
            result.update(await asyncio.wait_for(run_flood(spec, tally), spec.duration + 5))
        except TimeoutError:
            result.update({"kind": spec.kind, "stopped": "timeout", **tally.summary()})
        result.setdefault("stopped", "deadline")
        final(result)  # before the loop closes (and cancels what is left)

    def final(numbers: dict[str, Any]) -> None:
        """The last word, written with SIGTERM held back: a stop during it waits for it, then exits."""
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            _write_results(spec.results, numbers)
            written.append(True)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})

    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(body())
    except GuardError as exc:
        result = {"kind": spec.kind, "error": str(exc)}
        final(result)
    return 0 if "error" not in result else 2


def _write_results(path: str, result: dict[str, Any]) -> None:
    """Write the flood's numbers whole (a temporary file renamed), so a reader never sees half."""
    if path:
        tmp = path + ".tmp"
        Path(tmp).write_text(json.dumps(result))
        os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
