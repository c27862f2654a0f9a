"""The webshop stack (compose/webshop: nginx -> app -> Redis, no audio) runs its example experiments
with the real CLI: the passing one passes, and each failing one fails for the reason it is about,
as its probe samples say. Afterwards no toxic is left and every container runs.

The stack is started once for this module (about 5 s) and taken down at its end; each run reuses
it. Costs on a 2-core machine: about 10 s per run, 55 s for the module (85 s with four CPU hogs).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT, deadair

from chaos.faults.ledger import Ledger
from chaos.stack.compose import Stack
from chaos.stack.definition import find_stack

EXAMPLES = ROOT / "examples" / "webshop"
pytestmark = pytest.mark.rollback  # each test checks what rollback left: CI runs them with every core busy


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """The webshop stack for this module (it overrides conftest's audio-room `stack`, so the
    autouse check after each test looks at this one); taken down at the end if this started it."""
    shop = Stack(find_stack("webshop", near=ROOT))
    ledger = None
    if not shop.is_running():
        ledger = Ledger(meta={"owner": "tests/integration/test_webshop.py"})  # swept if pytest is killed
        ledger.intend(
            f"stack {shop.project}",
            {"action": "stack.down", "project": shop.project, "compose_file": str(shop.definition.compose_file)},
        )
        try:
            shop.up()
        except BaseException:
            ledger.rollback()
            ledger.close()
            raise
    yield shop
    if ledger is not None:
        report = ledger.rollback()
        ledger.close()
        assert not report.failed, report.failed


def _run(name: str, tmp_path: Path) -> tuple[Any, dict, list[dict]]:
    proc = deadair("run", str(EXAMPLES / name), "--journal-dir", str(tmp_path / "runs"), timeout=120)
    run = next((tmp_path / "runs").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    events = [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]
    return proc, summary, events


def _samples_under_fault(events: list[dict], probe: str) -> list[dict]:
    """The method's samples of a probe. The experiments' `grace` starts them 1 s after the method
    starts, where the fault is applied (`fault.start` is recorded as the apply begins, which takes
    milliseconds): each must come at least 0.9 s after it, with the fault in place."""
    start = next(e["t"] for e in events if e["kind"] == "fault.start")
    during = [e for e in events if e["kind"] == "probe.sample" and e["src"] == probe and e["phase"] == "during"]
    assert all(e["t"] >= start + 0.9 for e in during), (start, during)
    return during


def _assert_restored(stack: Stack, summary: dict) -> None:
    """Rollback left nothing behind: no toxic, every link enabled, every container running."""
    assert not summary["rollback"]["failed"] and not summary["rollback"]["unsettled"], summary["rollback"]
    proxies = stack.toxiproxy().proxies()
    assert set(proxies) == set(stack.definition.links), proxies
    for name, proxy in proxies.items():
        assert proxy.enabled and not proxy.toxics, (name, proxy)
    for c in stack.containers():
        assert c.status == "running", (c.name, c.status)


def test_webshop_tolerates_a_little_redis_latency(stack: Stack, tmp_path, state_dir):
    proc, summary, events = _run("shop-tolerates-slow-redis.yaml", tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary["status"] == "passed" and all(v["passed"] for v in summary["verdicts"]), summary["verdicts"]
    under = _samples_under_fault(events, "shop is healthy")
    # the fault acted (one Redis round trip of 50 ms per /health), and the shop still answered
    assert len(under) >= 2 and all(s["output"]["status"] == 200 and s["elapsed"] >= 0.045 for s in under), under
    _assert_restored(stack, summary)


def _timed_out(s: dict) -> bool:
    return "no answer within 1s" in s.get("error", "")


def _bad_gateway(s: dict) -> bool:
    return s.get("output", {}).get("status") == 502 and "502 Bad Gateway" in s["output"]["body"]


def _redis_timeout(s: dict) -> bool:
    out = s.get("output", {})
    return out.get("status") == 503 and "redis timed out" in out["body"]["error"]


@pytest.mark.parametrize(
    "name, probe, failed_because, note",
    [
        ("slow-redis-breaks-the-shop.yaml", "shop answers within a second", _timed_out, "no answer within 1s"),
        ("app-crash.yaml", "shop is healthy", _bad_gateway, "status 502"),
        ("redis-partition.yaml", "shop is healthy", _redis_timeout, "status 503, {'error': 'redis timed out"),
    ],
    ids=["latency", "kill", "partition"],
)
def test_webshop_fails_for_the_reason_of_its_fault(
    stack: Stack, tmp_path, state_dir, name: str, probe: str, failed_because: Callable[[dict], bool], note: str
):
    proc, summary, events = _run(name, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert summary["status"] == "failed", summary
    failed = {v["phase"] for v in summary["verdicts"] if not v["passed"]}
    assert failed == {"during"}, summary["verdicts"]  # the gate and the recovery held
    verdict = next(v for v in summary["verdicts"] if v["phase"] == "during")
    assert note in verdict["note"], verdict["note"]
    assert note in proc.stdout, proc.stdout  # what the user reads names it too
    under = _samples_under_fault(events, probe)
    # every sample taken with the fault in place failed, and for that fault's reason
    assert len(under) >= 2 and all(failed_because(s) for s in under), under
    _assert_restored(stack, summary)
