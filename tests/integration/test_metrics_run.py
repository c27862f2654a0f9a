"""`deadair run --metrics-out FILE --push-gateway URL` on the real stack: the flagship experiment's
verdicts and fault window, in a file a real OpenMetrics parser reads and in a real Pushgateway
(Debian's binary, on a free port), equal to what the run's summary and journal say. The file is
copied to .deadair/artifacts/metrics-flagship.prom (the README's excerpt is one of them)."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from conftest import FLAGSHIP, ROOT, deadair
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_prometheus_text
from pushgateway import pushgateway, scrape

ARTIFACT = ROOT / ".deadair" / "artifacts" / "metrics-flagship.prom"


@pytest.fixture
def gateway(tmp_path):
    with pushgateway(tmp_path) as url:
        yield url


def test_a_run_writes_and_pushes_its_numbers(stack, tmp_path, gateway):
    out = tmp_path / "metrics" / "flagship.prom"
    proc = deadair(
        "run",
        str(FLAGSHIP),
        "--var",
        "listeners.count=8",
        "--journal-dir",
        str(tmp_path / "runs"),
        "--metrics-out",
        str(out),
        "--push-gateway",
        gateway,
    )
    assert proc.returncode in (0, 1, 4), proc.stderr  # the verdict's code, whatever it is: never 3 from metrics
    assert "metrics not delivered" not in proc.stderr, proc.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["exit_code"] == proc.returncode
    journal = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out, ARTIFACT)
    experiment = "experiments/mic-cut-hold-music.yaml::Hold music covers a microphone-path cut"
    assert summary["experiment_id"] == experiment
    base = {"experiment": experiment, "run": summary["run_id"]}

    written = {f.name: f for f in parse_openmetrics(out.read_text())}
    held = {f.name: f for f in parse_prometheus_text(scrape(gateway)) if f.name.startswith("deadair_")}

    def value(fams, name, **labels):
        want = {**base, **{k: str(v) for k, v in labels.items()}}
        hits = [s.value for s in fams[name].samples if want.items() <= s.labels.items()]
        assert len(hits) == 1, (name, labels, hits)
        return hits[0]

    for fams in (written, held):
        assert value(fams, "deadair_run_exit_code") == proc.returncode
        assert value(fams, "deadair_series_exit_code") == proc.returncode  # one run: the series' code is its own
        assert value(fams, "deadair_run_dry") == 0
        assert value(fams, "deadair_run_status", deadair_run_status=summary["status"]) == 1
        assert value(fams, "deadair_run_duration_seconds") == summary["timings"]["total"]
        assert value(fams, "deadair_run_timestamp_seconds") == pytest.approx(journal[0]["wall_time"])
        assert len(summary["verdicts"]) == 5
        for v in summary["verdicts"]:
            where = {"phase": v["phase"], "measure": v["measure"]} | (
                {"step": v["step"]} if v["step"] is not None else {}
            )
            got = value(fams, "deadair_verdict_value_seconds", **where, stat=v["stat"])
            never = math.inf if v["summary"].get("missing") else math.nan  # null: +Inf if listeners missing
            assert got == v["value"] or (v["value"] is None and repr(got) == repr(never))
            outcome = {"pass": 1, "fail": 0, "unknown": -1}[v["outcome"]]
            assert value(fams, "deadair_verdict_outcome", **where, stat=v["stat"]) == outcome
            for stat in ("p50", "p95", "p99", "max"):
                got = value(fams, "deadair_verdict_distribution_seconds", **where, stat=stat)
                want = v["summary"][stat]
                assert got == want or (want is None and repr(got) == repr(never))
            assert value(fams, "deadair_verdict_sample_size", **where) == v["summary"]["count"] == 8
        (start,) = [e for e in journal if e["kind"] == "fault.start"]
        (end,) = [e for e in journal if e["kind"] == "fault.end"]
        window = {"fault": "mic.cut", "target": "mic", "step": 0, "occurrence": "0.0"}
        assert value(fams, "deadair_fault_start_seconds", **window) == start["t"]
        assert value(fams, "deadair_fault_end_seconds", **window) == end["t"]
        assert 7.5 < end["t"] - start["t"] < 9  # the 8 s cut
    assert {s.labels["job"] for f in held.values() for s in f.samples} == {experiment}
