"""The live status of a run, for whoever watches a long one: the phase, the time left, how many
listeners hear audio and how many are in dead air right now, and the fault in effect.

On a terminal it is one line redrawn in place once a second; elsewhere (CI logs, a pipe) a plain
line every few seconds and at every phase change, so a log stays readable. It is read from the
timeline as it grows: each tick reads only the events recorded since the last one, so a tick
costs what happened in that second, not the whole run, and the listeners' loop stays responsive.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from chaos.timeline import Event, Timeline

LIVE_EVERY = 1.0  # a terminal's line is redrawn this often
LINES_EVERY = 5.0  # a plain line this often (and at every phase change)
MODES = ("live", "lines", "off")


class _Listener:
    """What one listener is doing now, as its events say."""

    __slots__ = ("connected", "gone", "silent", "stalled", "started")

    def __init__(self) -> None:
        self.started = False  # has heard audio (its first page)
        self.connected = False
        self.stalled = False  # an open stall: its buffer ran dry
        self.silent = False  # a golden ear playing digital silence
        self.gone = False  # gave up reconnecting


@dataclass
class Counts:
    hearing: int = 0  # playing audio now
    dead_air: int = 0  # heard audio before, hear nothing now (a stall, or played silence)
    joining: int = 0  # joined, no audio yet
    reconnecting: int = 0  # lost their connection and have not heard audio on a new one yet
    gone: int = 0  # gave up


@dataclass
class CurrentFault:
    occurrence: str
    what: str  # "mic.cut mic"
    start: float
    end: float | None  # planned end (start + for), None when it has no `for`
    skipped: str = ""  # why it was not injected (a dry run, the operator), if it was not


class Board:
    """Listeners and faults now, fed with the timeline's new events (in the order recorded)."""

    def __init__(self, durations: dict[str, float | None] | None = None):
        self.durations = durations or {}  # occurrence -> its `for`, to say how long a fault has left
        self.listeners: dict[str, _Listener] = {}
        self.faults: dict[str, CurrentFault] = {}
        self.stopped: dict | None = None
        self._seen = 0

    def feed(self, events: Sequence[Event]) -> None:
        """Read the events recorded since the last call (the timeline only grows)."""
        end = len(events)
        for i in range(self._seen, end):
            self._one(events[i])
        self._seen = end

    def _one(self, ev: Event) -> None:
        kind = ev.kind
        if kind.startswith("listener."):
            lst = self.listeners.get(ev.src)
            if lst is None:
                lst = self.listeners[ev.src] = _Listener()
            if kind == "listener.first_audio":
                lst.started = lst.connected = True
            elif kind == "listener.stall_start":
                lst.stalled = True
            elif kind == "listener.stall_end":
                lst.stalled = False
            elif kind == "listener.disconnect":
                lst.connected = False
            elif kind == "listener.gave_up":
                lst.gone = True
        elif kind in ("ear.silence_start", "ear.silence_end") and ev.src in self.listeners:
            self.listeners[ev.src].silent = kind == "ear.silence_start"
        elif kind in ("fault.start", "fault.skipped"):
            occ = str(ev.data.get("occurrence"))
            what = f"{ev.data.get('fault')} {ev.data.get('target') or ''}".strip()
            length = self.durations.get(occ)
            end = ev.data.get("end") if kind == "fault.skipped" else None
            if end is None and length:
                end = ev.t + length
            reason = str(ev.data.get("reason") or "skipped") if kind == "fault.skipped" else ""
            self.faults[occ] = CurrentFault(occ, what, ev.t, None if end is None else float(end), reason)
        elif kind == "fault.end":
            self.faults.pop(str(ev.data.get("occurrence")), None)
        elif kind == "run.stopped":
            self.stopped = dict(ev.data)

    def counts(self) -> Counts:
        c = Counts()
        for lst in self.listeners.values():
            if lst.gone:
                c.gone += 1
                continue
            if not lst.started:
                c.joining += 1
                continue
            if lst.stalled or lst.silent:
                c.dead_air += 1
            else:
                c.hearing += 1
            if not lst.connected:
                c.reconnecting += 1
        return c

    def current(self, now: float) -> list[CurrentFault]:
        """Faults in effect now (a skipped one for its would-be window), oldest first."""
        for key, f in list(self.faults.items()):
            if f.skipped and f.end is not None and now >= f.end:
                del self.faults[key]
        return sorted(self.faults.values(), key=lambda f: f.start)


def clock_text(seconds: float) -> str:
    s = max(0, int(round(seconds)))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def render_line(
    phase: str,
    elapsed: float,
    length: float | None,
    left: float | None,
    counts: Counts,
    total: int,
    faults: list[CurrentFault],
    now: float,
    note: str = "",
    at_least: bool = False,
) -> str:
    """The status as one line: `method 12/28s | 0:21 left | hearing 18/20 | dead air 2 | fault ...`.
    `at_least`: the current phase has no known length (the stack starting), so the time left is
    what follows it, shown with a `+`."""
    parts = [f"{phase} {elapsed:.0f}/{length:.0f}s" if length else f"{phase} {elapsed:.0f}s"]
    if left is not None:
        parts.append(f"{clock_text(left)}{'+' if at_least else ''} left")
    if total and counts.hearing + counts.dead_air + counts.joining + counts.gone:
        parts.append(f"hearing {counts.hearing}/{total}")
        parts.append(f"dead air {counts.dead_air}")
        if counts.joining:
            parts.append(f"joining {counts.joining}")
        if counts.reconnecting:
            parts.append(f"reconnecting {counts.reconnecting}")
        if counts.gone:
            parts.append(f"gone {counts.gone}")
    for f in faults:
        rest = f" {clock_text(f.end - now)} left" if f.end is not None and f.end > now else ""
        parts.append(f"fault {f.what}" + (f" ({f.skipped}{',' + rest if rest else ''})" if f.skipped else rest))
    if note:
        parts.append(note)
    return " | ".join(parts)


class LiveStatus:
    """The status of one run on a stream: redrawn in place (`live`), plain lines (`lines`), or
    nothing (`off`). Messages go through `message()` so the redrawn line never garbles them."""

    def __init__(
        self,
        timeline: Timeline,
        phases: list[tuple[str, float | None]],
        total: int,
        durations: dict[str, float | None] | None = None,
        mode: str = "off",
        stream: TextIO | None = None,
    ):
        assert mode in MODES, mode
        self.timeline = timeline
        self.phases = phases  # the run's phases in order, each with its length if known
        self.total = total
        self.board = Board(durations)
        self.mode = mode
        self.stream = stream or sys.stderr
        self.phase, self.since = "starting", 0.0
        self.length: float | None = None
        self.note = ""
        self._later = sum(n or 0.0 for _, n in phases)
        self._drawn = False
        self._closed = False  # after the live phases: messages only, no line
        self._lock = threading.Lock()  # messages may come from worker threads (a rollback's)

    def enter(self, phase: str) -> None:
        """A new phase: its clock starts now; a plain line says so at once."""
        names = [n for n, _ in self.phases]
        self.phase, self.since = phase, self.timeline.clock.now()
        if phase in names:
            i = names.index(phase)
            self.length = self.phases[i][1]
            self._later = sum(n or 0.0 for _, n in self.phases[i + 1 :])
        else:
            self.length, self._later = None, 0.0
        self.note = ""
        self.show(force=True)

    def extend(self, seconds: float) -> None:
        """The current phase lasts longer (the method waited for the operator)."""
        if self.length is not None:
            self.length += seconds

    def line(self) -> str:
        now = self.timeline.clock.now()
        self.board.feed(self.timeline.events)
        elapsed = now - self.since
        left = (0.0 if self.length is None else max(0.0, self.length - elapsed)) + self._later
        return render_line(
            self.phase,
            elapsed,
            self.length,
            left,
            self.board.counts(),
            self.total,
            self.board.current(now),
            now,
            self.note,
            at_least=self.length is None,
        )

    def show(self, force: bool = False) -> None:
        """Draw the line (live) or print it (lines; `force` at a phase change)."""
        if self.mode == "off" or self._closed:
            return
        with self._lock:
            try:
                if self.mode == "live":
                    text = self.line()[: max(20, _width(self.stream) - 1)]
                    self.stream.write("\r" + text + "\x1b[K")
                    self._drawn = True
                else:
                    self.stream.write(f"  status: {self.line()}\n")
                self.stream.flush()
            except (OSError, ValueError):
                self.mode = "off"  # the stream went away (a closed pipe): the run goes on without it

    def message(self, write: Callable[[], None]) -> None:
        """Print a message (`write` prints it) above the live line, then redraw the line."""
        if self.mode != "live" or self._closed:
            write()
            return
        with self._lock:
            self._clear()
            write()
        self.show()

    def close(self) -> None:
        """The live phases are over: the live line erased, the terminal left as it was."""
        with self._lock:
            self._closed = True
            self._clear()

    def _clear(self) -> None:
        if self._drawn:
            try:
                self.stream.write("\r\x1b[K")
                self.stream.flush()
            except (OSError, ValueError):
                pass
            self._drawn = False

    async def run(self) -> None:
        """Redraw once a second (live) or print every few seconds (lines) until cancelled."""
        if self.mode == "off":
            return
        every = LIVE_EVERY if self.mode == "live" else LINES_EVERY
        while True:
            await asyncio.sleep(every)
            self.show()


def _width(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns or 100  # 0: a terminal with no size set
    except (OSError, ValueError, AttributeError):
        return 100
