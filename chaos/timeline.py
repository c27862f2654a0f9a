"""One clock, one timeline: every fault, listener event and verdict on the same monotonic clock.

The timeline is the run's history (Jepsen's word). Hypotheses are checks over it, so a
journal written to disk can be judged again without re-running the experiment.

Journal format (JSON lines, one object per line, sorted by `t`):
    {"t": 12.3456, "kind": "listener.stall", "src": "L0007", ...fields}
`t` is seconds since the run's origin: a `time.monotonic()` reading, recorded in the first line
(kind `run.origin`, field `monotonic`) with the matching wall-clock time (`wall_time`), so other
measurements (a packet capture, a reference client) can be put on the same clock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def method_time(t: float, method_start: float | None) -> str:
    """A time as a user reads it, on the method's clock: the experiment's `at: 2s` is `t+2.00s`
    here and in the progress lines, so a failure's time lines up with the step that caused it
    (before the method: `t-1.50s`). The journal keeps the run's clock; only what is printed moves.
    A run that never reached its method has no method clock: the run's is named instead."""
    if method_start is None:
        return f"{t:.2f}s into the run (before the method)"
    d = round(t - method_start, 2)
    return f"t{'-' if d < 0 else '+'}{abs(d):.2f}s"


class Clock:
    """Monotonic seconds since an origin; the only clock deadair measures with."""

    __slots__ = ("origin", "wall_origin")

    def __init__(self) -> None:
        self.origin = time.monotonic()
        self.wall_origin = time.time()

    def now(self) -> float:
        return time.monotonic() - self.origin

    def at(self, monotonic: float) -> float:
        """Convert a raw time.monotonic() reading to this clock."""
        return monotonic - self.origin


@dataclass(slots=True)
class Event:
    t: float
    kind: str
    src: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"t": round(self.t, 6), "kind": self.kind, "src": self.src, **self.data}

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Event:
        data = {k: v for k, v in obj.items() if k not in ("t", "kind", "src")}
        return cls(float(obj["t"]), str(obj["kind"]), str(obj.get("src", "")), data)


class Timeline:
    """An append-only list of events on one clock."""

    def __init__(self, clock: Clock | None = None):
        self.clock = clock or Clock()
        self.events: list[Event] = []

    def record(self, kind: str, src: str, t: float | None = None, **data: Any) -> Event:
        ev = Event(self.clock.now() if t is None else t, kind, src, data)
        self.events.append(ev)
        return ev

    def __iter__(self) -> Iterator[Event]:
        return iter(self.events)

    def __len__(self) -> int:
        return len(self.events)

    def of_kind(self, *kinds: str) -> list[Event]:
        return [e for e in self.events if e.kind in kinds]

    def sorted(self) -> list[Event]:
        return sorted(self.events, key=lambda e: e.t)

    def write_journal(self, path: Path, header: dict[str, Any] | None = None) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as fh:
            origin = {
                "t": 0.0,
                "kind": "run.origin",
                "src": "runner",
                "wall_time": self.clock.wall_origin,
                "monotonic": self.clock.origin,
                **(header or {}),
            }
            fh.write(json.dumps(origin) + "\n")
            for ev in self.sorted():
                fh.write(json.dumps(ev.to_json()) + "\n")
        return path

    @classmethod
    def read_journal(cls, path: Path) -> Timeline:
        tl = cls()
        for ev in _read_events(path.read_text().splitlines()):
            if ev.kind != "run.origin":
                tl.events.append(ev)
        return tl


def _read_events(lines: Iterable[str]) -> Iterator[Event]:
    for line in lines:
        line = line.strip()
        if line:
            yield Event.from_json(json.loads(line))
