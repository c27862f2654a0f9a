"""Integration tests: a real engine, real Toxiproxy, real Icecast and ffmpeg.

They need `deadair setup` to have run (the README's test command does it). Every test
ends by checking that the stack is as it was: every node running and healthy, every link
enabled, no toxic left.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chaos.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = ROOT / "experiments" / "mic-cut-hold-music.yaml"


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def stack(deadair_stack: Stack) -> Stack:
    return deadair_stack


@pytest.fixture(autouse=True)
def stack_left_clean(stack: Stack):
    yield
    deadline = time.monotonic() + 30
    while True:
        status = stack.status()
        if status.healthy:
            break
        if time.monotonic() > deadline:
            pytest.fail(f"stack not restored after the test: nodes {status.nodes}, links {status.links}")
        time.sleep(0.5)


@pytest.fixture
def state_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "state"
    monkeypatch.setenv("DEADAIR_STATE", str(d))
    return d


def deadair(*args: str, cwd: Path = ROOT, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, in a child process."""
    return subprocess.run([sys.executable, "-m", "chaos", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})
