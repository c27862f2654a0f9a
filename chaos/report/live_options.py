"""The options of a run for the people around it, shared by `deadair run` and the pytest plugin:
dry runs (`--dry faults|all`), the live status (`--progress`), game-day step mode (`--step`),
and the keys of the operator's terminal (the kill switch).

Keys are read only from a terminal this process has in the foreground: a run in CI, in a pipe,
or sent to the background (`&`) reads nothing (a background read would stop the process), and
SIGUSR1 remains its kill switch.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from chaos.errors import DeadairError
from chaos.runner.operator import may_read

if TYPE_CHECKING:
    from chaos.language.model import Experiment

# Light on purpose: `deadair run` builds its parser (which adds these options) before it blocks
# SIGUSR1, and the runner's modules start numpy's threads when imported (chaos.runner.operator).

DRY = ("faults", "all")
PROGRESS = ("auto", "live", "lines", "off")


class UsageError(DeadairError):
    """Options that cannot go together, or need what is not there (a terminal): nothing started."""

    exit_code = 2


def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dry",
        choices=DRY,
        help="faults: bring up the stack, listeners and probes, inject nothing, judge the verdicts; "
        "all: print the plan and touch nothing",
    )
    parser.add_argument(
        "--step",
        action="store_true",
        help="game-day step mode: confirm each fault on the terminal (y inject, s skip, k kill switch)",
    )
    parser.add_argument(
        "--cluster",
        metavar="ADDRESS",
        help="run the swarm's shards on the Ray cluster at ADDRESS (host:port of its head); without it, "
        "listeners.workers starts a local cluster for the run (README: Running the swarm on a cluster)",
    )
    parser.add_argument(
        "--progress",
        choices=PROGRESS,
        default="auto",
        help="live status: one line redrawn in place (live), a plain line every few seconds (lines), "
        "or none; auto: live on a terminal, lines elsewhere",
    )


def run_options(args: argparse.Namespace) -> dict[str, Any]:
    """RunOptions fields from `deadair run`'s flags; a combination that cannot work is an error
    (exit 2) before anything starts."""
    dry, step = getattr(args, "dry", None), bool(getattr(args, "step", False))
    keys = 0 if may_read(0) else None
    if step and dry:
        raise UsageError(f"--step and --dry {dry} cannot go together: a dry run injects no fault to confirm")
    if step and keys is None:
        raise UsageError(
            "--step needs the operator's terminal on standard input (in the foreground): each fault "
            "is confirmed with a key; for a run without one, use SIGUSR1 as the kill switch"
        )
    mode = getattr(args, "progress", "auto") or "auto"
    if mode == "auto":
        mode = "live" if sys.stderr.isatty() else "lines"
    cluster = getattr(args, "cluster", None)
    if cluster is not None and not cluster.strip():
        raise UsageError("--cluster needs the address of a Ray cluster's head (host:port)")
    return {"dry": dry, "step": step, "keys": keys, "live_status": mode, "cluster": cluster}


def plan_only(exp: Experiment) -> str:
    """What `--dry all` prints: the plan, and that nothing was touched."""
    from chaos.report.text import render_plan

    return render_plan(exp) + "\n  dry run (--dry all): planned only; no engine was called, nothing was started"
