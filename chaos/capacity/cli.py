"""`deadair capacity FILE [--var NAME=VALUE]... [--target N] [--out DIR]`: the sweep of an
experiment's `capacity:` section. Exit 0 the target holds (no target: some step passed), 1 it
does not, 2 bad input, 3 environment, 4 the instrument bound it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from chaos.errors import ExperimentError, Problem


def add_command(sub: Any) -> None:
    c = sub.add_parser("capacity", help="sweep an experiment's capacity section until an SLO breaks")
    c.add_argument("file")
    c.add_argument(
        "--var",
        action="append",
        metavar="NAME=VALUE",
        help="set a variable, or any key by its dotted path, in every step; repeatable",
    )
    c.add_argument("--target", type=float, help="the launch's figure in the unit of vary (overrides the file's)")
    c.add_argument("--out", default=".deadair/capacity", help="where sweeps go (default .deadair/capacity)")
    c.add_argument("--journal-dir", default=".deadair/runs", help="where each step's run goes (default .deadair/runs)")
    c.add_argument("--results", metavar="PATH|URL", help="the results store each step's run is recorded in")
    c.add_argument("--project", help="compose project name (default deadair-<stack>)")
    c.set_defaults(fn=cmd_capacity)


def cmd_capacity(args: argparse.Namespace) -> int:
    from chaos.capacity.sweep import SweepOptions, run_sweep
    from chaos.capacity.text import render
    from chaos.language.variables import parse_var_options
    from chaos.runner.operator import holding_kill_signal

    overrides = parse_var_options(args.var)
    if args.target is not None and not args.target > 0:
        raise ExperimentError([Problem("--target", 0, 0, f"{args.target:g}: expected a positive number")])
    opt = SweepOptions(
        overrides=overrides,
        target=args.target,
        out_dir=Path(args.out),
        journal_dir=Path(args.journal_dir),
        results=args.results,
        project=args.project,
    )
    with holding_kill_signal():  # as `deadair run`: SIGUSR1 blocked before any thread starts
        result = run_sweep(Path(args.file), opt)
    print(render(result.doc))
    print(f"  capacity.json: {result.path}\n  capacity.html: {result.path.with_name('capacity.html')}")
    sys.stdout.flush()
    return result.exit_code
