"""The results store: every run's summary, appended after the run, keyed by experiment id and
the stack's fingerprint, so that a nightly suite can compare tonight with last night.

SQLite, one file (by default `results.sqlite` beside the journals' folder: `.deadair/results.sqlite`
for `.deadair/runs`); `--results PATH`, `--results sqlite:///PATH` or `DEADAIR_RESULTS` choose
another. Tables: `runs` (one row per run: its id, experiment id, start, status, exit code,
fingerprint id, repeat group, journal, the whole summary as JSON), `verdicts` (one row per
verdict: name, window, measure, statistic, value, unit, outcome: for SQL and dashboards), `tags`
(a baseline pinned by name, per experiment) and `series` (what `deadair run` decided about a run
once its series was judged: regressed, flaky, its exit code; `pending` until then). A run's own
status says how its hypotheses fared; `series` says whether it may be a baseline: `last-pass`
takes neither a run that regressed nor the runs of a flaky series. Writers wait up to 10 s for
another's lock.
"""

from __future__ import annotations

import calendar
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.checkers.names import named, window_label
from chaos.errors import DeadairError
from chaos.runner.summary_shape import shape_problem

ENV = "DEADAIR_RESULTS"
SCHEMA_VERSION = "1"
LOCK_TIMEOUT = 10.0  # seconds a writer waits for another's lock

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, experiment_id TEXT NOT NULL, title TEXT, started REAL NOT NULL,
    status TEXT, exit_code INTEGER, fingerprint TEXT, repeat_group TEXT, journal TEXT,
    summary TEXT NOT NULL, stored REAL NOT NULL);
CREATE INDEX IF NOT EXISTS runs_by_experiment ON runs (experiment_id, started);
CREATE TABLE IF NOT EXISTS verdicts (
    run_id TEXT NOT NULL, name TEXT NOT NULL, window TEXT, measure TEXT, stat TEXT, value REAL,
    unit TEXT, outcome TEXT, PRIMARY KEY (run_id, name));
CREATE TABLE IF NOT EXISTS tags (
    experiment_id TEXT NOT NULL, tag TEXT NOT NULL, run_id TEXT NOT NULL, tagged REAL NOT NULL,
    PRIMARY KEY (experiment_id, tag));
CREATE TABLE IF NOT EXISTS series (
    run_id TEXT PRIMARY KEY, outcome TEXT NOT NULL, exit_code INTEGER, judged REAL NOT NULL);
"""


class ResultsError(DeadairError):
    """A results store that cannot be opened, or a run or tag that is not in it."""

    exit_code = 2


@dataclass
class StoredRun:
    run_id: str
    experiment_id: str
    started: float  # wall clock, seconds since the epoch
    status: str
    exit_code: int
    fingerprint: str
    repeat_group: str | None
    journal: str | None
    summary: dict[str, Any]
    tags: list[str] = field(default_factory=list)
    series: str | None = None  # what its series decided: passed, regressed, flaky, pending... (None: not judged)
    series_exit_code: int | None = None

    @property
    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(self.started))

    @property
    def shown_status(self) -> str:
        """The status a person reads in the history: the series' verdict where it overrides the
        run's own (regressed, flaky), and a dry run marked as one."""
        status = self.status
        if self.series in ("regressed", "flaky", "pending"):
            status = self.series
        if self.summary.get("dry"):
            return "dry" if status == "passed" else f"dry {status}"
        return status

    @property
    def is_baseline(self) -> bool:
        """May `last-pass` take it: passed, its series did not regress or flake (or is still
        being judged), and it injected every fault (not dry, no fault skipped)."""
        return (
            self.status == "passed"
            and self.series in (None, "passed")
            and not self.summary.get("dry")
            and not self.summary.get("skipped")
        )


def store_path(location: str | None, journal_dir: Path | None) -> Path:
    """Where the store is: `location` (a path or `sqlite:///path`), else $DEADAIR_RESULTS, else
    `results.sqlite` beside the journals' folder. Any other URL is refused (exit 2)."""
    given = location or os.environ.get(ENV)
    if not given:
        return (journal_dir or Path(".deadair/runs")).parent / "results.sqlite"
    if "://" in given:
        scheme, _, rest = given.partition("://")
        if scheme != "sqlite" or not rest.startswith("/") or rest == "/":
            raise ResultsError(
                f"results store {given!r}: expected a path, or sqlite:///PATH (sqlite:////abs/path for an absolute "
                "one); the store is SQLite"
            )
        return Path(rest[1:])  # sqlite:///rel/path -> rel/path; sqlite:////abs/path -> /abs/path
    return Path(given)


class ResultsStore:
    """One SQLite file of runs; opened per command, closed after it."""

    def __init__(self, path: Path, create: bool = True, readonly: bool = False):
        """`readonly`: open an existing store without writing to it (`--dry all` checks a tag)."""
        self.path = path
        if (readonly or not create) and not path.exists():
            raise ResultsError(f"no results store at {path} (runs write one; --results or {ENV} name another)")
        try:
            if readonly:
                self.db = sqlite3.connect(path.absolute().as_uri() + "?mode=ro", uri=True, timeout=LOCK_TIMEOUT)
                self.db.execute("SELECT 1 FROM runs LIMIT 1").fetchall()  # not SQLite, or not a store: say so now
                return
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), timeout=LOCK_TIMEOUT)
            with self._tx() as db:
                db.executescript(_SCHEMA)
                db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        except (sqlite3.Error, OSError) as exc:
            raise ResultsError(f"results store {path}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        try:
            with self.db:
                yield self.db
        except sqlite3.Error as exc:
            raise ResultsError(f"results store {self.path}: {exc}") from None

    # -- writing -----------------------------------------------------------------------------
    def add(self, summary: dict[str, Any], repeat_group: str | None = None, journal: str | None = None) -> StoredRun:
        """Append one run's summary (again: replaced, so that a re-recorded run is stored once)."""
        run_id = str(summary.get("run_id") or "")
        exp_id = str(summary.get("experiment_id") or f"{summary.get('experiment')}::{summary.get('title')}")
        if not run_id:
            raise ResultsError("a summary without a run_id cannot be stored")
        summary = {**summary, "verdicts": named(list(summary.get("verdicts") or []))}
        fp = (summary.get("stack_fingerprint") or {}).get("id") or "unknown"
        started = started_of(summary)
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    run_id,
                    exp_id,
                    summary.get("title"),
                    started,
                    summary.get("status"),
                    summary.get("exit_code"),
                    fp,
                    repeat_group,
                    journal,
                    json.dumps(summary, default=str),
                    time.time(),
                ),
            )
            db.execute("DELETE FROM verdicts WHERE run_id = ?", (run_id,))
            db.executemany(
                "INSERT INTO verdicts VALUES (?,?,?,?,?,?,?,?)",
                [
                    (run_id, v["name"], window_label(v), v.get("measure"), v.get("stat"), v.get("value"))
                    + (v.get("unit"), v.get("outcome"))
                    for v in summary["verdicts"]
                ],
            )
        return self._row_to_run(self._one("SELECT * FROM runs WHERE run_id = ?", (run_id,)))

    def set_series(self, run_ids: list[str], outcome: str, exit_code: int | None) -> None:
        """What the series these runs belong to decided (regressed, flaky, passed...; `pending`
        while it is being judged): `last-pass` takes only runs whose series passed."""
        with self._tx() as db:
            db.executemany(
                "INSERT OR REPLACE INTO series VALUES (?,?,?,?)",
                [(r, outcome, exit_code, time.time()) for r in run_ids],
            )

    def tag(self, run_id: str, tag: str) -> StoredRun:
        """Pin a run as the baseline `tag` of its experiment (moving the tag if it was elsewhere)."""
        if not tag or tag in ("last-pass", "last") or "/" in tag or tag.startswith("-"):
            raise ResultsError(f"{tag!r} cannot be a tag (reserved, empty, or with a '/')")
        run = self.get(run_id)
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO tags VALUES (?,?,?,?)", (run.experiment_id, tag, run.run_id, time.time())
            )
        return self.get(run.run_id)

    # -- reading -----------------------------------------------------------------------------
    def get(self, ref: str, experiment_id: str | None = None) -> StoredRun:
        """A run by id (or a unique prefix of one), or by tag (within an experiment if given)."""
        row = self._one("SELECT * FROM runs WHERE run_id = ?", (ref,))
        if row is None:
            rows = self._all("SELECT * FROM runs WHERE run_id LIKE ? ESCAPE '\\'", (_like_prefix(ref),))
            if len(rows) > 1:
                ids = ", ".join(r[0] for r in rows[:5])
                raise ResultsError(f"{ref!r} names {len(rows)} runs ({ids}...): give more of the run id")
            row = rows[0] if rows else None
        if row is None:
            q, args = "SELECT run_id, experiment_id FROM tags WHERE tag = ?", [ref]
            if experiment_id:
                q, args = q + " AND experiment_id = ?", [ref, experiment_id]
            tagged = self._all(q, tuple(args))
            if len(tagged) > 1:
                exps = "; ".join(t[1] for t in tagged)
                raise ResultsError(f"tag {ref!r} is pinned in {len(tagged)} experiments ({exps}): give the run id")
            if tagged:
                row = self._one("SELECT * FROM runs WHERE run_id = ?", (tagged[0][0],))
        if row is None:
            where = f" of {experiment_id}" if experiment_id else ""
            raise ResultsError(f"no run or tag {ref!r}{where} in the results store {self.path}")
        return self._row_to_run(row)

    def runs(self, experiment_id: str, limit: int | None = None) -> list[StoredRun]:
        """An experiment's runs, oldest first (the last `limit` of them)."""
        q = "SELECT * FROM runs WHERE experiment_id = ? ORDER BY started DESC, run_id DESC"
        rows = self._all(q + (f" LIMIT {int(limit)}" if limit else ""), (experiment_id,))
        return [self._row_to_run(r) for r in reversed(rows)]

    def last_pass(self, experiment_id: str, exclude: set[str] | None = None) -> StoredRun | None:
        """The experiment's most recent run that may be a baseline (StoredRun.is_baseline: passed,
        and not regressed, flaky, dry or with a fault skipped), not one of `exclude`."""
        rows = self._all(
            "SELECT * FROM runs WHERE experiment_id = ? AND status = 'passed' ORDER BY started DESC, run_id DESC",
            (experiment_id,),
        )
        for r in rows:
            if r[0] not in (exclude or set()):
                run = self._row_to_run(r)
                if run.is_baseline:
                    return run
        return None

    def experiments(self) -> list[tuple[str, int]]:
        """Every experiment id with its number of runs."""
        return [(r[0], r[1]) for r in self._all("SELECT experiment_id, COUNT(*) FROM runs GROUP BY experiment_id", ())]

    def tags(self, experiment_id: str | None = None) -> list[tuple[str, str, str]]:
        """(experiment id, tag, run id) for every pinned baseline."""
        q = "SELECT experiment_id, tag, run_id FROM tags"
        rows = self._all(q + " WHERE experiment_id = ?", (experiment_id,)) if experiment_id else self._all(q, ())
        return [(r[0], r[1], r[2]) for r in rows]

    def _one(self, q: str, args: tuple) -> tuple | None:
        try:
            return self.db.execute(q, args).fetchone()
        except sqlite3.Error as exc:
            raise ResultsError(f"results store {self.path}: {exc}") from None

    def _all(self, q: str, args: tuple) -> list[tuple]:
        try:
            return self.db.execute(q, args).fetchall()
        except sqlite3.Error as exc:
            raise ResultsError(f"results store {self.path}: {exc}") from None

    def _row_to_run(self, row: tuple | None) -> StoredRun:
        assert row is not None
        run_id, exp_id, _title, started, status, code, fp, group, journal, summary, _stored = row
        tags = [t[0] for t in self._all("SELECT tag FROM tags WHERE run_id = ? ORDER BY tag", (run_id,))]
        series = self._series(run_id)
        return StoredRun(run_id, exp_id, started, status, code, fp, group, journal, json.loads(summary), tags, *series)

    def _series(self, run_id: str) -> tuple[str | None, int | None]:
        try:
            row = self.db.execute("SELECT outcome, exit_code FROM series WHERE run_id = ?", (run_id,)).fetchone()
        except sqlite3.OperationalError:  # a store opened read-only from before the table existed
            return None, None
        except sqlite3.Error as exc:
            raise ResultsError(f"results store {self.path}: {exc}") from None
        return (row[0], row[1]) if row else (None, None)


def started_of(summary: dict[str, Any]) -> float:
    """The run's wall-clock start: `started` (UTC), else the date in its run id (local time); an
    undated run is dated the epoch (readiness: stale, never fresh)."""
    text = summary.get("started")
    if text:
        try:
            return float(calendar.timegm(time.strptime(str(text), "%Y-%m-%dT%H:%M:%SZ")))
        except ValueError:
            pass
    try:
        return time.mktime(time.strptime(str(summary.get("run_id", ""))[:15], "%Y%m%d-%H%M%S"))
    except ValueError:
        return 0.0


def check_summary(data: Any, where: str) -> dict[str, Any]:
    """A run's summary as read from JSON, or a ResultsError (exit 2) saying where its shape is
    wrong (the one shape check every reader of summaries uses: chaos.runner.summary_shape)."""
    problem = shape_problem(data)
    if problem:
        raise ResultsError(f"{where}: not a run's summary: {problem}")
    return data


def _like_prefix(ref: str) -> str:
    return ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def record_run(summary_path: Path | None, location: str | None, journal_dir: Path) -> StoredRun | None:
    """Append the summary a run wrote to the store (`location`, else the default beside the
    journals); None for a run that wrote none (nothing was started). ResultsError if it cannot."""
    if summary_path is None or not summary_path.is_file():
        return None
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, ValueError) as exc:
        raise ResultsError(f"could not read {summary_path}: {exc}") from None
    with ResultsStore(store_path(location, journal_dir)) as store:
        return store.add(summary, journal=str(summary_path.parent / "journal.jsonl"))
