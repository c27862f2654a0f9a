import oggbuild
import pytest

from chaos.listen.ogg import OggFormatError, OggTracker, opus_packet_samples, opus_title


def test_media_time_from_granules_and_first_page_toc():
    data = oggbuild.stream(1, "live", pages=30, start_granule=5_000_000)
    t = OggTracker()
    assert t.feed(data) == pytest.approx(3.0)  # 30 pages x 100 ms; first page from its TOC bytes
    assert [title for title, _ in t.switches] == ["live"]
    assert t.title == "live"
    assert t.lost_pages == 0


def test_same_result_whatever_the_chunking():
    data = oggbuild.stream(1, "live", 10) + oggbuild.stream(2, "hold", 10) + oggbuild.stream(3, "live", 10)
    whole = OggTracker()
    total_whole = whole.feed(data)
    bytewise = OggTracker()
    total_bytes = sum(bytewise.feed(data[i : i + 1]) for i in range(len(data)))
    assert total_whole == pytest.approx(3.0)
    assert total_bytes == pytest.approx(total_whole)
    assert [t for t, _ in whole.switches] == [t for t, _ in bytewise.switches] == ["live", "hold", "live"]


def test_chained_stream_switch_reports_the_new_title():
    t = OggTracker()
    t.feed(oggbuild.stream(1, "live", 5))
    t.switches.clear()
    t.feed(oggbuild.stream(2, "hold", 1))
    assert [x for x, _ in t.switches] == ["hold"] and t.title == "hold" and t.serial == 2


def test_lost_pages_are_counted_and_not_heard():
    s = 9
    data = oggbuild.page(s, 0, 0, [oggbuild.opus_head()], flags=2) + oggbuild.page(
        s, 1, 0, [oggbuild.opus_tags("live")]
    )
    data += oggbuild.page(s, 2, 4800, [oggbuild.opus_packet()] * 5)
    data += oggbuild.page(s, 6, 4800 * 5, [oggbuild.opus_packet()] * 5)  # pages 3, 4, 5 lost
    t = OggTracker()
    secs = t.feed(data)
    assert t.lost_pages == 3
    assert secs == pytest.approx(0.2)  # two pages heard, not five


def test_garbage_is_a_format_error():
    with pytest.raises(OggFormatError):
        OggTracker().feed(b"HTTP/1.0 404 Not Found\r\n\r\n" + b"x" * 64)


def test_title_absent_is_none():
    assert opus_title(oggbuild.opus_tags(None)) is None
    assert opus_title(b"not tags") is None
    assert opus_title(oggbuild.opus_tags("hold")) == "hold"


@pytest.mark.parametrize(
    "toc,extra,samples",
    [
        (19 << 3, b"", 960),  # CELT 20 ms, one frame
        ((19 << 3) | 1, b"", 1920),  # two frames
        ((16 << 3) | 3, bytes([6]), 720),  # 6 x 2.5 ms
        (1 << 3, b"", 960),  # SILK 20 ms
        (13 << 3, b"", 960),  # hybrid 20 ms
    ],
)
def test_opus_toc(toc, extra, samples):
    assert opus_packet_samples(bytes([toc]) + extra + b"\0") == samples
