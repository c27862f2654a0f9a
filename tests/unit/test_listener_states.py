"""Per-second listener state (chaos.checkers.states): small event lists whose answer is known by
construction, and real journals checked against the measures that judged them."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.checkers.history import History, Window
from chaos.checkers.measures import resolve_measure
from chaos.checkers.states import STATES, Stretch, listener_states
from chaos.timeline import Event, Timeline

RUNS = Path(__file__).resolve().parents[1] / "data" / "runs"
FLAGSHIP = RUNS / "flagship-20261130-074937-ac9830" / "journal.jsonl"


def ev(t: float, kind: str, src: str = "L0", **data) -> Event:
    return Event(t, kind, src, data)


def stretches(events: list[Event], lid: str = "L0") -> list[tuple[float, float, str]]:
    st = listener_states(History(events)).stretches[lid]
    return [(round(s.start, 6), round(s.end, 6), s.state) for s in st]


# A listener whose whole life is known: it joins, hears live, stalls 50 ms, loses its connection
# at 4.0 s but plays its buffer until 4.4 s, reconnects with audio at 5.2 s, switches to hold
# music (reached by its player at 6.5 s), and is closed by the run at 8.0 s.
LIFE = [
    ev(0.2, "listener.join", attempt=0),
    ev(0.3, "listener.connect", attempt=0),
    ev(0.45, "listener.connected", attempt=0, status=200, server="edge-1"),
    ev(0.5, "listener.stream", title="live", serial=1, played_at=0.5),
    ev(0.5, "listener.first_audio", attempt=0, title="live"),
    ev(2.3, "listener.stall_start"),
    ev(2.35, "listener.stall_end", duration=0.05, open=False),
    ev(4.0, "listener.disconnect", reason="reset", attempt=0),
    ev(4.0, "listener.reconnect", attempt=1, delay=0.0),
    ev(4.4, "listener.stall_start"),
    ev(5.1, "listener.connected", attempt=1, status=200, server="edge-2"),
    ev(5.2, "listener.first_audio", attempt=1, title="live"),
    ev(5.2, "listener.stall_end", duration=0.8, open=False),
    ev(6.1, "listener.stream", title="hold", serial=2, played_at=6.5),
    ev(6.1, "listener.switch", **{"from": "live", "to": "hold"}),
    ev(8.0, "listener.disconnect", reason="closed", attempt=0),
    ev(8.1, "run.end", "runner"),
]


def test_a_listener_life_with_every_state_but_gone():
    assert stretches(LIFE) == [
        (0.2, 0.5, "joining"),
        (0.5, 2.3, "live"),
        (2.3, 2.35, "dead_air"),  # a stall while connected
        (2.35, 4.4, "live"),  # disconnected at 4.0, but its buffer still plays: it hears live
        (4.4, 5.2, "reconnecting"),  # nothing to play and no connection
        (5.2, 6.5, "live"),  # hold music arrived at 6.1, reached by the player at 6.5
        (6.5, 8.0, "hold"),
    ]


def test_a_second_takes_the_worst_state_in_it_and_none_outside_the_room():
    states = listener_states(History(LIFE))
    assert states.seconds == 9  # the run ended at 8.1 s
    assert states.per_second["L0"] == [
        "joining",  # [0, 1): joining, then live
        "live",
        "dead_air",  # a 50 ms stall makes the second dead air
        "live",
        "reconnecting",  # [4, 5): live until 4.4, then reconnecting
        "reconnecting",  # [5, 6): reconnecting until 5.2
        "hold",  # [6, 7): live until 6.5, then hold
        "hold",
        None,  # [8, 9): closed by the run at 8.0
    ]


def test_a_listener_that_never_heard_anything_and_gave_up():
    events = [
        ev(0.1, "listener.join", attempt=0),
        ev(0.6, "listener.join_failed", status=503, reason="http_503", latency=0.5),
        ev(0.6, "listener.reconnect", attempt=1, delay=0.3),
        ev(0.9, "listener.join", attempt=1),
        ev(1.5, "listener.join_failed", status=503, reason="http_503", latency=0.6),
        ev(3.2, "listener.gave_up", attempts=2),
        ev(5.0, "run.end", "runner"),
    ]
    assert stretches(events) == [(0.1, 0.6, "dead_air"), (0.6, 3.2, "reconnecting"), (3.2, 5.0, "gone")]
    per_second = listener_states(History(events)).per_second["L0"]
    assert per_second == ["reconnecting", "reconnecting", "reconnecting", "gone", "gone"]


def test_a_golden_ears_digital_silence_is_dead_air_while_connected():
    events = [
        ev(0.0, "listener.join", attempt=0, ear=True),
        ev(0.2, "listener.stream", title="live", serial=1, played_at=0.2),
        ev(0.2, "listener.first_audio", attempt=0, title="live"),
        ev(4.5, "ear.silence_end", duration=1.5),
        ev(6.0, "run.end", "runner"),
    ]
    assert stretches(events) == [(0.0, 0.2, "joining"), (0.2, 3.0, "live"), (3.0, 4.5, "dead_air"), (4.5, 6.0, "live")]


def test_a_slip_of_four_milliseconds_makes_its_second_dead_air():
    events = [
        ev(0.0, "listener.join", attempt=0),
        ev(0.1, "listener.stream", title="live", serial=1, played_at=0.1),
        ev(0.1, "listener.first_audio", attempt=0, title="live"),
        ev(2.504, "listener.slip", duration=0.004),
        ev(4.0, "run.end", "runner"),
    ]
    assert listener_states(History(events)).per_second["L0"] == ["joining", "live", "dead_air", "live"]


def test_counts_add_up_to_the_listeners_in_the_room_each_second():
    late = [Event(e.t + 3.0, e.kind, "L1", dict(e.data)) for e in LIFE if e.kind.startswith("listener.")]
    events = LIFE[:-1] + late + [ev(11.5, "run.end", "runner")]
    states = listener_states(History(events))
    counts = states.counts()
    assert set(counts) == set(STATES)
    in_room = [sum(counts[s][k] for s in STATES) for k in range(states.seconds)]
    # L0 is in the room in seconds 0..7; L1 (joins at 3.2, closed at 11.0) in seconds 3..10
    assert in_room == [1, 1, 1, 2, 2, 2, 2, 2, 1, 1, 1, 0]
    assert counts["reconnecting"][:9] == [0, 0, 0, 0, 1, 1, 0, 1, 1]


def test_a_hold_stream_reached_inside_dead_air_is_heard_when_the_dead_air_ends():
    """As the measures do (History.stream_time): a rebuffering player hears the new stream only
    when audio plays again."""
    events = [
        ev(0.0, "listener.join", attempt=0),
        ev(0.1, "listener.stream", title="live", serial=1, played_at=0.1),
        ev(0.1, "listener.first_audio", attempt=0, title="live"),
        ev(2.0, "listener.stall_start"),
        ev(2.5, "listener.stream", title="hold", serial=2, played_at=2.5),
        ev(3.0, "listener.stall_end", duration=1.0, open=False),
        ev(4.0, "run.end", "runner"),
    ]
    assert stretches(events) == [(0.0, 0.1, "joining"), (0.1, 2.0, "live"), (2.0, 3.0, "dead_air"), (3.0, 4.0, "hold")]


# -- a real journal: the flagship experiment (mic cut 8 s, hold music on, 20 listeners) ----------


@pytest.fixture(scope="module")
def flagship() -> History:
    return History(Timeline.read_journal(FLAGSHIP).events)


def test_flagship_every_listener_is_in_one_state_every_second_of_the_run(flagship):
    states = listener_states(flagship)
    counts = states.counts()
    assert states.seconds == 24 and len(states.per_second) == 20
    assert all(sum(counts[s][k] for s in STATES) == 20 for k in range(states.seconds))
    assert counts["joining"][0] == 20 and sum(counts["joining"][1:]) == 0
    assert sum(counts["dead_air"]) == sum(counts["reconnecting"]) == sum(counts["gone"]) == 0  # as judged: none


def test_flagship_hold_and_live_stretches_start_where_the_measures_say(flagship):
    """Each listener's hold stretch starts at the fault's start plus its own hold_music.onset, and
    its live stretch after it at the fault's end plus its own live.resume: the states and the
    verdicts read the journal alike."""
    (fault,) = flagship.faults.values()
    onset = resolve_measure("hold_music.onset")[0].compute(flagship, Window(fault.start, fault.end), fault)
    resume = resolve_measure("live.resume")[0].compute(flagship, Window(fault.end, fault.end + 5.0), fault)
    states = listener_states(flagship)
    for lid, st in states.stretches.items():
        names = [s.state for s in st]
        assert names == ["joining", "live", "hold", "live"], (lid, st)
        hold, back = st[2], st[3]
        assert hold.start == pytest.approx(fault.start + onset.samples[onset.ids.index(lid)], abs=1e-6)
        assert back.start == pytest.approx(fault.end + resume.samples[resume.ids.index(lid)], abs=1e-6)
        assert isinstance(hold, Stretch) and hold.end == back.start


def test_flagship_seconds_of_hold_music_follow_the_stretches(flagship):
    states = listener_states(flagship)
    for lid, st in states.stretches.items():
        hold = st[2]
        held = [k for k, s in enumerate(states.per_second[lid]) if s == "hold"]
        # the worst-state rule: hold in every second the hold stretch touches
        assert held == list(range(int(hold.start), int(hold.end) + 1)), lid
