"""Benchmark: the incident library on the real stack, every scenario repeated (README "Incident library").

    flock /tmp/deadair-docker.lock .venv/bin/python bench/incidents.py [--repeats 3] [--only STEM,...]
        [--var NAME=VALUE]... [--check-timeout 2s] [--diagnose 500,1000]

Runs every experiment of experiments/incidents/ that has no `capacity:` section (a sweep is
bench/capacity.py's), each `--repeats` times in a row through the CLI (`deadair run FILE --json`),
at the size its file declares (its `vars:` defaults) unless `--var` changes a variable (applied to
every experiment that declares it). Per scenario and repeat it keeps the run's status, exit code
and variables, and each verdict's measure, window (phase, step), bound, value and outcome; for a
node fault on an edge, the listeners that edge served when the fault began against the others
(how many lost their connection, how many gave up, their longest dead air). Then, per verdict,
the median and spread of its value over the repeats.

Two optional parts support what the README says about the weakness the library found:
- `--check-timeout 2s`: melting-edge.yaml again (`--check-timeout-for`), on a copy of the stack
  whose HAProxy health checks time out after 2 s instead of 400 ms (its haproxy.cfg mounted over
  the image's, the rest of the stack the same), `--repeats` times;
- `--diagnose 500,1000`: while N listeners stream through entry-lb (no fault), HAProxy's health
  check request to edge-1 sent through the lb-edge-1 link (the path HAProxy's checks take) and
  straight to edge-1, four times a second for 15 s: where a check's time goes; then joins at
  200/s for 5 s through the entry-api link (the listeners' path) and straight to room-api.

Writes bench/results/incidents-<time>.json with the commit, host, cores, time and load average
(tests/results.py). Hold the Docker lock for the whole bench: it runs the shared stack.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from results import provenance  # noqa: E402  (tests/results.py: commit, host, cores, time, load)

from chaos.checkers.history import History  # noqa: E402
from chaos.timeline import Timeline  # noqa: E402

LIBRARY = ROOT / "experiments" / "incidents"
EDGE_FAULTS = ("node.kill", "node.stop", "node.restart", "node.pause", "node.disconnect")


def scenarios(folder: Path, only: set[str] | None) -> list[Path]:
    """The library's experiments that are runs, not sweeps (no `capacity:` section)."""
    out = []
    for f in sorted(folder.glob("*.yaml")):
        data = yaml.safe_load(f.read_text()) or {}
        if "capacity" in data or (only and f.stem not in only):
            continue
        out.append(f)
    return out


def declared(f: Path) -> dict[str, Any]:
    return dict((yaml.safe_load(f.read_text()) or {}).get("vars") or {})


def run_once(f: Path, variables: dict[str, str], journal_dir: Path, timeout: float) -> dict[str, Any]:
    """One `deadair run` in a child process; its summary, or what went wrong."""
    cmd = [sys.executable, "-m", "chaos", "run", str(f), "--json", "--progress", "off"]
    cmd += ["--journal-dir", str(journal_dir)]
    for k, v in variables.items():
        cmd += ["--var", f"{k}={v}"]
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "exit_code": None, "seconds": round(time.monotonic() - t0, 1)}
    seconds = round(time.monotonic() - t0, 1)
    try:
        summary = json.loads(proc.stdout)
    except ValueError:
        return {"status": "error", "exit_code": proc.returncode, "seconds": seconds, "stderr": proc.stderr[-2000:]}
    run_dir = journal_dir / str(summary.get("run_id"))
    out = {
        "run_id": summary.get("run_id"),
        "status": summary.get("status"),
        "exit_code": proc.returncode,
        "seconds": seconds,
        "variables": summary.get("variables"),
        "stack_fingerprint": (summary.get("stack_fingerprint") or {}).get("id"),
        "verdicts": [
            {
                "name": v.get("name"),
                "phase": v.get("phase"),
                "step": v.get("step"),
                "measure": v.get("measure"),
                "expect": v.get("expect"),
                "stat": v.get("stat"),
                "value": v.get("value"),  # null: a listener never got there (infinite)
                "outcome": v.get("outcome"),
                "count": (v.get("summary") or {}).get("count"),
                "missing": (v.get("summary") or {}).get("missing"),
            }
            for v in summary.get("verdicts", [])
        ],
    }
    journal = run_dir / "journal.jsonl"
    if journal.is_file():
        analyse(out, journal)
    return out


def analyse(run: dict[str, Any], journal: Path) -> None:
    """What the bench derives from a run's journal (also redone by --reanalyse)."""
    run["by_edge"] = by_edge(journal)
    run["crowds"] = crowds(journal)
    run["swarm_lag_max_s"] = swarm_lag(journal)


def by_edge(journal: Path) -> list[dict[str, Any]]:
    """For each node fault on an edge: the listeners that edge served when the fault began, and the
    others. Per group: listeners, how many lost their connection and how many gave up from the
    fault's start to its end plus 5 s, and their longest dead-air span overlapping that window
    (per listener, as the dead_air measure defines spans; p50, p95, max over the group)."""
    h = History(Timeline.read_journal(journal).events)
    out = []
    for span in sorted(h.faults.values(), key=lambda s: s.start):
        if span.fault not in EDGE_FAULTS or not str(span.target or "").startswith("edge-"):
            continue
        lo, hi = span.start, span.end + 5.0
        groups: dict[str, list[str]] = {"on_target": [], "others": []}
        for lid, evs in h.by_listener.items():
            served = [e for e in evs if e.kind == "listener.connected" and e.t <= span.start and e.data.get("server")]
            if not served:
                continue
            groups["on_target" if served[-1].data["server"] == span.target else "others"].append(lid)
        row: dict[str, Any] = {"step": span.step, "fault": span.fault, "target": span.target}
        spans = h.dead_air_spans()
        for name, lids in groups.items():
            # each span at its full length, as the dead_air measure counts one that overlaps a window
            longest = sorted(
                max((e - s for s, e in spans.get(lid, ()) if e > lo and s < hi), default=0.0) for lid in lids
            )
            lost = sum(
                1
                for lid in lids
                if any(e.kind == "listener.disconnect" and lo <= e.t <= hi for e in h.by_listener[lid])
            )
            gave_up = sum(
                1 for lid in lids if any(e.kind == "listener.gave_up" and lo <= e.t <= hi for e in h.by_listener[lid])
            )
            row[name] = {
                "listeners": len(lids),
                "lost_connection": lost,
                "gave_up": gave_up,
                "dead_air_p50_s": pick(longest, 0.50),
                "dead_air_p95_s": pick(longest, 0.95),
                "dead_air_max_s": longest[-1] if longest else None,
            }
        out.append(row)
    return out


def crowds(journal: Path) -> list[dict[str, Any]]:
    """For each join step: how much of its crowd got in and what it heard first; when the first join
    that failed was sent (seconds into the crowd) and the crowd's arrival rate then (its first join
    requests in the second around it); every join request the swarm sent against the requests
    room-api counted over the run (its own counter: what reached it); and the longest dead-air span
    (p95, max over them) of the listeners who were in the room before the method."""
    h = History(Timeline.read_journal(journal).events)
    out = []
    for ev in (e for e in h.events if e.kind == "step.join"):
        prefix = f"J{ev.data['step']}-"
        crowd = [lid for lid in h.listeners if lid.startswith(prefix)]
        joined = [lid for lid in crowd if any(e.kind == "listener.joined" for e in h.by_listener[lid])]
        heard = [lid for lid in crowd if h.first_audio(lid) is not None]
        first_title = [
            next((e.data.get("title") for e in h.by_listener[lid] if e.kind == "listener.stream"), None)
            for lid in heard
        ]
        firsts = sorted(
            e.t for lid in crowd for e in h.by_listener[lid] if e.kind == "listener.join" and e.data.get("attempt") == 0
        )
        failed_sent = sorted(
            e.t - float(e.data.get("latency", 0.0))
            for lid in crowd
            for e in h.by_listener[lid]
            if e.kind == "listener.join_failed"
        )
        first_fail = failed_sent[0] if failed_sent else None
        api = [e for e in h.server if e.data.get("probe") == "room-api" and "requests" in e.data]
        window = h.phases.get("during")
        room = [lid for lid in h.listeners if not lid.startswith("J")]
        spans = h.dead_air_spans()
        lo, hi = (window.start, window.end + 5.0) if window else (0.0, h.end)
        longest = sorted(max((e - s for s, e in spans.get(lid, ()) if e > lo and s < hi), default=0.0) for lid in room)
        out.append(
            {
                "step": ev.data["step"],
                "count": ev.data.get("count"),
                "shape": ev.data.get("shape"),
                "joined": len(joined),
                "heard": len(heard),
                "heard_hold_first": sum(1 for t in first_title if t == "hold"),
                "first_failed_join_sent_s": None if first_fail is None else round(first_fail - ev.t, 2),
                "arrival_rate_then_per_s": None
                if first_fail is None
                else sum(1 for t in firsts if first_fail - 0.5 <= t < first_fail + 0.5),
                "join_requests_sent": sum(
                    1 for lid in crowd + room for e in h.by_listener[lid] if e.kind == "listener.join"
                ),
                "room_api_requests_counted": int(api[-1].data["requests"]) - int(api[0].data["requests"])
                if len(api) > 1
                else None,
                "room_listeners": len(room),
                "room_dead_air_p95_s": pick(longest, 0.95),
                "room_dead_air_max_s": round(longest[-1], 3) if longest else None,
            }
        )
    return out


def pick(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (an observed value), as the measures compute theirs."""
    if not sorted_values:
        return None
    k = min(len(sorted_values), max(1, math.ceil(q * len(sorted_values) - 1e-9))) - 1
    return round(sorted_values[k], 3)


def swarm_lag(journal: Path) -> float:
    h = History(Timeline.read_journal(journal).events)
    return round(max((float(e.data.get("lag_max", 0.0)) for e in h.health), default=0.0), 3)


def spread(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per verdict (by its window, measure and bound: a run that stopped at the gate names its
    verdicts without their window), over the runs that reached the method (a run that was not
    steady injected nothing): outcomes, and the median, min and max of its value (a value of null,
    a listener that never got there, counts as infinite)."""
    names: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in runs:
        if not any(v["phase"] != "before" for v in r.get("verdicts", [])):
            continue
        for v in r.get("verdicts", []):
            names.setdefault((v["phase"], v["step"], v["measure"], v["expect"]), []).append(v)
    out = []
    for (_, _, _, _), vs in names.items():
        name = vs[0]["name"]
        values = [float("inf") if v["value"] is None else float(v["value"]) for v in vs]
        med = statistics.median(values)
        out.append(
            {
                "name": name,
                "phase": vs[0]["phase"],
                "step": vs[0]["step"],
                "measure": vs[0]["measure"],
                "expect": vs[0]["expect"],
                "outcomes": {o: sum(1 for v in vs if v["outcome"] == o) for o in sorted({v["outcome"] for v in vs})},
                "median": None if med == float("inf") else med,
                "min": None if min(values) == float("inf") else min(values),
                "max": None if max(values) == float("inf") else max(values),
                "values": [v["value"] for v in vs],
            }
        )
    return out


def stack_with_check_timeout(timeout: str, where: Path) -> Path:
    """A copy of compose/audio-room, named audio-room-check<timeout> (its own compose project),
    whose HAProxy config differs in `timeout check` only, mounted over the image's. Returns its
    compose file."""
    name = f"audio-room-check{timeout}"
    dst = where / "compose" / name
    shutil.copytree(ROOT / "compose" / "audio-room", dst)
    cfg = dst / "config" / "haproxy.cfg"
    text = cfg.read_text()
    if "    timeout check 400ms\n" not in text:
        raise SystemExit("haproxy.cfg no longer says `timeout check 400ms`: update bench/incidents.py")
    cfg.write_text(text.replace("    timeout check 400ms\n", f"    timeout check {timeout}\n"))
    compose = dst / "docker-compose.yml"
    text = compose.read_text()
    lb_cmd = '    command: ["haproxy", "-W", "-db", "-f", "/etc/deadair/haproxy.cfg"]\n'
    if lb_cmd not in text or "context: ../..\n" not in text:
        raise SystemExit("the lb service or the build context changed: update bench/incidents.py")
    text = text.replace(lb_cmd, lb_cmd + '    volumes: ["./config/haproxy.cfg:/etc/deadair/haproxy.cfg:ro"]\n')
    text = text.replace("context: ../..\n", f"context: {ROOT}\n")
    compose.write_text(text)
    return compose


def timed_get(url: str) -> float:
    """Seconds to answer a GET on a new connection (3.0: no answer within 3 s)."""
    import requests

    t0 = time.monotonic()
    try:
        requests.get(url, timeout=3, headers={"Connection": "close"})
        return time.monotonic() - t0
    except requests.RequestException:
        return 3.0


async def join_burst(api: tuple[str, int], room: str, rate: float, seconds: float) -> dict[str, Any]:
    """Joins sent at `rate` for `seconds` (each given 5 s, as a listener gives its join): how many
    were answered with a stream URL, and how fast."""
    from chaos.listen.swarm import post_json

    latencies: list[float] = []
    failed = 0

    async def one(i: int) -> None:
        nonlocal failed
        t0 = time.monotonic()
        try:
            status, _ = await asyncio.wait_for(post_json(api[0], api[1], f"/rooms/{room}/join", {"user": f"b{i}"}), 5)
        except (TimeoutError, OSError):
            status = 0
        if status == 200:
            latencies.append(time.monotonic() - t0)
        else:
            failed += 1

    t0, tasks = time.monotonic(), []
    for i in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        tasks.append(asyncio.ensure_future(one(i)))
    await asyncio.gather(*tasks)
    latencies.sort()
    return {
        "rate_per_s": rate,
        "sent": len(tasks),
        "answered": len(latencies),
        "failed": failed,
        "p50_ms": round(statistics.median(latencies) * 1000) if latencies else None,
        "p95_ms": round((pick(latencies, 0.95) or 0.0) * 1000) if latencies else None,
    }


def check_path(
    n: int, stream: tuple[str, int], urls: dict[str, str], seconds: float, joins: dict[str, tuple[str, int]], room: str
) -> dict[str, Any]:
    """N listeners stream (joining at 50/s); then each URL is fetched four times a second for
    `seconds`; then joins go to each of `joins` at 200/s for 5 s, one after the other."""
    from chaos.listen.listener import ListenerSettings, StreamAddress
    from chaos.listen.swarm import Swarm

    bursts: dict[str, Any] = {}

    res: dict[str, list[float]] = {k: [] for k in urls}
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for k, url in urls.items():
                res[k].append(timed_get(url))
            stop.wait(0.25)

    async def listen() -> int:
        settings = ListenerSettings(
            count=n, stream=StreamAddress(stream[0], stream[1], "/live"), arrival="ramp", arrival_over=n / 50
        )
        swarm = Swarm(settings, Timeline())
        await swarm.start()
        await asyncio.sleep(n / 50 + 3)
        th = threading.Thread(target=sample)
        th.start()
        await asyncio.sleep(seconds)
        stop.set()
        await asyncio.to_thread(th.join)
        for name, api in joins.items():
            bursts[name] = await join_burst(api, room, 200.0, 5.0)
            await asyncio.sleep(3)
        hearing = swarm.hearing()
        await swarm.stop()
        return hearing

    row: dict[str, Any] = {"listeners": n, "hearing": asyncio.run(listen()), "load_average": os.getloadavg()}
    for k, v in res.items():
        v = sorted(v)
        row[k] = {
            "samples": len(v),
            "p50_ms": round(statistics.median(v) * 1000),
            "p95_ms": round((pick(v, 0.95) or 0.0) * 1000),
            "max_ms": round(v[-1] * 1000),
            "over_400ms": sum(1 for x in v if x > 0.4),
        }
    row["joins_200_per_s"] = bursts
    return row


def diagnose(counts: list[int], seconds: float = 15.0) -> list[dict[str, Any]]:
    """While N listeners stream through entry-lb: HAProxy's check request (GET /status-json.xsl,
    a new connection each time) through the lb-edge-1 link and straight to edge-1; then joins at
    200/s through the entry-api link (the path listeners' joins take) and straight to room-api."""
    from chaos.stack.compose import Stack
    from chaos.stack.definition import find_stack
    from chaos.stack.room import RoomApi

    stack = Stack(find_stack("audio-room"))
    started = not stack.is_running()
    if started:
        stack.up()
    try:

        def address(node: str) -> str:
            nets = stack.container(node).attrs["NetworkSettings"]["Networks"]
            return str(next(iter(nets.values()))["IPAddress"])

        link_port = stack.definition.links["lb-edge-1"].listen_port
        urls = {
            "through_link": f"http://{address('toxiproxy')}:{link_port}/status-json.xsl",
            "direct": f"http://{address('edge-1')}:8000/status-json.xsl",
        }
        joins = {"through_link": stack.link_address("entry-api"), "direct": stack.published("room-api", 8080)}
        direct = joins["direct"]
        room = RoomApi(f"http://{direct[0]}:{direct[1]}").live_room("bench: check path")
        out = []
        for n in counts:
            row = check_path(n, stack.link_address("entry-lb"), urls, seconds, joins, room)
            print(f"diagnose {n}: {row}", flush=True)
            out.append(row)
            time.sleep(5)
        return out
    finally:
        if started:
            stack.down()


def reanalyse(results: Path) -> None:
    """Redo, from the journals a results file's runs kept, what the bench derives from them (the
    per-edge and per-crowd figures, the spread over repeats), with the current code; the measured
    values (statuses, verdicts) are left as they were. Says so in the file (`reanalysed`)."""
    doc = json.loads(results.read_text())
    journals = ROOT / doc["journals"]
    for sc in doc["scenarios"]:
        for r in sc["runs"]:
            journal = journals / str(r.get("run_id")) / "journal.jsonl"
            if journal.is_file():
                analyse(r, journal)
        sc["verdicts"] = spread(sc["runs"])
    doc["reanalysed"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results.write_text(json.dumps(doc, indent=2, default=lambda x: None))
    print(f"reanalysed: {results}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", default=str(LIBRARY))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--only", default="", help="file stems, comma-separated")
    p.add_argument("--var", action="append", default=[], help="NAME=VALUE for every experiment that declares NAME")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per run")
    p.add_argument("--check-timeout", default="", help="also run --check-timeout-for with this check timeout")
    p.add_argument("--check-timeout-for", default="melting-edge", help="file stems, comma-separated")
    p.add_argument("--diagnose", default="", help="listener counts for the check-path diagnosis, e.g. 500,1000")
    p.add_argument("--reanalyse", default="", help="a results file: redo what is derived from its runs' journals")
    args = p.parse_args()
    if args.reanalyse:
        return reanalyse(Path(args.reanalyse))
    overrides = dict(v.split("=", 1) for v in args.var)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    journal_dir = ROOT / ".deadair" / "bench" / f"incidents-{stamp}"
    header = provenance()
    files = scenarios(Path(args.dir), set(filter(None, args.only.split(","))) or None)
    plan: list[tuple[str, Path, dict[str, str]]] = []
    for f in files:
        mine = {k: v for k, v in overrides.items() if k in declared(f)}
        plan.append((f.stem, f, mine))
    tmp = Path(tempfile.mkdtemp(prefix="deadair-incidents-"))
    if args.check_timeout:
        compose = stack_with_check_timeout(args.check_timeout, tmp)
        for f in files:
            if f.stem in args.check_timeout_for.split(","):
                mine = {k: v for k, v in overrides.items() if k in declared(f)}
                plan.append((f"{f.stem}@check-{args.check_timeout}", f, {**mine, "stack": str(compose)}))
    results = []
    try:
        for label, f, variables in plan:
            data = yaml.safe_load(f.read_text())
            runs = []
            for i in range(args.repeats):
                r = run_once(f, variables, journal_dir, args.timeout)
                runs.append(r)
                failed = [
                    f"{v['phase'] if v['phase'] != 'step' else 'step ' + str(v['step'])} {v['measure']}"
                    for v in r.get("verdicts", [])
                    if v["outcome"] != "pass"
                ]
                print(
                    f"{label} {i + 1}/{args.repeats}: {r['status']} (exit {r['exit_code']}) in {r['seconds']}s; "
                    f"not passed: {', '.join(failed) or 'none'}",
                    flush=True,
                )
            results.append(
                {
                    "scenario": label,
                    "file": str(f.relative_to(ROOT)),
                    "title": data.get("title"),
                    "tags": data.get("tags"),
                    "overrides": variables,
                    "runs": runs,
                    "statuses": [r["status"] for r in runs],
                    "verdicts": spread(runs),
                }
            )
        diagnosis = diagnose([int(n) for n in args.diagnose.split(",")]) if args.diagnose else None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    out = ROOT / "bench" / "results" / f"incidents-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "benchmark": "incidents",
        **header,
        "load_average_after": os.getloadavg(),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "repeats": args.repeats,
        "journals": str(journal_dir.relative_to(ROOT)),
        "scenarios": results,
        "check_path_diagnosis": diagnosis,
    }
    out.write_text(json.dumps(doc, indent=2, default=lambda x: None))
    print(f"results: {out}")


if __name__ == "__main__":
    main()
