"""The command line of the results: `deadair history`, `deadair compare`, `deadair baseline`, and
what `deadair run` does with --results, --baseline, --fail-on and --repeat.

`deadair run` hands its runs to a Series: checked before anything runs (bad rules, a store that
cannot be opened, a baseline tag that does not exist: exit 2, nothing started; `--dry all` checks
the same with `check_dry_all`, opening no store for writing), stored as each run ends, and judged
when the last has (repeats, baseline), which gives the exit code. The judgement is written back
to the store (its `series` table: regressed, flaky, the exit code), so that a run that regressed
or flaked is never the next night's `last-pass`.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaos.language.model import Experiment
from chaos.results import EXIT_REGRESSED, repeats
from chaos.results.compare import Judgement, judge, render_compare
from chaos.results.history import find_experiment, render_history
from chaos.results.rules import FailOn, check_rules, parse_fail_on
from chaos.results.store import ENV, ResultsError, ResultsStore, StoredRun, check_summary, store_path
from chaos.runner.model import RunResult
from chaos.runner.outputs import experiment_id

_RESULTS_HELP = (
    f"the results store: a path or sqlite:///PATH (default ${ENV}, else results.sqlite beside the journals' folder)"
)


def add_run_options(r: argparse.ArgumentParser) -> None:
    """`deadair run`'s options for results, baselines, repeats and JUnit."""
    r.add_argument("--results", metavar="PATH|URL", help=_RESULTS_HELP)
    r.add_argument(
        "--baseline",
        metavar="last-pass|TAG|RUN",
        help="compare with this run of the experiment: its last passed run, a tagged one, or a run id",
    )
    r.add_argument(
        "--fail-on",
        action="append",
        default=[],
        metavar="MEASURE:TOLERANCE",
        help="fail (exit 6) if a measure regressed beyond the tolerance against the baseline (default last-pass), "
        "e.g. hold_music.onset.p95:+20%% or dead_air.max@during:+200ms; repeatable",
    )
    r.add_argument(
        "--require-baseline",
        action="store_true",
        help="with --fail-on: exit 3 when there is no baseline to judge against (a wiped store), "
        "instead of a warning and the run's own exit code",
    )
    r.add_argument("--repeat", type=int, default=1, metavar="N", help="run N times: spread and flaky verdicts (exit 7)")
    r.add_argument("--junit-xml", metavar="FILE", help="write JUnit XML: one test case per run, verdicts as properties")


def add_commands(sub: Any) -> None:
    """`deadair history`, `deadair compare`, `deadair baseline`."""
    h = sub.add_parser("history", help="an experiment's runs over time, with stack changes marked")
    h.add_argument("experiment", help="an experiment file, an experiment id, or part of one")
    h.add_argument("--limit", type=int, default=30, help="the last N runs (default 30; 0: every run)")
    _store_options(h)
    h.set_defaults(fn=cmd_history)

    c = sub.add_parser("compare", help="two runs measure by measure (A is the baseline)")
    c.add_argument("run_a", metavar="RUN_A", help="a run id (or a unique prefix), a tag, or a run's folder")
    c.add_argument("run_b", metavar="RUN_B")
    c.add_argument("--fail-on", action="append", default=[], metavar="MEASURE:TOLERANCE", help="exit 6 if B regressed")
    _store_options(c)
    c.set_defaults(fn=cmd_compare)

    b = sub.add_parser("baseline", help="pin a run as a named baseline of its experiment, or list them")
    bsub = b.add_subparsers(dest="baseline_action", required=True)
    t = bsub.add_parser("tag", help="pin RUN as the baseline TAG (deadair run --baseline TAG)")
    t.add_argument("run", metavar="RUN")
    t.add_argument("tag", metavar="TAG")
    _store_options(t)
    t.set_defaults(fn=cmd_baseline)
    ls = bsub.add_parser("list", help="every pinned baseline")
    ls.add_argument("experiment", nargs="?")
    _store_options(ls)
    ls.set_defaults(fn=cmd_baseline)


def _store_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", metavar="PATH|URL", help=_RESULTS_HELP)
    p.add_argument("--journal-dir", default=".deadair/runs", help="the journals' folder (locates the default store)")


def _open(args: argparse.Namespace, create: bool = False) -> ResultsStore:
    return ResultsStore(store_path(args.results, Path(args.journal_dir)), create=create)


def cmd_history(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise ResultsError(f"--limit {args.limit}: expected a number of runs, 0 (every run) or more")
    with _open(args) as store:
        exp = find_experiment(store, args.experiment)
        print(render_history(store.runs(exp, limit=args.limit), exp))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    rules = [parse_fail_on(t) for t in args.fail_on]
    a, ref_a = _summary(args, args.run_a)
    b, ref_b = _summary(args, args.run_b)
    print(render_compare(a, b, ref_a, ref_b))
    if not rules:
        return 0
    verdict = judge(rules, b, a, ref_a)
    print("\n".join(verdict.lines()))
    return EXIT_REGRESSED if verdict.regressions else 0


def _summary(args: argparse.Namespace, ref: str) -> tuple[dict[str, Any], str]:
    """A run's summary from its folder (or summary.json), else from the store (id, prefix, tag)."""
    path = Path(ref)
    for candidate in (path / "summary.json", path):
        if candidate.is_file():
            try:
                data = json.loads(candidate.read_text())
            except (OSError, ValueError) as exc:
                raise ResultsError(f"{candidate}: not a run's summary ({exc})") from None
            return check_summary(data, str(candidate)), str(candidate)
    with _open(args) as store:
        run = store.get(ref)
    return run.summary, ref if ref == run.run_id else f"{ref} = {run.run_id}"


def cmd_baseline(args: argparse.Namespace) -> int:
    with _open(args) as store:
        if args.baseline_action == "tag":
            run = store.tag(args.run, args.tag)
            print(f"{run.experiment_id}: baseline {args.tag} is run {run.run_id} ({run.status}, {run.when} UTC)")
            return 0
        exp = find_experiment(store, args.experiment) if args.experiment else None
        tags = store.tags(exp)
        if not tags:
            print("no baseline pinned" + (f" for {exp}" if exp else ""))
        for exp_id, tag, run_id in tags:
            print(f"{tag:<20} {run_id}  {exp_id}")
    return 0


@dataclass
class _Done:
    result: RunResult
    summary: dict[str, Any] | None
    run_dir: Path | None
    text: str


def _rules(args: argparse.Namespace, exp: Experiment) -> list[FailOn]:
    """--repeat and --fail-on checked against the experiment (exit 2, before anything runs)."""
    if args.repeat < 1:
        raise ResultsError(f"--repeat {args.repeat}: expected a number of runs, 1 or more")
    rules = [parse_fail_on(t) for t in args.fail_on]
    check_rules(rules, exp)
    return rules


def _pinned(store: ResultsStore, ref: str, exp_id: str) -> StoredRun:
    """`--baseline TAG|RUN`: that run, of this experiment (exit 2 if unknown or of another)."""
    run = store.get(ref, exp_id)
    if run.experiment_id != exp_id:
        raise ResultsError(f"--baseline {ref}: run {run.run_id} is of {run.experiment_id}, not of {exp_id}")
    return run


def check_dry_all(args: argparse.Namespace, exp: Experiment) -> list[str]:
    """`--dry all`: the checks a real run makes before it starts (exit 2 for a bad --fail-on,
    --repeat, --results or --baseline), with no store created or written (a pinned baseline is
    looked up read-only). Returns what a real run would have written and this one does not."""
    rules = _rules(args, exp)
    path = store_path(args.results, Path(args.journal_dir))
    ref = args.baseline or ("last-pass" if rules else None)
    if ref and ref != "last-pass":
        with ResultsStore(path, readonly=True) as store:
            _pinned(store, ref, experiment_id(exp.path, exp.title))
    files = ["no journal or report", f"nothing in the results store {path}"]
    for flag, attr in (("--junit-xml", "junit_xml"), ("--metrics-out", "metrics_out")):
        if getattr(args, attr, None):
            files.append(f"no {flag} {getattr(args, attr)}")
    if getattr(args, "push_gateway", None):
        files.append(f"nothing pushed to --push-gateway {args.push_gateway}")
    return [f"  dry run (--dry all): no file is written: {'; '.join(files)}"]


class Series:
    """The runs of one `deadair run` (one, or --repeat N): checked before, stored as they end,
    judged after the last, the judgement stored back. Nothing here changes a run; it only reads
    what the run wrote."""

    def __init__(self, args: argparse.Namespace, exp: Experiment):
        self.rules: list[FailOn] = _rules(args, exp)
        self.args, self.exp = args, exp
        self.repeat_count = args.repeat
        self.journal_dir = Path(args.journal_dir)
        self.experiment_id = experiment_id(exp.path, exp.title)
        self.store = ResultsStore(store_path(args.results, self.journal_dir))  # bad path or URL: exit 2 now
        self.baseline_ref = args.baseline or ("last-pass" if self.rules else None)
        self.baseline: StoredRun | None = None
        if self.baseline_ref == "last-pass":
            self.baseline = self.store.last_pass(self.experiment_id)
        elif self.baseline_ref:
            self.baseline = _pinned(self.store, self.baseline_ref, self.experiment_id)
        self.done: list[_Done] = []
        self.store_error: str | None = None
        self.repeat: dict[str, Any] | None = None
        self.repeat_path: Path | None = None
        self.judgement: Judgement | None = None

    def add(self, result: RunResult, text: str) -> bool:
        """Record a run as it ends; False when the series stops (the last repeat, or a run that
        ended other than passed, failed or inconclusive)."""
        summary = None
        if result.summary is not None and result.summary.is_file():
            try:
                summary = json.loads(result.summary.read_text())
            except (OSError, ValueError) as exc:
                self.store_error = f"could not read {result.summary}: {exc}"
        self.done.append(_Done(result, summary, result.summary.parent if result.summary else None, text))
        if summary is not None:
            group = str(self.done[0].result.run_id) if self.repeat_count > 1 else None
            try:
                self.store.add(summary, repeat_group=group, journal=str(result.journal) if result.journal else None)
                if self.repeat_count > 1 or self.baseline_ref:  # judged later: no baseline until then
                    self.store.set_series([str(summary.get("run_id"))], "pending", None)
            except ResultsError as exc:
                self.store_error = str(exc)
        return len(self.done) < self.repeat_count and result.exit_code in repeats.SERIES_CODES

    def finish(self) -> int:
        """The series' exit code, after its repeat summary and its baseline judgement are printed
        and stored."""
        try:
            code = self._finish()
            self._store_outcome(code)
        finally:
            self.store.close()
        if self.store_error:
            print(f"deadair: the results store was not updated: {self.store_error}", file=sys.stderr)
            if code in (0, 4):
                code = 3  # the history a nightly suite relies on was not kept: not a pass
        return code

    def _store_outcome(self, code: int) -> None:
        """The series' verdict on its runs, in the store: regressed, flaky, or its status; with
        the series' exit code."""
        ids = [str(d.summary.get("run_id")) for d in self.done if d.summary is not None]
        if not ids or self.store_error:
            return
        if self.judgement is not None and self.judgement.regressions:
            outcome = "regressed"
        elif self.repeat is not None:
            outcome = str(self.repeat["status"])
        else:
            outcome = str(self.done[-1].result.status)
        try:
            self.store.set_series(ids, outcome, code)
        except ResultsError as exc:
            self.store_error = str(exc)

    def _finish(self) -> int:
        code = self.done[-1].result.exit_code
        summaries = [d.summary for d in self.done if d.summary is not None]
        if self.repeat_count > 1 and summaries:
            self.repeat = repeats.summarize(summaries, [d.run_dir for d in self.done if d.summary], self.repeat_count)
            self.repeat_path = repeats.write(self.repeat, self.journal_dir)
            code = self.repeat["exit_code"]
            self._say(repeats.render(self.repeat, self.repeat_path))
            if self.args.json:
                print(json.dumps(self.repeat, indent=2))
        if self.baseline_ref and summaries and code in (0, 1, 4, 7):
            code = self._judge(summaries, code)
        return code

    def _say(self, text: str) -> None:
        """The terminal report; on stderr when stdout carries JSON (--json)."""
        print(text, file=sys.stderr if getattr(self.args, "json", False) else sys.stdout)

    def _judge(self, summaries: list[dict[str, Any]], code: int) -> int:
        if self.baseline is None:
            rules = " ".join(f"--fail-on {r.text}" for r in self.rules)
            print(
                f"deadair: warning: no baseline: {self.experiment_id} has no passed run (not dry, regressed or "
                f"flaky) in {self.store.path} before this one (a first night, or a wiped store); nothing compared"
                + (f", {rules} not judged" if rules else ""),
                file=sys.stderr,
            )
            if self.rules and getattr(self.args, "require_baseline", False):
                print("deadair: --require-baseline: no baseline to judge against: exit 3", file=sys.stderr)
                return 3 if code in (0, 4) else code
            return code
        current = repeats.median_summary(summaries) if len(summaries) > 1 else summaries[-1]
        ref = self.baseline_ref or ""
        if self.rules:
            self.judgement = judge(self.rules, current, self.baseline.summary, ref)
            self._say("\n".join(self.judgement.lines()))
            if self.judgement.regressions and code in (0, 4):
                return EXIT_REGRESSED
        else:
            self._say(
                render_compare(self.baseline.summary, current, ref, "this run" if len(summaries) == 1 else "median")
            )
        return code

    @property
    def results(self) -> list[RunResult]:
        """The runs of the series, in order."""
        return [d.result for d in self.done]

    def junit_cases(self) -> list[tuple[dict[str, Any], Path | None, str]]:
        """(summary, run folder, text) per run; a run that wrote no summary is described from its result."""
        out = []
        for d in self.done:
            s = d.summary or {
                "title": d.result.experiment.title,
                "run_id": d.result.run_id,
                "experiment_id": self.experiment_id,
                "status": d.result.status,
                "exit_code": d.result.exit_code,
                "error": d.result.error,
            }
            out.append((s, d.run_dir, d.text))
        return out

    def regression_json(self) -> dict[str, Any] | None:
        return self.judgement.to_json() if self.judgement else None
