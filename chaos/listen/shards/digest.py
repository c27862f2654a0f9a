"""Per-listener digests: what a shard ships for a listener that is not sampled.

A digest keeps every fact a measure reads (chaos.checkers.measures, through
chaos.checkers.history) and nothing else, as compact tuples instead of events: joins and their
answers, first audio, stream starts, disconnects, the serving node, stalls and slips, giving up,
lost pages. Connection attempts, scheduled retries and title switches are not shipped (no
measure reads them; a sampled listener's full events still show them). Decoding gives back the
events the measures read, field for field, so a verdict is the same whether it is computed from
full events or from digests; tests/unit/test_shard_digest.py checks that property for every
listener measure over generated histories.
"""

from __future__ import annotations

from typing import Any

from chaos.timeline import Event

# kind -> (code, the fields a measure or the run's status reads, in order)
JUDGED: dict[str, tuple[int, tuple[str, ...]]] = {
    "listener.join": (0, ("ear",)),
    "listener.joined": (1, ("latency",)),
    "listener.join_failed": (2, ("status", "reason", "latency", "timeout")),
    "listener.first_audio": (3, ("title",)),
    "listener.stall_start": (4, ()),
    "listener.stall_end": (5, ("duration", "open")),
    "listener.slip": (6, ("duration",)),
    "listener.stream": (7, ("title", "played_at")),
    "listener.disconnect": (8, ("reason",)),
    "listener.connected": (9, ("server",)),
    "listener.gave_up": (10, ("attempts",)),
    "listener.lost_pages": (11, ("count",)),
}
NOT_SHIPPED = frozenset({"listener.connect", "listener.reconnect", "listener.switch"})
_KINDS = {code: (kind, fields) for kind, (code, fields) in JUDGED.items()}
_ABSENT = None  # a field the event did not have (e.g. `ear` on a plain listener's join)

Record = tuple[Any, ...]  # (listener index, code, t, *fields)


class Digester:
    """Encodes one shard's listener events; listener ids are sent once, then by index."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self.new_names: list[str] = []  # ids first seen since the last batch
        self.records: list[Record] = []

    def add(self, ev: Event) -> bool:
        """Digest a listener event; False when it is not a listener event (ship it whole)."""
        if ev.kind in NOT_SHIPPED:
            return True
        spec = JUDGED.get(ev.kind)
        if spec is None:
            return False
        code, fields = spec
        i = self._index.get(ev.src)
        if i is None:
            i = self._index[ev.src] = len(self._index)
            self.new_names.append(ev.src)
        if ev.kind == "listener.connected" and not ev.data.get("server"):
            return True  # only the serving node is read (History.served_by)
        self.records.append((i, code, ev.t, *(ev.data.get(f, _ABSENT) for f in fields)))
        return True

    def take(self) -> tuple[list[str], list[Record]]:
        names, records = self.new_names, self.records
        self.new_names, self.records = [], []
        return names, records

    @property
    def named(self) -> int:
        """How many ids have been sent (a batch's new names start at named - len(new_names))."""
        return len(self._index)


class Undigester:
    """The runner's side of one shard's digests: records back into events."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def events(self, new_names: list[str], records: list[Record], names_from: int | None = None) -> list[Event]:
        """The events the records stand for (a shard records on the run's clock already).
        `names_from`: where the batch's new names start in the shard's table; ValueError when that
        is not where ours ends (a batch went missing: its records would name the wrong listeners)."""
        if names_from is not None and names_from != len(self.names):
            raise ValueError(f"batches out of step: names from {names_from}, {len(self.names)} known")
        self.names += new_names
        out = []
        for rec in records:
            kind, fields = _KINDS[rec[1]]
            data = {f: v for f, v in zip(fields, rec[3:]) if v is not _ABSENT}
            out.append(Event(rec[2], kind, self.names[rec[0]], data))
        return out
