"""The loader: valid experiments load; every problem is reported as file:line:column."""

from pathlib import Path

import pytest
from experiment_files import problems

from chaos.cli import main
from chaos.errors import ExperimentError
from chaos.language.loader import load_experiment, parse_experiment
from chaos.language.schema import schema

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = ROOT / "experiments" / "mic-cut-hold-music.yaml"


GOOD = """\
title: t
stack: audio-room
listeners: {count: 3}
steady_state:
  - {measure: dead_air.max, expect: "< 1.5s"}
method:
  - at: 1s
    fault: mic.cut
    for: 2s
    expect:
      - {measure: hold_music.onset, expect: "p95 < 2s"}
"""


def test_flagship_loads():
    exp = load_experiment(FLAGSHIP)
    assert exp.listeners.count >= 20
    assert [s.fault for s in exp.method] == ["mic.cut"]
    step = exp.method[0]
    assert (step.at, step.duration, step.target) == (5.0, 8.0, "mic")
    assert {c.measure for c in step.expect} == {"hold_music.onset", "live.resume"}
    assert exp.steady_state[0].measure == "dead_air.max"


def test_good_loads(tmp_path):
    f = tmp_path / "e.yaml"
    f.write_text(GOOD)
    exp = load_experiment(f)
    assert exp.method[0].end == 3.0 and exp.listeners.count == 3


def test_unknown_key_points_at_the_key(tmp_path):
    text = GOOD.replace("    for: 2s\n", "    for: 2s\n    durashun: 2s\n")
    assert problems(text, tmp_path) == [
        "F:10:5: unknown key 'durashun'; expected one of: action, at, every, expect, fault, for, http, join, probe, "
        "process, target, times, until, with"
    ]


def test_typo_gets_a_suggestion(tmp_path):
    out = problems(GOOD.replace("steady_state:", "steady_sate:"), tmp_path)
    assert out[0].startswith("F:4:1: unknown key 'steady_sate' (did you mean 'steady_state'?)")


def test_bad_duration(tmp_path):
    out = problems(GOOD.replace("for: 2s", "for: 2 secs"), tmp_path)
    assert out == [
        "F:9:10: method[0].for: '2 secs' is not valid; expected a duration with a unit, such as 300ms, 2s, 1.5m or 1h"
    ]


def test_every_problem_is_reported_not_only_the_first(tmp_path):
    text = (
        GOOD.replace("at: 1s", "at: soon")
        .replace("count: 3", "count: -3")
        .replace('expect: "< 1.5s"', 'expect: "<< 1.5s"')
    )
    out = problems(text, tmp_path)
    assert len(out) == 3  # one pass: `at` and `count` (schema) and the expectation (meaning)
    assert out[0].startswith("F:3:20: listeners.count: -3 is not valid")
    assert out[1].startswith("F:5:37: '<< 1.5s' is not an expectation")
    assert out[2].startswith("F:7:9: method[0].at: 'soon' is not valid")


def test_meaning_problems_are_all_reported(tmp_path):
    text = (
        GOOD.replace("fault: mic.cut", "fault: mic.cutt")
        .replace('"< 1.5s"', '"<< 1.5s"')
        .replace("hold_music.onset", "hold_music.onsett")
    )
    out = problems(text, tmp_path)
    assert [o.split(":", 3)[1:3] for o in out] == [["5", "37"], ["8", "12"], ["11", "19"]]
    assert "did you mean 'mic.cut'" in out[1]
    assert "did you mean 'hold_music.onset'" in out[2]


def test_duration_measures_need_units(tmp_path):
    out = problems(GOOD.replace('"< 1.5s"', '"< 1.5"'), tmp_path)
    assert out == ['F:5:37: dead_air.max is a duration; write the bound with a unit, such as "< 2s" or "p95 < 300ms"']


def test_fault_scoped_measure_outside_a_step(tmp_path):
    out = problems(GOOD.replace("dead_air.max", "live.resume"), tmp_path)
    assert "put it under a method step's expect" in out[0]


def test_targets_are_checked_against_the_stack(tmp_path):
    out = problems(GOOD.replace("    for: 2s\n", "    for: 2s\n    target: edge-9\n"), tmp_path)
    assert out[0].startswith("F:10:13: 'edge-9' is not a link of stack audio-room; links: ")
    out = problems(
        GOOD.replace("fault: mic.cut", "fault: node.stop").replace(
            "    for: 2s\n", "    for: 2s\n    target: toxiproxy\n"
        ),
        tmp_path,
    )
    assert "'toxiproxy' is not a node" in out[0]


def test_duplicate_keys_and_yaml_syntax(tmp_path):
    assert problems("title: a\ntitle: b\nmethod: []\n", tmp_path)[0] == "F:2:1: duplicate key 'title'"
    out = problems("title: [unclosed\nmethod: x\n", tmp_path)
    assert out[0].startswith("F:2:") and "YAML syntax" in out[0]
    assert problems("", tmp_path) == [
        "F:1:1: the file is empty; expected an experiment (a mapping with title and method)"
    ]
    assert problems("- a\n- b\n", tmp_path)[0].startswith("F:1:1: expected an experiment")


def test_missing_required_keys(tmp_path):
    out = problems("title: x\n", tmp_path)
    assert out == ["F:1:1: 'method' is required"]


def test_missing_file():
    with pytest.raises(ExperimentError) as info:
        load_experiment("no/such/file.yaml")
    assert str(info.value) == "no/such/file.yaml: no such file"


def test_cli_exit_2_with_file_line_message(tmp_path, capsys):
    f = tmp_path / "bad.yaml"
    f.write_text(GOOD.replace("for: 2s", "for: 2x"))
    assert main(["validate", str(f)]) == 2
    assert f"{f}:9:10: method[0].for: '2x' is not valid" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml: no such file" in capsys.readouterr().err
    assert main(["validate", str(FLAGSHIP)]) == 0


def test_schema_lists_every_fault_and_is_valid_json_schema():
    import jsonschema

    jsonschema.Draft202012Validator.check_schema(schema())


def test_parse_from_text_keeps_the_path(tmp_path):
    exp = parse_experiment(GOOD, tmp_path / "x.yaml", check_stack=False)
    assert exp.path == tmp_path / "x.yaml"
