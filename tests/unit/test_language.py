"""The experiment language beyond the basics: variables, overrides, repeats, random targets, probes, guardrails."""

from pathlib import Path

import pytest

from chaos.errors import ExperimentError
from chaos.language.loader import load_experiment
from chaos.language.plan import method_length, plan
from chaos.language.variables import parse_var

BASE = """\
title: t
vars:
  n: 4
  cut: 2s
listeners: {count: "${n}"}
steady_state:
  - {measure: dead_air.max, expect: "< 1.5s", when: [before, after]}
  - probe: api health
    http: {url: "${links.entry-api}/health", timeout: 2s}
    tolerance: 200
    every: 1s
abort_when:
  - {measure: listeners.connected_ratio, expect: "< 0.5"}
method:
  - at: 1s
    fault: link.down
    target: {one_of: [relay-1, relay-2]}
    for: "${cut}"
    every: 5s
    times: 3
  - at: 2s
    fault: link.latency
    target: mic
    with: {latency: 300ms, jitter: 30ms, stream: both}
  - at: 3s
    probe: stats
    http: {url: "${links.entry-api}/stats"}
rollbacks:
  - action: say goodbye
    process: {path: "true"}
"""


def load(tmp_path: Path, text: str, **overrides: str):
    f = tmp_path / "e.yaml"
    f.write_text(text)
    return load_experiment(f, overrides=overrides)


def problems(tmp_path: Path, text: str, **overrides: str) -> list[str]:
    with pytest.raises(ExperimentError) as info:
        load(tmp_path, text, **overrides)
    return [str(p).replace(str(tmp_path / "e.yaml"), "F") for p in info.value.problems]


def test_variables_are_typed_where_they_stand_alone(tmp_path):
    exp = load(tmp_path, BASE)
    assert exp.listeners.count == 4 and exp.method[0].duration == 2.0
    assert exp.variables == {"n": 4, "cut": "2s"}


def test_overrides_set_variables_or_any_key_by_path(tmp_path):
    exp = load(
        tmp_path, BASE, n="50", cut="3s", **{"windows.gate": "1s", "method.1.with.latency": "800ms", "seed": "9"}
    )
    assert exp.listeners.count == 50 and exp.method[0].duration == 3.0
    assert exp.windows.gate == 1.0 and exp.method[1].params["latency"] == 800 and exp.seed == 9
    assert problems(tmp_path, BASE, **{"listeners.cnt": "5"}) == [
        "--var listeners.cnt=5: unknown key 'cnt' (did you mean 'count'?); expected one of: arrival, backoff, "
        "bandwidth, count, ears, join, min_stall, path, prebuffer, read_timeout, response_timeout, sample, source_addresses, via, workers"
    ]
    assert problems(tmp_path, BASE, **{"windows.gate": "soon"}) == [
        "--var windows.gate=soon: windows.gate: 'soon' is not valid; expected a duration with a unit, such as "
        "300ms, 2s, 1.5m or 1h"
    ]
    assert problems(tmp_path, BASE, nope="1")[0].startswith("--var nope=1: no variable 'nope' (declared: n, cut)")
    assert "'lots' is not valid; expected a whole number" in problems(tmp_path, BASE, n="lots")[0]


def test_undefined_variables_and_runtime_links_outside_probes(tmp_path):
    out = problems(tmp_path, BASE.replace('for: "${cut}"', 'for: "${cutt}"'))
    assert out == ["F:18:10: undefined variable ${cutt} (did you mean ${cut}?); declared under vars: n, cut"]
    out = problems(tmp_path, BASE.replace("title: t", "title: ${links.entry-api}"))
    assert "known only when the stack runs" in out[0]
    out = problems(tmp_path, BASE.replace("${links.entry-api}/stats", "${links.nowhere}/stats"))
    assert "'nowhere' is not a link of stack audio-room" in out[0]


def test_plan_expands_repeats_and_chooses_targets_by_seed(tmp_path):
    exp = load(tmp_path, BASE)
    occurrences = plan(exp)
    downs = [o for o in occurrences if o.step.fault == "link.down"]
    assert [o.at for o in downs] == [1.0, 6.0, 11.0] and all(o.duration == 2.0 for o in downs)
    assert {o.target for o in downs} <= {"relay-1", "relay-2"}
    assert [o.target for o in plan(load(tmp_path, BASE)) if o.step.fault == "link.down"] == [o.target for o in downs]
    seeds = {
        tuple(o.target for o in plan(load(tmp_path, BASE, seed=str(s))) if o.step.fault == "link.down")
        for s in range(20)
    }
    assert len(seeds) > 1  # the seed decides
    assert method_length(occurrences) == 13.0
    until = load(tmp_path, BASE.replace("times: 3", "until: 12s"))
    assert [o.at for o in plan(until) if o.step.fault == "link.down"] == [1.0, 6.0, 11.0]


def test_repeat_rules(tmp_path):
    out = problems(tmp_path, BASE.replace("    times: 3\n", ""))
    assert out == ["F:19:5: a repeating step needs times or until (not both)"]
    out = problems(tmp_path, BASE.replace("every: 5s", "every: 1s"))
    assert "occurrences of one step may not overlap" in out[0]
    out = problems(tmp_path, BASE.replace("    every: 5s\n", ""))
    assert out == ["F:19:5: times and until need every"]


def test_fault_parameters_are_checked(tmp_path):
    out = problems(tmp_path, BASE.replace("latency: 300ms, jitter: 30ms", "latency: 300, jiter: 30ms"))
    assert any("has no parameter 'jiter' (did you mean 'jitter'?)" in o for o in out)
    assert any("link.latency latency: 300 is not a duration with a unit" in o for o in out)
    out = problems(tmp_path, BASE.replace("stream: both", "stream: sideways"))
    assert "'sideways' is not upstream, downstream or both" in out[0]


def test_steps_and_checks_have_one_kind(tmp_path):
    out = problems(tmp_path, BASE.replace("    probe: stats\n", "    probe: stats\n    fault: mic.cut\n"))
    assert "exactly one of fault, probe, action or join" in out[0]
    out = problems(tmp_path, BASE.replace("    tolerance: 200\n", ""))
    assert "probe 'api health' needs a tolerance" in out[0]
    out = problems(tmp_path, BASE.replace("tolerance: 200", "tolerance: {type: regex, pattern: '('}"))
    assert "does not compile" in out[0]
    out = problems(tmp_path, BASE.replace("tolerance: 200", "tolerance: {type: jsonpath, path: '$..deep'}"))
    assert "unsupported syntax" in out[0]


def test_measures_need_listeners(tmp_path):
    out = problems(tmp_path, BASE, n="0")
    assert "listeners.count is 0 but dead_air.max is measured from listeners" in out[0]


@pytest.mark.parametrize("text", ["count=5", "listeners.count=", "a.b=c=d"])
def test_parse_var(text):
    key, value = parse_var(text)
    assert key and "=" not in key


def test_parse_var_refuses():
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        parse_var("no-equals")
