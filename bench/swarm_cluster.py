"""Benchmark: the distributed swarm (chaos.listen.shards) against the one-process swarm, on this host.

    .venv/bin/python bench/swarm_cluster.py [--counts 1000,2000] [--repeats 3] [--seconds 15]
        [--capacity-steps 1000,2000,3000,4000,5000,6000,7000,8000] [--budget 1200]

Against the audio-room stack's Icecast edge-1 (its published port, as bench/swarm.py: the swarm is
measured, not Toxiproxy or HAProxy). The stack is started under its own compose project (so another
session's stack is never taken down) and stopped at the end; the Docker lock is held only while
bringing it up or down. What it measures:

1. Engine overhead: at each count, ALTERNATING in the same run, `--repeats` times: (a) the one-process
   swarm (bench/swarm_worker.py on uvloop, the loop a Ray async actor runs on; its own process CPU)
   and (b) one Ray shard (ShardedSwarm, workers=1, on a local RayEngine): the shard's worker process
   CPU (/proc/<pid>/stat, all its threads; pid from the swarm.shard event) and the whole local
   cluster's CPU (every descendant of this driver process: gcs_server, raylet, agents, workers; the
   driver, where the fleet merges batches, separately). Same warm-up, same measured window. The
   ratio shard / one-process is paired per repeat. A ratio under 0.95 is flagged as suspect: a
   starved event loop batches its reads and looks cheaper (the loop lag is recorded beside it).
2. Event bytes shipped per listener-second (fleet.bytes_shipped: pickled batches) in steady state,
   sample=20 (from the runs of 1) and sample=all side by side; and in a churn window: half the
   count listening, the other half joining evenly over the window (a join crowd: real joins
   against the edge: join, connected, first audio, stream start), giving bytes per join too.
3. Capacity: the largest count held with 1 and with 2 worker nodes (tests/integration/raycluster.py:
   `ray start` nodes on this host, 1 CPU each, a head with none; one shard per node). Held: every
   listener hears within the warm-up, false dead air under 1 % of listening time, no shard lost.
   Each node count runs in a child process of its own (its own Ray driver and auth token).

On a 2-core host with the stack on the same cores, every figure is bound by CPU: the load average
is recorded at every run. Results: a table on stdout and bench/results/swarm-cluster-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import fcntl
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from chaos.checkers.history import History, Window  # noqa: E402
from chaos.checkers.verdicts import check  # noqa: E402
from chaos.listen.listener import ListenerSettings, StreamAddress  # noqa: E402
from chaos.timeline import Timeline  # noqa: E402

HERE = Path(__file__).resolve().parent
DOCKER_LOCK = Path("/tmp/deadair-docker.lock")
PROJECT = "deadair-bench-swarm-cluster"
RAMP = 250.0  # joins per second, as bench/swarm_worker.py
SETTLE = 2.0  # s after all hear before the window, as bench/swarm_worker.py
CLK_TCK = os.sysconf("SC_CLK_TCK")
SUSPECT_RATIO = 0.95
ALL = 10**9  # sample=all: every listener ships full events


# -- provenance, processes ---------------------------------------------------------------------
def provenance() -> dict[str, Any]:
    from results import provenance as base  # tests/results.py

    out = base()
    out["dirty_bench"] = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "bench/swarm_cluster.py", "bench/swarm_worker.py"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()
    )
    return out


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def proc_cpu(pid: int) -> float:
    """CPU seconds of a whole process (all threads: utime + stime of /proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_cpu() -> dict[int, tuple[str, float]]:
    """pid -> (name, CPU s) of every descendant of this process (the local Ray cluster when it is
    the only thing this process has started)."""
    import psutil

    out = {}
    for p in psutil.Process().children(recursive=True):
        try:
            t = p.cpu_times()
            out[p.pid] = (p.name(), t.user + t.system)
        except psutil.Error:
            continue
    return out


def icecast_cpu() -> float:
    """CPU seconds of every icecast process on the host (the stack's origin and edges), to see
    whether the edges, not the swarm, are what saturates."""
    import psutil

    total = 0.0
    for p in psutil.process_iter(["name"]):
        try:
            if "icecast" in (p.info["name"] or ""):
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            continue
    return total


@contextlib.contextmanager
def docker_lock(timeout: float = 900.0) -> Iterator[None]:
    """The same lock as `flock /tmp/deadair-docker.lock` (flock(2) on the same file)."""
    with DOCKER_LOCK.open("a") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{DOCKER_LOCK} held by someone else for {timeout:.0f}s") from None
                time.sleep(1.0)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def spread(values: list[float]) -> dict[str, Any]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"median": None, "min": None, "max": None, "runs": values}
    return {"median": statistics.median(vals), "min": min(vals), "max": max(vals), "runs": values}


def dead_air(tl: Timeline, w0: float, w1: float, count: int) -> dict[str, Any]:
    """False dead air over [w0, w1] from the timeline (the stack is healthy: any is the swarm's)."""
    h = History(tl.events, end=w1)
    clipped = [(max(s, w0), min(e, w1)) for spans in h.dead_air_spans().values() for s, e in spans if e > w0 and s < w1]
    total = sum(e - s for s, e in clipped)
    stall = check(h, "stall_ratio", "< 0.01", Window(w0, w1), "bench")
    return {
        "false_dead_air": total / max(count * (w1 - w0), 1e-9),
        "most_dead_at_once_s": most_at_once(clipped, count / 2),
        "worst_listener_stall_ratio": stall.value,
        "lag_max_s": h.lag(Window(w0, w1)),
    }


def most_at_once(spans: list[tuple[float, float]], over: float) -> float:
    """Seconds during which more than `over` listeners were in dead air at the same time: dead air
    shared by most listeners at once points at the edge or the whole host being starved, not at
    one listener's loop (spread thin over listeners at different times)."""
    marks = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    n, last, out = 0, 0.0, 0.0
    for t, d in marks:
        if n > over:
            out += t - last
        n, last = n + d, t
    return out


# -- (a) the one-process swarm -------------------------------------------------------------------
def one_process(count: int, seconds: float, stream: str, warmup: float) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(HERE / "swarm_worker.py"),
        "--count",
        str(count),
        "--seconds",
        str(seconds),
        "--stream",
        stream,
        "--loop",
        "uvloop",
        "--ramp",
        str(RAMP),
        "--warmup",
        str(warmup),
    ]
    load0 = load()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=count / RAMP + warmup + seconds + 180)
    if out.returncode != 0:
        raise RuntimeError(f"swarm_worker failed: {out.stderr[-2000:]}")
    d = json.loads(out.stdout)
    d["us_per_listener_s"] = d["cpu_s"] / d["listener_seconds"] * 1e6
    d["load_average_start"], d["load_average_end"] = load0, load()
    return d


# -- (b) a sharded swarm on a Ray engine ---------------------------------------------------------
async def fleet_run(
    engine: Any,
    stream: StreamAddress,
    count: int,
    workers: int,
    seconds: float,
    warmup: float,
    sample: int = 20,
    churn: bool = False,
    measure_tree: bool = False,
) -> dict[str, Any]:
    """One ShardedSwarm run: ramp up, wait until all hear, settle, measure a window, stop.

    churn: `count` // 2 listen from the start; the other half joins evenly over the window."""
    from chaos.listen.shards.fleet import ShardedSwarm

    steady = count // 2 if churn else count
    over = steady / RAMP
    settings = ListenerSettings(count=steady, stream=stream, arrival="ramp", arrival_over=over)
    tl = Timeline()
    fleet = ShardedSwarm(settings, tl, engine, workers, rng=random.Random(0), sample=sample, capacity=count)
    load0 = load()
    out: dict[str, Any] = {"count": count, "workers": workers, "sample": "all" if sample >= ALL else sample}
    t_start = time.monotonic()
    out["wait_for_free_cpus_s"] = await free_cpus(engine, workers)
    try:
        await fleet.start()
    except BaseException:  # a shard that never started still holds its CPU: remove it
        for st in fleet.shards:
            st.handle.kill()
        raise
    try:
        shards = [e.data for e in tl.events if e.kind == "swarm.shard"]
        out["shards"] = [{k: s.get(k) for k in ("shard", "pid", "node", "host", "clock_uncertainty")} for s in shards]
        hearing = await fleet.wait_all_hearing(over + warmup)
        out["hearing"] = hearing
        out["warmup_s"] = round(time.monotonic() - t_start, 2)
        await asyncio.sleep(SETTLE)
        await fleet.sync()
        pids = [int(s["pid"]) for s in shards if s.get("pid")]
        pid_cpu0 = {p: proc_cpu(p) for p in pids}
        tree0 = tree_cpu() if measure_tree else {}
        drv0, ice0 = time.process_time(), icecast_cpu()
        b0, w0 = fleet.bytes_shipped, tl.clock.now()
        if churn:
            joiners = count - steady
            fleet.add_crowd(1, [i * seconds / joiners for i in range(joiners)])
        await asyncio.sleep(seconds)
        await fleet.sync()
        b1, w1 = fleet.bytes_shipped, tl.clock.now()
        pid_cpu1 = {p: proc_cpu(p) for p in pids}
        tree1 = tree_cpu() if measure_tree else {}
        drv1, ice1 = time.process_time(), icecast_cpu()
    finally:
        await fleet.stop()
    span = w1 - w0
    lost = [e.data for e in tl.events if e.kind == "swarm.shard_lost"]
    joins = [e.t for e in tl.events if e.kind == "listener.join" and e.src.startswith("J") and w0 <= e.t <= w1]
    listener_s = steady * span + sum(w1 - t for t in joins)
    shard_cpu = sum(pid_cpu1[p] - pid_cpu0[p] for p in pids)
    out.update(
        seconds=span,
        listener_seconds=listener_s,
        shard_cpu_s=shard_cpu,
        shard_us_per_listener_s=shard_cpu / listener_s * 1e6,
        per_shard_cpu_s=[pid_cpu1[p] - pid_cpu0[p] for p in pids],
        driver_cpu_s=drv1 - drv0,
        icecast_cpu_cores=(ice1 - ice0) / span,
        bytes_shipped=b1 - b0,
        bytes_per_listener_s=(b1 - b0) / listener_s,
        shards_lost=lost,
        health_lag_max_s=max(
            (
                float(e.data.get("lag_max", 0.0))
                for e in tl.events
                if e.kind == "swarm.health" and e.src.startswith("swarm/") and w0 <= e.t <= w1 + 1.0
            ),
            default=None,
        ),
        load_average_start=load0,
        load_average_end=load(),
    )
    if churn:
        out["joins"] = len(joins)
        out["joins_per_s"] = len(joins) / span
    if measure_tree:
        both = set(tree0) & set(tree1)
        cl = sum(tree1[p][1] - tree0[p][1] for p in both)
        out["cluster_cpu_s"] = cl
        out["cluster_us_per_listener_s"] = cl / listener_s * 1e6
        out["cluster_with_driver_us_per_listener_s"] = (cl + drv1 - drv0) / listener_s * 1e6
        out["cluster_processes"] = sorted(tree1[p][0] for p in both)
        out["cluster_processes_not_in_both_samples"] = len(set(tree0) ^ set(tree1))
    out.update(dead_air(tl, w0, w1, steady if not churn else count))
    if churn:  # joiners are not listening for the whole window: dead air over the steady half only
        out.pop("false_dead_air")
    return out


async def free_cpus(engine: Any, workers: int, timeout: float = 90.0) -> float | None:
    """Wait until the cluster has a CPU free per shard again (a killed actor releases its CPU only
    when its worker process has exited; on a 1-CPU node the next shard would wait behind it)."""
    ray = getattr(engine, "_ray", None)
    if ray is None:
        return None
    need = min(float(ray.cluster_resources().get("CPU", 1.0)), float(workers))
    t0 = time.monotonic()
    while float(ray.available_resources().get("CPU", 0.0)) < need and time.monotonic() - t0 < timeout:
        await asyncio.sleep(0.5)
    return round(time.monotonic() - t0, 2)


def run_async(coro: Any, timeout: float) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


# Ray starts gcs_server and raylet with PR_SET_PDEATHSIG, which fires when the *thread* that started
# them exits: the thread that connects must outlive the engine (measured: a pool shut down right
# after connect killed the local cluster a second later). One thread for the process's lifetime.
_CONNECTOR = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="ray-connect")


def connect(engine: Any, timeout: float = 240.0) -> dict[str, Any]:
    """engine.connect() blocks; bounded here (on overrun the run fails)."""
    return _CONNECTOR.submit(engine.connect).result(timeout=timeout)


# -- parts ---------------------------------------------------------------------------------------
def part_overhead(args: argparse.Namespace, engine: Any, edge: StreamAddress, stream: str) -> list[dict]:
    rows = []
    for count in args.counts:
        for rep in range(args.repeats):
            a = one_process(count, args.seconds, stream, args.warmup)
            b = run_async(
                fleet_run(engine, edge, count, 1, args.seconds, args.warmup, measure_tree=True),
                count / RAMP + args.warmup + args.seconds + 240,
            )
            ratio = b["shard_us_per_listener_s"] / a["us_per_listener_s"]
            # a pair counts only when both sides were in steady state: all hear and < 1 % dead air
            # (a swarm that is not hearing, or starved, reads fewer bytes and looks cheaper)
            valid = all(x["hearing"] >= count and x["false_dead_air"] < 0.01 for x in (a, b))
            row = {
                "valid": valid,
                "count": count,
                "repeat": rep,
                "one_process": a,
                "shard": b,
                "ratio_shard": ratio,
                "ratio_cluster": b["cluster_us_per_listener_s"] / a["us_per_listener_s"],
                "ratio_cluster_with_driver": b["cluster_with_driver_us_per_listener_s"] / a["us_per_listener_s"],
                "suspect": ratio < SUSPECT_RATIO,
            }
            rows.append(row)
            print(
                f"[1] N={count} rep {rep}: one-process {a['us_per_listener_s']:.1f} us/ls (lag {a['lag_max_s'] * 1e3:.0f} ms, "
                f"hearing {a['hearing']}) | shard {b['shard_us_per_listener_s']:.1f} (lag "
                f"{(b['health_lag_max_s'] or 0) * 1e3:.0f} ms, hearing {b['hearing']}) cluster "
                f"{b['cluster_us_per_listener_s']:.1f} | ratio {ratio:.3f}{' SUSPECT' if row['suspect'] else ''} "
                f"| dead air {a['false_dead_air'] * 100:.2f}%/{b['false_dead_air'] * 100:.2f}% "
                f"| {'valid' if valid else 'INVALID'} | load {b['load_average_end'][0]}",
                flush=True,
            )
    return rows


def summarise_overhead(rows: list[dict]) -> list[dict]:
    out = []
    for count in sorted({r["count"] for r in rows}):
        every = [r for r in rows if r["count"] == count]
        rs = [r for r in every if r.get("valid", True)] or every
        out.append(
            {
                "count": count,
                "pairs": len(every),
                "valid_pairs": sum(r.get("valid", True) for r in every),
                "over": "valid pairs" if any(r.get("valid", True) for r in every) else "ALL pairs (none valid)",
                "ratio_shard_all_pairs": spread([r["ratio_shard"] for r in every]),
                "one_process_us": spread([r["one_process"]["us_per_listener_s"] for r in rs]),
                "shard_us": spread([r["shard"]["shard_us_per_listener_s"] for r in rs]),
                "cluster_us": spread([r["shard"]["cluster_us_per_listener_s"] for r in rs]),
                "cluster_with_driver_us": spread([r["shard"]["cluster_with_driver_us_per_listener_s"] for r in rs]),
                "ratio_shard": spread([r["ratio_shard"] for r in rs]),
                "ratio_cluster": spread([r["ratio_cluster"] for r in rs]),
                "one_process_lag_max_s": spread([r["one_process"]["lag_max_s"] for r in rs]),
                "shard_lag_max_s": spread([r["shard"]["health_lag_max_s"] for r in rs]),
                "suspect_repeats": sum(r["suspect"] for r in rs),
                "bytes_per_listener_s_sample20": spread([r["shard"]["bytes_per_listener_s"] for r in every]),
                "shard_false_dead_air": spread([r["shard"]["false_dead_air"] for r in every]),
                "one_process_false_dead_air": spread([r["one_process"]["false_dead_air"] for r in every]),
                "load1": spread([r["shard"]["load_average_end"][0] for r in rs]),
                "target_shard_under_10pct": statistics.median(r["ratio_shard"] for r in rs) < 1.10,
            }
        )
    return out


def part_bytes(args: argparse.Namespace, engine: Any, edge: StreamAddress) -> list[dict]:
    rows = []
    plan = [(c, ALL, False) for c in args.counts] + [(args.churn_count, 20, True), (args.churn_count, ALL, True)]
    for count, sample, churn in plan:
        r = run_async(
            fleet_run(engine, edge, count, 1, args.seconds, args.warmup, sample=sample, churn=churn),
            count / RAMP + args.warmup + args.seconds + 240,
        )
        r["churn"] = churn
        rows.append(r)
        print(
            f"[2] N={count} sample={r['sample']} {'churn' if churn else 'steady'}: "
            f"{r['bytes_per_listener_s']:.1f} B/listener-s"
            + (f", {r['joins_per_s']:.1f} joins/s" if churn else "")
            + f", shard {r['shard_us_per_listener_s']:.1f} us/ls, load {r['load_average_end'][0]}",
            flush=True,
        )
    return rows


def part_capacity_child(args: argparse.Namespace) -> None:
    """In a child process: a RayCluster of `--nodes` worker nodes; step the count up until one is
    not held or the time is up. Prints one JSON object."""
    sys.path.insert(0, str(ROOT / "tests" / "integration"))
    from raycluster import RayCluster

    from chaos.listen.shards.engine import RayEngine

    host, _, rest = args.edge.partition(":")
    port, _, path = rest.partition("/")
    edge = StreamAddress(host, int(port), "/" + path)
    deadline = time.monotonic() + args.child_budget
    steps: list[dict] = []
    out: dict[str, Any] = {"nodes": args.nodes, "steps": steps}
    t0 = time.monotonic()
    with RayCluster(worker_nodes=args.nodes, cpus_per_node=1) as cluster:
        out["node_ids"] = cluster.wait_ready(180)
        os.environ.update(cluster.env)
        out["cluster_start_s"] = round(time.monotonic() - t0, 1)
        engine = RayEngine(address=cluster.address)
        try:
            out["engine"] = connect(engine)
            for count in args.capacity_steps:
                need = count / RAMP + args.warmup + args.capacity_seconds + 20
                if time.monotonic() + need > deadline:
                    out["stopped"] = f"time budget: {count} would not fit"
                    break
                attempts = []
                for _attempt in range(2):  # a count not held is tried once more (the host is shared)
                    if attempts and time.monotonic() + need > deadline:
                        break
                    try:
                        r = run_async(
                            fleet_run(engine, edge, count, args.nodes, args.capacity_seconds, args.warmup),
                            need + 240,
                        )
                    except Exception as exc:  # a run that could not even start is not held
                        r = {"count": count, "error": f"{type(exc).__name__}: {exc}"[:500], "load_average_end": load()}
                    r["held"] = (
                        "error" not in r
                        and r["hearing"] >= count
                        and r["false_dead_air"] < 0.01
                        and not r["shards_lost"]
                    )
                    r["nodes_used"] = sorted({s.get("node") for s in r.get("shards", [])})
                    attempts.append(r)
                    if r["held"]:
                        break
                r = dict(attempts[-1])
                r["attempts"] = attempts[:-1]
                r["held_on_retry"] = r["held"] and len(attempts) > 1
                steps.append(r)
                print(
                    f"[3] nodes={args.nodes} N={count}: held={r['held']} (attempts {len(attempts)}) hearing={r.get('hearing')} "
                    f"dead air={r.get('false_dead_air', float('nan')) * 100:.2f}% lag "
                    f"{(r.get('health_lag_max_s') or 0) * 1e3:.0f} ms lost={len(r.get('shards_lost', []))} "
                    f"load {r['load_average_end'][0]}",
                    file=sys.stderr,
                    flush=True,
                )
                if not r["held"]:
                    break
        finally:
            engine.close()
    held = [s["count"] for s in steps if s["held"]]
    out["largest_held"] = max(held) if held else None
    print("RESULT " + json.dumps(out))


def part_capacity(args: argparse.Namespace, stream: str, budget_left: float) -> list[dict]:
    out = []
    helper = ROOT / "tests" / "integration" / "raycluster.py"
    waited = time.monotonic() + args.wait_cluster_helper
    while not helper.exists() and time.monotonic() < waited:
        time.sleep(10)
    if not helper.exists():
        return [{"error": f"{helper} did not appear within {args.wait_cluster_helper:.0f}s"}]
    per = budget_left / 2
    for nodes in (1, 2):
        cmd = [
            sys.executable,
            __file__,
            "--_capacity-child",
            "--nodes",
            str(nodes),
            "--edge",
            stream,
            "--capacity-steps",
            ",".join(map(str, args.capacity_steps)),
            "--capacity-seconds",
            str(args.capacity_seconds),
            "--warmup",
            str(args.warmup),
            "--child-budget",
            str(per),
        ]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=per + 600)
        except subprocess.TimeoutExpired as exc:
            out.append({"nodes": nodes, "error": f"child timed out after {exc.timeout:.0f}s"})
            continue
        for line in (res.stderr or "").splitlines():
            if line.startswith("[3]"):
                print(line, flush=True)
        found = [line for line in res.stdout.splitlines() if line.startswith("RESULT ")]
        if found:
            out.append(json.loads(found[-1][len("RESULT ") :]))
        else:
            out.append({"nodes": nodes, "error": f"child rc {res.returncode}: {res.stderr[-3000:]}"})
    return out


# -- main ----------------------------------------------------------------------------------------
def table(result: dict) -> str:
    lines = ["", "1. CPU per listener-second (us), median (min-max) of paired repeats"]
    lines.append(
        f"{'N':>6} | {'one-process':>22} | {'Ray shard':>22} | {'shard/one':>20} | {'whole cluster':>22} | "
        f"{'lag 1p/shard ms':>15} | load1"
    )
    for s in result.get("overhead_summary", []):

        def f(d: dict, k: float = 1.0, p: int = 1) -> str:
            return f"{d['median'] * k:.{p}f} ({d['min'] * k:.{p}f}-{d['max'] * k:.{p}f})"

        lines.append(
            f"{s['count']:>6} | {f(s['one_process_us']):>22} | {f(s['shard_us']):>22} | "
            f"{f(s['ratio_shard'], p=3):>20} | {f(s['cluster_us']):>22} | "
            f"{s['one_process_lag_max_s']['median'] * 1e3:>6.0f}/{s['shard_lag_max_s']['median'] * 1e3:<8.0f} | "
            f"{s['load1']['median']:.1f}  [{s['valid_pairs']}/{s['pairs']} valid pairs; medians over {s['over']}]"
            + (f" [{s['suspect_repeats']} suspect < {SUSPECT_RATIO}]" if s["suspect_repeats"] else "")
        )
    lines.append("")
    lines.append("2. Event bytes shipped per listener-second")
    for s in result.get("overhead_summary", []):
        b = s["bytes_per_listener_s_sample20"]
        da = ", ".join(f"{x * 100:.2f}%" for x in s["shard_false_dead_air"]["runs"])
        lines.append(
            f"   N={s['count']:>5} sample=20  steady: {b['median']:.1f} B/ls ({b['min']:.1f}-{b['max']:.1f}, "
            f"n={len(b['runs'])}; the shard's dead air in those runs: {da})"
        )
    for r in result.get("bytes", []):
        extra = f", {r['joins_per_s']:.1f} joins/s" if r.get("churn") else ""
        lines.append(
            f"   N={r['count']:>5} sample={r['sample']!s:<3} {'churn ' if r.get('churn') else 'steady'}: "
            f"{r['bytes_per_listener_s']:.1f} B/ls{extra}"
            + (f", {r['bytes_per_join']:.0f} B per join" if r.get("bytes_per_join") is not None else "")
            + (f", dead air {r['false_dead_air'] * 100:.2f}%" if "false_dead_air" in r else "")
        )
    lines.append("")
    lines.append("3. Largest count held (all hear, false dead air < 1 %, no shard lost; a miss is tried once more)")
    for c in result.get("capacity", []):
        if "error" in c and "steps" not in c:
            lines.append(f"   nodes={c.get('nodes', '?')}: not measured: {c['error'][:300]}")
            continue
        steps = ", ".join(
            f"{s['count']}:{'held' if s['held'] else 'NOT held'}{' on retry' if s.get('held_on_retry') else ''}"
            f"(dead {s.get('false_dead_air', float('nan')) * 100:.2f}%, lag {(s.get('health_lag_max_s') or 0) * 1e3:.0f} ms, "
            f"load {s['load_average_end'][0]})"
            for s in c["steps"]
        )
        lines.append(
            f"   {c['nodes']} worker node(s): largest held {c['largest_held']}  [{steps}] {c.get('stopped', '')}"
        )
    return "\n".join(lines)


def bytes_per_join(rows: list[dict], overhead: list[dict]) -> None:
    """Churn bytes beyond the steady rate at the same sample, per join."""
    steady = {(r["sample"], r["count"]): r["bytes_per_listener_s"] for r in rows if not r.get("churn")}
    for s in overhead:
        steady.setdefault((20, s["count"]), s["bytes_per_listener_s_sample20"]["median"])
    for r in rows:
        if not r.get("churn") or not r.get("joins"):
            continue
        base = [
            v
            for (smp, _c), v in sorted(steady.items(), key=lambda kv: abs(kv[0][1] - r["count"]))
            if smp == r["sample"]
        ]
        if base:
            r["steady_rate_used"] = base[0]
            r["bytes_per_join"] = (r["bytes_shipped"] - base[0] * r["listener_seconds"]) / r["joins"]


def main() -> None:
    p = argparse.ArgumentParser()
    ints = lambda s: [int(x) for x in s.split(",") if x]  # noqa: E731
    p.add_argument("--counts", type=ints, default=[1000, 2000])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seconds", type=float, default=15.0, help="measured window (s)")
    p.add_argument("--warmup", type=float, default=30.0, help="s beyond the ramp for all to hear")
    p.add_argument("--churn-count", type=int, default=1000)
    p.add_argument("--capacity-steps", type=ints, default=[1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000])
    p.add_argument("--capacity-seconds", type=float, default=10.0)
    p.add_argument("--budget", type=float, default=1200.0, help="s for the whole run (part 3 gets what is left)")
    p.add_argument("--wait-cluster-helper", type=float, default=60.0)
    p.add_argument("--skip", default="", help="parts to skip, e.g. 3 or 1,2")
    # internal: one node count of part 3 in a child process
    p.add_argument("--_capacity-child", dest="capacity_child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--nodes", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--edge", default="", help=argparse.SUPPRESS)
    p.add_argument("--child-budget", type=float, default=300.0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.capacity_child:
        part_capacity_child(args)
        return
    skip = set(args.skip.split(","))
    t_begin = time.monotonic()

    from chaos.stack.compose import Stack
    from chaos.stack.definition import find_stack

    stack = Stack(find_stack("audio-room"), PROJECT)
    result: dict[str, Any] = {"benchmark": "swarm-cluster", **provenance()}
    result["settings"] = {
        k: getattr(args, k)
        for k in (
            "counts",
            "repeats",
            "seconds",
            "warmup",
            "churn_count",
            "capacity_steps",
            "capacity_seconds",
            "budget",
        )
    }
    result["settings"].update(project=PROJECT, ramp_per_s=RAMP, settle_s=SETTLE, one_process_loop="uvloop")
    with docker_lock():
        t = time.monotonic()
        stack.up()
        result["stack_up_s"] = round(time.monotonic() - t, 1)
        host, port = stack.published("edge-1", 8000)
    stream = f"{host}:{port}/live"
    edge = StreamAddress(host, port, "/live")
    print(f"stack {PROJECT} up in {result['stack_up_s']}s; edge-1 at {stream}; load {load()}", flush=True)
    engine = None
    try:
        if not {"1", "2"} <= skip:
            from chaos.listen.shards.engine import RayEngine

            engine = RayEngine()
            t = time.monotonic()
            result["local_engine"] = connect(engine)
            result["local_engine"]["connect_s"] = round(time.monotonic() - t, 1)
            if "1" not in skip:
                result["overhead"] = part_overhead(args, engine, edge, stream)
                result["overhead_summary"] = summarise_overhead(result["overhead"])
            if "2" not in skip:
                result["bytes"] = part_bytes(args, engine, edge)
                bytes_per_join(result["bytes"], result.get("overhead_summary", []))
            engine.close()
            engine = None
        if "3" not in skip:
            left = max(120.0, args.budget - (time.monotonic() - t_begin) - 60)
            result["capacity"] = part_capacity(args, stream, left)
    finally:
        if engine is not None:
            engine.close()
        with docker_lock():
            stack.down()
    result["load_average_end"] = load()
    result["total_s"] = round(time.monotonic() - t_begin, 1)
    out = HERE / "results" / f"swarm-cluster-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str))
    print(table(result))
    print(f"\ntotal {result['total_s']:.0f}s; results: {out}")


if __name__ == "__main__":
    main()
