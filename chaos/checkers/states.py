"""What each listener was hearing, second by second: the picture a report draws under the faults.

Defined per listener first, from the journal's events alone (the same dead-air spans the
`dead_air` measure judges), then counted across listeners.

At every instant from its first join request until the run closes it, a listener is in exactly
one state, the first of these that applies:

    gone          it gave up: its reconnection schedule ran out (`listener.gave_up`)
    joining       it has not heard its first audio yet, and will (`listener.join` .. `first_audio`)
    reconnecting  it hears nothing (a dead-air span) and has no connection: from a lost
                  connection or a refused join to the first audio of a new connection
    dead_air      it hears nothing while connected: a stall or slip of its player, digital
                  silence a golden ear played, or no audio ever since it joined
    hold          its player plays hold music (the stream titled `hold`, from when it reaches it)
    live          its player plays any other audio: the speaker

A listener that loses its connection but still plays what it had buffered is hearing live (or
hold) until the buffer runs dry: the state says what a person hears, the cause only when
nothing is heard.

A listener's state in one second of the run's clock, [k, k + 1), is the WORST it was in during
any part of that second, in the order gone, reconnecting, dead_air, joining, hold, live. So a
listener counts as hearing live in a second only if it heard live audio throughout it (apart
from before it joined or after it left), and a 50 ms stall makes a second of dead air: the
chart errs towards showing trouble, and the per-listener stretches keep the exact times.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from chaos.checkers.history import History
from chaos.timeline import Event

# best to worst: a second's state is the worst of its instants
STATES = ("live", "hold", "joining", "dead_air", "reconnecting", "gone")
_RANK = {s: i for i, s in enumerate(STATES)}
CLOSED = "closed"  # the disconnect reason when the run itself closes a listener at its end


@dataclass(frozen=True)
class Stretch:
    """A listener in one state from `start` to `end` (seconds on the run's clock)."""

    start: float
    end: float
    state: str


@dataclass
class ListenerStates:
    """Every listener's exact stretches, and its state per second of the run."""

    seconds: int  # seconds [0, 1), [1, 2), ... up to the run's end
    stretches: dict[str, list[Stretch]] = field(default_factory=dict)
    per_second: dict[str, list[str | None]] = field(default_factory=dict)  # None: not in the room

    def counts(self) -> dict[str, list[int]]:
        """Per state, how many listeners were in it in each second."""
        out = {s: [0] * self.seconds for s in STATES}
        for states in self.per_second.values():
            for k, s in enumerate(states):
                if s is not None:
                    out[s][k] += 1
        return out

    def time_in(self, lid: str, state: str) -> float:
        return sum(s.end - s.start for s in self.stretches.get(lid, ()) if s.state == state)


def listener_states(history: History) -> ListenerStates:
    """Each listener's stretches and per-second states, from a run's history (see the module doc)."""
    seconds = max(0, math.ceil(history.end))
    out = ListenerStates(seconds)
    for lid in history.listeners:
        stretches = _stretches(history, lid)
        out.stretches[lid] = stretches
        out.per_second[lid] = _per_second(stretches, seconds)
    return out


def _first(evs: list[Event], kind: str) -> float | None:
    return next((e.t for e in evs if e.kind == kind), None)


def _lost(evs: list[Event], end: float) -> list[tuple[float, float]]:
    """Spans without a connection: a lost connection (or refused join) to the next first audio."""
    out, since = [], None
    for e in evs:
        lost = e.kind == "listener.join_failed" or (e.kind == "listener.disconnect" and e.data.get("reason") != CLOSED)
        if lost and since is None:
            since = e.t
        elif e.kind == "listener.first_audio" and since is not None:
            out.append((since, e.t))
            since = None
    if since is not None:
        out.append((since, end))
    return out


def _titles(history: History, evs: list[Event]) -> list[tuple[float, str | None]]:
    """(when the player reaches it, title) for each new logical stream, in playing order."""
    streams = [
        (history.stream_time(e, played=True), i, e.data.get("title"))
        for i, e in enumerate(evs)
        if e.kind == "listener.stream"
    ]
    return [(at, title) for at, _, title in sorted(streams)]


def _within(spans: list[tuple[float, float]], t: float) -> bool:
    return any(s <= t < e for s, e in spans)


def _stretches(history: History, lid: str) -> list[Stretch]:
    evs = history.by_listener.get(lid, [])
    if not evs:
        return []
    join = _first(evs, "listener.join")
    join = evs[0].t if join is None else join
    leave = next((e.t for e in evs if e.kind == "listener.disconnect" and e.data.get("reason") == CLOSED), history.end)
    gave_up = _first(evs, "listener.gave_up")
    first_audio = _first(evs, "listener.first_audio")
    dead = history.dead_air_spans().get(lid, [])
    lost = _lost(evs, history.end)
    titles = _titles(history, evs)

    def state_at(t: float) -> str:
        if gave_up is not None and t >= gave_up:
            return "gone"
        if first_audio is not None and join <= t < first_audio:
            return "joining"
        if _within(dead, t):
            return "reconnecting" if _within(lost, t) else "dead_air"
        title = None
        for at, name in titles:
            if at > t:
                break
            title = name
        return "hold" if title == "hold" else "live"

    cuts = {join, leave}
    for t in (gave_up, first_audio):
        if t is not None:
            cuts.add(t)
    for spans in (dead, lost):
        for s, e in spans:
            cuts.update((s, e))
    cuts.update(at for at, _ in titles)
    points = sorted(t for t in cuts if join <= t <= leave)
    out: list[Stretch] = []
    for a, b in zip(points, points[1:]):
        if b <= a:
            continue
        state = state_at(a)
        if out and out[-1].state == state and out[-1].end == a:
            out[-1] = Stretch(out[-1].start, b, state)
        else:
            out.append(Stretch(a, b, state))
    return out


def _per_second(stretches: list[Stretch], seconds: int) -> list[str | None]:
    out: list[str | None] = [None] * seconds
    for st in stretches:
        first, last = max(0, math.floor(st.start)), min(seconds - 1, math.ceil(st.end) - 1)
        for k in range(first, last + 1):
            if min(st.end, k + 1) > max(st.start, k):  # some part of the second, however short
                cur = out[k]
                if cur is None or _RANK[st.state] > _RANK[cur]:
                    out[k] = st.state
    return out
