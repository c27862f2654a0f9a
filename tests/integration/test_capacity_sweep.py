"""`deadair capacity` on the real stack: a tiny sweep whose breaking step is known from the
configuration, run through the CLI as a user runs it.

The SLO is on what Icecast itself reports: per sampling round, the listeners of every Icecast
node summed (server.icecast_listeners), its median round under 10. With N listeners streaming
through the edges, Icecast counts N on the edges plus one relay per edge at the origin: N + 2.
Steps 2, 6, 14, 30 give 4, 8, 16, (32): the first two hold, 14 breaks, and 30 must never run.
The knee by the rule: u = (8 - 4) / (10 - 4) = 0.67 > 0.5 at 6, so the knee is 6 (a listener
counted twice in a round, or one missing, moves u by 1/6 at most: still over 0.5, and the median
round is not moved by a transient at all). About 60 s: three short runs on a shared stack.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from conftest import ROOT, deadair

from chaos.stack.compose import Stack

STACK = str(ROOT / "compose" / "audio-room")
EDGES = 2  # each edge relays the origin's /live: one listener each at the origin
BOUND = 10


def test_the_sweep_stops_at_the_first_breaking_step(stack: Stack, tmp_path: Path, state_dir: Path):
    exp = tmp_path / "capacity.yaml"
    exp.write_text(
        yaml.safe_dump(
            {
                "title": "capacity: Icecast counts its listeners",
                "stack": STACK,
                "seed": 3,
                "vars": {"n": 2},
                "listeners": {"count": "${n}"},
                "windows": {"gate": "2s", "recovery": "2s"},
                "steady_state": [{"measure": "dead_air.total", "expect": "p95 < 5s"}],
                "method": [{"at": "4s", "probe": "health", "http": {"url": "${links.entry-api}/health"}}],
                "capacity": {
                    "vary": "n",
                    "unit": "listeners",
                    "steps": [2, 6, 14, 30],
                    "slo": [
                        {"measure": "server.icecast_listeners", "expect": f"p50 < {BOUND}"},
                        {"measure": "dead_air.total", "expect": "p95 < 5s"},
                        {"measure": "time_to_first_audio", "expect": "p95 < 20s"},  # required of a sweep
                    ],
                    "target": 6,
                    "headroom": "0%",
                },
            },
            sort_keys=False,
        )
    )
    runs, out = tmp_path / "runs", tmp_path / "capacity"
    proc = deadair(
        "capacity", str(exp), "--out", str(out), "--journal-dir", str(runs), "--results", str(tmp_path / "r.sqlite")
    )
    print(proc.stdout, proc.stderr[-3000:])
    assert proc.returncode == 0, proc.stderr[-3000:]  # capacity 6 >= target 6 x (1 + 0%)
    (path,) = out.glob("*/capacity.json")
    doc = json.loads(path.read_text())
    assert (path.parent / "capacity.html").stat().st_size > 1_000_000  # Plotly inlined: offline

    steps = {s["load"]: s for s in doc["steps"]}
    assert [steps[n]["status"] for n in (2, 6, 14)] == ["passed", "passed", "failed"]
    assert steps[30]["status"] == "not run" and steps[30]["run_id"] is None
    ran = [s["run_id"] for s in doc["steps"] if s["run_id"]]
    assert sorted(p.name for p in runs.iterdir() if p.is_dir()) == sorted(ran)  # no run for the step after the break
    for n in (2, 6, 14):
        icecast = next(e for e in steps[n]["slo"] if e["measure"] == "server.icecast_listeners")
        assert icecast["value"] == n + EDGES, icecast
    assert doc["capacity"] == 6 and doc["breakpoint"] == 14 and doc["knee"] == 6
    assert doc["broken_by"] == [f"server.icecast_listeners p50 < {BOUND}"]
    assert doc["headroom"] == 0.0 and doc["unit"] == "listeners" and doc["required_load"] == 6
    assert doc["experiment_sha256"] and doc["stack_fingerprint"]["id"]  # what readiness --from-results matches
    assert [steps[n]["run_status"] for n in (2, 6, 14)] == ["passed", "passed", "passed"]
    u = next(e for e in steps[6]["slo"] if e["measure"] == "server.icecast_listeners")["used"]
    assert u == (6 + EDGES - (2 + EDGES)) / (BOUND - (2 + EDGES))

    # the servers' own numbers and the resources, per step, are plausible
    for n in (2, 6, 14):
        st = steps[n]
        assert st["servers"]["edge-1"]["listeners"]["max"] + st["servers"]["edge-2"]["listeners"]["max"] >= n
        res = st["resources"]
        assert "cgroup" in res["method"] or "Docker API" in res["method"]
        edges = [res["containers"][e] for e in ("edge-1", "edge-2")]
        assert all(e["cpu_cores"] > 0 for e in edges), edges
        assert all(0 < e["memory_bytes"] < e["memory_limit_bytes"] for e in edges), edges
        if "cgroup" in res["method"]:  # open files are read from /proc: at least one socket per listener
            served = {e: st["servers"][e]["listeners"]["max"] for e in ("edge-1", "edge-2")}
            for e in ("edge-1", "edge-2"):
                assert res["containers"][e]["open_files"] >= served[e], (e, res["containers"][e], served)
        assert 0 < res["host"]["cpu_util"] <= 1
        assert res["load_generator"]["cpu_mean"] > 0
    assert doc["binding"]["resource"] and doc["binding"]["evidence"]
    assert "capacity 6" in proc.stdout and "breakpoint 14" in proc.stdout
