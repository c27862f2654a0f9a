import pytest

from chaos.language.units import format_duration, parse_duration, parse_rate


@pytest.mark.parametrize("text,seconds", [("300ms", 0.3), ("2s", 2.0), ("1.5m", 90.0), ("1h", 3600.0), (" 8 s ", 8.0)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["5", 5, "5 sec", "-1s", "s", "", None, "1.s", "2x"])
def test_bad_durations_are_refused(bad):
    with pytest.raises(ValueError, match="duration with a unit"):
        parse_duration(bad)


def test_rates():
    assert parse_rate("50/s") == 50
    assert parse_rate("600/m") == 10
    with pytest.raises(ValueError):
        parse_rate("50")


def test_format_duration():
    assert format_duration(0.259) == "259ms"
    assert format_duration(2.3149) == "2.31s"
    assert format_duration(float("inf")) == "inf"
