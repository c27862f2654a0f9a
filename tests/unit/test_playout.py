import pytest

from chaos.listeners import Playout


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


def test_gaps_under_min_stall_are_not_dead_air_but_slip_the_clock():
    p = Playout(min_stall=0.02)
    p.add(0.1, 0.0)
    assert p.add(0.1, 0.11) is None
    assert p.stalled == pytest.approx(0.01)
    assert p.add(0.1, 0.30) == pytest.approx((0.21, 0.30))
