"""`deadair readiness SUITE_OR_DIR`: run the suite (or read its newest results), judge it against
the launch's policy, write scorecard.json and scorecard.html, print the scorecard.

Exit codes: 0 GO; 1 NO-GO; 2 bad input (policy, suite, --var, --target; nothing ran); 3
environment (a run ended on the environment, or the results store could not be written: the
scorecard is still written); 5, 130, 143 when the suite was stopped (the kill switch, SIGINT,
SIGTERM), after writing the scorecard of what ran. Whenever the exit is not 0 or 1 the scorecard
says NO-GO with that reason (kind `environment` or `stopped`), and scorecard.json has `exit_code`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

EXIT_GO, EXIT_NO_GO, EXIT_ENVIRONMENT = 0, 1, 3


def add_command(sub: Any) -> None:
    """`deadair readiness`."""
    r = sub.add_parser(
        "readiness",
        help="run a suite of experiments (and capacity sweeps) and decide GO or NO-GO against a launch policy",
    )
    r.add_argument("suite", metavar="SUITE_OR_DIR", help="a directory of experiments, or one experiment file")
    r.add_argument("--policy", metavar="FILE", help="the launch policy (YAML); default: the default policy (README)")
    r.add_argument(
        "--target",
        metavar="listeners=N,joins=R/s",
        help="the launch's load, over the policy's targets (also headroom=P%%)",
    )
    r.add_argument(
        "--var",
        action="append",
        metavar="NAME=VALUE",
        help="set a variable in every experiment that declares it (an error if none does); repeatable",
    )
    r.add_argument(
        "--from-results",
        action="store_true",
        help="run nothing: take each scenario's newest recorded result (results store, capacity.json)",
    )
    r.add_argument(
        "--out", metavar="DIR", help="where scorecard.json and scorecard.html go (default .deadair/readiness/<time>)"
    )
    r.add_argument("--results", metavar="PATH|URL", help="the results store (as deadair run --results)")
    r.add_argument("--journal-dir", default=".deadair/runs", help="where journals go (default .deadair/runs)")
    r.add_argument("--project", help="compose project name (default deadair-<stack>)")
    r.add_argument("--keep-stack", action="store_true", help="leave a stack this suite started running")
    r.set_defaults(fn=cmd_readiness)


def cmd_readiness(args: argparse.Namespace) -> int:
    from chaos.language.variables import parse_var_options
    from chaos.readiness import render
    from chaos.readiness.decision import decide
    from chaos.readiness.policy import load_policy, parse_target_option
    from chaos.readiness.suite import load_suite
    from chaos.results.store import store_path

    overrides = parse_var_options(args.var)
    policy = load_policy(args.policy)
    targets = parse_target_option(args.target, policy.targets) if args.target else policy.targets
    scenarios = load_suite(args.suite, overrides, policy)  # every problem before anything runs (exit 2)
    journal_dir = Path(args.journal_dir)
    store_file = store_path(args.results, journal_dir)
    if args.from_results:
        from chaos.readiness.collect import from_results

        collected = from_results(scenarios, store_file, journal_dir)
    else:
        collected = _run(scenarios, args, journal_dir, store_file)
    card = decide(policy, scenarios, collected.evidence, targets=targets, suite=str(args.suite))
    card["ran"] = not args.from_results
    card["recorded"] = collected.recorded
    code = collected.code if collected.code is not None else (EXIT_GO if card["decision"] == "GO" else EXIT_NO_GO)
    if code not in (EXIT_GO, EXIT_NO_GO):  # never GO beside a non-zero exit: what stopped it is a reason
        why = (
            "the environment failed (a run ended on it, or the results store could not be written)"
            if code == EXIT_ENVIRONMENT
            else f"the suite was stopped (exit {code}) before every scenario ran"
        )
        card["decision"] = "NO-GO"
        card["reasons"].append(
            {"kind": "environment" if code == EXIT_ENVIRONMENT else "stopped", "scenario": "", "text": why}
        )
    card["exit_code"] = code
    out_dir = Path(args.out) if args.out else journal_dir.parent / "readiness" / time.strftime("%Y%m%d-%H%M%S")
    print(render.render_text(card))
    for problem in collected.problems:
        print(f"deadair: {problem}", file=sys.stderr)
    try:
        js, page = render.write(card, out_dir)
    except OSError as exc:
        print(f"deadair: could not write the scorecard to {out_dir}: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    print(f"\nscorecard: {js}\n           {page}")
    return code


def _run(scenarios: list, args: argparse.Namespace, journal_dir: Path, store_file: Path):
    """Every scenario on the same stack: a stack this suite starts is in a rollback ledger (taken
    down at the end unless --keep-stack, and by `deadair sweep` if the suite is killed)."""
    from chaos.readiness.collect import RunSettings, run_all
    from chaos.results.store import ResultsStore
    from chaos.runner.operator import holding_kill_signal

    ResultsStore(store_file).close()  # a store that cannot be opened: exit 2 before anything runs
    ledger = None if args.keep_stack else _ledger_for_stacks(scenarios, args.project)
    try:
        with holding_kill_signal():
            return run_all(scenarios, RunSettings(journal_dir, store_file, args.project))
    finally:
        if ledger is not None:
            report = ledger.rollback()  # takes down the stacks this suite started
            ledger.close()
            for entry, err in report.failed:
                print(
                    f"deadair: could not take down {entry['fault']}: {err}; ledger kept at {ledger.path}",
                    file=sys.stderr,
                )


def _ledger_for_stacks(scenarios: list, project: str | None) -> Any:
    """A ledger with a `stack.down` for each stack of the suite that is not running now."""
    from chaos.faults.ledger import Ledger
    from chaos.stack.compose import Stack
    from chaos.stack.definition import find_stack

    ledger = None
    seen: set[str] = set()
    for s in scenarios:
        name = s.experiment.stack if s.experiment is not None else "audio-room"
        stack = Stack(find_stack(name, near=s.path.resolve().parent), project)
        if stack.project in seen:
            continue
        seen.add(stack.project)
        if stack.is_running():
            continue
        if ledger is None:
            ledger = Ledger(meta={"owner": "deadair readiness"})
        ledger.intend(
            f"stack {stack.project}",
            {"action": "stack.down", "project": stack.project, "compose_file": str(stack.definition.compose_file)},
        )
    return ledger
