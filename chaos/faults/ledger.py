"""The rollback ledger: every fault's undo action, on disk before the fault acts.

One JSON file per run under the state directory ($DEADAIR_STATE, default
~/.local/state/deadair/ledgers), beside a lock file that the owning process holds (flock) for
as long as it lives. Rollback replays the undo actions that are not settled yet, newest first,
verifies each, and goes on whatever one of them raises. A run that ends cleanly removes its
files; a run killed with SIGKILL leaves them, and its lock dies with it, so the next run (or
`deadair sweep`) knows it is orphaned, even when its pid has been reused since.

Entry statuses: applying (written before the fault acts), applied, reverted, gone (its target
went away with its stack: nothing left to revert), revert_failed (kept for sweep).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.errors import FaultError
from chaos.faults import undo
from chaos.faults.composition import link_key

ACTIVE = ("applying", "applied", "revert_failed")  # the fault may be in effect
SETTLED = ("reverted", "gone")


def state_dir() -> Path:
    base = os.environ.get("DEADAIR_STATE") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "deadair"
    )
    return Path(base)


@dataclass
class RollbackReport:
    reverted: list[dict[str, Any]] = field(default_factory=list)
    failed: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    gone: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # resolved: gone with the stack
    unsettled: list[str] = field(default_factory=list)  # applies still running when rollback gave up on them

    @property
    def ok(self) -> bool:
        return not self.failed and not self.unsettled

    def extend(self, other: RollbackReport) -> None:
        self.reverted += other.reverted
        self.failed += other.failed
        self.gone += other.gone
        self.unsettled += other.unsettled


class Ledger:
    """The undo actions of one run, persisted with an atomic write after every change."""

    def __init__(self, run_id: str | None = None, meta: dict[str, Any] | None = None, path: Path | None = None):
        self.run_id = run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self.path = path or state_dir() / "ledgers" / f"{self.run_id}.json"
        self.meta = {"run_id": self.run_id, "pid": os.getpid(), "created": time.time(), **(meta or {})}
        self.entries: list[dict[str, Any]] = []
        self._lock = threading.RLock()  # entries and the file
        self._rolling = threading.Lock()  # one rollback at a time (a guardrail's thread and a signal's)
        self._targets: dict[tuple[str, ...], threading.Lock] = {}  # one revert at a time per link or node
        self._lockfile: Any = None  # held (flock) while this process owns the ledger
        self.on_event: Callable[[dict[str, Any]], None] | None = None  # e.g. a Toxiproxy restart, for the timeline

    @property
    def lock_path(self) -> Path:
        return self.path.with_suffix(".lock")

    @classmethod
    def load(cls, path: Path) -> Ledger:
        doc = json.loads(path.read_text())
        led = cls(doc["meta"]["run_id"], path=path)
        led.meta = doc["meta"]
        led.entries = doc["entries"]
        return led

    def acquire(self, wait: bool = False) -> bool:
        """Hold this ledger's lock (for the owner's lifetime, or while sweeping it). False when
        another live process holds it."""
        if self._lockfile is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.lock_path, "a+")  # noqa: SIM115 - held open for the lock's life, closed on release
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.close()
            return False
        self._lockfile = fh
        return True

    def release(self) -> None:
        if self._lockfile is not None:
            self._lockfile.close()
            self._lockfile = None

    def _write(self) -> None:
        self.acquire()
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            json.dump({"meta": self.meta, "entries": self.entries}, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def intend(self, description: str, undo_action: dict[str, Any], **extra: Any) -> int:
        """Record an undo action before its fault acts. Returns the entry id."""
        with self._lock:
            entry = {
                "id": len(self.entries),
                "fault": description,
                "undo": undo_action,
                "status": "applying",
                "at": time.time(),
                **extra,
            }
            self.entries.append(entry)
            self._write()
            return entry["id"]

    def mark(self, entry_id: int, status: str, error: str | None = None, **extra: Any) -> None:
        with self._lock:
            entry = self.entries[entry_id]
            entry["status"] = status
            if error:
                entry["error"] = error
            entry.update(extra)
            self._write()

    def pending(self) -> list[dict[str, Any]]:
        """Entries whose fault may be in effect, newest first."""
        return [e for e in reversed(self.entries) if e["status"] not in SETTLED]

    def active_others(self, entry_id: int) -> list[dict[str, Any]]:
        """The other faults that may be in effect now, this run's and every other ledger's in the
        state directory (a concurrent run, another dead run being swept): what a revert must leave
        in place. Read afresh at every call."""
        mine = [e for e in self.entries if e["id"] != entry_id and e["status"] in ACTIVE]
        return mine + self._foreign_active()

    def _foreign_active(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.path.parent.glob("*.json")) if self.path.parent.is_dir() else []:
            if path == self.path:
                continue
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            out += [{**e, "ledger": path.stem} for e in doc.get("entries", []) if e.get("status") in ACTIVE]
        return out

    def revert_entry(self, entry: dict[str, Any]) -> str | None:
        """Revert one entry given the faults still active beside it; returns an error message, or
        None when it is reverted and verified (or its target is gone with its stack). Never raises
        for a failure of the stack, the engine or Toxiproxy, nor for a bug in an undo action.

        Reverts of one target take turns: two faults holding a link down that end together (both
        last to the method's end) each saw the other still active, both left the link down as
        "held", and both were marked reverted, verified, with the link down."""
        with contextlib.ExitStack() as held:
            for lock in self._target_locks(entry["undo"]):
                held.enter_context(lock)
            if self.entries[entry["id"]]["status"] in SETTLED:
                return None  # reverted by the thread this one waited for (the method's, or rollback's)
            return self._revert_entry(entry)

    def _target_locks(self, action: dict[str, Any]) -> list[threading.Lock]:
        """The locks of what this action restores (its link, its container), in one order."""
        keys: list[tuple[str, ...]] = []
        if (link := link_key(action)) is not None:
            keys.append(("link", *link))
        if action.get("container"):
            keys.append(("node", str(action["container"])))
        with self._lock:
            return [self._targets.setdefault(k, threading.Lock()) for k in sorted(keys)]

    def _revert_entry(self, entry: dict[str, Any]) -> str | None:
        try:
            outcome = undo.revert(
                entry["undo"],
                self.active_others(entry["id"]),
                list(self.entries),
                refresh=lambda: self.active_others(entry["id"]),
            )
        except FaultError as exc:
            self.mark(entry["id"], "revert_failed", str(exc))
            return str(exc)
        except Exception as exc:
            msg = f"{type(exc).__name__}: {exc}"
            self.mark(entry["id"], "revert_failed", msg, traceback=traceback.format_exc(limit=8))
            return msg
        for event in outcome.events:
            if self.on_event is not None:
                self.on_event({**event, "fault": entry["fault"]})
        extra = {k: v for k, v in (("detail", outcome.detail), ("gone", outcome.gone)) if v}
        self.mark(entry["id"], "gone" if outcome.gone else "reverted", **extra)
        return None

    def rollback(self, exclude: tuple[str, ...] = (), skip: set[int] | frozenset[int] = frozenset()) -> RollbackReport:
        """Revert every pending entry, newest first, but those whose undo action is excluded and the
        entries in `skip` (their apply is still running: reverting them now would be undone when it
        lands; they stay pending, for this process later or for sweep).

        One rollback at a time: a second caller waits for the first, then finds nothing left."""
        report = RollbackReport()
        with self._rolling:
            for entry in self.pending():
                if entry["undo"]["action"] in exclude or entry["id"] in skip:
                    continue
                try:
                    err = self.revert_entry(entry)
                except Exception as exc:
                    err = f"{type(exc).__name__}: {exc}"
                if err is not None:
                    report.failed.append((entry, err))
                elif entry["status"] == "gone":
                    report.gone.append((entry, str(entry.get("gone"))))
                else:
                    report.reverted.append(entry)
        return report

    def close(self, keep: bool = False, hold: bool = False) -> bool:
        """Remove the files once nothing is pending (and not `keep`); keep them for sweep otherwise.
        Releases the lock unless `hold` (an apply still running in this process: the lock must
        outlive it, so nobody sweeps the entry before it lands). True when the ledger was removed."""
        with self._lock:
            removed = False
            if not keep and not self.pending():
                self.path.unlink(missing_ok=True)
                self.lock_path.unlink(missing_ok=True)
                removed = True
            if not hold:
                self.release()
            return removed


def orphaned() -> list[Ledger]:
    """Ledgers whose owner is gone (nobody holds their lock), each now locked by this process."""
    folder = state_dir() / "ledgers"
    out = []
    for tmp in folder.glob("*.tmp") if folder.is_dir() else []:
        if time.time() - tmp.stat().st_mtime > 3600:  # a write cut short long ago
            tmp.unlink(missing_ok=True)
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        probe = Ledger(path.stem, path=path)
        if not probe.acquire():
            continue  # its run is alive
        try:
            led = Ledger.load(path)
        except FileNotFoundError:
            probe.close()  # its run just finished
            continue
        except (OSError, ValueError, KeyError) as exc:
            probe.release()
            led = Ledger(path.stem, path=path)
            led.meta["unreadable"] = f"{type(exc).__name__}: {exc}"
            out.append(led)
            continue
        led._lockfile, probe._lockfile = probe._lockfile, None
        out.append(led)
    return out


def sweep() -> list[tuple[Ledger, RollbackReport]]:
    """Revert everything that dead runs left applied; remove their ledgers when settled."""
    results = []
    for led in orphaned():
        if "unreadable" in led.meta:
            report = RollbackReport(failed=[({"fault": str(led.path)}, f"unreadable ledger: {led.meta['unreadable']}")])
            results.append((led, report))
            continue
        report = led.rollback()
        led.close()
        results.append((led, report))
    return results


def describe_sweep(run_id: str, report: RollbackReport) -> str:
    """One line on what sweeping a dead run's ledger did."""
    parts = [f"run {run_id}: reverted {len(report.reverted)} item(s) it left"]
    if report.gone:
        parts.append(f"{len(report.gone)} gone with their stack")
    if report.failed:
        parts.append(f"{len(report.failed)} FAILED (ledger kept)")
    return "; ".join(parts)
