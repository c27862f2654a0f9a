"""The `deadair` command line: run, validate, setup, stack, sweep.

Exit codes: 0 passed, 1 a hypothesis failed (or not steady), 2 invalid experiment,
3 environment error (no engine, no Toxiproxy, failed rollback, internal error),
4 inconclusive (nothing failed, a verdict was unknown), 5 stopped (the kill switch: the `k`
key or SIGUSR1), 6 regressed against a baseline beyond a --fail-on tolerance, 7 flaky (--repeat N:
the repeats disagreed), 130 interrupted (SIGINT), 143 terminated (SIGTERM).
"""

from __future__ import annotations

import argparse
import io
import json
import signal
import sys
from pathlib import Path
from typing import TextIO

from chaos import __version__
from chaos.errors import DeadairError, ExperimentError, Problem


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


def cmd_import(args: argparse.Namespace) -> int:
    """Translate a Chaos Toolkit experiment to deadair YAML (to read, edit and keep), checked
    against the stack it will run on (--stack) with its configuration set by --var as `chaos run`
    sets it."""
    import yaml as _yaml

    from chaos.language import chaostoolkit
    from chaos.language.loader import load_experiment
    from chaos.language.positions import Positions, load_yaml
    from chaos.language.variables import apply_overrides

    text = Path(args.file).read_text() if Path(args.file).is_file() else None
    if text is None:
        raise ExperimentError([Problem(args.file, 0, 0, "no such file")])
    data, pos, problems = load_yaml(text, args.file)
    if problems:
        raise ExperimentError(problems)
    if not chaostoolkit.looks_like(data):
        raise ExperimentError(
            [
                Problem(
                    args.file,
                    1,
                    1,
                    "not a Chaos Toolkit experiment (no steady-state-hypothesis, no activities with a provider)",
                )
            ]
        )
    overrides = _overrides(args)
    checked_stack, written_stack = _import_stack(args.stack, args.output)
    if checked_stack is not None:
        overrides["stack"] = checked_stack
    load_experiment(args.file, overrides=overrides)  # every problem, located in the original file, once
    rest, configuration = chaostoolkit.split_overrides(data, overrides)
    rest.pop("stack", None)
    out, _, _ = chaostoolkit.translate(data, pos, args.file, configuration)
    apply_overrides(out, rest, Positions())  # dotted keys (listeners.count=5): checked by the load above
    if written_stack is not None:
        out = {**{k: out[k] for k in ("title", "description", "tags") if k in out}, "stack": written_stack, **out}
    rendered = f"# translated from the Chaos Toolkit experiment {args.file} by `deadair import`\n" + _yaml.safe_dump(
        out, sort_keys=False, allow_unicode=True
    )
    if args.output:
        try:
            Path(args.output).write_text(rendered)
        except OSError as exc:
            raise ExperimentError([Problem(args.output, 0, 0, f"cannot write the output: {exc.strerror}")]) from None
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(rendered, end="")
    return 0


def _import_stack(given: str | None, output: str | None) -> tuple[str | None, str | None]:
    """(what the check loads, what the imported file says) for `deadair import --stack`: a name
    stays a name; a path (taken from the current directory) is checked as an absolute path and
    written relative to the output file's folder, where the loader looks for it."""
    import os

    if given is None:
        return None, None
    if not (os.sep in given or given.endswith((".yml", ".yaml")) or Path(given).is_absolute()):
        return given, given
    absolute = Path(given).resolve()
    folder = Path(output).resolve().parent if output else Path.cwd()
    if os.path.commonpath([absolute, folder]) == absolute.anchor:  # nothing in common but the root
        return str(absolute), str(absolute)
    relative = os.path.relpath(absolute, folder)
    return str(absolute), relative if os.sep in relative else f".{os.sep}{relative}"


def cmd_init(args: argparse.Namespace) -> int:
    """A starter deadair setup for an existing compose file (chaos.stack.scaffold): the compose
    file with Toxiproxy and links, a first experiment, a pytest configuration; then validated."""
    from chaos.language.loader import load_experiment
    from chaos.stack import scaffold

    out_dir = Path(args.dir)
    if args.compose:
        compose_file = Path(args.compose)
        if not compose_file.is_file():
            raise scaffold.ScaffoldError([Problem(args.compose, 0, 0, "no such compose file; expected --compose FILE")])
    else:
        compose_file = scaffold.find_compose_file(out_dir)
    texts = list(args.link or [])
    if not texts and sys.stdin.isatty() and sys.stdout.isatty():
        texts = _ask_links(compose_file)
    links = [scaffold.Target.parse(t, "--link") for t in texts]
    entry = scaffold.Target.parse(args.entry, "--entry", with_path=True) if args.entry else None
    sc = scaffold.plan(compose_file, out_dir, links, entry, args.name)
    ini, ini_text = scaffold.pytest_config(out_dir)
    files = dict(sc.files)
    if ini is not None:
        files[ini] = ini_text
    existing = [f for f in files if f.exists()]
    if existing and not args.force:
        raise scaffold.ScaffoldError(
            [Problem(str(f), 0, 0, "exists already; expected --force to overwrite it") for f in existing]
        )
    for f, text in files.items():
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
        print(f"wrote {f}")
    print(f"\nstack {sc.name}: {compose_file} + Toxiproxy; links (deadair.link.* labels):")
    for link in [sc.entry, *sc.links]:
        print(f"  {link.name:<16} {link.label}")
    if sc.rewritten:
        print("addresses rewritten to go through the links (in the generated file only):")
        print("\n".join(f"  {line}" for line in sc.rewritten))
    if sc.by_hand:
        print("NOT rewritten: change these by hand in the generated file, or the traffic bypasses the link:")
        print("\n".join(f"  {line}" for line in sc.by_hand))
    for note in [*sc.notes, *([] if ini is not None else [ini_text])]:
        print(f"note: {note}")
    exp = load_experiment(sc.experiment_out)  # what init wrote must pass `deadair validate`
    print(f"\n{sc.experiment_out}: ok ({exp.title})")
    print(f"next: deadair run {sc.experiment_out}   (or: pytest {sc.experiment_out})")
    return 0


def _ask_links(compose_file: Path) -> list[str]:
    """At a terminal with no --link: which dependencies go behind links."""
    from chaos.stack import scaffold

    doc, _ = scaffold.read_compose(compose_file)
    ports = scaffold.known_ports(doc)
    known = [f"{svc}:{p}" for svc, found in ports.items() for p in sorted(found)]
    print(f"services of {compose_file} and the ports they are known to listen on: {', '.join(known) or 'none'}")
    answer = input("dependencies to put behind links (SERVICE:PORT, separated by spaces): ")
    return answer.replace(",", " ").split()


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


class _ClosedPipeTolerant(io.TextIOBase):
    """stdout that survives its reader leaving (`| head -2`, `| grep -q`, a pager closed early).

    The first write or flush that meets a closed pipe points stdout at /dev/null and the command
    goes on: a run still reverts its faults and stores its results, and the exit code stays the
    command's own (a verdict, `stack status`'s health), so `set -o pipefail` still means something.
    Exiting 141 (as if killed by SIGPIPE) would hide that and skip the command's own cleanup."""

    def __init__(self, stream: TextIO):
        self._stream = stream
        self._closed_pipe = False

    def _lost(self) -> None:
        import os

        self._closed_pipe = True
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), self._stream.fileno())
        except (OSError, ValueError):  # no descriptor to redirect: drop what is written from now on
            pass

    def write(self, text: str) -> int:
        if not self._closed_pipe:
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self._lost()
        return len(text)

    def flush(self) -> None:
        if not self._closed_pipe:
            try:
                self._stream.flush()
            except BrokenPipeError:
                self._lost()

    def fileno(self) -> int:
        return self._stream.fileno()

    def isatty(self) -> bool:
        return self._stream.isatty()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._stream.encoding


def main(argv: list[str] | None = None) -> int:
    given = sys.stdout
    if given is not None and not isinstance(given, _ClosedPipeTolerant):
        sys.stdout = _ClosedPipeTolerant(given)
    try:
        return _main(argv)
    finally:
        sys.stdout.flush()  # what is still buffered meets a closed pipe here, not at interpreter exit
        sys.stdout = given


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
