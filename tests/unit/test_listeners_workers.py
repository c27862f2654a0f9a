"""The language of the distributed swarm: listeners.workers, sample, bandwidth, source_addresses;
more listeners than one process holds need workers (a located problem, exit 2, nothing started)."""

from __future__ import annotations

from experiment_files import problems

from chaos.language.loader import load_experiment

BASE = """title: t
stack: audio-room
listeners:
  count: {count}
{more}steady_state:
  - measure: dead_air.max
    expect: "< 1s"
method:
  - {{at: 1s, fault: mic.cut, for: 1s}}
"""


def test_workers_sample_bandwidth_and_sources_are_read(tmp_path):
    f = tmp_path / "exp.yaml"
    more = "  workers: auto\n  sample: 5\n  bandwidth: 2.5Gbit/s\n  source_addresses: [127.0.0.2, 127.0.0.3]\n"
    f.write_text(BASE.format(count=200_000, more=more))
    spec = load_experiment(f).listeners
    assert (spec.workers, spec.sample, spec.bandwidth) == ("auto", 5, 2.5e9)
    assert spec.source_addresses == ("127.0.0.2", "127.0.0.3")
    f.write_text(BASE.format(count=20, more="  workers: 3\n"))
    assert load_experiment(f).listeners.workers == 3
    f.write_text(BASE.format(count=20, more=""))
    assert load_experiment(f).listeners.workers is None  # one process, no engine


def test_more_listeners_than_one_process_holds_need_workers(tmp_path):
    [p] = problems(BASE.format(count=100_001, more=""), tmp_path)
    assert p.startswith("F:4:") and "listeners.workers" in p and "100000" in p


def test_bad_workers_and_bandwidth_are_located(tmp_path):
    found = problems(BASE.format(count=20, more="  workers: many\n  bandwidth: fast\n  sample: -1\n"), tmp_path)
    assert any(p.startswith("F:5:") and "auto" in p for p in found), found
    assert any(p.startswith("F:6:") and "Gbit/s" in p for p in found), found
    assert any(p.startswith("F:7:") for p in found), found
