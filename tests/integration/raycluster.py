"""A real multi-node Ray cluster on this one machine, for integration tests.

Each node is one `ray start --block` process in a process group of its own, so a test can
lose one node (SIGKILL of its group and of every process it spawned) and `close()` can stop
exactly what it started: never `ray stop`, which kills every Ray process on the host.
The token is our own (RAY_AUTH_TOKEN), so `~/.ray/auth_token`, shared by others, is not used.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = Path(sys.executable).parent / "ray"

# A driver that polls the GCS until `want` worker nodes are alive (or once, for want < 0).
_QUERY = """
import json, sys, time, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
want, deadline = int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while True:
    alive = {r: n["NodeID"] for n in ray.nodes() if n["Alive"] for r in n["Resources"] if r.startswith("rc_node_")}
    if want < 0 or len(alive) >= want or time.monotonic() > deadline:
        break
    time.sleep(0.5)
print("RC-NODES " + json.dumps(alive))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Proc = tuple[int, int]  # (pid, start time in clock ticks): a pid reused by someone else is not ours


def _proc_table() -> dict[Proc, tuple[int, int, str]]:
    """(pid, start) -> (ppid, pgid, cmdline) of the live (non-zombie) processes, from /proc."""
    table: dict[Proc, tuple[int, int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            f = stat[stat.rindex(")") + 2 :].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        if f[0] != "Z":
            table[(int(entry.name), int(f[19]))] = (int(f[1]), int(f[2]), cmd)
    return table


def _family(root: int | None, marker: str) -> set[Proc]:
    """One node's processes: root's process group, all its descendants (Ray workers call setsid,
    so they leave the group), and orphans whose command line names the node's own temp dir."""
    table = _proc_table()
    found = {p for p, (_, pgid, cmd) in table.items() if pgid == root or any(marker + e in cmd + " " for e in "/ ")}
    found |= {p for p in table if p[0] == root}
    while more := {p for p, (ppid, _, _) in table.items() if ppid in {q[0] for q in found}} - found:
        found |= more
    return {p for p in found if p[0] != os.getpid()}


def _alive(procs: set[Proc]) -> set[Proc]:
    return procs & _proc_table().keys()


def _kill(procs: set[Proc], sig: int) -> None:
    for pid, _ in _alive(procs):
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


class RayCluster:
    """A head (no CPUs, hosts no shards) and `worker_nodes` nodes of `cpus_per_node` CPUs each."""

    def __init__(self, worker_nodes: int = 2, cpus_per_node: int = 1, base: Path | None = None) -> None:
        self.worker_nodes = worker_nodes
        self._own_base = base is None
        self.base = Path(tempfile.mkdtemp(prefix="rc-", dir="/tmp")) if base is None else base
        self.base.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
        self._procs: list[subprocess.Popen[bytes]] = []  # [head, node 0, node 1, ...]
        self._closed = False
        self._known: dict[int, str] = {}
        atexit.register(self.close)
        try:
            head = f"--head --port={self.port} --num-cpus=0 --include-dashboard=false --dashboard-port={_free_port()}"
            self._start("head", head.split())
            for i in range(worker_nodes):
                tag = json.dumps({f"rc_node_{i}": 1})  # custom resource: tells which node id is node i
                self._start(f"n{i}", [f"--address={self.address}", f"--num-cpus={cpus_per_node}", f"--resources={tag}"])
        except BaseException:
            self.close()
            raise

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def apply_env(self) -> None:
        """Put `env` into os.environ for a driver in this process. Ray reads the auth mode and token
        once (at import or first init): refresh those caches too, else ray.init fails InvalidAuthToken."""
        os.environ.update(self.env)
        if "ray" in sys.modules:
            from ray._raylet import AuthenticationTokenLoader, Config  # type: ignore[attr-defined]  # compiled, no stubs

            Config.initialize("")
            AuthenticationTokenLoader.instance().reset_cache()

    def _start(self, name: str, args: list[str]) -> None:
        """One node: `ray start --block` in its own session; its own short temp dir and log."""
        temp = self.base / name
        temp.mkdir(exist_ok=True)
        cmd = [str(RAY), "start", "--block", "--disable-usage-stats", f"--temp-dir={temp}", *args]
        with open(self.base / f"{name}.log", "wb") as log:
            env, out = {**os.environ, **self.env}, subprocess.STDOUT
            self._procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=out, start_new_session=True))

    def _nodes(self, want: int, timeout: float) -> dict[str, str]:
        """rc_node_<i> -> node id of the alive worker nodes, from a short-lived driver; gives up
        early if a node we wait for has exited."""
        cmd = [sys.executable, "-c", _QUERY, self.address, str(want), str(timeout)]
        pipe, env = subprocess.PIPE, {**os.environ, **self.env}
        query = subprocess.Popen(cmd, env=env, stdout=pipe, stderr=pipe, text=True, start_new_session=True)
        deadline = time.monotonic() + timeout + 60
        while query.poll() is None:
            gone = self._exited()
            if time.monotonic() > deadline or (want > 0 and gone):
                query.kill()
                query.communicate(timeout=30)
                raise RuntimeError(f"node query gave up: ray start exited (0=head): {gone}")
            time.sleep(0.2)
        out, err = query.communicate(timeout=30)
        for line in out.splitlines():
            if line.startswith("RC-NODES "):
                return dict(json.loads(line[len("RC-NODES ") :]))
        raise RuntimeError(f"node query failed (rc {query.returncode}): {err[-2000:]}")

    def _exited(self) -> dict[int, int]:
        return {i: rc for i, p in enumerate(self._procs) if (rc := p.poll()) is not None}

    def _ids(self, want: int, timeout: float) -> dict[int, str]:
        """Worker node index -> node id of the alive ones; remembered for kill_node."""
        found = {int(r.rsplit("_", 1)[1]): n for r, n in self._nodes(want, timeout).items()}
        self._known.update(found)
        return found

    def node_ids(self, timeout: float = 60.0) -> list[str]:
        """Node ids of the alive worker nodes, in node order (a dead node is left out)."""
        found = self._ids(-1, timeout)
        return [found[i] for i in sorted(found)]

    def wait_ready(self, timeout: float = 120.0) -> list[str]:
        """Wait until every worker node is alive; fail naming the missing ones and the logs' tails."""
        try:
            found = self._ids(self.worker_nodes, timeout)
        except RuntimeError as exc:
            found, why = {}, str(exc)[-1500:]
        else:
            why = ""
        missing = [i for i in range(self.worker_nodes) if i not in found]
        if missing:
            tails = "\n".join(
                f"--- {log.name}:\n{log.read_text(errors='replace')[-1500:]}" for log in sorted(self.base.glob("*.log"))
            )
            raise RuntimeError(
                f"Ray worker nodes {missing} not alive (waited up to {timeout:.0f} s) "
                f"(ray start exited, 0=head: {self._exited()}); {why}\n{tails}"
            )
        return [found[i] for i in range(self.worker_nodes)]

    def kill_node(self, i: int, timeout: float = 30.0) -> str:
        """SIGKILL worker node i (its group and every process it spawned); returns its node id.
        The raylet goes first so that, like a lost machine, it tells the GCS nothing: calls to
        its actors raise ActorUnavailableError until the health check declares it dead (~15 s)."""
        node_id = self._known.get(i) or self._ids(-1, 60.0)[i]
        proc = self._procs[i + 1]
        victims = _family(proc.pid if proc.poll() is None else None, str(self.base / f"n{i}"))
        table = _proc_table()
        _kill({p for p in victims if "raylet/raylet " in table.get(p, (0, 0, ""))[2]}, signal.SIGKILL)
        deadline = time.monotonic() + timeout
        while (left := _alive(victims)) and time.monotonic() < deadline:
            _kill(left, signal.SIGKILL)
            time.sleep(0.1)
        proc.wait(timeout=timeout)
        if left:
            raise RuntimeError(f"processes of node {i} survived SIGKILL: {sorted(left)}")
        return node_id

    def close(self, grace: float = 3.0) -> None:
        """Stop all it started (SIGTERM, SIGKILL after `grace`), remove its temp dir; idempotent."""
        if self._closed:
            return
        self._closed = True
        victims = self._everything()
        _kill(victims, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while _alive(victims) and time.monotonic() < deadline:
            time.sleep(0.1)
        _kill(victims | self._everything(), signal.SIGKILL)
        for proc in self._procs:
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        if self._own_base:
            shutil.rmtree(self.base, ignore_errors=True)
        atexit.unregister(self.close)

    def _everything(self) -> set[Proc]:
        roots = [p.pid if p.poll() is None else None for p in self._procs] or [None]
        return set().union(*(_family(root, str(self.base)) for root in roots))

    def __enter__(self) -> RayCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
