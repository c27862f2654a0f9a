"""`deadair validate` reports every problem of a file in one pass, each once and located
(issue 16): the semantic pass runs on everything the schema did not reject."""

import pytest
from experiment_files import problems

from chaos.cli import main

HEAD = """\
title: t
stack: audio-room
listeners: {count: 3}
steady_state:
  - {measure: dead_air.max, expect: "< 1.5s"}
method:
"""


def test_a_bad_duration_and_an_unknown_fault_in_two_steps_are_both_reported(tmp_path):
    out = problems(
        HEAD
        + """\
  - at: 5 secs
    fault: mic.cut
    for: 2s
  - at: 9s
    fault: mic.cutt
    for: 2s
""",
        tmp_path,
    )
    assert out[0] == (
        "F:7:9: method[0].at: '5 secs' is not valid; expected a duration with a unit, such as 300ms, 2s, 1.5m or 1h"
    )
    assert out[1].startswith("F:11:12: unknown fault 'mic.cutt' (did you mean 'mic.cut'?)")
    assert len(out) == 2


def test_a_bad_duration_and_an_unknown_fault_in_the_same_step_are_both_reported(tmp_path):
    out = problems(HEAD + "  - at: soon\n    fault: mic.kut\n    for: 2 secs\n", tmp_path)
    assert [o.split(": ", 1)[0] for o in out] == ["F:7:9", "F:8:12", "F:9:10"]
    assert "method[0].at: 'soon' is not valid" in out[0]
    assert "unknown fault 'mic.kut'" in out[1]
    assert "method[0].for: '2 secs' is not valid" in out[2]


def test_a_bad_measure_a_bad_expectation_and_a_bad_target_together(tmp_path):
    text = """\
title: t
stack: audio-room
steady_state:
  - {measure: dead_air.maxx, expect: "< 1.5s"}
  - {measure: dead_air.max, expect: "<< 1.5s"}
method:
  - at: 5s
    fault: node.kill
    target: no-such-node
    expect:
      - {measure: hold_music.onset, expect: soon}
"""
    out = problems(text, tmp_path)
    assert [o.split(": ", 1)[0] for o in out] == ["F:4:15", "F:5:37", "F:9:13", "F:11:45"]
    assert "unknown measure 'dead_air.maxx'" in out[0]
    assert "'<< 1.5s' is not an expectation" in out[1]
    assert "'no-such-node' is not a node of stack audio-room" in out[2]
    assert "'soon' is not an expectation" in out[3]


def test_schema_meaning_and_yaml_problems_of_one_file_all_at_once(tmp_path):
    text = """\
title: t
title: again
listeners: {count: -1}
steady_state:
  - {measure: dead_air.max, expect: "< 1.5s", when: [sometimes]}
method:
  - {at: 1s, fault: mic.cutt, for: 2s}
  - {at: 2s, fault: mic.cut, for: 1s, every: 1s, times: 3}
"""
    out = problems(text, tmp_path)
    assert [o.split(": ", 1)[0] for o in out] == ["F:2:1", "F:3:20", "F:5:54", "F:7:21", "F:8:35"]
    assert "duplicate key 'title'" in out[0]
    assert "listeners.count: -1 is not valid" in out[1]
    assert "'sometimes' is not valid" in out[2]
    assert "unknown fault 'mic.cutt'" in out[3]
    assert "must be shorter than every" in out[4]


def test_a_value_the_schema_refused_is_not_reported_again_by_meaning(tmp_path):
    # `every: often` is refused by the schema: the repeat's checks that need it are skipped, and
    # `times` without a valid every is not reported as "times need every"
    out = problems(HEAD + "  - {at: 1s, fault: mic.cut, for: 1s, every: often, times: 3}\n", tmp_path)
    assert len(out) == 1 and "method[0].every: 'often' is not valid" in out[0]
    # a misspelt `fault:` is an unknown key; the step is not also said to lack a fault
    out = problems(HEAD + "  - {at: 1s, fualt: mic.cut, for: 1s}\n", tmp_path)
    assert len(out) == 1 and "unknown key 'fualt' (did you mean 'fault'?)" in out[0]
    # an expectation the schema refused (not a string) is not "missing"
    out = problems(
        HEAD + "  - {at: 1s, fault: mic.cut, for: 1s, expect: [{measure: live.resume, expect: 3}]}\n", tmp_path
    )
    assert len(out) == 1 and "expect: 3 is not valid" in out[0]


def test_an_undefined_variable_is_reported_once_not_again_as_a_bad_duration(tmp_path):
    out = problems(HEAD + '  - {at: "${when}", fault: mic.cutt, for: 2s}\n', tmp_path)
    assert len(out) == 2
    assert "undefined variable ${when}" in out[0]
    assert "unknown fault 'mic.cutt'" in out[1]


def test_the_checks_that_combine_sections_still_run_when_every_section_is_valid(tmp_path):
    # listeners.ears above count is found once the file is otherwise valid, as before
    out = problems(
        HEAD.replace("{count: 3}", "{count: 1, ears: 2}") + "  - {at: 1s, fault: mic.cut, for: 2s}\n", tmp_path
    )
    assert out == ["F:3:29: listeners.ears (2) is more than listeners.count (1)"]


def test_deadair_validate_prints_every_problem_and_exits_2(tmp_path, capsys):
    f = tmp_path / "exp.yaml"
    f.write_text(HEAD + "  - at: soon\n    fault: mic.kut\n  - {at: 1s, fault: mic.cut, for: 2s, target: nowhere}\n")
    assert main(["validate", str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert [line.split(": ", 1)[0] for line in err] == [f"{f}:7:9", f"{f}:8:12", f"{f}:9:47"]
    assert "'soon' is not valid" in err[0]
    assert "unknown fault 'mic.kut'" in err[1]
    assert "'nowhere' is not" in err[2]


# -- review 16c, 4: a check that combines sections runs when its own inputs were accepted ------

EARS = """\
title: t
stack: audio-room
seed: 1
listeners: {count: 4, ears: 0}
steady_state:
  - {measure: dead_air.max, expect: "< 1.5s"}
  - {measure: e2e_latency.p95, expect: "< 1.5s"}
method:
  - {at: 1s, fault: mic.cut, for: 2s}
"""


@pytest.mark.parametrize(
    "change, elsewhere",
    [
        (("title: t", "title: [t]"), "F:1:8: title: a list is not valid"),
        (("seed: 1", "seed: x"), "F:3:7: seed: 'x' is not valid"),
        (("for: 2s", "for: 10x"), "F:9:35: method[0].for: '10x' is not valid"),
    ],
)
def test_a_problem_elsewhere_does_not_hide_a_combined_check(change, elsewhere, tmp_path):
    out = problems(EARS.replace(*change), tmp_path)
    assert any(line.startswith(elsewhere) for line in out), out
    assert "F:7:5: e2e_latency.p95 is measured by golden ears, but listeners.ears is 0" in "\n".join(out), out


def test_ears_above_count_is_reported_beside_a_bad_title(tmp_path):
    out = problems(EARS.replace("title: t", "title: [t]").replace("ears: 0", "ears: 9"), tmp_path)
    assert "F:4:29: listeners.ears (9) is more than listeners.count (4)" in out, out


@pytest.mark.parametrize("step", ["{at: 1s, fault: mic.cut, probe: x, ", "{at: 1s, faultt: mic.cut, "])
def test_a_step_of_two_kinds_or_none_still_has_its_expect_and_durations_read(step, tmp_path):
    text = HEAD + "  - " + step + "for: 10x, expect: [{measure: reconect_time, expect: 'p95 < 3s'}]}\n"
    out = "\n".join(problems(text, tmp_path))
    assert "unknown measure 'reconect_time' (did you mean 'reconnect_time'?)" in out, out
    assert "'10x' is not" in out, out
