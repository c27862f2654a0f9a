"""Pushing a run's metrics to a real Prometheus Pushgateway (Debian's binary, started per test on a
free port; no Docker), reading them back as Prometheus would scrape them, and the failures: a
gateway that is down, one that never answers, one that refuses what it is sent."""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families
from pushgateway import free_port, pushgateway, scrape
from synthetic_run import EXPERIMENT_ID, FAULTS, RUN_ID, TITLE, make_run

from chaos.report.metrics import after_run
from chaos.report.pushgateway import PushError, group_url, push

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def gateway(tmp_path):
    with pushgateway(tmp_path) as url:
        yield url


def deadair(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chaos", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


def scraped(url: str) -> list:
    """The gateway's deadair samples, as (name, labels, value)."""
    return [
        (s.name, s.labels, s.value)
        for f in text_string_to_metric_families(scrape(url))
        for s in f.samples
        if s.name.startswith("deadair_")
    ]


def test_a_run_pushed_to_a_real_gateway_is_what_prometheus_scrapes(gateway, tmp_path):
    run = make_run(tmp_path / "run")
    out = deadair("metrics", str(run), "--push-gateway", gateway, "--metrics-out", str(tmp_path / "m.prom"))
    assert out.returncode == 0, out.stderr
    assert f"metrics pushed: {group_url(gateway, EXPERIMENT_ID)}" in out.stderr
    assert "/metrics/job@base64/" in out.stderr  # the id holds a slash
    got = scraped(gateway)
    assert got, "the gateway holds no deadair metric after the push"
    assert {(labels["job"], labels["run"], labels["experiment"]) for _, labels, _ in got} == {
        (EXPERIMENT_ID, RUN_ID, EXPERIMENT_ID)
    }

    def one(name, **labels):
        hits = [v for n, lab, v in got if n == name and {k: str(x) for k, x in labels.items()}.items() <= lab.items()]
        assert len(hits) == 1, (name, labels, hits)
        return hits[0]

    assert one("deadair_verdict_value_ratio", phase="during", measure="listeners.connected_ratio") == 0.875
    assert one("deadair_verdict_outcome", phase="during") == -1
    assert one("deadair_verdict_distribution_seconds", measure="hold_music.onset", stat="p50") == 0.48
    assert one("deadair_verdict_missing", measure="hold_music.onset") == 2
    assert one("deadair_fault_start_seconds", fault="mic.cut", occurrence="0.0") == FAULTS[0]["t"]
    assert one("deadair_fault_end_seconds", fault="mic.cut", occurrence="0.0") == FAULTS[1]["t"]
    assert one("deadair_run_exit_code") == 1
    assert one("deadair_run_status", deadair_run_status="failed") == 1
    assert [lab["title"] for n, lab, _ in got if n == "deadair_run_info"] == [TITLE]
    # every sample of the file reached the gateway with the same labels and value, and nothing else
    written = {
        (s.name, tuple(sorted(s.labels.items())), repr(s.value))
        for f in parse_openmetrics((tmp_path / "m.prom").read_text())
        for s in f.samples
    }
    held = {
        (n, tuple(sorted((k, v) for k, v in lab.items() if k not in ("job", "instance"))), repr(v)) for n, lab, v in got
    }
    assert held == written


def test_the_next_run_replaces_the_last_in_its_experiments_group(gateway, tmp_path):
    make_run(tmp_path / "other", experiment_id="experiments/other.yaml::Other", run_id="other-1")
    assert deadair("metrics", str(tmp_path / "other"), "--push-gateway", gateway).returncode == 0
    for run_id in ("night-1", "night-2"):
        assert (
            deadair("metrics", str(make_run(tmp_path / run_id, run_id=run_id)), "--push-gateway", gateway).returncode
            == 0
        )
    runs = {(labels["job"], labels["run"]) for _, labels, _ in scraped(gateway)}
    assert runs == {(EXPERIMENT_ID, "night-2"), ("experiments/other.yaml::Other", "other-1")}  # night-1 replaced


def test_a_gateway_that_is_down_fails_quickly_and_clearly(tmp_path):
    run = make_run(tmp_path / "run")
    down = f"http://127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    out = deadair("metrics", str(run), "--push-gateway", down)
    assert time.monotonic() - t0 < 20  # the interpreter's start included; the push itself is refused at once
    assert out.returncode == 3
    assert f"Pushgateway {down} unreachable: Connection refused" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_gateway_that_never_answers_times_out():
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        t0 = time.monotonic()
        with pytest.raises(PushError, match=r"did not answer within 0.5s to connect, 0.5s to answer"):
            push(url, "mic-cut", "deadair_x 1\n", timeout=(0.5, 0.5))
        assert time.monotonic() - t0 < 3


def test_a_gateway_that_refuses_the_metrics_says_why(gateway):
    with pytest.raises(PushError, match=r"refused the metrics: HTTP 400"):
        push(gateway, "mic-cut", "deadair_x{ 1\n")


def test_a_failed_push_after_a_run_is_said_and_turns_a_pass_into_3(tmp_path, capsys):
    """`deadair run` calls after_run last: a dead gateway is reported, the file is still written,
    the summary (the verdict) is untouched; exit 0 or 4 becomes 3, a failed run keeps its 1."""
    run = make_run(tmp_path / "run")
    before = (run / "summary.json").read_text()
    out = tmp_path / "metrics" / "run.prom"
    args = argparse.Namespace(metrics_out=str(out), push_gateway=f"http://127.0.0.1:{free_port()}")
    assert after_run(args, [run / "summary.json"], 0) == 3
    err = capsys.readouterr().err
    assert "metrics not delivered" in err and "unreachable" in err and "the verdict stands, exit 3" in err
    assert out.read_text().endswith("# EOF\n")
    assert after_run(args, [run / "summary.json"], 4) == 3
    assert after_run(args, [run / "summary.json"], 1) == 1
    assert (run / "summary.json").read_text() == before


def test_repeats_are_pushed_together_in_one_group(gateway, tmp_path):
    runs = [make_run(tmp_path / r, run_id=r) / "summary.json" for r in ("rep-1", "rep-2")]
    assert after_run(argparse.Namespace(metrics_out=None, push_gateway=gateway), runs, 0) == 0
    held = {lab["run"] for n, lab, _ in scraped(gateway) if n == "deadair_run_exit_code"}
    assert held == {"rep-1", "rep-2"}


def test_group_urls_encode_what_a_path_cannot_hold():
    assert group_url("http://gw:9091/", "mic cut") == "http://gw:9091/metrics/job/mic%20cut"
    assert group_url("http://gw:9091", EXPERIMENT_ID).endswith(
        "/metrics/job@base64/ZXhwZXJpbWVudHMvbWljLWN1dC55YW1sOjpNaWMgY3V0"
    )
    assert (
        group_url("http://gw:9091", "a/b", {"lane": "nightly"}) == "http://gw:9091/metrics/job@base64/YS9i/lane/nightly"
    )
