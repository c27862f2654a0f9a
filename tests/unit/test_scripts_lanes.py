"""scripts/test runs both lanes whatever the first one's outcome: a failing lane must not skip the
busy lane (bootstrap, sourced first, runs with errexit, which stays on once sourced)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _exe(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_a_failing_first_lane_still_runs_the_busy_lane(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "test", tmp_path / "scripts" / "test")
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    # the real bootstrap's shell options, without the install and set-up it does
    (tmp_path / "scripts" / "bootstrap").write_text(f'set -euo pipefail\nROOT="{tmp_path}"\nVENV="{venv.parent}"\n')
    log = tmp_path / "lanes.log"
    _exe(venv / "python", f'echo "$*" >> "{log}"\ncase "$*" in *"not (rollback"*) exit 1;; esac\nexit 0\n')
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("tshark", "prometheus-pushgateway", "chromium", "chromedriver"):
        _exe(tools / tool, "exit 0\n")
    env = {**os.environ, "PATH": f"{tools}:{os.environ['PATH']}"}
    out = subprocess.run(
        ["bash", str(tmp_path / "scripts" / "test")], env=env, capture_output=True, text=True, timeout=60
    )
    lanes = log.read_text().splitlines()
    assert len(lanes) == 2 and "rollback or failover" in lanes[1] and "--cpu-hog" in lanes[1], (lanes, out.stderr)
    assert out.returncode == 1  # the first lane's failure is still the result
