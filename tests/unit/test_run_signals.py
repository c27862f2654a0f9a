"""A signal after the live phases (a second Ctrl-C, a CI's SIGTERM) must not skip rollback.

The swarm's engine closes between the live phases and rollback (a local Ray cluster: 1-2 s, up
to 60 s on a busy host). A SIGTERM then raised Interrupted out of the run before roll_back: the
ledger's faults stayed in place until the next `deadair sweep`. Run in a child process: the
signal goes to the process, and must never reach pytest's."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CHILD = textwrap.dedent(
    """
    import json, os, signal, sys, threading, time
    from chaos.language.loader import load_experiment
    from chaos.runner import run as R
    from chaos.runner.model import Interrupted, RunOptions

    exp = load_experiment(sys.argv[1], check_stack=False)
    seen = {"roll_back": 0}

    class SlowEngine:
        def close(self):
            time.sleep(1.5)  # a local Ray cluster shutting down

    def bring_up(ctx):
        ctx.ledger.intend("link.down relay-1", {"action": "test.nothing"})
        ctx.engines.append(SlowEngine())
        threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()  # the second signal, mid-close
        raise Interrupted(signal.SIGTERM)  # the first

    def nothing(_):
        return None

    from chaos.faults import undo
    undo.UNDO["test.nothing"] = (nothing, nothing)
    R.bring_up_stack = bring_up
    real = R.roll_back
    def counted(ctx, result):
        seen["roll_back"] += 1
        return real(ctx, result)
    R.roll_back = counted
    result = R.run(exp, RunOptions(progress=lambda m: None, journal_dir=__import__("pathlib").Path(sys.argv[2])))
    print(json.dumps({**seen, "status": result.status, "exit": result.exit_code,
                      "reverted": len(result.rollback.reverted)}))
    """
)


def test_a_second_signal_while_the_engine_closes_still_rolls_back(tmp_path):
    env = {"PYTHONPATH": str(ROOT), "DEADAIR_STATE": str(tmp_path / "state"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT / "experiments" / "mic-cut-hold-music.yaml"), str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["roll_back"] == 1 and out["reverted"] == 1, out
    assert (out["status"], out["exit"]) == ("interrupted", 143), out
    assert not list((tmp_path / "state" / "ledgers").glob("*.json"))  # nothing left for a sweep
