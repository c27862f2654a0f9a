"""Delivering a run's metrics: `deadair run --metrics-out FILE --push-gateway URL`, and
`deadair metrics RUN...` to do the same later from what runs left on disk.

A delivery that fails (a file that cannot be written, a gateway that is down or refuses) never
changes a verdict: the summary, the JUnit file and the report say what the system did. It is
reported on stderr, and it turns exit 0 or 4 into 3 (environment), as an unwritable journal,
JUnit file or results store does, so that a nightly suite whose dashboard went dark is not read
as a quiet pass; a failed or regressed run keeps its own code. `deadair metrics` exits 2 when a
run cannot be read and 3 when the delivery fails. With --repeat N, one file and one push hold
every repeat (told apart by the `run` label).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chaos.errors import DeadairError
from chaos.report.openmetrics import Family, MetricsError, RunRecord, experiment_id, families, load_run, render
from chaos.report.pushgateway import check_url, push


class WriteError(DeadairError):
    """The metrics file cannot be written (as for the journal: an environment problem)."""

    exit_code = 3


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The flags of `deadair run` (and `deadair metrics`) that deliver metrics."""
    parser.add_argument(
        "--metrics-out", metavar="FILE", help="write the run's verdicts and fault windows as OpenMetrics text"
    )
    parser.add_argument(
        "--push-gateway",
        metavar="URL",
        type=_gateway_url,
        help="push them to a Prometheus Pushgateway (job = the experiment id); a failed push is reported, "
        "leaves the verdict alone and turns exit 0 or 4 into 3",
    )


def add_command(sub: Any) -> None:
    """`deadair metrics RUN`: a finished run's metrics, to stdout, a file or a Pushgateway."""
    m = sub.add_parser(
        "metrics",
        help="a finished run's metrics in the OpenMetrics text format (stdout, --metrics-out, --push-gateway)",
    )
    m.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="a run folder, its summary.json or journal.jsonl, or a run id under --journal-dir",
    )
    m.add_argument("--journal-dir", default=".deadair/runs", help="where run ids are looked up (default .deadair/runs)")
    add_run_options(m)
    m.set_defaults(fn=cmd_metrics)


def cmd_metrics(args: argparse.Namespace) -> int:
    recs = [load_run(_find_run(text, Path(args.journal_dir))) for text in args.runs]
    if not args.metrics_out and not args.push_gateway:
        print(render(merged(recs)), end="")
        return 0
    deliver(recs, args.metrics_out, args.push_gateway)  # errors raise: exit 2 (bad run) or 3 (gateway)
    return 0


def after_run(args: argparse.Namespace, summaries: Sequence[Path | None], code: int) -> int:
    """After `deadair run` (all its repeats): write and push what was asked. Returns the exit
    code: a failed delivery is said, and turns 0 or 4 into 3."""
    if not (getattr(args, "metrics_out", None) or getattr(args, "push_gateway", None)):
        return code
    written = [p for p in summaries if p is not None]
    try:
        if not written:
            raise MetricsError("the run left no summary (nothing was started)")
        deliver([load_run(p) for p in written], args.metrics_out, args.push_gateway, series_code=code)
    except DeadairError as exc:
        worse = 3 if code in (0, 4) else code
        _say(
            f"deadair: metrics not delivered: {exc}; the verdict stands" + (f", exit {worse}" if worse != code else "")
        )
        return worse
    return code


def merged(recs: Sequence[RunRecord]) -> list[Family]:
    """The families of several runs (repeats, or runs pushed together), one family per name."""
    out: dict[str, Family] = {}
    for rec in recs:
        for fam in families(rec):
            if fam.name in out:
                out[fam.name].samples += fam.samples
            else:
                out[fam.name] = fam
    return list(out.values())


def series_family(recs: Sequence[RunRecord], code: int) -> Family:
    """`deadair run`'s own exit code for the whole series (one run, or --repeat N), labelled with
    its first run: a series that regressed (6) or was flaky (7) is not read as its runs' 0."""
    fam = Family(
        "deadair_series_exit_code",
        "gauge",
        "The exit code of deadair run for the whole series (0 passed, 1 failed, 3 environment, "
        "4 inconclusive, 6 regressed against a baseline, 7 flaky across repeats)",
    )
    for job in dict.fromkeys(experiment_id(r.summary) for r in recs):
        first = next(r for r in recs if experiment_id(r.summary) == job)
        fam.add({"experiment": job, "run": first.summary["run_id"]}, code)
    return fam


def deliver(recs: Sequence[RunRecord], out: str | None, gateway: str | None, series_code: int | None = None) -> None:
    """Write the file, then push. The file is written even when the push then fails. Runs of
    several experiments are pushed to each experiment's own group. `series_code`: the exit code
    of `deadair run` for these runs, as `deadair_series_exit_code`."""
    series = [series_family(recs, series_code)] if series_code is not None else []
    fams = merged(recs) + series
    if out:
        path = Path(out)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(fams))
        except OSError as exc:
            raise WriteError(f"cannot write {out}: {exc.strerror or exc}") from None
        _say(f"metrics: {path}")
    if gateway:
        for job in dict.fromkeys(experiment_id(r.summary) for r in recs):
            group = merged([r for r in recs if experiment_id(r.summary) == job]) + [
                Family(f.name, f.type, f.help, f.unit, [x for x in f.samples if x[0]["experiment"] == job])
                for f in series
            ]
            _say(f"metrics pushed: {push(gateway, job, render(group, openmetrics=False))}")


def _find_run(text: str, journal_dir: Path) -> Path:
    path = Path(text)
    if path.exists():
        return path
    if (journal_dir / text).is_dir():
        return journal_dir / text
    raise MetricsError(f"{text}: no such run (neither a path nor a run id under {journal_dir})")


def _gateway_url(text: str) -> str:
    try:
        return check_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
