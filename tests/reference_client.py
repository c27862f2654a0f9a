"""A reference listener that shares no code with deadair's swarm, for known-answer tests.

A thread with a blocking socket, its own Ogg page scanning (find the capture pattern, read the
fields it needs by offset), its own notion of audio time (granule deltas; a page opening a
logical stream counts as 100 ms, the source's page duration) and its own dead-air arithmetic:
playback follows the wall clock from the first audio; whenever the audio received falls behind
it, that is dead air. It reconnects every 250 ms after a loss. Times are time.monotonic().
"""
from __future__ import annotations

import socket
import threading
import time


class ReferenceListener(threading.Thread):
    PAGE = 0.1  # seconds: the sources write 100 ms pages

    def __init__(self, host: str, port: int, path: str = "/live", retry: float = 0.25):
        super().__init__(daemon=True)
        self.addr, self.path, self.retry = (host, port), path, retry
        self.stop_at: float | None = None
        self.first_audio: float | None = None
        self.audio = 0.0  # seconds received
        self.paused = 0.0  # seconds of dead air so far
        self.dead_air: list[tuple[float, float]] = []  # (start, end) monotonic
        self.titles: list[tuple[float, str]] = []  # (when, title) of each new logical stream's first audio
        self.losses: list[float] = []
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self._one_connection()
            except OSError:
                pass
            self.losses.append(time.monotonic())
            self._halt.wait(self.retry)
        now = time.monotonic()
        if self.first_audio is not None:
            empty_at = self.first_audio + self.paused + self.audio
            if now > empty_at + 0.02:
                self.dead_air.append((empty_at, now))

    def _one_connection(self) -> None:
        with socket.create_connection(self.addr, timeout=5) as s:
            s.settimeout(1.0)
            s.sendall(f"GET {self.path} HTTP/1.0\r\nHost: ref\r\n\r\n".encode())
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = s.recv(4096)
                if not chunk:
                    return
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            if b" 200 " not in head.split(b"\r\n")[0]:
                return
            last_granule: dict[int, int] = {}
            pending_title = None
            while not self._halt.is_set():
                while True:
                    at = data.find(b"OggS")
                    if at < 0 or len(data) < at + 27:
                        break
                    nseg = data[at + 26]
                    if len(data) < at + 27 + nseg:
                        break
                    size = 27 + nseg + sum(data[at + 27:at + 27 + nseg])
                    if len(data) < at + size:
                        break
                    page, data = data[at:at + size], data[at + size:]
                    granule = int.from_bytes(page[6:14], "little", signed=True)
                    serial = int.from_bytes(page[14:18], "little")
                    body = page[27 + nseg:]
                    if body.startswith(b"OpusTags"):
                        i = body.find(b"title=")
                        pending_title = body[i + 6:i + 10].decode(errors="replace") if i >= 0 else None
                        continue
                    if granule <= 0:
                        continue
                    now = time.monotonic()
                    if serial not in last_granule:
                        seconds = self.PAGE
                        self.titles.append((now, pending_title or "?"))
                    else:
                        seconds = max(granule - last_granule[serial], 0) / 48000
                    last_granule[serial] = granule
                    self._heard(seconds, now)
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    continue
                if not chunk:
                    return
                data += chunk

    def _heard(self, seconds: float, now: float) -> None:
        if self.first_audio is None:
            self.first_audio = now
            self.audio = seconds
            return
        empty_at = self.first_audio + self.paused + self.audio
        if now > empty_at + 0.02:
            self.dead_air.append((empty_at, now))
        if now > empty_at:
            self.paused += now - empty_at
        self.audio += seconds

    def longest_dead_air(self, start: float, end: float) -> float:
        spans = [min(e, end) - max(s, start) for s, e in self.dead_air if e > start and s < end]
        return max(spans, default=0.0)
