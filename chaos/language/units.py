"""Durations and rates with units, as experiments write them (`300ms`, `2s`, `1m`, `50/s`)."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")
_SCALE = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(ms|s|m|h)\s*$")

_BITRATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(kbit/s|Mbit/s|Gbit/s)\s*$")
_BITS = {"kbit/s": 1e3, "Mbit/s": 1e6, "Gbit/s": 1e9}
BITRATE_HELP = "a bandwidth such as 500Mbit/s or 10Gbit/s"
DURATION_HELP = "a duration with a unit, such as 300ms, 2s, 1.5m or 1h"
RATE_HELP = "a rate such as 50/s or 600/m"


def parse_duration(text: object) -> float:
    """Seconds from `300ms`, `2s`, `1m`, `1h`. Bare numbers are refused: units prevent slips."""
    if isinstance(text, str):
        m = _DURATION.match(text)
        if m:
            return float(m.group(1)) * _SCALE[m.group(2)]
    raise ValueError(f"{text!r} is not {DURATION_HELP}")


def parse_rate(text: object) -> float:
    """Events per second from `50/s`, `600/m`."""
    if isinstance(text, str):
        m = _RATE.match(text)
        if m:
            return float(m.group(1)) / _SCALE[m.group(2)]
    raise ValueError(f"{text!r} is not {RATE_HELP}")


def parse_bitrate(text: object) -> float:
    """Bits per second from `500Mbit/s`, `10Gbit/s`, `64kbit/s` (decimal prefixes, as links are sold)."""
    if isinstance(text, str):
        m = _BITRATE.match(text)
        if m:
            return float(m.group(1)) * _BITS[m.group(2)]
    raise ValueError(f"{text!r} is not {BITRATE_HELP}")


def format_duration(seconds: float) -> str:
    """Short human form used in reports: `850ms`, `2.31s`, `inf`."""
    if seconds != seconds:  # NaN
        return "n/a"
    if seconds == float("inf"):
        return "inf"
    if abs(seconds) < 1.0:
        return f"{seconds * 1000:.0f}ms"
    return f"{seconds:.2f}s"
