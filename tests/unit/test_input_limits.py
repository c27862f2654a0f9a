"""Bad input tried as an adversary would (issue 16): every case is a located problem and exit 2
from `deadair validate`, never a traceback, found before anything is expanded. The limits are
the named constants of chaos.language.limits."""

import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from chaos.cli import main
from chaos.errors import ExperimentError
from chaos.language import limits
from chaos.language.loader import load_experiment
from chaos.language.schema import schema
from chaos.stack.definition import StackError, find_stack

ROOT = Path(__file__).resolve().parents[2]
CHECKS = "steady_state: [{measure: dead_air.max, expect: '< 1.5s'}]\n"
ONE_STEP = "method: [{at: 1s, fault: mic.cut, for: 2s}]\n"


def billion_laughs() -> str:
    """Nine nested levels of nine aliases: 9**9 values once expanded."""
    text = "title: laughs\n" + CHECKS + ONE_STEP + 'lol: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    prev = "a"
    for name in "bcdefghi":
        text += f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]\n"
        prev = name
    return text


def validate(f: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """`deadair validate FILE`: exit 2, and the problems printed (stdout says nothing)."""
    assert main(["validate", str(f)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "Traceback" not in err
    return err.strip().splitlines()


def loaded(text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], cli_only: bool = False) -> list[str]:
    """The problems of `text` as a file, from load_experiment and from `deadair validate` alike
    (cli_only: the large cases, once, through the CLI, which calls load_experiment)."""
    f = tmp_path / "exp.yaml"
    f.write_text(text)
    printed = [line.replace(str(f), "F") for line in validate(f, capsys)]
    if cli_only:
        return printed
    with pytest.raises(ExperimentError) as info:
        load_experiment(f)
    assert [str(p).replace(str(f), "F") for p in info.value.problems] == printed
    return printed


def test_an_alias_bomb_is_refused_while_composing_in_bounded_memory(tmp_path, capsys):
    tracemalloc.start()
    try:
        out = loaded(billion_laughs(), tmp_path, capsys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out == [
        "F:9:8: the alias *e makes the document more than 100,000 values "
        "(each alias counts as a copy of what it names); expected a smaller experiment"
    ]
    assert peak < 20_000_000  # the expansion (387 million values) never happens


def test_a_handful_of_aliases_as_a_person_writes_them_still_loads(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text(
        "title: t\nsteady_state: [&check {measure: dead_air.max, expect: '< 1.5s'}]\n"
        "abort_when: [*check]\nmethod: [{at: 1s, fault: mic.cut, for: 2s}]\n"
    )
    assert load_experiment(f).abort_when[0].measure == "dead_air.max"


def test_a_recursive_alias_is_refused(tmp_path, capsys):
    out = loaded("title: t\n" + CHECKS + ONE_STEP + "x: &x [1, *x]\n", tmp_path, capsys)
    assert out == [
        "F:4:11: the alias *x is inside the value &x names: a recursive structure; "
        "expected an alias to a value defined before it"
    ]


def test_too_many_values_in_flat_lists_of_aliases(tmp_path, capsys):
    """Written out, 100,000 values no longer fit in MAX_FILE_BYTES; one level of aliases reaches them."""
    flat = "a: &a [" + ",".join(["1"] * 999) + "]\n"
    out = loaded("title: t\n" + flat + "x: [" + "*a," * 101 + "]\n", tmp_path, capsys, cli_only=True)
    assert len(out) == 1 and out[0].startswith("F:3:") and "more than 100,000 values" in out[0]


@pytest.mark.parametrize(
    "nested",
    [
        "method: " + "[" * 5000 + "]" * 5000,
        "method: " + "{a: " * 5000 + "1" + "}" * 5000,
        "method:\n" + "".join(" " * i + "- \n" for i in range(0, 200, 2)),
    ],
    ids=["brackets", "braces", "block"],
)
def test_deep_nesting_is_refused_before_the_parser_recurses(tmp_path, capsys, nested):
    out = loaded("title: t\n" + nested + "\n", tmp_path, capsys)
    assert len(out) == 1
    assert out[0].startswith(("F:2:", "F:3:", "F:66:")), out[0]
    assert "nested more than 64 levels deep" in out[0]


def test_nesting_at_the_limit_is_left_to_the_schema(tmp_path, capsys):
    # the root mapping, 62 lists and the number in the innermost: 64 levels, allowed; one more is not
    at_limit = "title: t\nx: " + "[" * 62 + "1" + "]" * 62 + "\n"
    assert loaded(at_limit, tmp_path, capsys) == [
        "F:1:1: 'method' is required",
        "F:2:1: unknown key 'x'; expected one of: abort_when, capacity, description, listeners, method, "
        "rollbacks, seed, stack, steady_state, tags, title, vars, windows",
    ]
    past = "title: t\nx: " + "[" * 63 + "1" + "]" * 63 + "\n"
    assert loaded(past, tmp_path, capsys) == [
        "F:2:67: nested more than 64 levels deep (the document is level 1; a mapping, list or value is one "
        "level below what holds it); expected a flatter document"
    ]


def test_a_5000_character_stack_name_is_a_schema_problem_not_an_oserror(tmp_path, capsys):
    out = loaded("title: t\nstack: " + "x" * 5000 + "\n" + CHECKS + ONE_STEP, tmp_path, capsys)
    assert out == [
        "F:2:8: stack: '" + "x" * 59 + "... (5,000 characters) "
        "is not valid; expected a stack name (a folder under compose/) or a path to a compose file, "
        "at most 255 characters"
    ]
    assert schema()["properties"]["stack"]["maxLength"] == limits.MAX_STACK_NAME


def test_a_stack_name_too_long_for_the_file_system_is_no_such_stack(tmp_path, capsys):
    # 200 characters but 400 bytes: within the schema's limit, past the file system's (255 bytes)
    out = loaded("title: t\nstack: " + "é" * 200 + "\n" + CHECKS + ONE_STEP, tmp_path, capsys)
    assert out[0].startswith("F:2:8: no stack named") and not any("too long" in o for o in out)
    with pytest.raises(StackError):
        find_stack("y" * 300)


def test_variables_that_use_each_other_are_a_cycle_at_the_variable(tmp_path, capsys):
    text = 'title: t\nvars: {a: "${b}", b: "${a}"}\n' + CHECKS + 'method: [{at: "${a}", fault: mic.cut, for: 2s}]\n'
    assert loaded(text, tmp_path, capsys) == [
        "F:2:11: variable cycle: a -> b -> a; expected variables that do not use each other"
    ]
    text = 'title: t\nvars:\n  a: "${a}"\n' + CHECKS + ONE_STEP
    assert loaded(text, tmp_path, capsys) == [
        "F:3:6: variable cycle: a -> a; expected variables that do not use each other"
    ]


def test_variables_may_use_variables_and_a_long_chain_needs_no_recursion(tmp_path):
    chain = "".join(f'  v{i}: "${{v{i + 1}}}"\n' for i in range(3000))
    f = tmp_path / "exp.yaml"
    f.write_text(
        f'title: t\nvars:\n{chain}  v3000: 3s\n  step: "${{v0}}"\n'
        + CHECKS
        + 'method: [{at: "${step}", fault: mic.cut, for: "${v1500}"}]\n'
    )
    exp = load_experiment(f)
    assert exp.method[0].at == 3.0 and exp.method[0].duration == 3.0


def test_a_variable_used_undeclared_by_another_is_reported_at_the_variable(tmp_path, capsys):
    text = 'title: t\nvars: {a: "${nope}s"}\n' + CHECKS + 'method: [{at: "${a}", fault: mic.cut, for: 2s}]\n'
    assert loaded(text, tmp_path, capsys) == ["F:2:11: variable a uses ${nope}, which is not declared under vars"]


def test_variables_that_double_at_each_level_are_refused_before_they_are_built(tmp_path, capsys):
    levels = "".join(f'  v{i}: "${{v{i + 1}}}${{v{i + 1}}}"\n' for i in range(60))
    text = f'title: t\nvars:\n{levels}  v60: "laugh"\nx: "${{v0}}"\n' + CHECKS + ONE_STEP
    out = loaded(text, tmp_path, capsys)
    assert len(out) == 2
    assert out[0].startswith("F:") and "is 81,920 characters once the variables it uses are substituted" in out[0]
    assert "unknown key 'x'" in out[1]


def test_many_uses_of_a_long_variable_are_refused(tmp_path, capsys):
    text = 'title: t\nvars: {a: "' + "x" * 60_000 + '"}\n' + 'description: "' + "${a}" * 20 + '"\n' + CHECKS + ONE_STEP
    assert loaded(text, tmp_path, capsys) == [
        "F:3:14: substituting variables here makes the experiment more than 1,048,576 characters longer "
        "than its file; expected shorter variables or fewer uses"
    ]


def test_a_file_past_the_size_limit_is_refused_before_it_is_parsed(tmp_path, capsys):
    steps = "".join(f"  - {{at: {i}s, fault: mic.cut, for: 1s}}\n" for i in range(200_000))
    text = "title: t\n" + CHECKS + "method:\n" + steps
    assert loaded(text, tmp_path, capsys) == [
        f"F: the file is {len(text.encode()):,} bytes, more than the limit of 131,072 (an experiment is a few KB); "
        "expected a smaller experiment file"
    ]


def test_an_endless_file_is_read_no_further_than_the_limit(capsys):
    assert main(["validate", "/dev/zero"]) == 2
    assert "more than the limit of 131,072" in capsys.readouterr().err


def test_more_steps_than_the_limit_are_refused_before_the_schema(tmp_path, capsys):
    step = "s: &s {at: 1s, fault: mic.mute}\n"  # aliases: 10,001 steps written out pass the size limit
    text = "title: t\n" + CHECKS + step + "method: [" + "*s," * (limits.MAX_STEPS + 1) + "]\n"
    out = loaded(text, tmp_path, capsys, cli_only=True)
    assert len(out) == 1 and "the method has 10,001 steps, more than the limit of 10,000" in out[0]


def test_repeats_count_against_the_steps_and_the_run_length(tmp_path, capsys):
    text = "title: t\n" + CHECKS + "method:\n  - {at: 1s, fault: mic.cut, for: 1ms, every: 2ms, until: 100h}\n"
    assert loaded(text, tmp_path, capsys) == [
        "F:4:5: the method has more than 10,000 occurrences once repeating steps are expanded "
        "(this step brings it past the limit); expected fewer steps or repeats",
        "F:4:5: this step ends 100h into the method, past the limit of 24h; expected a shorter method",
    ]
    text = "title: t\n" + CHECKS + "method:\n  - {at: 1s, fault: mic.cut, for: 2s, every: 10s, times: 9000}\n"
    assert loaded(text, tmp_path, capsys) == [
        "F:4:5: this step ends 25h into the method, past the limit of 24h; expected a shorter method"
    ]


def test_the_run_length_counts_a_joining_crowd_and_the_windows(tmp_path, capsys):
    text = (
        "title: t\nwindows: {recovery: 25h}\n"
        + CHECKS
        + "method:\n  - {at: 1s, fault: mic.cut, for: 2s}\n  - {at: 2s, join: {count: 10, arrival: {ramp: 30h}}}\n"
    )
    assert loaded(text, tmp_path, capsys) == [
        "F:2:21: windows.recovery is longer than the limit of 24h",
        "F:6:5: this step ends 30h into the method, past the limit of 24h; expected a shorter method",
    ]


def test_a_soak_test_within_the_limits_loads(tmp_path):
    f = tmp_path / "exp.yaml"
    f.write_text("title: t\n" + CHECKS + "method:\n  - {at: 1s, fault: mic.cut, for: 2s, every: 10s, until: 23h}\n")
    assert load_experiment(f).method[0].until == 23 * 3600


def test_the_real_cli_ends_the_worst_cases_with_exit_2_and_no_traceback(tmp_path):
    """As a user runs it: a process, with a timeout (a hang fails instead of stalling CI)."""
    files = []
    for name, text in [
        ("laughs.yaml", billion_laughs()),
        ("deep.yaml", "title: t\nmethod: " + "[" * 5000 + "]" * 5000),
    ]:
        (tmp_path / name).write_text(text)
        files.append(str(tmp_path / name))
    done = subprocess.run(
        [sys.executable, "-m", "chaos.cli", "validate", *files], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert f"{files[0]}:9:8: the alias *e makes the document more than 100,000 values" in done.stderr
    assert f"{files[1]}:2:72: nested more than 64 levels deep" in done.stderr


def test_every_limit_is_a_named_constant_of_one_module():
    assert (limits.MAX_FILE_BYTES, limits.MAX_DEPTH, limits.MAX_VALUES, limits.MAX_STACK_NAME) == (
        131_072,
        64,
        100_000,
        255,
    )
    assert (limits.MAX_STEPS, limits.MAX_RUN_SECONDS) == (10_000, 86_400)
    assert (limits.MAX_VARIABLE_CHARS, limits.MAX_EXPANDED_CHARS) == (65_536, 1_048_576)
    assert (limits.MAX_DOCUMENT_CHARS, limits.MAX_PROBLEMS) == (1_048_576, 100)


# -- review 16c: what the limits above let through --------------------------------------------

LONG = "x: &s " + "D" * 100_000 + "\n"  # one long string, then aliases to it: 100 KB each


@pytest.mark.parametrize(
    "where",
    [
        "title: [" + "*s, " * 40 + "]\n" + ONE_STEP,  # jsonschema would quote the whole list per error
        ONE_STEP.replace("]", "]\nvars: {v: [" + "*s, " * 40 + "]}"),  # and its message once more
        "title: t\nmethod: [{at: 1s, probe: p, http: {url: 'http://x/', body: [" + "*s, " * 40 + "]}}]\n",
    ],
)
def test_an_alias_to_a_long_string_counts_its_characters(where, tmp_path, capsys):
    tracemalloc.start()
    try:
        out = loaded(LONG + CHECKS + where, tmp_path, capsys)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(out) == 1 and "makes the document's values more than 1,048,576 characters" in out[0], out
    assert out[0].startswith("F:") and not out[0].startswith(("F:1:", "F:0:"))  # at the alias that crosses it
    assert peak < 60_000_000  # 4 MB of aliases never built: not the 8 GB it was


def test_a_schema_message_that_quotes_a_long_value_is_cut(tmp_path, capsys):
    text = "title: t\n" + CHECKS + ONE_STEP + "vars: {v: ['" + "C" * 50_000 + "']}\n"
    out = loaded(text, tmp_path, capsys)
    assert out and all(len(line) < 600 for line in out), [len(line) for line in out]


def test_nesting_through_aliases_counts_what_they_name(tmp_path, capsys):
    piece = "a1: &a1 " + "[" * 60 + "1" + "]" * 60 + "\n"  # 60 levels, named 7 levels deep
    text = (
        "title: t\n" + CHECKS + piece + "method: [{at: 1s, probe: p, http: {url: 'http://x/', body: [*a1, [*a1]]}}]\n"
    )
    out = loaded(text, tmp_path, capsys)
    assert len(out) == 1 and "the alias *a1 makes the document nested more than 64 levels deep" in out[0], out


def test_a_control_character_is_located_where_it_is(tmp_path, capsys):
    text = "title: t\n" + CHECKS + "description: ab\x00c\n" + ONE_STEP
    out = loaded(text, tmp_path, capsys)
    assert out == [
        "F:3:16: the character U+0000 is not allowed in YAML; expected printable text "
        "(write it as an escape such as \\t inside double quotes)"
    ]


def test_a_lone_surrogate_is_a_bad_value_not_a_traceback_when_printed(tmp_path, capsys):
    out = loaded('title: "\\ud800"\n' + CHECKS + ONE_STEP, tmp_path, capsys)
    assert out == [
        "F:1:8: bad value: the escape \\ud800 is half of a UTF-16 surrogate pair, not a character; expected text"
    ]


def test_a_merge_key_is_one_clear_problem(tmp_path, capsys):
    text = (
        "title: t\nsteady_state:\n  - &p {probe: p, http: {url: 'http://x/'}, tolerance: 200}\n"
        "  - {<<: *p, probe: q}\n" + ONE_STEP
    )
    out = loaded(text, tmp_path, capsys)
    assert out == [
        "F:4:6: a merge key (<<) is not supported in an experiment; "
        "expected the keys written out (or a variable for a repeated value)"
    ]


@pytest.mark.parametrize(
    "line", ["title: x\t", "title:\tx", "windows: {gate:\t1s}", "tags: [\ta]", "title: x\t# c", "tags:\n  - a\t\n  - b"]
)
def test_tabs_that_libyaml_allows_between_tokens_load(line, tmp_path):
    """libyaml (and Docker Compose) skip a tab between tokens where it cannot indent; so does the
    pure-Python parser always used, so that whether a file is valid does not depend on the build."""
    f = tmp_path / "exp.yaml"
    f.write_text(line + "\n" + ("" if line.startswith("title") else "title: t\n") + CHECKS + ONE_STEP)
    assert load_experiment(f).title in ("x", "t")


def test_a_tab_that_indents_is_still_a_located_problem(tmp_path, capsys):
    out = loaded("title: t\nwindows:\n\tgate: 1s\n" + CHECKS + ONE_STEP, tmp_path, capsys)
    assert out == ["F:3:1: YAML syntax: found character '\\t' that cannot start any token"]


def test_a_compose_file_with_the_tabs_compose_allows_loads(tmp_path):
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(
        "services:\t# the room\n  toxiproxy:\n    image:\tdeadair/toxiproxy:2.12.0\n"
        '    labels: {deadair.toxiproxy:\t"8474"}\t\n'
    )
    assert list(find_stack(str(compose)).services) == ["toxiproxy"]


def test_a_compose_yaml_error_is_one_located_line(tmp_path):
    compose = tmp_path / "docker-compose.yml"
    compose.write_text("services:\n  a:\timage: x\n")
    with pytest.raises(StackError) as info:
        find_stack(str(compose))
    assert (
        str(info.value) == f"{compose}:2:11: YAML syntax: mapping values are not allowed here; expected a compose file"
    )


def test_problems_are_capped_with_a_count_of_the_rest(tmp_path, capsys):
    text = "title: t\n" + CHECKS + "method:\n" + "".join(f"- {{at: {i}s, fault: mic.cutt}}\n" for i in range(150))
    out = loaded(text, tmp_path, capsys)
    assert len(out) == limits.MAX_PROBLEMS and out[-1] == "F: ... and 51 more problems (the first 99 are shown)"


def test_the_problems_shown_under_the_cap_are_the_first_in_the_file(tmp_path, capsys):
    """Two problems a step, found by different passes: the first 99 by line and column are shown,
    then the count of the rest, last."""
    steps = "".join(f"- {{at: {i}x, fault: mic.cutt}}\n" for i in range(150))
    out = loaded("title: t\n" + CHECKS + "method:\n" + steps, tmp_path, capsys)
    where = [tuple(int(n) for n in line.split(":")[1:3]) for line in out[:-1]]
    assert where == sorted(where) and where[0] == (4, 8) and where[-1][0] == 4 + 49, where[-3:]
    assert out[-1] == "F: ... and 201 more problems (the first 99 are shown)"


def test_a_variable_cycle_made_by_var_is_located_at_the_var(tmp_path, capsys):
    f = tmp_path / "exp.yaml"
    f.write_text("title: t\nvars: {a: 1s, b: 2s}\n" + CHECKS + "method: [{at: '${a}', fault: mic.cut, for: 2s}]\n")
    assert main(["validate", str(f), "--var", "a=${b}", "--var", "b=${a}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("--var a=${b}: variable cycle: a -> b -> a"), err


def test_a_long_variable_set_by_var_is_refused_at_the_var(tmp_path, capsys):
    f = tmp_path / "exp.yaml"
    f.write_text("title: t\nvars: {a: 1s}\n" + CHECKS + ONE_STEP)
    assert main(["validate", str(f), "--var", "a=" + "x" * 70_000]) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("--var a=" + "x" * 40 + "... (70,000 characters): ") and "variable a is 70,000 characters" in err
    )
    assert len(err) < 1000, len(err)


def test_a_step_end_set_by_var_is_located_at_the_var(tmp_path, capsys):
    f = tmp_path / "exp.yaml"
    f.write_text("title: t\n" + CHECKS + ONE_STEP)
    assert main(["validate", str(f), "--var", "method.0.at=" + "9" * 400 + "s"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("--var method.0.at=999") and "ends more than 24h into the method" in err, err[-300:]


COMPOSE_BAD = {
    "list.yml": "- a\n- b\n",
    "passwd.yml": "root:x:0:0:root:/root:/bin/bash\n",
    "badutf.yml": b"services:\n  a: {image: \xff}\n",
    "deep.yml": "services: " + "[" * 5000 + "]" * 5000 + "\n",
    "svc_int.yml": "services:\n  a: 1\n",
    "port.yml": "services:\n  t: {image: x, labels: {deadair.toxiproxy: x}}\n",
    "labels.yml": "x: &l [a, [b, c]]\nservices:\n  t: {image: x, labels: {deadair.toxiproxy: *l}}\n",
}


@pytest.mark.parametrize("name", sorted(COMPOSE_BAD))
def test_a_bad_compose_file_named_by_stack_is_a_located_problem(name, tmp_path, capsys):
    content = COMPOSE_BAD[name]
    compose = tmp_path / name
    compose.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(StackError):
        find_stack(str(compose))
    out = loaded(f"title: t\nstack: {compose}\n" + CHECKS + ONE_STEP, tmp_path, capsys)
    assert len(out) == 1 and out[0].startswith("F:2:8: ") and "Traceback" not in out[0], out


@pytest.mark.parametrize("other", ["title: [x]\n", "title: x\nseed: y\n"])
def test_nothing_to_judge_is_not_hidden_behind_an_unrelated_problem(other, tmp_path, capsys):
    """No check and no expect is its own problem: a bad title or seed elsewhere does not hide it."""
    out = loaded(other + ONE_STEP, tmp_path, capsys)
    assert len(out) == 2 and out[0].startswith("F:1:1: nothing to judge: no steady_state check"), out


def test_nothing_to_judge_waits_for_a_step_that_could_not_be_read(tmp_path, capsys):
    out = loaded(
        "title: x\nmethod: [{at: 0x, fault: mic.cut, for: 2s, expect: [{measure: dead_air.max, expect: '< 1s'}]}]\n",
        tmp_path,
        capsys,
    )
    assert not any("nothing to judge" in line for line in out), out


@pytest.mark.parametrize("sep", ["\u2028", "\u2029", "\x85"])
def test_lines_are_counted_as_an_editor_counts_them(sep, tmp_path, capsys):
    """YAML breaks lines at U+0085, U+2028 and U+2029 too; editors and grep -n do not."""
    out = loaded(f'title: t\ndescription: "a{sep}b"\nbad: 1\n' + CHECKS + ONE_STEP, tmp_path, capsys)
    assert len(out) == 1 and out[0].startswith("F:3:1: unknown key 'bad'"), out
