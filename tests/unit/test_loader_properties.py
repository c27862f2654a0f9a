"""Property-based: whatever the input, the loader ends in an Experiment or an ExperimentError
whose problems are all located in the file; never another exception, never a hang.

Over 10,000 cases in all (the properties share the budget), derandomized so that CI runs the
same cases every time. Besides arbitrary text, YAML documents and mutations of the flagship,
the shapes an adversary tries (issue 16): alias structures (nested fan-outs, recursive ones),
deep nesting, long names, variable graphs with cycles, and many steps and repeats. The stack's
compose file is read once per stack name (find_stack is memoised for this module): the cases
still check targets against it, at a tenth of the cost.
"""

import copy
import functools
import json
import re
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chaos.language.loader as loader
from chaos.errors import ExperimentError
from chaos.language.limits import MAX_FILE_BYTES
from chaos.language.loader import parse_experiment

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = yaml.safe_load((ROOT / "experiments" / "mic-cut-hold-music.yaml").read_text())
PATH = ROOT / "experiments" / "fuzz.yaml"


def budget(n: int):
    """n cases, the same ones every run (derandomize), no time limit per case (the CPU is shared)."""
    return settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture(autouse=True, scope="module")
def stacks_read_once():
    """find_stack reads and parses the compose file (18 ms): once per name and place here."""
    real = loader.find_stack
    loader.find_stack = functools.lru_cache(maxsize=64)(real)
    yield
    loader.find_stack = real


CASES = [0]  # cases actually run (test_the_budget_is_over_ten_thousand_cases counts them)
RAN: set[str] = set()  # the property tests that ran in this session


@pytest.fixture(autouse=True)
def record(request):
    yield
    RAN.add(request.node.name)


def assert_clean(text: str) -> None:
    """An Experiment, or located problems: each in this file (or a --var), on one of its lines
    and within it (a column past the end of its line is a wrong place, too)."""
    CASES[0] += 1
    lines = re.split("\r\n|\r|\n", text)  # an editor's lines (YAML also breaks at U+0085, U+2028, U+2029)
    try:
        parse_experiment(text, PATH)
    except ExperimentError as exc:
        assert exc.problems, "an ExperimentError names at least one problem"
        for p in exc.problems:
            assert p.file == str(PATH) or p.file.startswith("--var"), str(p)
            assert p.message, str(p)
            # the size limit and the count of problems not shown are the whole file's
            if p.line == 0 and ("the file is" in p.message or "more problems" in p.message):
                continue
            assert 1 <= p.line <= len(lines) + 1, str(p)
            width = len(lines[p.line - 1]) if p.line <= len(lines) else 0
            assert 1 <= p.column <= width + 1, f"{p} (the line has {width} characters)"


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False),
    st.text(max_size=20),
    st.sampled_from(
        [
            "5s",
            "300ms",
            "p95 < 2s",
            "mic.cut",
            "mic",
            "< 1.5s",
            "${x}",
            "dead_air.max",
            "{",
            "]",
            "- a",
            "!!python/none",
            "99999999999h",
            "1ms",
            "${links.mic}",
            "a\tb",
            "line\u2028separator",
        ]
    ),
)
documents = st.recursive(
    scalars,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.dictionaries(st.text(max_size=10) | st.sampled_from(list(FLAGSHIP)), kids, max_size=4),
    ),
    max_leaves=20,
)


@budget(2900)
@given(st.text(max_size=300))
def test_arbitrary_text(text):
    assert_clean(text)


FLAGSHIP_TEXT = yaml.safe_dump(FLAGSHIP, sort_keys=False, allow_unicode=True)


@budget(400)
@given(
    st.lists(
        st.tuples(st.integers(0, len(FLAGSHIP_TEXT)), st.sampled_from(["\t", " \t", "\u2028", "\u2029", "\x85"])),
        min_size=1,
        max_size=4,
    )
)
def test_tabs_and_unicode_line_separators_anywhere(inserts):
    """Tabs (allowed between tokens, not as indentation) and the characters YAML alone counts as
    line breaks: problems stay on the lines an editor shows."""
    text = FLAGSHIP_TEXT
    for at, chars in sorted(inserts, reverse=True):
        text = text[:at] + chars + text[at:]
    assert_clean(text)


@budget(1300)
@given(documents)
def test_arbitrary_yaml_documents(doc):
    assert_clean(yaml.safe_dump(doc))


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


ALL_PATHS = [p for p in _paths(FLAGSHIP) if p]


def mutate(doc, mutations):
    for path, op, value in mutations:
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            last = path[-1]
            if op == "delete":
                del parent[last]
            elif op == "replace":
                parent[last] = value
            elif isinstance(parent, dict):
                parent[f"x{value}"] = value
            elif isinstance(parent, list):
                parent.append(value)
        except (KeyError, IndexError, TypeError):
            continue
    return doc


@budget(1200)
@given(
    st.lists(
        st.tuples(st.sampled_from(ALL_PATHS), st.sampled_from(["delete", "replace", "add"]), scalars),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_flagship(mutations):
    """One pass finds several problems at once: every one must still be located."""
    assert_clean(yaml.safe_dump(mutate(copy.deepcopy(FLAGSHIP), mutations), sort_keys=False))


# -- the shapes an adversary tries -------------------------------------------------------------


@st.composite
def alias_documents(draw):
    """Anchors and aliases: levels of fan-outs (a "billion laughs" when deep and wide enough),
    aliases placed anywhere in the experiment, recursive aliases, aliases to nothing."""
    levels = draw(st.integers(1, 10))
    fan = draw(st.integers(1, 12))
    out = ["title: aliases", 'steady_state: [&check {measure: dead_air.max, expect: "< 1.5s"}]']
    out.append("l0: &l0 [" + ",".join(["lol"] * fan) + "]")
    for i in range(1, levels):
        out.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * fan) + "]")
    where = draw(st.sampled_from(["method", "abort_when", "listeners", "vars", "steady_state"]))
    target = draw(st.sampled_from([f"*l{levels - 1}", "*check", "*nothing", "&r [1, *r]", "&m {a: *m}"]))
    out.append(f"{where}: {target}")
    if where != "method":
        out.append("method: [{at: 1s, fault: mic.cut, for: 2s}]")
    lines = draw(st.permutations(out))
    return "\n".join(lines) + "\n"


@budget(1000)
@given(alias_documents())
def test_alias_structures(text):
    assert_clean(text)


@st.composite
def nested_documents(draw):
    """Flow brackets and braces, and block indentation, nested up to 400 deep, closed or not."""
    depth = draw(st.integers(1, 400))
    style = draw(st.sampled_from(["[", "{a: ", "mixed", "block"]))
    if style == "block":
        body = "\n" + "".join(" " * (2 * i) + "- \n" for i in range(depth))
    else:
        opens = [draw(st.sampled_from(["[", "{a: "])) if style == "mixed" else style for _ in range(depth)]
        closes = ["]" if o == "[" else "}" for o in reversed(opens)]
        body = "".join(opens) + "1" + "".join(closes[: draw(st.integers(0, depth))])
    key = draw(st.sampled_from(["method", "vars", "listeners", "x", "steady_state"]))
    return f"title: deep\n{key}: {body}\n"


@budget(400)
@given(nested_documents())
def test_deep_nesting(text):
    assert_clean(text)


long_names = st.one_of(
    st.integers(0, 6000).map(lambda n: "x" * n),
    st.integers(0, 400).map(lambda n: "é" * n),
    st.integers(0, 300).map(lambda n: "a/" * n + "docker-compose.yml"),
    st.text(min_size=200, max_size=1000),
)


@budget(800)
@given(long_names, st.sampled_from(["stack", "fault", "measure", "target", "key", "var"]))
def test_long_names(name, where):
    name = yaml.safe_dump(name, width=10**9).removesuffix("\n...\n").strip()
    step = {"fault": "mic.cut", "target": "mic", "measure": "hold_music.onset"}
    parts = {k: (name if k == where else v) for k, v in step.items()}
    text = (
        "title: long\n"
        + (f"stack: {name}\n" if where == "stack" else "")
        + (f"vars: {{{name}: 1s}}\n" if where == "var" else "")
        + (f"{name}: 1\n" if where == "key" else "")
        + "steady_state: [{measure: dead_air.max, expect: '< 1s'}]\n"
        + f"method:\n  - at: 1s\n    fault: {parts['fault']}\n    target: {parts['target']}\n    for: 2s\n"
        + f"    expect: [{{measure: {parts['measure']}, expect: 'p95 < 2s'}}]\n"
    )
    assert_clean(text)


@st.composite
def variable_graphs(draw):
    """Variables using one another at random (cycles, self-uses, chains, undefined names, long
    values and doublings), used in a step's at, for and expect."""
    n = draw(st.integers(1, 12))
    names = [f"v{i}" for i in range(n)]
    declared = {}
    for name in names:
        uses = draw(st.lists(st.sampled_from([*names, "nope", "links.mic"]), max_size=3))
        text = "".join(f"${{{u}}}" for u in uses)
        tail = draw(st.sampled_from(["", "s", "1s", "ms", "x" * 3000]))
        declared[name] = draw(st.sampled_from([text + tail, 3, "2s", "< 1s"])) if not uses else text + tail
    used = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3))
    doc = {
        "title": "variables",
        "vars": declared,
        "steady_state": [{"measure": "dead_air.max", "expect": f"${{{used[0]}}}"}],
        "method": [{"at": f"${{{used[-1]}}}", "fault": "mic.cut", "for": "".join(f"${{{u}}}" for u in used)}],
    }
    return yaml.safe_dump(doc, sort_keys=False, width=10**9)


@budget(800)
@given(variable_graphs())
def test_variable_graphs(text):
    assert_clean(text)


durations = st.one_of(
    st.sampled_from(["0s", "1ms", "2ms", "1s", "10s", "1h", "23h", "24h", "25h", "100h", "99999999999999h", "soon"]),
    st.integers(0, 10**6).map(lambda n: f"{n}s"),
)


@st.composite
def many_steps(draw):
    """Steps written out (up to past the limit of 10,000) and repeats that expand past it, or
    run for days: `every` with `times` or `until`, and joining crowds that take hours."""
    written = draw(st.sampled_from([*range(1, 41), 500, 10_001]))  # past the limit: 1 in 42 (it costs 0.3 s)
    step = draw(
        st.fixed_dictionaries(
            {"at": durations, "fault": st.just("mic.cut"), "for": durations},
            optional={"every": durations, "times": st.integers(-1, 20_000), "until": durations},
        )
    )
    join = {"at": draw(durations), "join": {"count": draw(st.integers(1, 1000)), "arrival": {"ramp": draw(durations)}}}
    method = [step] * written + ([join] if draw(st.booleans()) else [])
    doc = {"title": "steps", "steady_state": [{"measure": "dead_air.max", "expect": "< 1s"}], "method": method}
    if draw(st.booleans()):
        doc["windows"] = {"recovery": draw(durations)}
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=True, width=10**9)


@budget(400)
@given(many_steps())
def test_many_steps_and_repeats(text):
    assert_clean(text)


@st.composite
def long_strings_behind_aliases(draw):
    """A long string (up to 200,000 characters) and aliases to it, anywhere: the characters an
    alias names count, so that 40 aliases of 100 KB are not 4 MB that later passes copy."""
    size = draw(st.sampled_from([10, 1000, 30_000, 100_000, 200_000]))
    count = draw(st.integers(1, 60))
    aliases = "[" + ", ".join(["*s"] * count) + "]"
    where = draw(st.sampled_from(["title", "tags", "vars", "body", "stack", "target", "measure"]))
    body = aliases if where == "body" else "{a: 1}"
    out = [f"x: &s {'D' * size}", "steady_state: [{measure: dead_air.max, expect: '< 1s'}]"]
    out.append(f"method: [{{at: 1s, probe: p, http: {{url: 'http://x/', body: {body}}}}}]")
    if where in ("title", "tags", "stack"):
        out.append(f"{where}: {aliases if where != 'stack' else '*s'}")
    elif where == "vars":
        out.append(f"vars: {{v: {aliases}}}")
    elif where in ("target", "measure"):
        out.append("abort_when: [{measure: *s, expect: '< 1s'}]" if where == "measure" else "x2: *s")
    if where not in ("title",):
        out.append("title: t")
    return "\n".join(draw(st.permutations(out))) + "\n"


@budget(600)
@given(long_strings_behind_aliases())
def test_long_strings_behind_aliases(text):
    assert_clean(text)


ctk_values = st.one_of(
    scalars, st.lists(scalars, max_size=2), st.dictionaries(st.text(max_size=5), scalars, max_size=2)
)


@st.composite
def chaostoolkit_documents(draw):
    """Chaos Toolkit experiments (JSON) of every shape: activities with any provider, refs,
    pauses, configuration substituted into URLs and arguments, and any value where one is wanted."""
    config = draw(st.dictionaries(st.sampled_from(["u", "big", "n"]), ctk_values | st.just("B" * 50_000), max_size=3))

    def activity(i: int):
        prov = draw(
            st.sampled_from(
                [
                    {"type": "http", "url": "http://x/${u}${big}${big}", "headers": draw(ctk_values)},
                    {"type": "process", "path": "true", "arguments": draw(ctk_values | st.just("'unclosed"))},
                    {
                        "type": "python",
                        "module": "chaostoxi.toxic.actions",
                        "func": "create_latency_toxic",
                        "arguments": draw(ctk_values | st.just({"for_proxy": "mic", "latency": 100})),
                    },
                    draw(ctk_values),
                ]
            )
        )
        act = {"type": draw(st.sampled_from(["action", "probe", 5])), "name": f"a{i}", "provider": prov}
        if draw(st.booleans()):
            act["pauses"] = draw(ctk_values | st.just({"before": 1, "after": "x"}))
        return act

    n = draw(st.integers(0, 4))
    method = [activity(i) for i in range(n)] + [{"ref": draw(st.sampled_from(["a0", "zz", 5]))}] * draw(
        st.sampled_from([0, 1, 50])
    )
    doc = {
        "title": draw(ctk_values),
        "configuration": config if draw(st.booleans()) else draw(ctk_values),
        "steady-state-hypothesis": draw(
            st.sampled_from(
                [
                    {
                        "title": "h",
                        "probes": [
                            {
                                "type": "probe",
                                "name": "p",
                                "tolerance": 200,
                                "provider": {"type": "http", "url": "${u}"},
                            }
                        ],
                    }
                ]
            )
            | ctk_values
        ),
        "method": method if draw(st.booleans()) else draw(ctk_values),
    }
    for key in ("runtime", "tags", "rollbacks"):
        if draw(st.booleans()):
            doc[key] = draw(ctk_values)
    return json.dumps(doc)


@budget(800)
@given(chaostoolkit_documents())
def test_chaostoolkit_documents(text):
    assert_clean(text)


PROPERTIES = [
    "test_arbitrary_text",
    "test_tabs_and_unicode_line_separators_anywhere",
    "test_arbitrary_yaml_documents",
    "test_mutated_flagship",
    "test_alias_structures",
    "test_deep_nesting",
    "test_long_names",
    "test_variable_graphs",
    "test_many_steps_and_repeats",
    "test_long_strings_behind_aliases",
    "test_chaostoolkit_documents",
]


def test_the_budget_is_over_ten_thousand_cases():
    """The properties above ran the 10,000 cases issue 16 asks for: counted as they ran, not as set."""
    if not set(PROPERTIES) <= RAN:
        pytest.skip("counts the cases of the whole module; some of its properties were not selected")
    assert CASES[0] >= 10_000, CASES[0]
    tests = [
        test_arbitrary_text,
        test_tabs_and_unicode_line_separators_anywhere,
        test_arbitrary_yaml_documents,
        test_mutated_flagship,
        test_alias_structures,
        test_deep_nesting,
        test_long_names,
        test_variable_graphs,
        test_many_steps_and_repeats,
        test_long_strings_behind_aliases,
        test_chaostoolkit_documents,
    ]
    total = sum(t._hypothesis_internal_use_settings.max_examples for t in tests)
    assert total >= 10_000
    assert len(yaml.safe_dump(FLAGSHIP)) < MAX_FILE_BYTES
