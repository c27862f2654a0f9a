"""The `deadair` command line: run, validate, setup, stack, sweep.

Exit codes: 0 passed, 1 a hypothesis failed (or not steady), 2 invalid experiment,
3 environment error (no engine, no Toxiproxy, failed rollback, internal error),
4 inconclusive (nothing failed, a verdict was unknown), 5 stopped (the kill switch: the `k`
key or SIGUSR1), 6 regressed against a baseline beyond a --fail-on tolerance, 7 flaky (--repeat N:
the repeats disagreed), 130 interrupted (SIGINT), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from chaos import __version__
from chaos.errors import DeadairError, ExperimentError
from chaos.onboarding.import_cli import cmd_import
from chaos.onboarding.init_cli import cmd_init
from chaos.pipes import ClosedPipeTolerant


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _overrides(args: argparse.Namespace) -> dict[str, str]:
    from chaos.language.variables import parse_var_options

    return parse_var_options(getattr(args, "var", None))


def cmd_run(args: argparse.Namespace) -> int:
    from chaos.runner.operator import holding_kill_signal

    with holding_kill_signal():  # SIGUSR1, the kill switch, blocked before any thread starts: its sender stays known
        return _cmd_run(args)


def _cmd_run(args: argparse.Namespace) -> int:
    from chaos.language.loader import load_experiment
    from chaos.report.junit import write_series_junit
    from chaos.report.text import render
    from chaos.results.cli import Series, check_dry_all
    from chaos.runner.run import RunOptions, run

    exp = load_experiment(args.file, overrides=_overrides(args))
    from chaos.report.live_options import plan_only, run_options

    live = run_options(args)  # --dry, --step, --progress, the operator's keys: checked before anything runs
    if live["dry"] == "all":  # the plan, and nothing else: no engine, no store, no file
        notes = check_dry_all(args, exp)  # --fail-on, --repeat, --results, --baseline: exit 2 as a run would
        print("\n".join([plan_only(exp), *notes]))
        return 0
    series = Series(args, exp)  # --results, --baseline, --fail-on, --repeat: checked before anything runs
    while True:  # once, or --repeat N times
        result = run(
            exp,
            RunOptions(
                keep_stack=args.keep_stack,
                journal_dir=Path(args.journal_dir),
                project=args.project,
                progress=_say,
                **live,
            ),
        )
        from chaos.report.html import after_run as write_html_report

        write_html_report(result)  # report.html beside the journal; never changes the exit code
        text = render(result, with_error=False) if (result.journal or result.verdicts) else ""
        if args.json and result.summary and args.repeat == 1:
            print(result.summary.read_text(), end="")
        elif text:
            print(text, file=sys.stderr if args.json else sys.stdout)
        if result.error:
            print(f"deadair: {result.error}", file=sys.stderr)
        if not series.add(result, text):  # stored in the results store; False: the series is over
            break
    code = series.finish()  # repeats (spread, flaky) and the baseline (--fail-on) decide the exit code
    if series.repeat:  # each run's report again, now that its series says which verdicts were flaky
        for each in series.results:
            write_html_report(each)
    from chaos.report.metrics import after_run as deliver_metrics

    code = deliver_metrics(args, [each.summary for each in series.results], code)  # --metrics-out, --push-gateway
    return write_series_junit(args.junit_xml, series.junit_cases(), series.repeat, series.regression_json(), code)


def cmd_validate(args: argparse.Namespace) -> int:
    from chaos.language.loader import load_experiment

    code = 0
    for f in args.files:
        try:
            exp = load_experiment(f, overrides=_overrides(args))
            print(f"{f}: ok ({exp.title}; {len(exp.method)} step(s), {exp.listeners.count} listeners)")
        except ExperimentError as exc:
            print(exc, file=sys.stderr)
            code = exc.exit_code
    return code


def cmd_plan(args: argparse.Namespace) -> int:
    from chaos.language.loader import load_experiment
    from chaos.report.text import render_plan

    print(render_plan(load_experiment(args.file, overrides=_overrides(args))))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from chaos.checkers.measures import measures
    from chaos.language.loader import load_experiment
    from chaos.language.plan import method_length, plan
    from chaos.language.registry import FAULTS

    if args.what == "faults":
        for name, cls in FAULTS.items():
            params = ", ".join(f"{k}{'' if p.required else '?'}" for k, p in cls.params_spec.items())
            print(f"{name:<18} {cls.target_kind:<5} {cls.summary}" + (f"  [{params}]" if params else ""))
        return 0
    if args.what == "measures":
        if args.markdown:
            from chaos.report.text import measure_table

            print(measure_table())
            return 0
        for name, m in measures().items():
            print(f"{name:<28} {m.unit:<9} default {m.default_stat:<4} {m.doc}")
            print(f"{'':<28} no data (fails): {m.no_data or '-'}")
        return 0
    code = 0
    files = []
    for folder in args.paths or ["experiments"]:
        p = Path(folder)
        files += sorted(p.glob("*.yaml")) + sorted(p.glob("*.yml")) + sorted(p.glob("*.json")) if p.is_dir() else [p]
    for f in files:
        try:
            exp = load_experiment(f)
            length = method_length(plan(exp))
            tags = f"  [{', '.join(exp.tags)}]" if exp.tags else ""
            print(
                f"{str(f):<48} {exp.title}{tags}  ({len(exp.method)} steps, {length:g}s method, "
                f"{exp.listeners.count} listeners)"
            )
        except ExperimentError as exc:
            print(f"{str(f):<48} INVALID: {len(exc.problems)} problem(s); `deadair validate {f}`")
            code = 2
    return code


def cmd_setup(args: argparse.Namespace) -> int:
    from chaos.stack.provision import setup

    _say("deadair setup")
    setup(_say)
    return 0


def _stack(args: argparse.Namespace):
    from chaos.stack.compose import Stack
    from chaos.stack.definition import find_stack

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
        print(
            json.dumps(
                {
                    "project": status.project,
                    "healthy": status.healthy,
                    "nodes": [vars(n) for n in status.nodes],
                    "links": [vars(link) for link in status.links],
                },
                indent=2,
            )
        )
        return 0
    print(f"stack {status.project}: {'healthy' if status.healthy else 'NOT healthy'}")
    for n in status.nodes:
        print(f"  node {n.name:<14} {n.state:<10} {n.health}" + ("  OFF ITS NETWORKS" if not n.networks else ""))
    for link in status.links:
        state = "missing" if not link.present else ("up" if link.enabled else "DOWN")
        toxics = f"  toxics: {', '.join(link.toxics)}" if link.toxics else ""
        host = f"  (host: {link.host_url})" if link.host_url else ""
        print(f"  link {link.name:<14} {state:<10} {link.listen} -> {link.upstream}{host}{toxics}")
    return 0 if status.healthy else 1


def cmd_sweep(args: argparse.Namespace) -> int:
    """Settle every ledger left by a dead run: revert what is still applied, resolve what went away
    with its stack, and remove the ledger; exit 3 (ledger kept) only for what could not be settled."""
    from chaos.faults.ledger import describe_sweep, sweep

    results = sweep()
    if not results:
        print("nothing to sweep: no ledger left by a dead run")
        return 0
    code = 0
    for led, report in results:
        print(describe_sweep(led.run_id, report) + ("" if report.failed else "; ledger removed"))
        for entry in report.reverted:
            print(f"  reverted: {entry['fault']}" + (f" ({entry['detail']})" if entry.get("detail") else ""))
        for entry, why in report.gone:
            print(f"  resolved: {entry['fault']}: {why}")
        for entry, err in report.failed:
            print(f"  FAILED: {entry['fault']}: {err}")
            code = 3
        if report.failed:
            print(f"  ledger kept at {led.path}")
    return code


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deadair", description="Chaos experiments for live audio rooms.")
    p.add_argument("--version", action="version", version=f"deadair {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    var_help = "set a variable, or any key by its dotted path (listeners.count=500); repeatable"
    r = sub.add_parser("run", help="run an experiment and judge its hypotheses")
    r.add_argument("file")
    r.add_argument("--var", action="append", metavar="NAME=VALUE", help=var_help)
    r.add_argument("--keep-stack", action="store_true", help="leave a stack this run started running")
    r.add_argument("--journal-dir", default=".deadair/runs", help="where journals go (default .deadair/runs)")
    r.add_argument("--project", help="compose project name (default deadair-<stack>)")
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    from chaos.report import metrics as _metrics

    _metrics.add_run_options(r)  # --metrics-out, --push-gateway
    from chaos.report import live_options as _live

    _live.add_run_options(r)  # --dry, --step, --progress
    from chaos.results import cli as _results

    _results.add_run_options(r)  # --results, --baseline, --fail-on, --repeat, --junit-xml
    r.set_defaults(fn=cmd_run)

    v = sub.add_parser("validate", help="check experiment files; touches nothing")
    v.add_argument("files", nargs="+")
    v.add_argument("--var", action="append", metavar="NAME=VALUE", help=var_help)
    v.set_defaults(fn=cmd_validate)

    pl = sub.add_parser("plan", help="print an experiment's timeline; touches nothing")
    pl.add_argument("file")
    pl.add_argument("--var", action="append", metavar="NAME=VALUE", help=var_help)
    pl.set_defaults(fn=cmd_plan)

    ls = sub.add_parser("list", help="list experiments (default folder experiments/), or the faults or measures")
    ls.add_argument("paths", nargs="*")
    ls.add_argument("--faults", dest="what", action="store_const", const="faults")
    ls.add_argument("--measures", dest="what", action="store_const", const="measures")
    ls.add_argument("--markdown", action="store_true", help="with --measures: the README's table")
    ls.set_defaults(fn=cmd_list, what="experiments")

    im = sub.add_parser("import", help="translate a Chaos Toolkit experiment (JSON or YAML) to deadair YAML")
    im.add_argument("file")
    im.add_argument("-o", "--output")
    im.add_argument(
        "--stack", help="the stack it runs on: a name under compose/ or a compose file or folder (default audio-room)"
    )
    im.add_argument(
        "--var",
        action="append",
        metavar="KEY[:TYPE]=VALUE",
        help="a configuration value, as `chaos run --var` sets it (TYPE: int, float, bytes); repeatable",
    )
    im.set_defaults(fn=cmd_import)

    ini = sub.add_parser(
        "init",
        help="a starter deadair setup for your own compose file: Toxiproxy, links, an experiment, pytest.ini",
    )
    ini.add_argument("dir", nargs="?", default=".", help="where to write (default .): compose/NAME/, experiments/")
    ini.add_argument("--compose", help="your compose file (default: the one in DIR); it is never modified")
    ini.add_argument(
        "--link",
        action="append",
        metavar="SERVICE:PORT",
        help="a dependency to put behind a Toxiproxy link (repeatable); its clients' addresses are rewritten",
    )
    ini.add_argument(
        "--entry",
        metavar="SERVICE:PORT[/PATH]",
        help="where probes reach the stack from the host, through a link (default: the one published port)",
    )
    ini.add_argument("--name", help="the stack's name (default: the compose file's folder)")
    ini.add_argument("--force", action="store_true", help="overwrite files init wrote before")
    ini.set_defaults(fn=cmd_init)

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

    _metrics.add_command(sub)  # deadair metrics RUN
    _results.add_commands(sub)  # deadair history, compare, baseline
    from chaos.capacity import cli as _capacity

    _capacity.add_command(sub)  # deadair capacity FILE
    from chaos.readiness import cli as _readiness

    _readiness.add_command(sub)  # deadair readiness SUITE_OR_DIR
    from chaos.report import html as _html

    _html.add_command(sub)  # deadair report RUN
    return p


def main(argv: list[str] | None = None) -> int:
    """Both output streams survive their reader leaving: `deadair run x.yaml 2>&1 | head -1` still
    rolls back, stores its results and exits with its verdict. stdout or stderr may be closed
    before deadair starts (`>&-`, as under cron): Python then makes it None."""
    given_out, given_err = sys.stdout, sys.stderr
    if given_out is not None and not isinstance(given_out, ClosedPipeTolerant):
        sys.stdout = ClosedPipeTolerant(given_out)
    if given_err is not None and not isinstance(given_err, ClosedPipeTolerant):
        sys.stderr = ClosedPipeTolerant(given_err)
    code = 1
    try:
        code = _main(argv)
    except BrokenPipeError:  # written past the wrappers (to a descriptor): the command's code is lost
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):  # what is still buffered meets a closed pipe here, not at exit
            if stream is not None:
                try:
                    stream.flush()
                except (BrokenPipeError, ValueError):
                    pass
        sys.stdout, sys.stderr = given_out, given_err
    return code


def _main(argv: list[str] | None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.fn(args))
    except DeadairError as exc:
        print(f"deadair: {exc}" if not isinstance(exc, ExperimentError) else str(exc), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("deadair: interrupted", file=sys.stderr)
        return 130
    except BaseException as exc:  # the runner's Interrupted: a signal outside any run's own handling
        from chaos.runner.run import Interrupted

        if not isinstance(exc, Interrupted):
            raise
        print(f"deadair: interrupted ({exc})", file=sys.stderr)
        return 143 if exc.signum == signal.SIGTERM else 130


if __name__ == "__main__":
    sys.exit(main())
