"""What the stack's containers and the host use while a run plays: CPU, memory, open files.

A background thread reads, about once a second, for every running container of the stack:
  - CPU: the cgroup's cumulative CPU time (cgroup v1 `cpuacct.usage`, v2 `cpu.stat` usage_usec),
    and the cores it may use (its CFS quota, else its cpuset, else every core);
  - memory: the cgroup's usage less its inactive file cache (what `docker stats` shows), and its
    limit (the host's memory when it has none);
  - open files: for each process in the cgroup, the entries of /proc/PID/fd against the soft
    limit in /proc/PID/limits; the process nearest its limit is reported;
and the host's CPU (all cores, /proc/stat). These are files of the local kernel, read as root:
cheap (a few hundred microseconds a reading) and exact. Where they cannot be read (a remote
engine, no root, an unknown cgroup layout), the Docker API's one-shot stats stand in (every call
with a timeout): CPU and memory, no open files. `method` says which was used.

Readings carry `time.monotonic()`, the runner's clock, so a window of a run (its method) picks
its readings by time. `summarise` turns the readings of a window into per-container use and
utilisation of each limit.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CGROUP = Path("/sys/fs/cgroup")
PROC = Path("/proc")
API_TIMEOUT = 10.0  # seconds per Docker API call (the fallback)


@dataclass
class ContainerReading:
    cpu_seconds: float | None = None  # cumulative CPU time of the container's cgroup
    cpu_limit: float | None = None  # cores it may use
    memory: float | None = None  # bytes in use (less inactive file cache)
    memory_limit: float | None = None
    open_files: int | None = None  # of the process nearest its limit
    open_files_limit: int | None = None  # that process's soft limit
    open_files_process: str = ""


@dataclass
class Reading:
    t: float  # time.monotonic()
    containers: dict[str, ContainerReading] = field(default_factory=dict)
    host_busy: float = 0.0  # cumulative busy jiffies, all cores
    host_total: float = 0.0  # cumulative jiffies, all cores


@dataclass
class _Target:
    service: str
    cid: str
    pid: int
    cgroup_v1: dict[str, Path] = field(default_factory=dict)  # controller -> folder
    cgroup_v2: Path | None = None


def host_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def host_memory() -> float:
    for line in (PROC / "meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return float(line.split()[1]) * 1024
    return float("inf")


def host_cpu() -> tuple[float, float]:
    """(busy, total) jiffies since boot over all cores, from /proc/stat's first line."""
    parts = [float(x) for x in (PROC / "stat").read_text().splitlines()[0].split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0.0)  # idle + iowait
    total = sum(parts[:8])  # guest time is already in user
    return total - idle, total


def _cgroup_paths(pid: int) -> tuple[dict[str, Path], Path | None]:
    """The cgroup folders of a process, from /proc/PID/cgroup (v1 controllers, or v2's one path)."""
    v1: dict[str, Path] = {}
    v2 = None
    for line in (PROC / str(pid) / "cgroup").read_text().splitlines():
        _, controllers, rel = line.split(":", 2)
        if controllers:
            for c in controllers.split(","):
                for mount in (CGROUP / controllers, CGROUP / c):
                    if (mount / rel.lstrip("/")).is_dir():
                        v1.setdefault(c, mount / rel.lstrip("/"))
                        break
        elif (CGROUP / "cgroup.controllers").exists():  # a pure v2 host (not the hybrid's "unified")
            v2 = CGROUP / rel.lstrip("/")
    return v1, v2


def _read(path: Path) -> str:
    return path.read_text().strip()


def _stat_field(path: Path, name: str, default: float | None = 0.0) -> float | None:
    """A `key value` file's field; `default` when it is absent (None: a reading that failed)."""
    for line in path.read_text().splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return float(value)
    return default


def _cpus_in(spec: str) -> int:
    n = 0
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-")
            n += int(b) - int(a) + 1
        elif part.strip():
            n += 1
    return n


def _open_files(pids: list[int]) -> tuple[int | None, int | None, str]:
    """The process nearest its open-file soft limit: (open, soft limit, its command name)."""
    best: tuple[float, int, int, str] | None = None
    for pid in pids:
        try:
            n = len(os.listdir(PROC / str(pid) / "fd"))
            limit = 0
            for line in (PROC / str(pid) / "limits").read_text().splitlines():
                if line.startswith("Max open files"):
                    soft = line.split()[3]
                    limit = int(soft) if soft.isdigit() else 0
            comm = _read(PROC / str(pid) / "comm")
        except OSError:
            continue  # the process ended meanwhile
        share = n / limit if limit else 0.0
        if best is None or (share, n) > (best[0], best[1]):
            best = (share, n, limit, comm)
    if best is None:
        return None, None, ""
    return best[1], best[2] or None, best[3]


def read_cgroup(target: _Target, cores: int, memory_total: float) -> ContainerReading:
    """One container's reading from its cgroup files and /proc (OSError if they cannot be read)."""
    r = ContainerReading()
    if target.cgroup_v2 is not None:
        d = target.cgroup_v2
        usec = _stat_field(d / "cpu.stat", "usage_usec", None)
        r.cpu_seconds = usec / 1e6 if usec is not None else None  # no usage: no reading, never 0
        quota, _, period = (_read(d / "cpu.max") if (d / "cpu.max").exists() else "max").partition(" ")
        r.cpu_limit = float(quota) / float(period) if quota != "max" and period else None
        cpuset = d / "cpuset.cpus.effective"
        if r.cpu_limit is None and cpuset.exists() and _read(cpuset):
            r.cpu_limit = float(_cpus_in(_read(cpuset)))
        usage = float(_read(d / "memory.current"))
        r.memory = max(0.0, usage - (_stat_field(d / "memory.stat", "inactive_file") or 0.0))
        limit = _read(d / "memory.max")
        r.memory_limit = min(float(limit), memory_total) if limit != "max" else memory_total
        pids = [int(p) for p in _read(d / "cgroup.procs").split()]
    else:
        v1 = target.cgroup_v1
        r.cpu_seconds = float(_read(v1["cpuacct"] / "cpuacct.usage")) / 1e9
        if "cpu" in v1 and (v1["cpu"] / "cpu.cfs_quota_us").exists():
            q = float(_read(v1["cpu"] / "cpu.cfs_quota_us"))
            p = float(_read(v1["cpu"] / "cpu.cfs_period_us"))
            r.cpu_limit = q / p if q > 0 and p > 0 else None
        if r.cpu_limit is None and "cpuset" in v1:
            r.cpu_limit = float(_cpus_in(_read(v1["cpuset"] / "cpuset.cpus")))
        mem = v1["memory"]
        usage = float(_read(mem / "memory.usage_in_bytes"))
        r.memory = max(0.0, usage - (_stat_field(mem / "memory.stat", "total_inactive_file") or 0.0))
        r.memory_limit = min(float(_read(mem / "memory.limit_in_bytes")), memory_total)
        pids = [int(p) for p in _read(mem / "cgroup.procs").split()]
    r.cpu_limit = min(r.cpu_limit or cores, cores)
    r.open_files, r.open_files_limit, r.open_files_process = _open_files(pids)
    return r


def read_api(client: Any, cid: str, cores: int, memory_total: float) -> ContainerReading:
    """The fallback: the Docker API's one-shot stats (CPU and memory; no open files). A field the
    engine did not give (a container stopping gives empty stats) is None, never 0."""
    s = client.api.stats(cid, stream=False, one_shot=True)
    cpu = s.get("cpu_stats") or {}
    mem = s.get("memory_stats") or {}
    stats = mem.get("stats") or {}
    inactive = stats.get("total_inactive_file", stats.get("inactive_file", 0))
    online = cpu.get("online_cpus") or cores
    total = (cpu.get("cpu_usage") or {}).get("total_usage")
    usage = mem.get("usage")
    return ContainerReading(
        cpu_seconds=float(total) / 1e9 if total is not None else None,
        cpu_limit=float(min(online, cores)),
        memory=max(0.0, float(usage) - float(inactive)) if usage is not None else None,
        memory_limit=min(float(mem.get("limit") or memory_total), memory_total),
    )


class ResourceSampler:
    """Reads the stack's containers and the host every `every` seconds in a thread, from
    `start()` to `stop()`. Cheap enough to run beside the swarm (a few file reads a container)."""

    def __init__(self, stack: Any, every: float = 1.0):
        self.stack, self.every = stack, every
        self.readings: list[Reading] = []
        self.method = ""
        self.errors: list[str] = []
        self.cores, self.memory_total = host_cores(), host_memory()
        self._targets: list[_Target] = []
        self.services: list[str] = []  # every container found, read or not
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._found_at = 0.0

    def _discover(self) -> None:
        """The stack's running containers, their init pids and cgroup folders (Docker API, with
        the engine client's timeout)."""
        targets = []
        for c in self.stack.containers(all=False):
            service = c.labels.get("com.docker.compose.service", c.name)
            pid = int((c.attrs.get("State") or {}).get("Pid") or 0)
            t = _Target(service, c.id, pid)
            if pid:
                try:
                    t.cgroup_v1, t.cgroup_v2 = _cgroup_paths(pid)
                except OSError:
                    pass
            targets.append(t)
        self._targets = sorted(targets, key=lambda t: t.service)
        self.services = sorted(set(self.services) | {t.service for t in targets})
        self._found_at = time.monotonic()

    def sample(self) -> Reading:
        """One reading of every container and the host."""
        if not self._targets or time.monotonic() - self._found_at > 30:
            self._discover()
        busy, total = host_cpu()
        reading = Reading(time.monotonic(), host_busy=busy, host_total=total)
        stale = False
        for t in self._targets:
            files = t.cgroup_v2 is not None or {"cpuacct", "memory"} <= set(t.cgroup_v1)
            try:
                if not files:
                    raise OSError("no cgroup files")
                reading.containers[t.service] = read_cgroup(t, self.cores, self.memory_total)
                method = f"cgroup {'v2' if t.cgroup_v2 is not None else 'v1'} files and /proc/PID/fd"
            except (OSError, ValueError, KeyError) as exc:
                stale = stale or files  # a container restarted (a node fault): find it again next time
                try:
                    reading.containers[t.service] = read_api(self.stack.docker, t.cid, self.cores, self.memory_total)
                    method = "the Docker API's one-shot stats (no open files)"
                except Exception as api_exc:  # a container gone mid-run is a gap, not an error
                    self.errors.append(f"{t.service}: {type(exc).__name__}; API: {type(api_exc).__name__}")
                    continue
            if method not in self.method:
                self.method = f"{self.method}; {method}" if self.method else method
        if stale:
            self._found_at = 0.0
        return reading

    def _loop(self) -> None:
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                self.readings.append(self.sample())
            except Exception as exc:  # sampling must never break the run it watches
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(max(0.0, self.every - (time.monotonic() - t0)))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="deadair-resources", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=API_TIMEOUT * 2)
        try:
            self.readings.append(self.sample())  # a last reading at the end
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")


def summarise(
    readings: list[Reading], start: float, end: float, cores: int, expected: list[str] | None = None
) -> dict[str, Any]:
    """Use over [start, end] (time.monotonic()): each container's CPU (cores used between its first
    and last CPU reading of the window), its largest memory and open files, each against its limit;
    the host's CPU against its cores. Empty when fewer than two readings fall in the window. A
    reading that failed is None, never 0: a CPU counter that went backwards (the container
    restarted) gives no CPU and `cpu_note` says so; `unread` lists the containers of `expected`
    (the stack's) with no reading in the window."""
    inside = [r for r in readings if start - 0.6 <= r.t <= end + 0.6]
    if len(inside) < 2:
        return {}
    first, last = inside[0], inside[-1]
    out: dict[str, Any] = {"window": [first.t, last.t], "readings": len(inside), "containers": {}}
    names = sorted({n for r in inside for n in r.containers})
    unread = sorted(set(expected or ()) - set(names))
    if unread:
        out["unread"] = unread
    for name in names:
        cpu = [(r.t, r.containers[name]) for r in inside if name in r.containers]
        cpu = [(t, x) for t, x in cpu if x.cpu_seconds is not None]
        c: dict[str, Any] = {}
        if len(cpu) >= 2 and cpu[-1][0] > cpu[0][0]:
            (ta, a), (tb, b) = cpu[0], cpu[-1]
            assert a.cpu_seconds is not None and b.cpu_seconds is not None
            if any(y.cpu_seconds < x.cpu_seconds for (_, x), (_, y) in zip(cpu, cpu[1:])):  # type: ignore[operator]
                c["cpu_note"] = "its CPU counter went backwards (the container restarted): no CPU figure"
            else:
                used = (b.cpu_seconds - a.cpu_seconds) / (tb - ta)
                c.update(cpu_cores=round(used, 4), cpu_limit_cores=b.cpu_limit, cpu_util=_ratio(used, b.cpu_limit))
        else:
            c["cpu_note"] = "fewer than two CPU readings in the window"
        mems = [r.containers[name] for r in inside if name in r.containers and r.containers[name].memory is not None]
        if mems:
            top = max(mems, key=lambda m: m.memory or 0.0)
            c.update(
                memory_bytes=top.memory,
                memory_limit_bytes=top.memory_limit,
                memory_util=_ratio(top.memory, top.memory_limit),
            )
        files = [r.containers[name] for r in inside if name in r.containers and r.containers[name].open_files]
        if files:
            top_f = max(files, key=lambda m: (m.open_files or 0) / (m.open_files_limit or 1))
            c.update(
                open_files=top_f.open_files,
                open_files_limit=top_f.open_files_limit,
                open_files_util=_ratio(top_f.open_files, top_f.open_files_limit),
                open_files_process=top_f.open_files_process,
            )
        out["containers"][name] = c
    total = last.host_total - first.host_total
    if total > 0:
        util = (last.host_busy - first.host_busy) / total
        out["host"] = {"cpu_util": round(util, 4), "cpu_cores": round(util * cores, 4), "cores": cores}
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a is not None and b else None
