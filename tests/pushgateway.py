"""A real Prometheus Pushgateway for tests: Debian's `prometheus-pushgateway` binary (scripts/test
installs it), on 127.0.0.1 and a free port, in memory only, stopped after the test.

Where the binary is missing the test is skipped, except under DEADAIR_STRICT=1 (CI), where it
fails: a push that was never tried against a real gateway must not pass there.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

BINARIES = ("prometheus-pushgateway", "pushgateway")  # Debian's name, upstream's


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary() -> str:
    for name in BINARIES:
        found = shutil.which(name)
        if found:
            return found
    message = "prometheus-pushgateway is missing (scripts/test installs it on Debian)"
    if os.environ.get("DEADAIR_STRICT"):
        pytest.fail(message + "; CI does not skip this test")
    pytest.skip(message)


@contextmanager
def pushgateway(log_dir: Path) -> Iterator[str]:
    """Start a gateway, wait until /-/ready answers, yield its URL; stop it (and only it) after."""
    port = free_port()
    log = (log_dir / "pushgateway.log").open("w")
    proc = subprocess.Popen(
        [binary(), f"--web.listen-address=127.0.0.1:{port}", "--persistence.file=", "--log.level=warn"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the Pushgateway exited with {proc.returncode}; see {log_dir / 'pushgateway.log'}")
            try:
                if requests.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the Pushgateway at {url} was not ready within 15 s")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def scrape(url: str) -> str:
    """What Prometheus would scrape from the gateway."""
    resp = requests.get(f"{url}/metrics", timeout=5)
    resp.raise_for_status()
    return resp.text
