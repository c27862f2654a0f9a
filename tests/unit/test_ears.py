"""Golden ears against a signal whose answer is known: encoded with libopus, decoded, analysed."""

import ctypes
import ctypes.util
import math

import numpy as np
import pytest

from chaos.listen.ears import Analyzer, EarSettings, OpusDecoder
from chaos.timeline import Timeline

RATE = 48000


class _Encoder:
    def __init__(self):
        self.lib = ctypes.CDLL(ctypes.util.find_library("opus") or "libopus.so.0")
        self.lib.opus_encoder_create.restype = ctypes.c_void_p
        self.lib.opus_encoder_create.argtypes = [
            ctypes.c_int32,
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_int),
        ]
        self.lib.opus_encode.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_int16),
            ctypes.c_int,
            ctypes.c_char_p,
            ctypes.c_int32,
        ]
        err = ctypes.c_int()
        self.enc = self.lib.opus_encoder_create(RATE, 1, 2049, ctypes.byref(err))  # OPUS_APPLICATION_AUDIO
        assert err.value == 0

    def encode(self, pcm: np.ndarray) -> list[bytes]:
        out = []
        samples = (np.clip(pcm, -1, 1) * 32767).astype(np.int16)
        buf = ctypes.create_string_buffer(4000)
        for i in range(0, samples.size - 959, 960):
            frame = np.ascontiguousarray(samples[i : i + 960])
            n = self.lib.opus_encode(self.enc, frame.ctypes.data_as(ctypes.POINTER(ctypes.c_int16)), 960, buf, 4000)
            assert n > 0
            out.append(buf.raw[:n])
        return out


class _Clock:
    def __init__(self, wall_origin: float):
        self.wall_origin = wall_origin


def signal(seconds: float, pilot: float, beeps: dict[float, float], silence: tuple[float, float] | None = None):
    t = np.arange(int(seconds * RATE)) / RATE
    x = 0.0316 * np.sin(2 * math.pi * pilot * t)
    for start, freq in beeps.items():
        m = (t >= start) & (t < start + 0.06)
        x[m] += 0.5 * np.sin(2 * math.pi * freq * (t[m] - start))
    if silence:
        x[(t >= silence[0]) & (t < silence[1])] = 0.0
    return x


def analyse(x: np.ndarray, wall_origin: float) -> Timeline:
    tl = Timeline()
    packets = _Encoder().encode(x)
    dec = OpusDecoder(1)
    ear = Analyzer("E1", tl, _Clock(wall_origin))
    t = 0.0
    for i in range(0, len(packets), 5):  # 100 ms pages, fed as they would arrive
        pcm = np.concatenate([dec.decode(p) for p in packets[i : i + 5]])
        ear.feed(pcm, t)
        t += pcm.size / RATE
    ear.close(t)
    return tl


def test_beeps_name_their_second_and_give_the_latency():
    # playout t=1.0 is wall 1004.5: a 2 kHz beep belongs to second 1004 ((1004/2) mod 3 == 1): latency 0.5 s
    tl = analyse(signal(4.0, 5000, {1.0: 2000.0, 3.0: 2500.0}), wall_origin=1003.5)
    beeps = tl.of_kind("ear.beep")
    assert [b.data["emitted"] for b in beeps] == [1004, 1006]
    for b in beeps:
        # libopus adds its own delay (6.5 ms pre-skip); onsets resolve to 5 ms blocks
        assert b.data["latency"] == pytest.approx(0.5, abs=0.015), b


def test_pilot_tells_live_from_hold_and_silence_is_found():
    tl = analyse(signal(3.0, 6000, {}, silence=(1.0, 1.8)), wall_origin=0.0)
    tones = [e.data["tone"] for e in tl.of_kind("ear.tone")]
    assert tones[0] == "hold"
    ends = tl.of_kind("ear.silence_end")
    assert len(ends) == 1 and ends[0].data["duration"] == pytest.approx(0.8, abs=0.05)
    assert tl.of_kind("ear.silence_start")[0].t == pytest.approx(1.0, abs=0.03)
    live = analyse(signal(2.0, 5000, {}), wall_origin=0.0)
    assert [e.data["tone"] for e in live.of_kind("ear.tone")] == ["live"]


def test_speech_like_noise_at_the_beep_frequency_is_not_a_beep():
    rng = np.random.default_rng(1)
    x = signal(3.0, 5000, {}) + 0.08 * rng.standard_normal(3 * RATE)
    assert not analyse(x, wall_origin=0.0).of_kind("ear.beep")


def test_short_bursts_at_beep_frequencies_are_not_beeps():
    """Speech formants pass through 1.5-2.5 kHz for a few milliseconds; a beep holds for 60 ms."""
    t = np.arange(3 * RATE) / RATE
    x = signal(3.0, 5000, {})
    for start in (0.5, 1.2, 2.1):  # 20 ms bursts, louder than any beep
        m = (t >= start) & (t < start + 0.02)
        x[m] += 0.7 * np.sin(2 * math.pi * 2000 * (t[m] - start))
    assert not analyse(x, wall_origin=0.0).of_kind("ear.beep")


def test_settings_defaults_match_the_stack_labels():
    s = EarSettings()
    assert (s.live_pilot, s.hold_pilot, s.beep_every) == (5000.0, 6000.0, 2)
