import pytest

from chaos.listen.listener import Playout


def test_steady_arrivals_make_no_dead_air():
    p = Playout()
    p.add(0.5, 0.0)  # burst at connect: half a second buffered
    for i in range(1, 50):
        assert p.add(0.1, i * 0.1) is None
    assert p.stalled == 0.0
    assert p.buffered(4.9) == pytest.approx(0.5)


def test_gap_longer_than_buffer_is_dead_air_from_dry_to_arrival():
    p = Playout()
    p.add(0.5, 10.0)  # plays until 10.5
    span = p.add(0.1, 13.0)
    assert span == pytest.approx((10.5, 13.0))
    assert p.stalled == pytest.approx(2.5)
    # after the stall, playback resumes where it paused
    assert p.dry_at() == pytest.approx(13.1)


def test_every_gap_is_dead_air_however_short():
    """Issue 12 point 1: gaps under min_stall slipped the clock but were reported as nothing, so a
    stream delivered at 85 % of real time was 15 % silent with no dead air at all."""
    p = Playout(min_stall=0.02)
    p.add(0.1, 0.0)
    assert p.add(0.1, 0.11) == pytest.approx((0.1, 0.11))  # a 10 ms slip
    assert p.stalled == pytest.approx(0.01)
    assert p.add(0.1, 0.30) == pytest.approx((0.21, 0.30))
    assert p.add(0.1, 0.3005) is None  # under a millisecond: clock noise


def test_a_stream_at_85_percent_of_real_time_is_15_percent_silent():
    p = Playout(min_stall=0.02)
    silent = 0.0
    for i in range(101):  # each 100 ms page 118 ms after the previous one
        span = p.add(0.1, i * 0.1176)
        silent += (span[1] - span[0]) if span else 0.0
    assert silent / (100 * 0.1176) == pytest.approx(0.15, abs=0.001)


def test_prebuffer_delays_playback_and_rebuffers_after_dead_air():
    p = Playout(prebuffer=0.3)
    assert p.add(0.1, 0.0) is None and not p.started  # 0.1 s buffered: not yet
    p.add(0.1, 0.1)
    p.add(0.1, 0.2)  # 0.3 s buffered: playback starts now
    assert p.started and p.start == pytest.approx(0.2) and p.dry_at() == pytest.approx(0.5)
    assert p.add(0.1, 2.0) is None and p.rebuffering  # dry since 0.5; 0.1 s is not enough to resume
    assert p.add(0.1, 2.1) is None
    span = p.add(0.1, 2.2)  # 0.3 s buffered again: playback resumes
    assert span == pytest.approx((0.5, 2.2)) and not p.rebuffering
    assert p.dry_at() == pytest.approx(2.5)


def _offsets(**kw):
    import random

    from chaos.listen.listener import ListenerSettings, StreamAddress
    from chaos.listen.swarm import Swarm
    from chaos.timeline import Timeline

    s = ListenerSettings(count=5, stream=StreamAddress("127.0.0.1", 1, "/live"), **kw)
    return Swarm(s, Timeline(), random.Random(3)).arrival_offsets()


def test_arrivals():
    assert _offsets() == [0.0] * 5
    assert _offsets(arrival="ramp", arrival_over=2.0) == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    poisson = _offsets(arrival="poisson", arrival_rate=10.0)
    assert poisson == _offsets(arrival="poisson", arrival_rate=10.0)  # seeded
    assert poisson[0] == 0.0 and all(b > a for a, b in zip(poisson, poisson[1:]))


def test_stream_urls_stay_on_loopback():
    from chaos.listen.listener import StreamAddress

    assert StreamAddress.from_url("http://127.0.0.1:8000/live").port == 8000
    for url in ("http://10.1.2.3:8000/live", "http://example.com:80/live", "ftp://127.0.0.1:1/x"):
        with pytest.raises(ValueError):
            StreamAddress.from_url(url)
