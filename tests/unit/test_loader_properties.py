"""Property-based: whatever the YAML, the loader gives an experiment or located problems, never a traceback."""

import copy
from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos.errors import ExperimentError
from chaos.language.loader import parse_experiment

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = yaml.safe_load((ROOT / "experiments" / "mic-cut-hold-music.yaml").read_text())
PATH = ROOT / "experiments" / "fuzz.yaml"

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


def assert_clean(text: str) -> None:
    try:
        parse_experiment(text, PATH)
    except ExperimentError as exc:
        assert exc.problems, "an ExperimentError names at least one problem"
        for p in exc.problems:
            assert str(p).startswith(str(PATH)) or str(p).startswith("--var"), str(p)
            assert p.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_arbitrary_text(text):
    assert_clean(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
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


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.sampled_from(ALL_PATHS), st.sampled_from(["delete", "replace", "add"]), scalars),
        min_size=1,
        max_size=4,
    )
)
def test_mutated_flagship(mutations):
    doc = copy.deepcopy(FLAGSHIP)
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
    assert_clean(yaml.safe_dump(doc, sort_keys=False))
