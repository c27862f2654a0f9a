"""The rollback ledger: every fault's undo action, on disk before the fault acts.

One JSON file per run under the state directory ($DEADAIR_STATE, default
~/.local/state/deadair/ledgers). Rollback replays the undo actions that are not yet
reverted, newest first, and verifies each. A run that ends cleanly removes its file; a
run killed with SIGKILL leaves it, and the next run (or `deadair sweep`) finds it by its
dead owner pid and reverts what is left.
"""
from __future__ import annotations

import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import faults


def state_dir() -> Path:
    base = os.environ.get("DEADAIR_STATE") or os.path.join(
        os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state"), "deadair")
    return Path(base)


@dataclass
class RollbackReport:
    reverted: list[dict[str, Any]] = field(default_factory=list)
    failed: list[tuple[dict[str, Any], str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


class Ledger:
    """The undo actions of one run, persisted with an atomic write after every change."""

    def __init__(self, run_id: str | None = None, meta: dict[str, Any] | None = None, path: Path | None = None):
        self.run_id = run_id or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        self.path = path or state_dir() / "ledgers" / f"{self.run_id}.json"
        self.meta = {"run_id": self.run_id, "pid": os.getpid(), "created": time.time(), **(meta or {})}
        self.entries: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: Path) -> "Ledger":
        doc = json.loads(path.read_text())
        led = cls(doc["meta"]["run_id"], path=path)
        led.meta = doc["meta"]
        led.entries = doc["entries"]
        return led

    def _write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            json.dump({"meta": self.meta, "entries": self.entries}, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def intend(self, description: str, undo: dict[str, Any], **extra: Any) -> int:
        """Record an undo action before its fault acts. Returns the entry id."""
        with self._lock:
            entry = {"id": len(self.entries), "fault": description, "undo": undo, "status": "applying",
                     "at": time.time(), **extra}
            self.entries.append(entry)
            self._write()
            return entry["id"]

    def mark(self, entry_id: int, status: str, error: str | None = None) -> None:
        with self._lock:
            self.entries[entry_id]["status"] = status
            if error:
                self.entries[entry_id]["error"] = error
            self._write()

    def pending(self) -> list[dict[str, Any]]:
        """Entries whose fault may be in effect, newest first."""
        return [e for e in reversed(self.entries) if e["status"] != "reverted"]

    def revert_entry(self, entry: dict[str, Any]) -> str | None:
        """Revert one entry; returns an error message, or None when reverted and verified."""
        try:
            faults.revert(entry["undo"])
        except faults.FaultError as exc:
            self.mark(entry["id"], "revert_failed", str(exc))
            return str(exc)
        self.mark(entry["id"], "reverted")
        return None

    def rollback(self, exclude: tuple[str, ...] = ()) -> RollbackReport:
        """Revert every pending entry, newest first (but those whose undo action is excluded)."""
        report = RollbackReport()
        for entry in self.pending():
            if entry["undo"]["action"] in exclude:
                continue
            err = self.revert_entry(entry)
            if err is None:
                report.reverted.append(entry)
            else:
                report.failed.append((entry, err))
        return report

    def close(self) -> None:
        """Remove the file once nothing is pending; keep it (for sweep) otherwise."""
        with self._lock:
            if not self.pending() and self.path.exists():
                self.path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orphaned() -> list[Ledger]:
    """Ledgers left by runs whose process is gone."""
    folder = state_dir() / "ledgers"
    out = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            led = Ledger.load(path)
        except (OSError, ValueError, KeyError):
            continue
        if int(led.meta.get("pid", -1)) != os.getpid() and not _alive(int(led.meta.get("pid", -1))):
            out.append(led)
    return out


def sweep() -> list[tuple[Ledger, RollbackReport]]:
    """Revert everything that dead runs left applied; remove their ledgers when done."""
    results = []
    for led in orphaned():
        report = led.rollback()
        led.close()
        results.append((led, report))
    return results
