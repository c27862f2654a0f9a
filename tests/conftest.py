"""Session set-up shared by unit and integration tests.

- State is private: every ledger, flood result and journal that deadair writes during the
  tests goes under the checkout's `.deadair/test-state`, never the user's
  `~/.local/state/deadair` (a failed test must not leave a ledger that every later
  `deadair run` or `deadair sweep` of the machine's user trips over). It persists across
  sessions, so a killed session's ledgers are swept by the next one.
- `--cpu-hog N` keeps N CPU-bound processes running for the whole session: scripts/test's busy
  lane runs the rollback tests that way, because timeouts bite when the CPU is busy.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

ROOT = Path(__file__).resolve().parents[1]
PRIVATE_STATE = ROOT / ".deadair" / "test-state"
os.environ["DEADAIR_STATE"] = str(PRIVATE_STATE)  # before any test module imports chaos

_HOGS: list[subprocess.Popen] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cpu-hog",
        type=int,
        default=0,
        metavar="N",
        help="keep N busy processes running during the session (scripts/test's busy lane)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "rollback: touches rollback; scripts/test runs these with every core busy")
    for _ in range(config.getoption("cpu_hog")):
        _HOGS.append(subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True))
    if _HOGS:
        print(f"\n{len(_HOGS)} CPU hog process(es) running: {', '.join(str(p.pid) for p in _HOGS)}", file=sys.stderr)


def pytest_unconfigure(config: pytest.Config) -> None:
    for proc in _HOGS:
        proc.kill()
        proc.wait(timeout=10)
    _HOGS.clear()


def pytest_report_header(config: pytest.Config) -> list[str]:
    return [f"deadair state (ledgers, floods): {PRIVATE_STATE}"] + (
        [f"CPU hog: {config.getoption('cpu_hog')} busy process(es)"] if config.getoption("cpu_hog") else []
    )
