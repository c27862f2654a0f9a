"""Simulated listeners: they stream the room's audio and record what a person would hear.

Each listener is an asyncio Protocol (no task per connection, no stream reader), reads
Ogg pages without decoding (chaos.listen.ogg), and runs a playout model: audio plays in real
time from the first page; when the audio received falls behind the wall clock the
buffer is empty and the listener hears dead air. Connection losses are retried with a
backoff schedule like a real app's. Everything is recorded on the run's timeline.

Events (kind, fields):
    listener.join          attempt                    join request sent to room-api (or, joining
                                                      directly, the first stream connection starts)
    listener.joined        status, latency            room-api answered the join with a stream URL
    listener.join_failed   status, reason, latency    room-api refused or did not answer
    listener.connect       attempt                    a stream connection attempt starts
    listener.connected     attempt, status, server    HTTP response headers received (server: the
                                                      load balancer's X-Served-By, if any)
    listener.first_audio   attempt, title             first audio a connection plays: on the first
                                                      connection, when playback starts (the page that
                                                      fills `prebuffer`); on a later one, its first
                                                      new audio page
    listener.stream        title, serial, played_at   first audio page of a logical stream (t: its
                                                      arrival; played_at: when the player reaches it,
                                                      after the audio still buffered ahead of it)
    listener.switch        from, to                   the stream title changed (hold <-> live)
    listener.stall_start   -                          the playout buffer ran dry (dead air)
    listener.stall_end     duration, open             audio again (open: still dry at the end)
    listener.slip          duration                   a gap shorter than min_stall (one Opus frame):
                                                      too short for a stall event, still silence
    swarm.health           lag_max, cpu, listeners    the swarm's own event-loop lag (its timing error)
                                                      and its process's CPU, once a second
    listener.disconnect    reason, attempt            eof, reset, timeout, refused, http_404, ...
    listener.reconnect     attempt, delay             a retry is scheduled after `delay`
    listener.gave_up       attempts                   the backoff schedule is exhausted
    listener.lost_pages    count                      page-sequence gaps (audio lost in transit)
    listener.lost          shard, why                 the load generator lost the listener (a distributed
                                                      swarm's worker died or went silent); t: the last
                                                      moment its events are known (chaos.listen.shards)
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from time import monotonic as _monotonic
from typing import Protocol
from urllib.parse import urlsplit

from chaos.language.model import DEFAULT_BACKOFF
from chaos.listen.ogg import OggFormatError, OggTracker
from chaos.stack.addresses import guard
from chaos.timeline import Timeline

MIN_SLIP = 0.001  # gaps shorter than this are clock noise, not silence
HEALTH_EVERY = 1.0  # the swarm reports its own health this often
LAG_TICK = 0.05  # ... measured by a timer that should fire this often


@dataclass(frozen=True)
class PlayoutSettings:
    """How the simulated player turns received audio into heard audio."""

    min_stall: float = 0.02  # shorter gaps (under one Opus frame) are not counted as dead air
    read_timeout: float = 10.0  # no bytes for this long: the client declares the connection lost
    # Request sent, no response yet: a real player gives up and retries. ExoPlayer's default (its
    # read timeout, which covers the wait for the response head) is 8 s. Without it a listener
    # whose request sits in a dead path waits for the first proxy timeout on the way instead.
    response_timeout: float = 8.0
    connect_timeout: float = 5.0
    prebuffer: float = 0.0  # audio buffered before playback starts, and again after dead air


@dataclass(frozen=True)
class StreamAddress:
    host: str
    port: int
    path: str

    @classmethod
    def from_url(cls, url: str) -> StreamAddress:
        """Parse a stream URL; the stack-address policy allows only loopback (the stack's published
        links); GuardError (a ValueError) otherwise."""
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"not an http://host:port/path stream URL: {url!r}")
        host = parts.hostname
        guard(host, who="stream URL host", aliases=False)
        return cls(host, parts.port, parts.path or "/")


@dataclass(frozen=True)
class ListenerSettings:
    """Where listeners go. With `join_api` and `room`, each listener joins through room-api and
    streams from the URL it is given; otherwise it streams from `stream` directly."""

    count: int
    stream: StreamAddress | None = None
    join_api: tuple[str, int] | None = None
    room: str | None = None
    backoff: Sequence[float] = DEFAULT_BACKOFF
    playout: PlayoutSettings = field(default_factory=PlayoutSettings)
    join_timeout: float = 5.0
    arrival: str = "all"  # all at once, ramp (evenly over `arrival_over`), poisson (at `arrival_rate`),
    arrival_over: float = 0.0  # rising (from `arrival_rate` to `arrival_rate_to`: chaos.language.arrival)
    arrival_rate: float = 0.0
    arrival_rate_to: float = 0.0
    ears: int = 0  # how many of the listeners decode what they hear (chaos.listen.ears)
    source_addresses: tuple[str, ...] = ()  # connect from these, spread by listener (ephemeral ports are per address)


class Playout:
    """Real-time playout of received audio; reports the spans where the buffer ran dry.

    Playback starts once `prebuffer` seconds are buffered (0: at the first page) and, after the
    buffer runs dry, resumes once it holds `prebuffer` seconds again, as a real player rebuffers.
    """

    __slots__ = (
        "started",
        "start",
        "received",
        "stalled",
        "stall_open_at",
        "min_stall",
        "prebuffer",
        "_stall_from",
        "_base",
        "_residual",
    )

    def __init__(self, min_stall: float = 0.02, prebuffer: float = 0.0):
        self.started = False
        self.start = 0.0  # when playback began
        self.received = 0.0  # seconds of audio received so far
        self.stalled = 0.0  # seconds spent in dead air so far (playback paused)
        self.stall_open_at: float | None = None  # set once a stall has been reported as started
        self.min_stall = min_stall
        self.prebuffer = prebuffer
        self._stall_from: float | None = None  # the buffer ran dry here and playback has not resumed
        self._base = 0.0
        self._residual = 0.0  # sub-millisecond gaps not reported yet

    def dry_at(self) -> float:
        """When the buffer runs (or ran) dry if no more audio arrives."""
        if self._stall_from is not None:
            return self._stall_from
        return self.start + self.stalled + self.received

    @property
    def rebuffering(self) -> bool:
        return self._stall_from is not None

    def add(self, seconds: float, now: float) -> tuple[float, float] | None:
        """Audio arrived at `now`. Returns (start, end) of a dead-air span it ended, if any: every
        gap of at least MIN_SLIP, however short (a stream delivered at 85 % of real time is 15 %
        silent in gaps of 18 ms; `min_stall` decides only how a listener reports a gap)."""
        if not self.started:
            self.received += seconds
            if seconds > 0.0 and self.received >= self.prebuffer - 1e-9:
                self.started = True
                self.start = now
            return None
        if seconds <= 0.0:
            return None
        if self._stall_from is None:
            dry = self.start + self.stalled + self.received
            if now <= dry:
                self.received += seconds
                return None
            self._stall_from, self._base = dry, self.received
        self.received += seconds
        if self.received - self._base < self.prebuffer - 1e-9:
            return None  # still rebuffering
        dry, self._stall_from = self._stall_from, None
        self.stalled += now - dry
        self.stall_open_at = None
        if now - dry >= MIN_SLIP:
            return (dry, now)
        self._residual += now - dry  # sub-millisecond gaps add up; reported once they reach MIN_SLIP
        if self._residual >= MIN_SLIP:
            gap, self._residual = self._residual, 0.0
            return (now - gap, now)
        return None

    def buffered(self, now: float) -> float:
        return self.dry_at() - now if self.started else 0.0


class SwarmLike(Protocol):
    """What a listener needs of the swarm that runs it (chaos.listen.swarm.Swarm)."""

    timeline: Timeline
    settings: ListenerSettings
    rx_bytes: int  # bytes every listener received (a distributed swarm's bandwidth per worker)

    def schedule_retry(self, listener: Listener) -> None: ...


class Listener(asyncio.Protocol):
    """One simulated listener. Reused across its reconnections."""

    is_ear = False  # golden ears (chaos.listen.ears) decode what they hear

    def __init__(self, lid: str, swarm: SwarmLike):
        self.lid = lid
        self.swarm = swarm
        self.timeline = swarm.timeline
        self.ogg = OggTracker()
        self.playout = Playout(swarm.settings.playout.min_stall, swarm.settings.playout.prebuffer)
        self.transport: asyncio.Transport | None = None
        self.attempt = 0  # tries since the last successful audio
        self.connected = False  # HTTP 200 received on the current connection
        self.audio_on_connection = False
        self.last_data = 0.0
        self.closing_reason: str | None = None
        self._head = bytearray()
        self.gave_up = False
        self.stopped = False
        self.title: str | None = None
        self._lost_reported = 0
        self.stream: StreamAddress | None = swarm.settings.stream  # learned from the join when None
        self._origin = swarm.timeline.clock.origin
        self.listener_id: str | None = None

    # -- connection lifecycle ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.closing_reason = None
        self._head.clear()
        self.ogg.reset()
        self.connected = False
        self.audio_on_connection = False
        self.last_data = self.timeline.clock.now()
        s = self.stream
        assert s is not None
        transport.write(  # type: ignore[attr-defined]
            f"GET {s.path} HTTP/1.0\r\nHost: {s.host}:{s.port}\r\nUser-Agent: deadair-listener\r\n"
            "Icy-MetaData: 0\r\n\r\n".encode()
        )

    def _heard(self, now: float) -> None:
        """`listener.first_audio`: the first audio this connection plays. On the first connection
        that is when playback starts (with `prebuffer`, the page that fills it: a listener that got
        a page and never enough to play heard nothing, and stays joining); on a later one, its first
        new audio, the player already running."""
        self.audio_on_connection = True
        self.timeline.record("listener.first_audio", self.lid, now, attempt=self.attempt, title=self.ogg.title)
        self.attempt = 0

    def data_received(self, data: bytes) -> None:
        now = _monotonic() - self._origin
        self.swarm.rx_bytes += len(data)
        self.last_data = now
        if not self.connected:
            data = self._response_head(data, now)
            if not data:
                return
        ogg = self.ogg
        try:
            seconds = ogg.feed(data)
        except OggFormatError:
            self._fail("bad_ogg")
            return
        if ogg.switches:
            self._on_streams(now)
        if seconds > 0.0:
            p = self.playout
            if not self.audio_on_connection and p.started:  # a later connection: the player is running
                self._heard(now)
            if p.started and p.stall_open_at is None:
                dry = p.dry_at()
                if now - dry >= p.min_stall:
                    p.stall_open_at = dry  # once, even while a prebuffer refills
                    self.timeline.record("listener.stall_start", self.lid, dry)
            span = p.add(seconds, now)
            if not self.audio_on_connection and p.started:  # the first: heard once the prebuffer is in
                self._heard(now)
            if span is not None:
                gap = round(span[1] - span[0], 6)
                if gap >= p.min_stall:
                    self.timeline.record("listener.stall_end", self.lid, now, duration=gap, open=False)
                else:
                    self.timeline.record("listener.slip", self.lid, now, duration=gap)
            if ogg.want_packets:
                self.on_audio(seconds, now)
        elif ogg.packets:
            ogg.packets.clear()
        if ogg.lost_pages != self._lost_reported:
            self.timeline.record("listener.lost_pages", self.lid, now, count=ogg.lost_pages - self._lost_reported)
            self._lost_reported = ogg.lost_pages

    def _response_head(self, data: bytes, now: float) -> bytes:
        """Collect the HTTP response head; returns the body bytes that came with it (or b"")."""
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0:
            if len(self._head) > 16384:
                self._fail("bad_response")
            return b""
        lines = bytes(self._head[:end]).split(b"\r\n")
        parts = lines[0].split()
        status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        if status != 200:
            self._fail(f"http_{status}" if status else "bad_response")
            return b""
        server = None
        for line in lines[1:]:
            if line[:13].lower() == b"x-served-by: ":
                server = line[13:].decode("latin-1").strip()
        self.connected = True
        sock = self.transport.get_extra_info("sockname") if self.transport else None
        self.timeline.record(
            "listener.connected",
            self.lid,
            now,
            attempt=self.attempt,
            status=status,
            server=server,
            port=sock[1] if sock else None,
        )
        body = bytes(self._head[end + 4 :])
        self._head.clear()
        return body

    def on_audio(self, seconds: float, now: float) -> None:
        """Hook for decoding listeners: `seconds` of audio were just added to the playout."""

    def _on_streams(self, now: float) -> None:
        p = self.playout
        for title, before in self.ogg.switches:
            # the player reaches this stream's first audio after what is still buffered ahead of it
            ahead = max(0.0, p.dry_at() - now) if p.started and not p.rebuffering else 0.0
            self.timeline.record(
                "listener.stream",
                self.lid,
                now,
                title=title,
                serial=self.ogg.serial,
                played_at=round(now + ahead + before, 6),
            )
            if title != self.title:
                if self.title is not None or title is not None:
                    self.timeline.record("listener.switch", self.lid, now, **{"from": self.title, "to": title})
                self.title = title
        self.ogg.switches.clear()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        reason = self.closing_reason
        if reason is None:
            if exc is None:
                reason = "eof"
            elif isinstance(exc, ConnectionResetError):
                reason = "reset"
            else:
                reason = type(exc).__name__
        self._disconnected(reason)

    def _fail(self, reason: str) -> None:
        self.closing_reason = reason
        if self.transport is not None:
            self.transport.abort()

    def _disconnected(self, reason: str) -> None:
        now = self.timeline.clock.now()
        self.connected = False
        self.timeline.record("listener.disconnect", self.lid, now, reason=reason, attempt=self.attempt)
        if self.stopped:
            return
        self.swarm.schedule_retry(self)

    # -- watchdog ---------------------------------------------------------------------------------
    def check(self, now: float) -> None:
        """Called about twice a second: read timeouts and stalls that are still open."""
        playout = self.swarm.settings.playout
        if self.transport is not None:
            if not self.connected and now - self.last_data > playout.response_timeout:
                self._fail("response_timeout")
            elif now - self.last_data > playout.read_timeout:
                self._fail("timeout")
        p = self.playout
        if p.started and p.stall_open_at is None and now - p.dry_at() >= p.min_stall:
            p.stall_open_at = p.dry_at()
            self.timeline.record("listener.stall_start", self.lid, p.dry_at())

    def close(self, now: float) -> None:
        """End of the run: close the connection and close any open stall at `now`."""
        self.stopped = True
        p = self.playout
        if p.started and now - p.dry_at() >= p.min_stall:
            if p.stall_open_at is None:
                self.timeline.record("listener.stall_start", self.lid, p.dry_at())
            self.timeline.record("listener.stall_end", self.lid, now, duration=round(now - p.dry_at(), 6), open=True)
        if self.transport is not None:
            self.closing_reason = "closed"
            self.transport.abort()
