"""The capacity sweep on synthetic step data: the knee rule, headroom, the exit code, stopping at
the first break, the binding resource, judging a step from a recorded history, the resource
readings from cgroup files, and the `capacity:` section's located errors."""

from __future__ import annotations

import math
import os
from pathlib import Path

import pytest
import yaml

from chaos.capacity import knee
from chaos.capacity.binding import LOAD_GENERATOR, binding, candidates
from chaos.capacity.knee import Point, StepPoints, analyse, exit_code, headroom, margin_used
from chaos.capacity.steps import judge_slo, servers
from chaos.capacity.sweep import sweep_steps
from chaos.checkers.history import History
from chaos.cli import main
from chaos.errors import ExperimentError
from chaos.language.loader import load_experiment
from chaos.language.model import Capacity, Check
from chaos.stack import resources
from chaos.timeline import Event

# -- the knee rule -------------------------------------------------------------------------------


def pts(load: float, *values: tuple[float, float, str], status: str | None = None) -> StepPoints:
    """A step with SLOs given as (value, bound, op): each passes or fails by its own bound."""
    slo = []
    for i, (value, bound, op) in enumerate(values):
        ok = value < bound if op == "<" else value >= bound
        slo.append(Point(f"m{i}", f"{op} {bound}", value, bound, op, "pass" if ok else "fail"))
    outcome = status or ("failed" if any(p.outcome == "fail" for p in slo) else "passed")
    return StepPoints(load, outcome, slo)


def test_margin_used_is_the_share_of_the_first_steps_margin():
    assert margin_used(0.2, 0.2, 1.0) == 0.0
    assert margin_used(0.6, 0.2, 1.0) == pytest.approx(0.5)
    assert margin_used(0.1, 0.2, 1.0) < 0  # better than the first step: no margin used
    # a lower bound is the mirror image: connected ratio 1.0 -> 0.94 against >= 0.9 used 60 %
    assert margin_used(0.94, 1.0, 0.9) == pytest.approx(0.6)
    assert margin_used(0.5, 0.2, 1.0, passed=False) == math.inf  # a failed SLO used all of it
    assert margin_used(math.inf, 0.2, 1.0) == math.inf
    assert margin_used(0.0, 0.0, 0.0) == 0.0 and margin_used(0.1, 0.0, 0.0) == math.inf


def test_knee_capacity_and_breakpoint_by_the_rule():
    steps = [
        pts(100, (0.1, 1.0, "<"), (0.99, 0.9, ">=")),
        pts(200, (0.5, 1.0, "<"), (0.98, 0.9, ">=")),  # u = 0.44, 0.11: no knee yet
        pts(400, (0.6, 1.0, "<"), (0.97, 0.9, ">=")),  # u = 0.56: the knee
        pts(800, (1.2, 1.0, "<"), (0.95, 0.9, ">=")),  # the first SLO breaks
    ]
    a = analyse(steps, target=1000)
    assert (a.knee, a.capacity, a.breakpoint) == (400, 400, 800)
    assert a.broken_by == ["m0 < 1.0"]
    assert a.headroom == pytest.approx(-0.6)
    assert a.used[1]["m0 < 1.0"] == pytest.approx(0.4 / 0.9)
    assert a.used[3]["m0 < 1.0"] == math.inf


def test_the_knee_is_found_on_a_lower_bound_too():
    a = analyse([pts(1, (1.0, 0.9, ">=")), pts(2, (0.97, 0.9, ">=")), pts(3, (0.94, 0.9, ">="))], target=None)
    assert (a.knee, a.capacity, a.breakpoint, a.headroom) == (3, 3, None, None)


def test_a_custom_knee_share():
    steps = [pts(1, (0.0, 1.0, "<")), pts(2, (0.3, 1.0, "<"))]
    assert analyse(steps, None, knee_used=0.25).knee == 2
    assert analyse(steps, None).knee is None


def test_nothing_passed_no_capacity_and_the_first_step_is_knee_and_breakpoint():
    a = analyse([pts(50, (2.0, 1.0, "<"))], target=100)
    assert (a.knee, a.capacity, a.breakpoint, a.headroom) == (50, None, 50, None)
    assert exit_code(a, 100, None, False) == 1


def test_an_unknown_step_decides_nothing_beyond_it():
    a = analyse([pts(1, (0.1, 1.0, "<")), pts(2, (0.9, 1.0, "<"), status="unknown")], target=2)
    assert (a.capacity, a.breakpoint) == (1, None)
    assert a.knee is None  # an unknown step is not judged for the knee either
    assert exit_code(a, 2, "unknown", False) == 4


def test_a_first_step_on_its_bound_then_a_better_one_used_nothing():
    """Review finding 15: step 1 exactly on `>= 0.9`, step 2 better: u = 0, not inf."""
    assert margin_used(0.95, 0.9, 0.9, True, ">=") == 0.0 and margin_used(0.85, 0.9, 0.9, True, ">=") == math.inf
    assert margin_used(0.5, 1.0, 1.0, True, "<=") == 0.0 and margin_used(1.5, 1.0, 1.0, True, "<=") == math.inf


def test_the_target_holds_only_with_its_headroom():
    """Review finding 8: capacity 1000 at a target of 1000 is no headroom: exit 1 under 25%."""
    a = analyse([pts(1000, (0.1, 1.0, "<")), pts(2000, (2.0, 1.0, "<"))], 1000)
    assert a.capacity == 1000 and a.headroom == 0.0
    assert exit_code(a, 1000, None, False, 0.25) == 1 and exit_code(a, 800, None, False, 0.25) == 0
    assert knee.holds(1000, 800, 0.25) and not knee.holds(999, 800, 0.25) and knee.holds(5, None, 0.25)


def test_headroom_and_exit_codes():
    assert headroom(800, 1000) == pytest.approx(-0.2)
    assert headroom(1250, 1000) == pytest.approx(0.25)
    assert headroom(None, 1000) is None and headroom(800, None) is None
    held = analyse([pts(500, (0.1, 1.0, "<")), pts(1000, (0.2, 1.0, "<")), pts(2000, (3.0, 1.0, "<"))], 1000)
    assert exit_code(held, 1000, None, False) == 0
    assert exit_code(held, 1000, None, True) == 0  # the target held: who bound the break does not matter
    assert exit_code(held, 1500, None, False) == 1
    assert exit_code(held, 1500, None, True) == 4  # broke below the target with the load generator binding
    assert exit_code(held, None, None, False) == 0  # no target: something passed


# -- stopping at the first break ------------------------------------------------------------------


def _cap(*steps: float) -> Capacity:
    return Capacity("listeners.count", tuple(steps), (Check(measure="dead_air.total", expect="p95 < 1s"),))


@pytest.mark.parametrize(
    "outcomes, ran, stopped, code",
    [
        (["passed", "passed", "failed", "passed"], [1, 2, 3], None, None),
        (["passed", "unknown", "failed"], [1, 2], "unknown", None),
        (["error"], [1], "error", 3),
        (["passed", "passed"], [1, 2], None, None),
    ],
)
def test_the_sweep_runs_no_step_after_the_first_that_did_not_pass(outcomes, ran, stopped, code):
    called: list[float] = []

    def one_step(load, _exp):
        called.append(load)
        status = outcomes[int(load) - 1]
        return {"load": load, "status": status}, StepPoints(load, status), 3 if status == "error" else 0

    cap = _cap(*range(1, len(outcomes) + 1))
    steps, points, why, run_code = sweep_steps(cap, [None] * len(outcomes), one_step, lambda _m: None)  # type: ignore[list-item]
    assert called == ran and [s["load"] for s in steps] == ran and len(points) == len(ran)
    assert (why, run_code) == (stopped, code)


# -- the binding resource ----------------------------------------------------------------------------


RES = {
    "containers": {
        "edge-1": {
            "cpu_cores": 0.8,
            "cpu_limit_cores": 2,
            "cpu_util": 0.4,
            "memory_bytes": 5e6,
            "memory_limit_bytes": 2e10,
            "memory_util": 0.00025,
            "open_files": 1900,
            "open_files_limit": 2000,
            "open_files_util": 0.95,
            "open_files_process": "icecast2",
        },
        "lb": {"cpu_cores": 0.2, "cpu_limit_cores": 2, "cpu_util": 0.1},
    },
    "host": {"cpu_util": 0.7, "cpu_cores": 1.4, "cores": 2},
    "load_generator": {"cpu_mean": 0.5, "cpu_max": 0.7, "cpu_util": 0.5, "lag_max": 0.03},
}


def test_the_binding_resource_is_the_one_nearest_its_limit_with_its_numbers():
    b = binding(RES, 4000)
    assert b is not None and b["resource"] == "edge-1 open files" and not b["load_generator"]
    assert "1900" in b["evidence"] and "2000" in b["evidence"] and b["evidence"].startswith("at 4000")
    # the load generator (0.5 of its core, 30 ms lag) is under its thresholds: not a candidate
    assert [n["resource"] for n in b["next"]] == ["host CPU", "edge-1 CPU", "lb CPU"]
    assert not b["other_work"] and b["other_work_cores"] == 0.0


def test_no_resource_is_named_without_readings_of_the_stack():
    """Review finding 4: no container read, the load generator at 8%: nothing "ran out first"."""
    res = {"host": {"cpu_util": 0.5, "cpu_cores": 1.0, "cores": 2}, "load_generator": RES["load_generator"]}
    b = binding({**res, "containers": {}, "unread": ["edge-1", "lb"]}, 1600)
    assert b is not None and b["resource"] is None and not b["load_generator"]
    assert b["evidence"] == "at 1600: no readings of the stack's resources; no readings of edge-1, lb"


def test_a_single_threaded_container_without_a_limit_is_rated_against_one_core():
    """Review finding 4: room-api's one event loop at 0.98 of a core is at its limit, not at 49%."""
    res = {
        "containers": {"room-api": {"cpu_cores": 0.98, "cpu_limit_cores": 2, "cpu_util": 0.49}},
        "host": {"cpu_util": 0.8, "cpu_cores": 1.6, "cores": 2},
        "load_generator": {"cpu_mean": 0.6, "cpu_max": 0.7, "cpu_util": 0.6, "lag_max": 0.05},
    }
    b = binding(res, 400)
    assert b is not None and b["resource"] == "room-api CPU" and b["utilisation"] == 0.98
    assert "one aiohttp event loop" in b["evidence"]


def test_other_work_on_the_machine_bounds_the_sweep_not_the_stack():
    """Review finding 12: the host 99% busy, the stack and deadair using 0.9 of its 2 cores."""
    res = {
        "containers": {"edge-1": {"cpu_cores": 0.5, "cpu_limit_cores": 2, "cpu_util": 0.25}},
        "host": {"cpu_util": 0.99, "cpu_cores": 1.98, "cores": 2},
        "load_generator": {"cpu_mean": 0.4, "cpu_max": 0.5, "cpu_util": 0.4, "lag_max": 0.05},
    }
    b = binding(res, 500)
    assert b is not None and b["other_work"] and b["other_work_cores"] == pytest.approx(1.08)
    assert "the machine, not the stack, bound it" in b["evidence"]
    a = analyse([pts(500, (5.0, 3.0, "<"))], 2000)
    assert exit_code(a, 2000, None, b["other_work"]) == 4


def test_a_load_generator_that_binds_is_said_plainly():
    res = {**RES, "load_generator": {"cpu_mean": 0.98, "cpu_max": 1.0, "cpu_util": 0.98, "lag_max": 0.4}}
    b = binding(res)
    assert b is not None and b["resource"] == LOAD_GENERATOR and b["load_generator"]
    assert "measured deadair" in b["evidence"] and "400 ms" in b["evidence"]
    assert binding({}) is None
    lagging = {**RES, "load_generator": {"cpu_mean": 0.3, "cpu_max": 0.4, "cpu_util": 0.97, "lag_max": 0.05}}
    assert binding(lagging)["load_generator"]  # type: ignore[index]  # CPU over its threshold alone
    lag_only = {**RES, "load_generator": {"cpu_mean": 0.3, "cpu_max": 0.4, "cpu_util": 0.3, "lag_max": 2.0}}
    assert LOAD_GENERATOR in [c["resource"] for c in candidates(lag_only)]  # its lag over its threshold
    assert LOAD_GENERATOR not in [c["resource"] for c in candidates(RES)]


# -- a step judged from its recorded history -----------------------------------------------------------


def history(listeners: int, icecast: float, lag: float = 0.0) -> History:
    """A run: joins at 0 s, first audio at 0.5 s, gate from 1 s, method 3-8 s, recovery to 10 s;
    Icecast reports `icecast` listeners once a second."""
    ev = [
        Event(1.0, "run.phase", "runner", {"name": "before", "start": 1.0, "end": 3.0}),
        Event(3.0, "run.method", "runner", {"start": 3.0, "length": 5.0}),
        Event(3.0, "run.phase", "runner", {"name": "during", "start": 3.0, "end": 8.0}),
        Event(8.0, "run.phase", "runner", {"name": "after", "start": 8.0, "end": 10.0}),
        Event(10.5, "run.end", "runner"),
    ]
    for i in range(listeners):
        ev += [Event(0.0, "listener.join", f"L{i}"), Event(0.5, "listener.first_audio", f"L{i}")]
    for r, t in enumerate(range(1, 11)):
        ev.append(Event(float(t), "server.sample", "edge-1", {"probe": "icecast", "round": r, "listeners": icecast}))
        ev.append(Event(float(t), "swarm.health", "swarm", {"lag_max": lag, "cpu": 0.2, "since": t - 1.0}))
    return History(ev)


SLO = (
    Check(measure="server.icecast_listeners", expect="p50 < 10"),
    Check(measure="time_to_first_audio", expect="p95 < 2s"),
)


def test_a_step_is_judged_over_the_run_after_warm_up_and_joins_from_the_first_join():
    status, entries, points = judge_slo(history(4, 6), SLO)
    assert status == "passed"
    ice, ttfa = entries
    assert ice["value"] == 6 and ice["bound"] == 10 and ice["margin"] == pytest.approx(0.4)
    assert ice["window"] == [0.0, 10.0]  # from the first join (warm-up included) to the last phase's end
    assert ttfa["value"] == pytest.approx(0.5) and ttfa["window"] == [0.0, 10.0]  # joins are in the warm-up
    assert [p.outcome for p in points] == ["pass", "pass"]
    assert judge_slo(history(4, 12), SLO)[0] == "failed"
    assert servers(history(4, 6))["edge-1"]["listeners"] == {"min": 6.0, "mean": 6.0, "max": 6.0, "n": 10}


def test_silence_during_the_warm_up_counts_against_a_step():
    """Review finding 11: listeners that joined at 0 s and heard nothing until 55 s (the gate at
    60 s): judged from the gate, with a dead-air SLO alone, the step passed. Every SLO now runs from
    the first join, and a sweep must have a time_to_first_audio SLO (the language refuses one
    without: test_a_bad_capacity_section_is_a_located_error), which this silence breaks
    (dead_air.total counts from a listener's first audio: README Measures)."""
    ev = [
        Event(60.0, "run.phase", "runner", {"name": "before", "start": 60.0, "end": 65.0}),
        Event(65.0, "run.method", "runner", {"start": 65.0, "length": 15.0}),
        Event(65.0, "run.phase", "runner", {"name": "during", "start": 65.0, "end": 80.0}),
        Event(80.0, "run.phase", "runner", {"name": "after", "start": 80.0, "end": 85.0}),
        Event(85.5, "run.end", "runner"),
    ]
    for i in range(20):
        ev += [Event(0.0, "listener.join", f"L{i}"), Event(55.0, "listener.first_audio", f"L{i}")]
    slo = (Check(measure="dead_air.total", expect="p95 < 1s"), Check(measure="time_to_first_audio", expect="p95 < 3s"))
    status, entries, _ = judge_slo(History(ev), slo)
    assert [e["window"] for e in entries] == [[0.0, 85.0], [0.0, 85.0]]
    assert status == "failed" and [e["outcome"] for e in entries] == ["pass", "fail"] and entries[1]["value"] == 55.0


def test_a_verdict_within_the_swarms_lag_of_its_bound_makes_the_step_unknown():
    slo = (Check(measure="time_to_first_audio", expect="p95 < 600ms"),)
    assert judge_slo(history(4, 6, lag=0.0), slo)[0] == "passed"
    status, entries, _ = judge_slo(history(4, 6, lag=0.2), slo)  # 0.5 s is within 0.2 s of 0.6 s
    assert status == "unknown" and entries[0]["outcome"] == "unknown"


def test_a_run_that_never_reached_its_gate_cannot_be_judged():
    h = History([Event(0.0, "listener.join", "L0"), Event(2.0, "run.end", "runner")])
    assert judge_slo(h, SLO) == ("error", [], [])


# -- resource readings from cgroup files ----------------------------------------------------------------


def fake_v2(root: Path, pid: int, usage_usec: int, fds: int) -> resources._Target:
    cg = root / "sys" / "docker-abc.scope"
    cg.mkdir(parents=True, exist_ok=True)
    (cg / "cpu.stat").write_text(f"usage_usec {usage_usec}\nuser_usec 1\n")
    (cg / "cpu.max").write_text("150000 100000\n")
    (cg / "memory.current").write_text("3000000\n")
    (cg / "memory.stat").write_text("anon 1\ninactive_file 1000000\n")
    (cg / "memory.max").write_text("max\n")
    (cg / "cgroup.procs").write_text(f"{pid}\n")
    proc = root / "proc" / str(pid)
    (proc / "fd").mkdir(parents=True, exist_ok=True)
    for f in (proc / "fd").iterdir():
        f.unlink()
    for i in range(fds):
        (proc / "fd" / str(i)).write_text("")
    (proc / "limits").write_text("Limit  Soft Limit  Hard Limit  Units\nMax open files  1024  4096  files\n")
    (proc / "comm").write_text("icecast2\n")
    return resources._Target("edge-1", "abc", pid, cgroup_v2=cg)


def test_cgroup_v2_readings_and_their_summary(tmp_path, monkeypatch):
    monkeypatch.setattr(resources, "PROC", tmp_path / "proc")
    t = fake_v2(tmp_path, 42, 1_000_000, 10)
    r1 = resources.read_cgroup(t, cores=2, memory_total=8e9)
    assert (r1.cpu_seconds, r1.cpu_limit, r1.memory, r1.memory_limit) == (1.0, 1.5, 2e6, 8e9)
    assert (r1.open_files, r1.open_files_limit, r1.open_files_process) == (10, 1024, "icecast2")
    fake_v2(tmp_path, 42, 4_000_000, 512)
    r2 = resources.read_cgroup(t, cores=2, memory_total=8e9)
    readings = [
        resources.Reading(100.0, {"edge-1": r1}, host_busy=100, host_total=400),
        resources.Reading(104.0, {"edge-1": r2}, host_busy=900, host_total=1200),
    ]
    s = resources.summarise(readings, 100.0, 104.0, cores=2)
    e = s["containers"]["edge-1"]
    assert e["cpu_cores"] == pytest.approx(0.75) and e["cpu_util"] == pytest.approx(0.5)  # 3 s over 4 s, of 1.5
    assert e["open_files"] == 512 and e["open_files_util"] == pytest.approx(0.5)
    assert s["host"] == {"cpu_util": 1.0, "cpu_cores": 2.0, "cores": 2}
    assert resources.summarise(readings[:1], 100.0, 104.0, cores=2) == {}


def test_failed_readings_are_none_never_zero():
    """Review finding 9: a counter reset, empty Docker stats, no usage_usec, a container never read."""
    C, R = resources.ContainerReading, resources.Reading
    rs = [
        R(0.0, {"edge-1": C(cpu_seconds=500.0, cpu_limit=2, memory=1e8, memory_limit=8e9)}, 0, 0),
        R(5.0, {"edge-1": C(cpu_seconds=510.0, cpu_limit=2, memory=1e8, memory_limit=8e9)}, 10, 100),
        R(10.0, {"edge-1": C(cpu_seconds=9.0, cpu_limit=2, memory=1e8, memory_limit=8e9)}, 20, 200),
    ]
    s = resources.summarise(rs, 0, 10, 2, expected=["edge-1", "room-api"])
    edge = s["containers"]["edge-1"]
    assert "cpu_util" not in edge and "went backwards" in edge["cpu_note"] and s["unread"] == ["room-api"]
    b = binding(s, 1600)
    assert b is not None and "no readings of room-api" in b["evidence"] and "no CPU figure for edge-1" in b["evidence"]

    class API:
        def stats(self, cid, stream, one_shot):
            return {"cpu_stats": {}, "memory_stats": {}}

    r = resources.read_api(type("D", (), {"api": API()})(), "x", 2, 8e9)
    assert r.cpu_seconds is None and r.memory is None


def test_a_cgroup_v2_cpu_stat_without_usage_is_no_reading(tmp_path, monkeypatch):
    target = fake_v2(tmp_path, 4242, 0, 1)
    (target.cgroup_v2 / "cpu.stat").write_text("user_usec 1\n")  # type: ignore[operator]
    monkeypatch.setattr(resources, "PROC", tmp_path / "proc")
    assert resources.read_cgroup(target, 2, 8e9).cpu_seconds is None


def test_this_hosts_own_cpu_counters_read():
    busy, total = resources.host_cpu()
    assert 0 <= busy <= total and resources.host_cores() >= 1 and resources.host_memory() > 0


# -- the capacity section: located errors -----------------------------------------------------------------

BASE = {
    "title": "capacity section",
    "vars": {"n": 20, "steps": "100, 200"},
    "listeners": {"count": "${n}"},
    "steady_state": [{"measure": "dead_air.total", "expect": "p95 < 2s"}],
    "method": [{"at": "5s", "probe": "health", "http": {"url": "${links.entry-api}/health"}}],
}
HEAD = """title: capacity section
vars: {n: 20, steps: "100, 200"}
listeners: {count: "${n}"}
steady_state:
  - {measure: dead_air.total, expect: "p95 < 2s"}
method:
  - {at: 5s, probe: health, http: {url: "${links.entry-api}/health"}}
capacity:
"""  # the section's lines start at line 9
SLO_LINE = (
    '  slo: [{measure: dead_air.total, expect: "p95 < 1s"}, {measure: time_to_first_audio, expect: "p95 < 3s"}]\n'
)


def load(tmp_path: Path, section: str):
    f = tmp_path / "exp.yaml"
    f.write_text(HEAD + section + ("" if "unit:" in section or "NO UNIT" in section else "  unit: listeners\n"))
    return load_experiment(f, check_stack=False)


def test_a_capacity_section_loads_and_a_plain_run_keeps_its_declared_values(tmp_path):
    exp = load(tmp_path, "  vary: listeners.count\n  steps: ${steps}\n" + SLO_LINE + "  target: 150\n")
    assert exp.capacity is not None
    assert (exp.capacity.vary, exp.capacity.steps, exp.capacity.target) == ("listeners.count", (100.0, 200.0), 150.0)
    assert [c.measure for c in exp.capacity.slo] == ["dead_air.total", "time_to_first_audio"]
    assert exp.capacity.knee_used == 0.5
    assert (exp.capacity.unit, exp.capacity.headroom) == ("listeners", 0.25)  # the default headroom
    exp = load(tmp_path, "  vary: n\n  steps: [5, 10]\n" + SLO_LINE + "  unit: joins/s\n  headroom: 10%\n")
    assert exp.capacity is not None and (exp.capacity.unit, exp.capacity.headroom) == ("joins/s", 0.1)
    assert exp.listeners.count == 20  # `deadair run` runs it once, at its declared values
    exp = load(tmp_path, "  vary: n\n  steps: [5, 10]\n" + SLO_LINE + "  knee: {used: 0.3}\n")
    assert exp.capacity is not None
    assert (exp.capacity.vary, exp.capacity.knee_used, exp.capacity.target) == ("n", 0.3, None)


@pytest.mark.parametrize(
    "section, where, message",
    [
        ("  vary: listeners.count\n  steps: [200, 100]\n" + SLO_LINE, "10:16", "must increase: 100 comes after 200"),
        ("  vary: listeners.cnt\n  steps: [1]\n" + SLO_LINE, "9:9", "unknown key 'cnt' (did you mean 'count'?)"),
        ("  vary: listeners.count\n  steps: [5, 200000]\n" + SLO_LINE, "10:14", "200000 makes the experiment invalid"),
        ("  vary: steps\n  steps: [1]\n" + SLO_LINE, "9:9", "'steps' is declared but never used"),
        (
            '  vary: n\n  steps: [1]\n  slo: [{measure: dead_air.total, expect: "between 1s and 2s"}]\n',
            "11:43",
            "one-sided bound",
        ),
        (
            '  vary: n\n  steps: [1]\n  slo: [{measure: hold_music.onset, expect: "< 2s"}]\n',
            "11:19",
            "under a method step",
        ),
        ('  vary: n\n  steps: [1]\n  slo: [{measure: dead_air.totl, expect: "< 2s"}]\n', "11:19", "'dead_air.total'?"),
        ("  vary: n\n  steps: [1]\n" + SLO_LINE + "  target: 0\n", "12:11", "capacity.target: 0 is not valid"),
        ("  vary: n\n  steps: [1]\n" + SLO_LINE + "  knee: {used: 1.5}\n", "12:16", "knee.used: 1.5 is not valid"),
        (
            "  vary: n\n  steps: []\n" + SLO_LINE,
            "10:10",
            "capacity.steps: a list is not valid; expected a list of increasing",
        ),
        (
            "  vary: n\n  steps: [1]\n" + SLO_LINE + "  tagret: 5\n",
            "12:3",
            "unknown key 'tagret' (did you mean 'target'?)",
        ),
        ("  steps: [1]\n" + SLO_LINE, "9:3", "capacity: 'vary' is required"),
        (
            '  vary: n\n  steps: [1]\n  slo: [{measure: dead_air.total, expect: "p95 < 1s"}]\n',
            "11:8",
            "capacity.slo needs a time_to_first_audio SLO",
        ),
        ("  vary: n\n  steps: [1]\n" + SLO_LINE + "  # NO UNIT\n", "9:3", "capacity: 'unit' is required"),
        ("  vary: n\n  steps: [1]\n" + SLO_LINE + "  unit: joins\n", "12:9", "capacity.unit: 'joins' is not valid"),
        ("  vary: n\n  steps: [1]\n" + SLO_LINE + "  headroom: -5%\n", "12:13", "capacity.headroom: '-5%' is not"),
    ],
)
def test_a_bad_capacity_section_is_a_located_error(tmp_path, section, where, message):
    with pytest.raises(ExperimentError) as exc:
        load(tmp_path, section)
    assert exc.value.exit_code == 2
    found = [str(p) for p in exc.value.problems]
    assert any(f"exp.yaml:{where}: " in p and message in p for p in found), found


def test_deadair_capacity_refuses_a_file_without_a_section_before_touching_anything(tmp_path, capsys):
    f = tmp_path / "plain.yaml"
    f.write_text(yaml.safe_dump({**BASE, "stack": str(Path(__file__).resolve().parents[2] / "compose/audio-room")}))
    assert main(["capacity", str(f)]) == 2
    assert f"{f}:1:1: no capacity section" in capsys.readouterr().err
    assert main(["capacity", str(f), "--target", "-5"]) == 2
    assert "--target: -5: expected a positive number" in capsys.readouterr().err


def test_the_rule_is_written_in_the_module_that_applies_it():
    doc = knee.__doc__ or ""
    assert "u_i = (value_i - value_1) / (bound - value_1)" in doc and "more than half its margin" in doc
    assert os.path.basename(knee.__file__) == "knee.py"


@pytest.mark.parametrize("run_status", ["not_steady", "aborted", "failed"])
def test_a_step_whose_run_failed_fails_whatever_its_slos_say(tmp_path, run_status):
    """Review finding 1: the SLOs held (first audio at 0.5 s) but the run itself did not."""
    from types import SimpleNamespace

    from chaos.capacity.sweep import assess
    from chaos.timeline import Timeline

    tl = Timeline()
    tl.events += [Event(1.0, "run.phase", "runner", {"name": "before", "start": 1.0, "end": 3.0})]
    for i in range(20):
        tl.events += [Event(0.0, "listener.join", f"L{i}"), Event(0.5, "listener.first_audio", f"L{i}")]
    journal = tmp_path / "journal.jsonl"
    tl.write_journal(journal)
    cap = Capacity("listeners.count", (20.0,), (Check(measure="time_to_first_audio", expect="p95 < 3s"),), None)
    sampler = SimpleNamespace(readings=[], cores=2, method="", errors=[])
    res = SimpleNamespace(run_id="r", status=run_status, exit_code=1, journal=journal, error=None)
    step, points = assess(res, cap, 20.0, sampler)  # type: ignore[arg-type]
    assert step["slo"][0]["outcome"] == "pass" and step["status"] == "failed"
    a = analyse([points], None)
    assert a.capacity is None and a.breakpoint == 20.0 and a.knee == 20.0
    assert a.broken_by == [f"run {run_status}"]
