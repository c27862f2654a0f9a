"""An independent reference listener, in a process of its own, for known-answer tests.

It shares no code with deadair and uses another definition of dead air: it decodes what it
receives with ffmpeg (an independent Opus decoder and Ogg demuxer) into 48 kHz PCM as the bytes
arrive, and plays the samples in real time from the first one. Silence is read from the samples:
every 20 ms frame of playout with no sample to play (the buffer is empty: playback pauses and
resumes when samples arrive) or whose samples are below -50 dBFS. No Ogg parsing, no granules,
no page sizes.

    python reference_listener.py HOST PORT PATH SECONDS OUT.json [RETRY]

Writes {"first_audio": t, "silence": [[start, end], ...], "samples": n, "connections": k} with
times on CLOCK_MONOTONIC (the same clock as deadair's journal, whose first line gives its origin).
It reconnects RETRY seconds (0.25) after a loss, with a fresh decoder, and stops after SECONDS or at
SIGTERM.
"""

from __future__ import annotations

import json
import math
import socket
import subprocess
import sys
import threading
import time
from array import array

RATE = 48000
FRAME = 960  # 20 ms
SILENT_DBFS = -50.0
FFMPEG = [
    "ffmpeg",
    "-hide_banner",
    "-loglevel",
    "error",
    "-fflags",
    "nobuffer",
    "-probesize",
    "32",
    "-analyzeduration",
    "0",
    "-f",
    "ogg",
    "-i",
    "pipe:0",
    "-f",
    "s16le",
    "-ac",
    "1",
    "-ar",
    str(RATE),
    "-flush_packets",
    "1",
    "pipe:1",
]


class Player:
    """Real-time playout of decoded samples; silence spans on the monotonic clock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.first: float | None = None
        self.received = 0  # samples
        self.played_until = 0.0  # monotonic time up to which playout has been accounted
        self.position = 0  # samples played so far
        self.silence: list[list[float]] = []
        self.levels: list[bool] = []  # per 20 ms frame received: silent?
        self.servers: list[str] = []  # X-Served-By of each connection

    def add(self, pcm: bytes, now: float) -> None:
        samples = array("h")
        samples.frombytes(pcm)
        if sys.byteorder != "little":
            samples.byteswap()
        with self.lock:
            if self.first is None:
                self.first = self.played_until = now
            self._advance(now)
            base = self.received
            self.received += len(samples)
            for k in range(base // FRAME, self.received // FRAME):  # frames completed by these samples
                lo, hi = k * FRAME - base, (k + 1) * FRAME - base
                frame = samples[max(0, lo) : hi] if hi > 0 else []
                rms = math.sqrt(sum(s * s for s in frame) / len(frame)) if frame else 0.0
                self.levels.append(rms <= 32768 * 10 ** (SILENT_DBFS / 20))

    def _advance(self, now: float) -> None:
        """Play from played_until to now: samples while there are any, else silence (paused)."""
        t = self.played_until
        while t < now - 1e-9:
            if self.position >= self.received:  # nothing to play: silence until now (playback pauses)
                self._silent(t, now)
                t = now
                break
            frame = self.position // FRAME
            step = min((FRAME - self.position % FRAME) / RATE, now - t, (self.received - self.position) / RATE)
            if frame < len(self.levels) and self.levels[frame]:
                self._silent(t, t + step)
            self.position += max(1, round(step * RATE))
            t += step
        self.played_until = now

    def _silent(self, start: float, end: float) -> None:
        if self.silence and abs(self.silence[-1][1] - start) < 1e-6:
            self.silence[-1][1] = end
        else:
            self.silence.append([start, end])

    def finish(self, now: float) -> None:
        with self.lock:
            if self.first is not None:
                self._advance(now)


STOP = threading.Event()  # SIGTERM or SIGINT: stop listening, write what was heard


def run(host: str, port: int, path: str, seconds: float, retry: float = 0.25) -> dict:
    player = Player()
    stop_at = time.monotonic() + seconds
    connections = 0
    while time.monotonic() < stop_at and not STOP.is_set():
        connections += 1
        try:
            one_connection(host, port, path, player, stop_at)
        except OSError:
            pass
        STOP.wait(retry)
    player.finish(time.monotonic())
    return {
        "first_audio": player.first,
        "silence": player.silence,
        "samples": player.received,
        "connections": connections,
        "servers": player.servers,
    }


def one_connection(host: str, port: int, path: str, player: Player, stop_at: float) -> None:
    with socket.create_connection((host, port), timeout=5) as s:
        s.settimeout(0.5)
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: reference\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                return
            head += chunk
        status, _, body = head.partition(b"\r\n\r\n")
        if b" 200 " not in status.split(b"\r\n")[0]:
            return
        for line in status.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"x-served-by":  # which edge (HAProxy's header), to compare like with like
                player.servers.append(value.strip().decode(errors="replace"))
        dec = subprocess.Popen(FFMPEG, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        reader = threading.Thread(target=pump_pcm, args=(dec, player), daemon=True)
        reader.start()
        try:
            dec.stdin.write(body)  # type: ignore[union-attr]
            while time.monotonic() < stop_at and not STOP.is_set():
                try:
                    chunk = s.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    break
                dec.stdin.write(chunk)  # type: ignore[union-attr]
        finally:
            try:
                dec.stdin.close()  # type: ignore[union-attr]
            except OSError:
                pass
            reader.join(timeout=5)
            dec.kill()
            dec.wait()


def pump_pcm(dec: subprocess.Popen, player: Player) -> None:
    carry = b""
    while True:
        data = dec.stdout.read(4096)  # type: ignore[union-attr]
        if not data:
            return
        data, now = carry + data, time.monotonic()
        whole = len(data) - len(data) % 2
        carry = data[whole:]
        player.add(data[:whole], now)


if __name__ == "__main__":
    import signal

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: STOP.set())
    host, port, path, seconds, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5]
    retry = float(sys.argv[6]) if len(sys.argv) > 6 else 0.25
    with open(out, "w") as fh:
        json.dump(run(host, port, path, seconds, retry), fh)
