"""Ogg/Opus pages read without decoding: media time, stream switches, titles, lost pages.

Icecast moves a listener between mounts by starting a new chained Ogg stream inside the
same HTTP response (new BOS page, new serial, granule restarting), and the source's
OpusTags carry its title (`title=live`, `title=hold`). So a listener can tell what it
hears, and how much of it, from page headers alone.

Page header (RFC 3533): "OggS", version, flags (1 continued, 2 BOS, 4 EOS), granule
position (int64), serial, page sequence, CRC, segment count, segment table.
Opus granule positions count 48 kHz samples (RFC 7845).
"""

from __future__ import annotations

import struct

_GRANULE = struct.Struct("<qII")  # granule, serial, page sequence (at offset 6 of a page)
HEADER_SIZE = 27
OPUS_RATE = 48000.0
FLAG_CONTINUED, FLAG_BOS, FLAG_EOS = 1, 2, 4
RESTART_BEHIND = int(10 * OPUS_RATE)  # a first page this far behind the serial's last: a new stream

# Opus TOC (RFC 6716 3.1): frame size in 48 kHz samples for each of the 32 configurations.
_FRAME_SAMPLES = (
    [480, 960, 1920, 2880] * 3  # SILK 10, 20, 40, 60 ms
    + [480, 960] * 2  # Hybrid 10, 20 ms
    + [120, 240, 480, 960] * 4  # CELT 2.5, 5, 10, 20 ms
)


class OggFormatError(ValueError):
    """The byte stream is not Ogg (lost sync): the connection is treated as broken."""


def opus_packet_samples(packet: bytes | memoryview) -> int:
    """Samples (48 kHz) in one Opus packet, from its TOC byte(s) alone."""
    if not packet:
        return 0
    toc = packet[0]
    per_frame = _FRAME_SAMPLES[toc >> 3]
    code = toc & 3
    if code == 0:
        return per_frame
    if code in (1, 2):
        return 2 * per_frame
    return per_frame * (packet[1] & 0x3F) if len(packet) > 1 else 0


def page_packets(lacing: bytes | memoryview, body: bytes | memoryview, continued: bool) -> list[memoryview]:
    """Complete packets that start on this page (a continued first packet is skipped)."""
    packets = []
    view = memoryview(body)
    start = pos = 0
    skip = continued
    for lace in lacing:
        pos += lace
        if lace < 255:
            if not skip:
                packets.append(view[start:pos])
            skip = False
            start = pos
    return packets


def opus_title(tags: bytes | bytearray | memoryview) -> str | None:
    """The `title=` comment of an OpusTags packet, or None."""
    data = bytes(tags)
    if not data.startswith(b"OpusTags") or len(data) < 16:
        return None
    try:
        vlen = int.from_bytes(data[8:12], "little")
        pos = 12 + vlen
        count = int.from_bytes(data[pos : pos + 4], "little")
        pos += 4
        for _ in range(count):
            clen = int.from_bytes(data[pos : pos + 4], "little")
            pos += 4
            comment = data[pos : pos + clen]
            pos += clen
            key, _, value = comment.partition(b"=")
            if key.lower() == b"title":
                return value.decode("utf-8", "replace")
    except (IndexError, ValueError):
        return None
    return None


class OggTracker:
    """Follows an Ogg/Opus byte stream and accounts for the audio it carries.

    `feed(data)` returns the seconds of new audio in the complete pages just received, and
    fills `switches` with (title, seconds of audio before it in this feed) for logical streams
    whose first audio page was among them (usually none). Lost pages (sequence gaps) are
    counted in `lost_pages`, and their audio is not counted as received.

    Audio is new only once: after a reconnection Icecast's burst repeats pages of the same
    logical stream that were already received, and those add nothing (the highest granule seen
    per serial survives `reset()`); otherwise quick reconnections would grow the buffer.
    """

    __slots__ = (
        "_buf",
        "serial",
        "_granule",
        "_seq",
        "_preskip",
        "_pending_title",
        "title",
        "switches",
        "lost_pages",
        "pages",
        "want_packets",
        "packets",
        "_partial",
        "channels",
        "_seen",
    )

    def __init__(self) -> None:
        self._buf = bytearray()
        self.serial: int | None = None
        self._granule = -1  # last granule of the current serial (-1: no audio yet)
        self._seq = -1
        self._preskip = 0
        self._pending_title: str | None = None
        self.title: str | None = None  # title of the stream now playing
        self.switches: list[tuple[str | None, float]] = []
        self.lost_pages = 0
        self.pages = 0
        # decoding listeners ask for the packets of each audio page: (serial, [packets], samples)
        self.want_packets = False
        self.packets: list[tuple[int, list[bytes], int]] = []
        self._partial = b""
        self.channels = 1
        self._seen: dict[int, int] = {}  # serial -> highest granule received, across connections

    def reset(self) -> None:
        """A new connection: partial pages from the old one are dropped."""
        self._buf.clear()
        self.serial = None
        self._granule = -1
        self._seq = -1

    def feed(self, data: bytes | bytearray) -> float:
        """Seconds of audio in the complete pages received so far; partial pages wait for more.

        The hot path of every listener: pages that arrive whole are parsed straight from `data`
        (no copy); only a partial page at the end is kept."""
        buf = self._buf
        if buf:
            buf += data
            data = buf
        n = len(data)
        off = 0
        samples = 0
        unpack = _GRANULE.unpack_from
        while n - off >= HEADER_SIZE:
            if not data.startswith(b"OggS", off):
                raise OggFormatError(f"lost Ogg sync at byte {off}")
            nseg = data[off + 26]
            body_at = off + HEADER_SIZE + nseg
            if n < body_at:
                break
            end = body_at + sum(data[off + HEADER_SIZE : body_at])
            if n < end:
                break
            flags = data[off + 5]
            granule, serial, seq = unpack(data, off + 6)
            self.pages += 1
            if flags & FLAG_BOS or serial != self.serial:
                self._new_stream(serial, data, off, body_at, end)
            elif granule <= 0:
                # header pages (granule 0: OpusTags) or a page where no packet ends (-1)
                if granule == 0 and data[body_at : body_at + 8] == b"OpusTags":
                    self._pending_title = opus_title(data[body_at:end])
            else:
                last = self._granule
                seen = self._seen.get(serial, -1)
                if last < 0 and 0 <= granule < seen - RESTART_BEHIND:
                    seen = -1  # far behind what was heard: a restarted source that kept its serial
                    self._seen.pop(serial, None)
                if last < 0:
                    page_samples = self._first_audio(data, off, body_at, end, flags, samples)
                    if seen >= 0:  # a reconnection to a stream already heard: only what is beyond it
                        page_samples = min(page_samples, max(0, granule - seen))
                else:
                    page_samples = granule - last
                    gap = seq - self._seq - 1
                    if gap > 0:
                        self.lost_pages += gap
                        page_samples //= gap + 1
                        self._partial = b""
                    if seen > last:
                        page_samples = min(page_samples, max(0, granule - seen))
                    if page_samples < 0:
                        page_samples = 0
                samples += page_samples
                self._granule = granule
                if granule > seen:
                    if seen < 0 and len(self._seen) > 64:
                        self._seen.clear()  # old streams: a long run must not grow this
                    self._seen[serial] = granule
                if self.want_packets and page_samples:  # a repeated page is not heard twice
                    self._collect(data, off, body_at, end, flags, serial, page_samples)
            self._seq = seq
            off = end
        if buf:
            del buf[:off]
        elif off < n:
            buf += data[off:]
        return samples / OPUS_RATE

    def _new_stream(self, serial: int, buf, off: int, body_at: int, end: int) -> None:
        self.serial = serial
        self._granule = -1
        self._pending_title = None
        self._partial = b""
        head = bytes(buf[body_at:end])
        if head.startswith(b"OpusHead") and len(head) >= 12:
            self.channels = head[9] or 1
            self._preskip = int.from_bytes(head[10:12], "little")

    def _collect(self, buf, off: int, body_at: int, end: int, flags: int, serial: int, samples: int) -> None:
        """Whole packets of an audio page, joining one continued from the previous page."""
        lacing = buf[off + HEADER_SIZE : body_at]
        body = bytes(buf[body_at:end])
        out, start, pos = [], 0, 0
        partial = self._partial if flags & FLAG_CONTINUED else b""
        for lace in lacing:
            pos += lace
            if lace < 255:
                out.append(partial + body[start:pos])
                partial, start = b"", pos
        self._partial = partial + body[start:pos] if start < pos else partial
        self.packets.append((serial, out, samples))

    def _first_audio(self, buf, off: int, body_at: int, end: int, flags: int, before: int = 0) -> int:
        """Audio in the first audio page of a logical stream, from the Opus TOC bytes."""
        self.title = self._pending_title
        self.switches.append((self.title, before / OPUS_RATE))
        lacing = bytes(buf[off + HEADER_SIZE : body_at])
        body = bytes(buf[body_at:end])
        return sum(opus_packet_samples(p) for p in page_packets(lacing, body, bool(flags & FLAG_CONTINUED)))
