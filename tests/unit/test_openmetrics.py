"""The OpenMetrics text of a run, read back by a real parser (prometheus_client's), and the
`deadair metrics` command's answers to bad input."""

from __future__ import annotations

import argparse
import math
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus_text
from synthetic_run import EXPERIMENT_ID, FAULTS, RUN_ID, TITLE, VERDICTS, WALL_TIME, make_run

from chaos.report.metrics import after_run
from chaos.report.openmetrics import MetricsError, families, load_run, render

ROOT = Path(__file__).resolve().parents[2]
BASE = {"experiment": EXPERIMENT_ID, "run": RUN_ID}


def parsed(text: str, parser=parse_openmetrics) -> dict:
    return {f.name: f for f in parser(text)}


def values(family, **labels) -> list[float]:
    """Values of the family's samples whose labels include these."""
    want = {**BASE, **{k: str(v) for k, v in labels.items()}}
    return [s.value for s in family.samples if want.items() <= s.labels.items()]


@pytest.fixture
def text(tmp_path) -> str:
    return render(families(load_run(make_run(tmp_path / "run"))))


def test_every_verdict_number_is_in_the_text_a_parser_reads(text):
    f = parsed(text)
    secs = f["deadair_verdict_value_seconds"]
    assert (secs.type, secs.unit) == ("gauge", "seconds")
    assert values(secs, phase="before", measure="dead_air.max", stat="max") == [0.0]
    # listeners that never heard hold music (null, with summary.missing 2): the p95 is +Inf, never a pass
    onset = [s for s in secs.samples if s.labels.get("measure") == "hold_music.onset"]
    assert [s.labels.get("check") for s in onset] == [None, "2"]  # two checks of one p95, told apart
    assert all(s.value == math.inf and s.labels["step"] == "0" for s in onset)
    assert "step" not in secs.samples[0].labels  # a phase verdict has no step label at all
    ratio = f["deadair_verdict_value_ratio"]
    assert ratio.unit == "ratio" and values(ratio, phase="during", measure="listeners.connected_ratio") == [0.875]
    assert values(f["deadair_verdict_value"], phase="after", measure="probe room-api is healthy", stat="failed") == [1]

    outcome = f["deadair_verdict_outcome"]
    assert values(outcome, phase="before") == [1]
    assert values(outcome, measure="hold_music.onset") == [0, 0]
    assert values(outcome, phase="during") == [-1]
    assert values(outcome, phase="after") == [0]

    dist = f["deadair_verdict_distribution_seconds"]
    assert {s.labels["stat"]: s.value for s in dist.samples if s.labels["phase"] == "before"} == dict.fromkeys(
        ["p50", "p95", "p99", "max"], 0.0
    )
    onset_dist = [s for s in dist.samples if s.labels["measure"] == "hold_music.onset"]
    assert [s.labels["stat"] for s in onset_dist] == ["p50", "p95", "p99", "max"]  # shared, written once
    assert onset_dist[0].value == 0.48 and all(s.value == math.inf for s in onset_dist[1:])
    assert values(f["deadair_verdict_distribution_ratio"], phase="during", stat="p50") == [1.0]
    assert values(f["deadair_verdict_sample_size"], measure="hold_music.onset", basis="listeners") == [20]
    assert values(f["deadair_verdict_sample_size"], phase="during", basis="instants") == [130]
    assert values(f["deadair_verdict_missing"], measure="hold_music.onset") == [2]
    spans = f["deadair_verdict_dead_air_spans"]
    assert [s.labels["measure"] for s in spans.samples] == ["dead_air.max"]  # only dead-air verdicts have spans


def test_fault_windows_are_on_the_runs_clock(text):
    f = parsed(text)
    start, end = f["deadair_fault_start_seconds"], f["deadair_fault_end_seconds"]
    assert start.unit == end.unit == "seconds"
    cut = {"fault": "mic.cut", "target": "mic", "step": "0", "occurrence": "0.0"}
    assert values(start, **cut) == [FAULTS[0]["t"]] and values(end, **cut) == [FAULTS[1]["t"]]
    down = {"fault": "link.down", "target": "relay-2", "step": "1", "occurrence": "1.0"}
    assert values(start, **down) == [20.5]
    assert values(end, **down) == []  # it never ended (the run died): a start and no end, not a made-up end


def test_run_level_metrics_and_escaping(text):
    f = parsed(text)
    info = f["deadair_run"]
    assert info.type == "info"
    assert info.samples[0].labels["title"] == TITLE  # quotes, a backslash and a newline, round-tripped
    assert info.samples[0].labels["seed"] == "7"
    status = f["deadair_run_status"]
    assert status.type == "stateset"
    assert {s.labels["deadair_run_status"]: s.value for s in status.samples if s.value} == {"failed": 1}
    assert values(f["deadair_run_exit_code"]) == [1]
    assert values(f["deadair_run_duration_seconds"]) == [31.25]
    assert values(f["deadair_run_timestamp_seconds"]) == [WALL_TIME]
    assert values(f["deadair_run_timing_seconds"], part="warmup") == [0.5]
    assert text.endswith("# EOF\n")
    assert all(name.startswith("deadair_") for name in f)
    for fam in f.values():  # every sample says which experiment and which run it belongs to
        assert all(BASE.items() <= s.labels.items() for s in fam.samples), fam.name


def test_the_pushgateway_text_holds_the_same_samples(tmp_path):
    """What is pushed (Prometheus text 0.0.4: no UNIT, no EOF, gauges only) is what is written."""
    fams = families(load_run(make_run(tmp_path / "run")))
    om, prom = render(fams), render(fams, openmetrics=False)
    assert "# EOF" not in prom and "# UNIT" not in prom and "stateset" not in prom

    def samples(text, parser):
        return sorted((s.name, tuple(sorted(s.labels.items())), repr(s.value)) for f in parser(text) for s in f.samples)

    assert samples(prom, parse_prometheus_text) == samples(om, parse_openmetrics)
    assert all(f.type == "gauge" for f in parse_prometheus_text(prom))


def test_a_folder_without_a_run_is_a_clear_error(tmp_path):
    with pytest.raises(MetricsError, match="no summary.json"):
        load_run(tmp_path)
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(MetricsError, match="not a readable summary"):
        load_run(tmp_path)
    run = make_run(tmp_path / "run")
    with (run / "journal.jsonl").open("a") as f:
        f.write("{broken\n")
    with pytest.raises(MetricsError, match=r"journal.jsonl:6: not a JSON line"):
        load_run(run / "journal.jsonl")


def deadair(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chaos", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_deadair_metrics_command(tmp_path):
    run = make_run(tmp_path / "runs" / RUN_ID)
    out = deadair("metrics", str(run))
    assert out.returncode == 0, out.stderr
    assert parsed(out.stdout)["deadair_run_exit_code"].samples[0].value == 1
    by_id = deadair(
        "metrics", RUN_ID, "--journal-dir", str(tmp_path / "runs"), "--metrics-out", str(tmp_path / "m" / "x.prom")
    )
    assert by_id.returncode == 0, by_id.stderr
    assert (tmp_path / "m" / "x.prom").read_text() == out.stdout

    missing = deadair("metrics", str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "no such run" in missing.stderr and "Traceback" not in missing.stderr
    bad_url = deadair("metrics", str(run), "--push-gateway", "localhost:9091")
    assert bad_url.returncode == 2 and "not a Pushgateway URL" in bad_url.stderr
    bad_run_url = deadair("run", "experiments/mic-cut-hold-music.yaml", "--push-gateway", "ftp://gw")
    assert bad_run_url.returncode == 2 and "not a Pushgateway URL" in bad_run_url.stderr  # refused before any run
    unwritable = deadair("metrics", str(run), "--metrics-out", "/proc/deadair/m.prom")
    assert unwritable.returncode == 3 and "cannot write /proc/deadair/m.prom" in unwritable.stderr
    assert "Traceback" not in unwritable.stderr


def test_an_older_summary_gets_its_experiment_id_from_its_path(tmp_path):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    run = make_run(tmp_path / "run", experiment_id=None, experiment=str(repo / "experiments" / "a.yaml"))
    f = parsed(render(families(load_run(run))))
    assert f["deadair_run_exit_code"].samples[0].labels["experiment"] == f"experiments/a.yaml::{TITLE}"


def test_repeats_go_in_one_file_told_apart_by_run(tmp_path):
    runs = [make_run(tmp_path / r, run_id=r) / "summary.json" for r in ("r1", "r2")]
    out = tmp_path / "m.prom"
    assert after_run(argparse.Namespace(metrics_out=str(out), push_gateway=None), runs, 7) == 7
    f = parsed(out.read_text())
    assert [s.labels["run"] for s in f["deadair_run_exit_code"].samples] == ["r1", "r2"]
    assert len(f["deadair_verdict_outcome"].samples) == 2 * 5


def test_a_run_that_left_no_summary_says_so(capsys):
    assert after_run(argparse.Namespace(metrics_out="m.prom", push_gateway=None), [None], 0) == 3
    assert "metrics not delivered: the run left no summary" in capsys.readouterr().err
    assert after_run(argparse.Namespace(metrics_out=None, push_gateway=None), [None], 4) == 4
    assert capsys.readouterr().err == ""  # nothing asked, nothing said


def test_a_null_with_nobody_missing_is_nan_and_with_listeners_missing_is_inf(tmp_path):
    """As compare and JUnit read it: null + missing listeners is infinite; null with no data is NaN."""
    nodata = {"count": 0, "missing": 0, "basis": "listeners", "p50": None, "p95": None, "p99": None, "max": None}
    verdicts = [
        {**VERDICTS[1], "summary": nodata},
        {**VERDICTS[1], "phase": "after", "step": None},  # summary.missing 2
    ]
    f = parsed(render(families(load_run(make_run(tmp_path / "run", verdicts=verdicts)))))
    secs = f["deadair_verdict_value_seconds"]
    assert [math.isnan(v) for v in values(secs, phase="step")] == [True]
    assert values(secs, phase="after") == [math.inf]
    dist = f["deadair_verdict_distribution_seconds"]
    assert all(math.isnan(v) for v in values(dist, phase="step"))
    assert values(dist, phase="after", stat="p95") == [math.inf]
    assert "} +Inf" in render(families(load_run(tmp_path / "run")))


def test_a_dry_run_and_its_not_counted_verdicts_are_marked(tmp_path):
    verdicts = [VERDICTS[0], {**VERDICTS[1], "skipped": True}]
    f = parsed(render(families(load_run(make_run(tmp_path / "dry", dry="faults", verdicts=verdicts, status="passed")))))
    assert values(f["deadair_run_dry"]) == [1]
    assert values(f["deadair_verdict_outcome"], phase="before") == [1]
    assert values(f["deadair_verdict_outcome"], phase="step") == [-3]  # not counted: its fault was not injected
    wet = parsed(render(families(load_run(make_run(tmp_path / "wet")))))
    assert values(wet["deadair_run_dry"]) == [0]


def test_the_series_exit_code_is_exported_apart_from_the_runs(tmp_path):
    """A series whose runs each passed (0) but that regressed (6) or was flaky (7) says so."""
    runs = [make_run(tmp_path / r, run_id=r, status="passed", exit_code=0) / "summary.json" for r in ("r1", "r2")]
    out = tmp_path / "m.prom"
    assert after_run(argparse.Namespace(metrics_out=str(out), push_gateway=None), runs, 6) == 6
    f = parsed(out.read_text())
    assert [s.value for s in f["deadair_run_exit_code"].samples] == [0, 0]
    (series,) = f["deadair_series_exit_code"].samples
    assert series.value == 6 and series.labels == {"experiment": EXPERIMENT_ID, "run": "r1"}


@pytest.mark.parametrize(
    "summary, where",
    [
        ('{"run_id": "r", "verdicts": "abc"}', "verdicts: expected a list of objects, not a string"),
        ('{"run_id": "r", "verdicts": [1, 2]}', "verdicts[0]: expected an object, not a number"),
        ('{"run_id": "r", "verdicts": [], "timings": [1]}', "timings: expected an object or null, not a list"),
    ],
)
def test_a_summary_of_the_wrong_shape_is_exit_2_not_a_traceback(tmp_path, summary, where):
    (tmp_path / "summary.json").write_text(summary)
    out = deadair("metrics", str(tmp_path))
    assert out.returncode == 2, out.stderr
    assert f"{tmp_path / 'summary.json'}: not a deadair summary: {where}" in out.stderr
    assert "Traceback" not in out.stderr
