"""Synthetic Ogg/Opus streams for unit tests, written from RFC 3533 / RFC 7845 (with CRCs)."""

from __future__ import annotations

import struct


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_TABLE = _crc_table()


def crc(data: bytes) -> int:
    c = 0
    for b in data:
        c = ((c << 8) ^ _TABLE[((c >> 24) & 0xFF) ^ b]) & 0xFFFFFFFF
    return c


def page(serial: int, seq: int, granule: int, packets: list[bytes], flags: int = 0) -> bytes:
    lacing = b""
    for p in packets:
        n = len(p)
        lacing += b"\xff" * (n // 255) + bytes([n % 255])
    body = b"".join(packets)
    header = struct.pack("<4sBBqIIIB", b"OggS", 0, flags, granule, serial, seq, 0, len(lacing)) + lacing
    raw = header + body
    c = crc(raw)
    return raw[:22] + struct.pack("<I", c) + raw[26:]


def opus_head(preskip: int = 312) -> bytes:
    return b"OpusHead" + struct.pack("<BBHIhB", 1, 1, preskip, 48000, 0, 0)


def opus_tags(title: str | None) -> bytes:
    vendor = b"deadair-test"
    comments = [b"encoder=test"] + ([f"title={title}".encode()] if title is not None else [])
    out = b"OpusTags" + struct.pack("<I", len(vendor)) + vendor + struct.pack("<I", len(comments))
    for c in comments:
        out += struct.pack("<I", len(c)) + c
    return out


def opus_packet(frame_ms: int = 20) -> bytes:
    """A CELT-only packet (code 0, one frame): TOC config 16..19 = 2.5/5/10/20 ms."""
    config = {2.5: 16, 5: 17, 10: 18, 20: 19}[frame_ms]
    return bytes([config << 3]) + b"\x00" * 40


def stream(
    serial: int, title: str | None, pages: int, start_granule: int = 0, frames_per_page: int = 5, first_seq: int = 2
) -> bytes:
    """Headers, then `pages` audio pages of 5 x 20 ms (100 ms) each."""
    out = page(serial, 0, 0, [opus_head()], flags=2) + page(serial, 1, 0, [opus_tags(title)])
    granule = start_granule
    for i in range(pages):
        granule += 960 * frames_per_page
        out += page(serial, first_seq + i, granule, [opus_packet(20)] * frames_per_page)
    return out
