"""Golden ears: a few listeners per run that decode what they hear and listen to it.

A golden ear is a listener (same join, reconnects and playout model) that also decodes its
Opus packets to PCM (libopus, through ctypes: no Python binding is needed, only the system's
libopus.so.0) and analyses the audio at the moment it would be played:
  - digital silence: 20 ms frames below -50 dBFS are dead air too, even while pages arrive
    (a muted microphone streams perfectly healthy silence);
  - which pilot tone plays: the live source carries one (5 kHz), the hold music another (6 kHz);
  - the speaker's beeps: they start on even wall-clock seconds, at 1.5, 2 or 2.5 kHz depending
    on the second ((S / 2) mod 3), so each heard beep names the second it left the microphone
    (unambiguous up to 6 s of latency). End-to-end latency = when it is played - when it left.
Containers share the host's clock, so no clock synchronisation is needed.

Events (kind, fields):
    ear.beep            emitted (wall-clock s), latency, delivery, freq
                        t: when the beep is played; latency: played - emitted (what a person
                        hears); delivery: arrived - emitted (the network and servers alone; a
                        playing listener's buffer absorbs part of a rise in delivery latency)
    ear.silence_start   -                                       t: playout time
    ear.silence_end     duration
    ear.tone            tone (live, hold, none)                 t: playout time, on change
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from chaos.errors import EnvironmentNotReady
from chaos.listen.listener import Listener
from chaos.stack.definition import labels_of

RATE = 48000
MAX_FRAME = 5760  # 120 ms at 48 kHz, Opus's longest packet


@dataclass(frozen=True)
class EarSettings:
    live_pilot: float = 5000.0
    hold_pilot: float = 6000.0
    beep_freqs: tuple[float, ...] = (1500.0, 2000.0, 2500.0)
    beep_every: int = 2  # seconds
    silence_dbfs: float = -50.0
    beep_threshold: float = 0.12  # amplitude (full scale 1.0); the beep is 0.5, speech under it ducked
    pilot_threshold: float = 0.012  # the pilots are 0.0316 (-30 dBFS)

    @classmethod
    def from_services(cls, services: dict[str, dict[str, Any]]) -> EarSettings:
        """What golden ears listen for, from the sources' `deadair.audio.*` labels (defaults otherwise)."""
        values: dict[str, Any] = {}
        for spec in services.values():
            labels = labels_of(spec)
            title = labels.get("deadair.audio.title")
            if title in ("live", "hold") and "deadair.audio.pilot_hz" in labels:
                values[f"{title}_pilot"] = float(labels["deadair.audio.pilot_hz"])
            if "deadair.audio.beep_hz" in labels:
                values["beep_freqs"] = tuple(float(f) for f in labels["deadair.audio.beep_hz"].split(","))
            if "deadair.audio.beep_every" in labels:
                values["beep_every"] = int(labels["deadair.audio.beep_every"])
        return cls(**values)


class _Opus:
    """The few libopus calls a decoder needs."""

    _lib = None

    @classmethod
    def lib(cls):
        if cls._lib is None:
            name = ctypes.util.find_library("opus") or "libopus.so.0"
            try:
                lib = ctypes.CDLL(name)
            except OSError as exc:
                raise EnvironmentNotReady(
                    "golden ears need libopus (Debian: apt-get install libopus0; macOS: brew install opus); "
                    "`deadair setup` installs it on Debian"
                ) from exc
            lib.opus_decoder_create.restype = ctypes.c_void_p
            lib.opus_decoder_create.argtypes = [ctypes.c_int32, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
            lib.opus_decode.restype = ctypes.c_int
            lib.opus_decode.argtypes = [
                ctypes.c_void_p,
                ctypes.c_char_p,
                ctypes.c_int32,
                ctypes.POINTER(ctypes.c_int16),
                ctypes.c_int,
                ctypes.c_int,
            ]
            lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
            cls._lib = lib
        return cls._lib


class OpusDecoder:
    def __init__(self, channels: int = 1):
        self.channels = channels
        err = ctypes.c_int()
        self._lib = _Opus.lib()
        self._dec = self._lib.opus_decoder_create(RATE, channels, ctypes.byref(err))
        if not self._dec or err.value != 0:
            raise RuntimeError(f"opus_decoder_create failed ({err.value})")
        self._pcm = (ctypes.c_int16 * (MAX_FRAME * channels))()

    def decode(self, packet: bytes) -> np.ndarray:
        """Mono float samples in [-1, 1] (channels averaged); empty on a corrupt packet."""
        n = self._lib.opus_decode(self._dec, packet, len(packet), self._pcm, MAX_FRAME, 0)
        if n <= 0:
            return np.zeros(0, dtype=np.float32)
        pcm = np.frombuffer(memoryview(self._pcm), dtype=np.int16, count=n * self.channels).astype(np.float32) / 32768.0
        if self.channels > 1:
            pcm = pcm.reshape(n, self.channels).mean(axis=1)
        return pcm

    def __del__(self) -> None:
        if getattr(self, "_dec", None):
            self._lib.opus_decoder_destroy(self._dec)
            self._dec = None


def amplitude(x: np.ndarray, freq: float) -> float:
    """Goertzel-style amplitude of one frequency in a block (a full-scale sine gives 1.0)."""
    if x.size == 0:
        return 0.0
    t = np.arange(x.size) * (2 * math.pi * freq / RATE)
    return float(2.0 * abs(np.dot(x, np.cos(t)) - 1j * np.dot(x, np.sin(t))) / x.size)


class Analyzer:
    """Listens to PCM in playout time; records what a person would notice."""

    BLOCK = 240  # 5 ms: the beep onset resolution
    FRAME = 960  # 20 ms: the silence resolution
    MIN_BEEP_BLOCKS = 8  # a beep is a steady tone for 40 ms of its 60 (speech formants move faster)

    def __init__(self, lid: str, timeline, clock, settings: EarSettings | None = None):
        self.lid, self.timeline, self.clock = lid, timeline, clock
        self.s = settings or EarSettings()
        n = self.BLOCK
        k = np.arange(n) * (2 * math.pi / RATE)
        self._beep_basis = np.stack([np.exp(-1j * k * f) for f in self.s.beep_freqs])  # (3, 240)
        self._beep_on = False
        self._run = 0  # consecutive loud blocks at one beep frequency
        self._run_k = -1
        self._run_start = (0.0, 0.0)  # (played, arrived) of the run's first block
        self._silent_since: float | None = None
        self._tone: str | None = None
        self._tone_votes: list[str] = []
        self._carry = np.zeros(0, dtype=np.float32)
        self._carry_t = 0.0
        self._carry_arrival = 0.0

    def feed(self, pcm: np.ndarray, t0: float, arrived: float | None = None) -> None:
        """PCM whose first sample plays at t0 and which arrived at `arrived` (on the run's clock)."""
        arrived = t0 if arrived is None else arrived
        carried = self._carry.size
        arrivals = (self._carry_arrival, arrived)
        if carried:
            t0 = self._carry_t
            pcm = np.concatenate([self._carry, pcm])
        usable = (pcm.size // self.FRAME) * self.FRAME
        self._carry, self._carry_t = pcm[usable:], t0 + usable / RATE
        self._carry_arrival = arrived if usable >= carried else arrivals[0]
        if usable == 0:
            return
        x = pcm[:usable]
        self._silence(x, t0)
        self._beeps(x, t0, carried, arrivals)
        self._tones(x, t0)

    def _silence(self, x: np.ndarray, t0: float) -> None:
        frames = x.reshape(-1, self.FRAME)
        rms = np.sqrt(np.mean(frames * frames, axis=1) + 1e-20)
        silent = 20 * np.log10(rms) < self.s.silence_dbfs
        for i, quiet in enumerate(silent):
            t = t0 + i * self.FRAME / RATE
            if quiet and self._silent_since is None:
                self._silent_since = t
                self.timeline.record("ear.silence_start", self.lid, t)
            elif not quiet and self._silent_since is not None:
                self.timeline.record("ear.silence_end", self.lid, t, duration=round(t - self._silent_since, 6))
                self._silent_since = None

    def _beeps(self, x: np.ndarray, t0: float, carried: int = 0, arrivals: tuple[float, float] = (0.0, 0.0)) -> None:
        blocks = x.reshape(-1, self.BLOCK)  # (n, 240)
        amps = 2.0 * np.abs(blocks @ self._beep_basis.T) / self.BLOCK  # (n, 3)
        best = amps.argmax(axis=1)
        need = self.MIN_BEEP_BLOCKS
        for i in range(blocks.shape[0]):
            k = int(best[i])
            a = amps[i, k]
            others = np.delete(amps[i], k).max(initial=0.0)
            loud = a > self.s.beep_threshold and a > 3 * others
            if loud and (self._run == 0 or k == self._run_k):
                if self._run == 0:
                    arrived = arrivals[0] if i * self.BLOCK < carried else arrivals[1]
                    self._run_start, self._run_k = (t0 + i * self.BLOCK / RATE, arrived), k
                self._run += 1
                if self._run == need and not self._beep_on:
                    self._beep_on = True  # a steady tone long enough: a beep, starting where the run began
                    self._on_beep(self._run_start[0], k, self._run_start[1])
            else:
                self._run = 0
                self._beep_on = False

    def _on_beep(self, heard: float, k: int, arrived: float | None = None) -> None:
        wall = self.clock.wall_origin + heard
        period = self.s.beep_every
        cycle = period * len(self.s.beep_freqs)
        # the latest even second S <= wall with (S / period) mod 3 == k
        s = math.floor(wall / period) * period
        for _ in range(len(self.s.beep_freqs) + 1):
            if (s // period) % len(self.s.beep_freqs) == k:
                break
            s -= period
        latency = wall - s
        if 0 <= latency < cycle:
            delivery = self.clock.wall_origin + (heard if arrived is None else arrived) - s
            self.timeline.record(
                "ear.beep",
                self.lid,
                heard,
                emitted=s,
                latency=round(latency, 6),
                delivery=round(delivery, 6),
                freq=self.s.beep_freqs[k],
            )

    def _tones(self, x: np.ndarray, t0: float) -> None:
        live, hold = amplitude(x, self.s.live_pilot), amplitude(x, self.s.hold_pilot)
        thr = self.s.pilot_threshold
        tone = "live" if live > thr and live > 3 * hold else "hold" if hold > thr and hold > 3 * live else "none"
        self._tone_votes = (self._tone_votes + [tone])[-2:]
        if len(self._tone_votes) == 2 and self._tone_votes[0] == self._tone_votes[1] and tone != self._tone:
            self._tone = tone
            self.timeline.record("ear.tone", self.lid, t0, tone=tone)

    def close(self, now: float) -> None:
        if self._silent_since is not None and now > self._silent_since:
            self.timeline.record(
                "ear.silence_end", self.lid, now, duration=round(now - self._silent_since, 6), open=True
            )
            self._silent_since = None


class GoldenEar(Listener):
    """A listener that decodes and analyses what it plays."""

    is_ear = True

    def __init__(self, lid: str, swarm, settings: EarSettings | None = None):
        super().__init__(lid, swarm)
        self.ogg.want_packets = True
        self.analyzer = Analyzer(lid, swarm.timeline, swarm.timeline.clock, settings)
        self._decoder: OpusDecoder | None = None
        self._serial: int | None = None
        self._pending: list[np.ndarray] = []
        self._pending_seconds = 0.0

    def on_audio(self, seconds: float, now: float) -> None:
        """Called after the playout took `seconds` of audio: decode it where it will be played.

        While the player rebuffers, decoded audio waits; it plays from the moment playback resumes."""
        for serial, packets, _samples in self.ogg.packets:
            if serial != self._serial:
                self._decoder, self._serial = OpusDecoder(self.ogg.channels), serial
            assert self._decoder is not None
            for packet in packets:
                self._pending.append(self._decoder.decode(packet))
        self._pending_seconds += seconds
        self.ogg.packets.clear()
        p = self.playout
        if p.rebuffering or not p.started or not self._pending:
            return
        pos = p.start + p.stalled + p.received - self._pending_seconds  # playout time of the first pending sample
        pcm = np.concatenate(self._pending)
        self._pending, self._pending_seconds = [], 0.0
        self.analyzer.feed(pcm, pos, now)

    def close(self, now: float) -> None:
        super().close(now)
        self.analyzer.close(now)
