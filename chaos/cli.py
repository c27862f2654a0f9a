"""The `deadair` command line: run, validate, setup, stack, sweep.

Exit codes: 0 passed, 1 a hypothesis failed (or not steady), 2 invalid experiment,
3 environment error (no engine, no Toxiproxy, failed rollback), 130 interrupted
(SIGINT), 143 terminated (SIGTERM).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import __version__
from .errors import DeadairError, ExperimentError


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from .experiment import load_experiment
    from .report import render
    from .runner import RunOptions, run

    exp = load_experiment(args.file)
    result = run(exp, RunOptions(keep_stack=args.keep_stack, journal_dir=Path(args.journal_dir),
                                 project=args.project, progress=_say))
    if args.json and result.summary:
        print(result.summary.read_text(), end="")
    elif result.journal or result.verdicts:
        print(render(result))
    if result.error:
        print(f"deadair: {result.error}", file=sys.stderr)
    return result.exit_code


def cmd_validate(args: argparse.Namespace) -> int:
    from .experiment import load_experiment

    code = 0
    for f in args.files:
        try:
            exp = load_experiment(f)
            print(f"{f}: ok ({exp.title}; {len(exp.method)} step(s), {exp.listeners.count} listeners)")
        except ExperimentError as exc:
            print(exc, file=sys.stderr)
            code = exc.exit_code
    return code


def cmd_setup(args: argparse.Namespace) -> int:
    from .provision import setup

    _say("deadair setup")
    setup(_say)
    return 0


def _stack(args: argparse.Namespace):
    from .stack import Stack, find_stack

    return Stack(find_stack(args.stack), args.project)


def cmd_stack(args: argparse.Namespace) -> int:
    stack = _stack(args)
    if args.action == "up":
        secs = stack.up()
        _say(f"stack {stack.project} up and healthy in {secs:.1f}s")
        return 0
    if args.action == "down":
        stack.down()
        _say(f"stack {stack.project} down")
        return 0
    if args.action == "logs":
        print(stack.logs(args.service, tail=args.tail), end="")
        return 0
    status = stack.status()
    if args.json:
        print(json.dumps({"project": status.project, "healthy": status.healthy,
                          "nodes": [vars(n) for n in status.nodes], "links": [vars(link) for link in status.links]},
                         indent=2))
        return 0
    print(f"stack {status.project}: {'healthy' if status.healthy else 'NOT healthy'}")
    for n in status.nodes:
        print(f"  node {n.name:<14} {n.state:<10} {n.health}")
    for link in status.links:
        state = "missing" if not link.present else ("up" if link.enabled else "DOWN")
        toxics = f"  toxics: {', '.join(link.toxics)}" if link.toxics else ""
        host = f"  (host: {link.host_url})" if link.host_url else ""
        print(f"  link {link.name:<14} {state:<10} {link.listen} -> {link.upstream}{host}{toxics}")
    return 0 if status.healthy else 1


def cmd_sweep(args: argparse.Namespace) -> int:
    from .ledger import sweep

    results = sweep()
    if not results:
        print("nothing to sweep: no ledger left by a dead run")
        return 0
    code = 0
    for led, report in results:
        print(f"run {led.run_id}: reverted {len(report.reverted)}" + (f", FAILED {len(report.failed)}" if report.failed else ""))
        for entry, err in report.failed:
            print(f"  {entry['fault']}: {err}")
            code = 3
    return code


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deadair", description="Chaos experiments for live audio rooms.")
    p.add_argument("--version", action="version", version=f"deadair {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="run an experiment and judge its hypotheses")
    r.add_argument("file")
    r.add_argument("--keep-stack", action="store_true", help="leave a stack this run started running")
    r.add_argument("--journal-dir", default=".deadair/runs", help="where journals go (default .deadair/runs)")
    r.add_argument("--project", help="compose project name (default deadair-<stack>)")
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    r.set_defaults(fn=cmd_run)

    v = sub.add_parser("validate", help="check experiment files; touches nothing")
    v.add_argument("files", nargs="+")
    v.set_defaults(fn=cmd_validate)

    s = sub.add_parser("setup", help="engine, compose, Toxiproxy and images (idempotent)")
    s.set_defaults(fn=cmd_setup)

    st = sub.add_parser("stack", help="start, stop or inspect the stack")
    st.add_argument("action", choices=["up", "down", "status", "logs"])
    st.add_argument("service", nargs="?", help="for logs: one service")
    st.add_argument("--stack", default="audio-room")
    st.add_argument("--project")
    st.add_argument("--json", action="store_true")
    st.add_argument("--tail", type=int, default=200)
    st.set_defaults(fn=cmd_stack)

    sw = sub.add_parser("sweep", help="revert faults left by runs that were killed")
    sw.set_defaults(fn=cmd_sweep)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except DeadairError as exc:
        print(f"deadair: {exc}" if not isinstance(exc, ExperimentError) else str(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("deadair: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
