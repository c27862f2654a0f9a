"""The test suite's own deadair state stays out of the user's (issue 11, point 2: one failed test
left a ledger in ~/.local/state/deadair that broke every later run of the machine's user)."""

import os
from pathlib import Path

from chaos.faults.ledger import Ledger, state_dir

PRIVATE_STATE = Path(__file__).resolve().parents[2] / ".deadair" / "test-state"


def test_ledgers_written_by_tests_go_to_a_private_directory():
    users = Path(os.path.expanduser("~/.local/state/deadair"))
    assert state_dir() == PRIVATE_STATE
    assert users not in state_dir().parents and state_dir() != users
    led = Ledger()
    assert PRIVATE_STATE in led.path.parents
