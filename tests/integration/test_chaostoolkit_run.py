"""A Chaos Toolkit experiment in its documentation's style runs against the audio-room stack."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import ROOT, deadair

from chaos.stack.compose import Stack

CTK = ROOT / "experiments" / "chaostoolkit" / "room-api-slow-redis.json"


def _events(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in next(tmp_path.glob("runs/*/journal.jsonl")).read_text().splitlines()]


def test_chaos_toolkit_experiment_passes_and_its_check_sees_the_fault(stack: Stack, tmp_path, state_dir):
    proc = deadair("run", str(CTK), "--journal-dir", str(tmp_path / "runs"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    events = _events(tmp_path)
    samples = {(e["src"], e["phase"]): e for e in events if e["kind"] == "probe.sample"}
    before, end = samples[("room-api-is-healthy", "before")], samples[("room-api-is-healthy", "during")]
    # independently of any verdict: with 200 +- 20 ms on every Redis reply, the end-of-method check
    # took at least one delayed reply. (Not also "the first check was fast": with the CPU busy, a
    # check without any fault took 186 ms, and the bound held only on an idle machine.)
    assert "elapsed" in before and end["elapsed"] >= 0.175, (before["elapsed"], end["elapsed"])
    fault_end = next(e for e in events if e["kind"] == "fault.end")
    assert end["t"] < fault_end["t"]  # sampled while the toxic was in place, as the Chaos Toolkit does
    assert samples[("health-with-curl", "method")]["output"]["status"] == 0
    assert not stack.toxiproxy().proxy("api-redis").toxics


def test_chaos_toolkit_experiment_fails_when_redis_is_slower_than_room_api_waits(stack: Stack, tmp_path, state_dir):
    proc = deadair("run", str(CTK), "--var", "method.0.with.latency=800ms", "--journal-dir", str(tmp_path / "runs"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "during  probe room-api-is-healthy tolerance 200  FAIL" in proc.stdout
    assert "status 503" in proc.stdout
