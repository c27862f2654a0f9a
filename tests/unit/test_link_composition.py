"""Faults on one link compose, in every pair and both orders (issue 11, point 3).

Each case runs two real fault objects through a real ledger against a faithful in-memory
Toxiproxy: the first fault starts, the second starts, one ends, then the other. While one is
still active the link must be as that one wants it (down while a down fault is active, only
its toxics on it); after both, as the experiment declares (up, no toxics); and every revert's
verification must pass. Before the fix a toxic's revert restored the `enabled` it saw when it
began: `link.down` then `link.latency` ended with the link down and "verified".
"""

from __future__ import annotations

import concurrent.futures
import itertools
import time
from pathlib import Path

import pytest
from fake_toxiproxy import FakeToxiproxy

from chaos.faults import locate, undo_network
from chaos.faults.base import make_fault
from chaos.faults.ledger import Ledger
from chaos.stack.compose import Stack, ensure_links
from chaos.stack.definition import StackDefinition
from chaos.stack.toxiproxy import Toxic, Toxiproxy

ROOT = Path(__file__).resolve().parents[2]
DEFINITION = StackDefinition.load(ROOT / "compose" / "audio-room" / "docker-compose.yml", "audio-room")
LINK = "relay-1"

# name -> parameters; "down" faults take the link down, the others are toxics
LINK_FAULTS: dict[str, dict] = {
    "link.down": {},
    "link.flap": {"down": "50ms", "up": "50ms"},
    "link.partition": {},
    "link.latency": {"latency": "100ms"},
    "link.bandwidth": {"rate": "2KB/s", "stream": "both"},
    "link.slow_close": {"delay": "1s"},
    "link.timeout": {"timeout": "1s"},
    "link.reset_peer": {},
    "link.slicer": {"average_size": 16},
    "link.limit_data": {"bytes": "10KB"},
}
DOWN = {"link.down", "link.flap"}


class FakeStack(Stack):
    def __init__(self, tox: FakeToxiproxy):
        super().__init__(DEFINITION, "deadair-fake")
        self._url = tox.url

    def toxiproxy(self) -> Toxiproxy:
        return Toxiproxy(self._url)


class FakeLocator:
    def __init__(self, tox: FakeToxiproxy):
        self.tox = tox

    def toxiproxy(self, ref, timeout):
        assert ref["project"] == "deadair-fake" and ref["service"] == "toxiproxy"
        return Toxiproxy(self.tox.url, timeout=timeout)

    def restart_toxiproxy(self, ref):
        self.tox.restart()
        return dict(DEFINITION.services["toxiproxy"]["labels"])

    def container(self, action):
        raise AssertionError("no containers here")


@pytest.fixture(scope="module")
def server():
    tox = FakeToxiproxy()
    yield tox
    tox.close()


@pytest.fixture
def fake(server, monkeypatch, tmp_path):
    monkeypatch.setenv("DEADAIR_STATE", str(tmp_path))
    server.restart()
    server.restarts = 0
    ensure_links(Toxiproxy(server.url), DEFINITION.links.values())
    monkeypatch.setattr(locate, "LOCATOR", FakeLocator(server))
    yield server
    server.restart()


class Run:
    """Faults applied and reverted as the runner does: undo on the ledger first, others wired in."""

    def __init__(self, tox: FakeToxiproxy):
        self.stack = FakeStack(tox)
        self.ledger = Ledger()
        self.ids: dict[str, int] = {}
        self.faults = {}

    def start(self, key: str, name: str) -> None:
        f = make_fault(self.stack, name, LINK, LINK_FAULTS[name], token=key, duration=10.0)
        f.prepare()
        entry = self.ledger.intend(f.describe(), f.undo())
        f.extra["others"] = lambda: self.ledger.active_others(entry)
        f.apply()
        self.ledger.mark(entry, "applied")
        self.ids[key], self.faults[key] = entry, f

    def end(self, key: str) -> None:
        err = self.ledger.revert_entry(self.ledger.entries[self.ids[key]])
        assert err is None, f"revert of {self.faults[key].describe()}: {err}"

    def toxic_names(self, key: str) -> set[str]:
        return {t.name for t in self.faults[key].toxics()} if hasattr(self.faults[key], "toxics") else set()


def link_state(tox: FakeToxiproxy) -> tuple[bool, set[str]]:
    p = Toxiproxy(tox.url).proxy(LINK)
    return p.enabled, {t.name for t in p.toxics}


def expect_only(run: Run, tox: FakeToxiproxy, key: str, name: str) -> None:
    """While only `key` is active: its down-ness and its toxics, nothing else."""
    enabled, toxics = link_state(tox)
    if name == "link.down":
        assert not enabled, f"{name} is still active but the link is up"
    elif name != "link.flap":  # a flap's link may be either way at any moment
        assert enabled, f"only {name} is active but the link is down"
    assert toxics == run.toxic_names(key), toxics


PAIRS = list(itertools.product(LINK_FAULTS, LINK_FAULTS))


@pytest.mark.parametrize("shape", ["crossed", "nested"])
@pytest.mark.parametrize("first,second", PAIRS, ids=[f"{a}+{b}" for a, b in PAIRS])
def test_two_faults_on_one_link_compose(fake, first, second, shape):
    """crossed: first [0, 10), second [5, 15). nested: first [0, 15), second [5, 10).
    Together the pairs cover both orders of every two faults."""
    run = Run(fake)
    run.start("a", first)
    run.start("b", second)
    enabled, toxics = link_state(fake)
    if {first, second} & {"link.down"}:
        assert not enabled, "a down fault is active: the link must be down"
    assert toxics == run.toxic_names("a") | run.toxic_names("b")
    ends_first, stays, stays_name = ("a", "b", second) if shape == "crossed" else ("b", "a", first)
    run.end(ends_first)
    expect_only(run, fake, stays, stays_name)
    if stays_name == "link.flap":
        time.sleep(0.2)  # a few flap periods: the flapping goes on by itself
        assert link_state(fake)[1] == set()
    run.end(stays)
    assert link_state(fake) == (True, set()), "both ended: the link must be as declared (up, no toxics)"
    assert not run.ledger.pending()
    run.ledger.close()


def test_a_flap_does_not_bring_up_a_link_that_a_down_fault_holds(fake):
    run = Run(fake)
    run.start("a", "link.flap")
    run.start("b", "link.down")
    ups = 0
    for _ in range(30):  # 0.3 s: about three of the flap's up phases
        ups += link_state(fake)[0]
        time.sleep(0.01)
    assert ups == 0, "the flap took the link up while link.down was active"
    run.end("b")
    run.end("a")
    assert link_state(fake) == (True, set())


def test_verification_checks_the_declared_state_not_a_snapshot(fake):
    """A link that something else left down (no active fault holds it) fails verification, even
    though it was down when the fault began: rollback verifies what the experiment declares."""
    Toxiproxy(fake.url).set_enabled(LINK, False)
    run = Run(fake)
    run.start("a", "link.latency")
    err = run.ledger.revert_entry(run.ledger.entries[run.ids["a"]])
    assert err is not None and "is down and no active fault holds it down" in err


def test_a_toxic_left_by_someone_else_fails_verification(fake):
    run = Run(fake)
    run.start("a", "link.latency")
    Toxiproxy(fake.url).add_toxic(LINK, Toxic("stranger", "latency", "downstream", 1.0, {"latency": 5}))
    err = run.ledger.revert_entry(run.ledger.entries[run.ids["a"]])
    assert err is not None and "stranger" in err


def test_a_stray_toxic_beside_an_active_fault_names_both(fake):
    """Verification names the stray toxic and the fault still active beside it (the message
    path that lists other active faults by name)."""
    run = Run(fake)
    run.start("a", "link.latency")
    run.start("b", "link.down")
    Toxiproxy(fake.url).add_toxic(LINK, Toxic("stranger", "latency", "downstream", 1.0, {"latency": 5}))
    err = run.ledger.revert_entry(run.ledger.entries[run.ids["a"]])
    assert err is not None and "stranger" in err and f"only {run.faults['b'].describe()} is active" in err, err


def test_a_stuck_removal_restarts_toxiproxy_and_puts_back_what_is_still_active(fake, monkeypatch):
    """The recovery path, on the fake: the removal never answers while GET /version does; the
    revert restarts Toxiproxy, recreates every link, re-applies the faults still active (another
    link's latency, this link's... nothing else), and reports the restart as an event."""
    monkeypatch.setattr(undo_network, "REMOVE_TIMEOUT", 0.5)
    run = Run(fake)
    other = make_fault(run.stack, "link.latency", "relay-2", {"latency": "80ms"}, token="o", duration=10.0)
    oid = run.ledger.intend(other.describe(), other.undo())
    other.apply()
    run.ledger.mark(oid, "applied")
    down = make_fault(run.stack, "link.down", "lb-edge-2", {}, token="d", duration=10.0)
    did = run.ledger.intend(down.describe(), down.undo())
    down.apply()
    run.ledger.mark(did, "applied")
    run.start("a", "link.bandwidth")
    fake.stuck |= run.toxic_names("a")
    events = []
    run.ledger.on_event = events.append
    t0 = time.monotonic()
    run.end("a")
    assert time.monotonic() - t0 < 5
    assert fake.restarts == 1
    assert [e["kind"] for e in events] == ["harness.toxiproxy_restart"]
    assert "every connection" in events[0]["effect"] and set(events[0]["links"]) == set(DEFINITION.links)
    proxies = Toxiproxy(fake.url).proxies()
    assert set(proxies) == set(DEFINITION.links)  # every link recreated from the labels
    assert [t.name for t in proxies["relay-2"].toxics] == [t.name for t in other.toxics()]  # still active: back
    assert proxies["lb-edge-2"].enabled is False  # still active: back down
    assert proxies[LINK].enabled and not proxies[LINK].toxics
    assert "recovered by restarting Toxiproxy" in run.ledger.entries[run.ids["a"]]["detail"]


def test_a_removal_on_a_hung_server_is_not_mistaken_for_a_stuck_proxy(fake, monkeypatch):
    """When Toxiproxy itself does not answer, restarting it would act on a guess: the revert fails
    (ledger kept for sweep) instead."""
    monkeypatch.setattr(undo_network, "REMOVE_TIMEOUT", 0.5)
    run = Run(fake)
    run.start("a", "link.latency")
    original = fake.handle

    def hung(method, path, body):
        return (-1, None) if method == "DELETE" or path == "/version" else original(method, path, body)

    fake.handle = hung  # type: ignore[method-assign]
    err = run.ledger.revert_entry(run.ledger.entries[run.ids["a"]])
    assert err is not None and "stopped answering" in err and fake.restarts == 0
    fake.handle = original  # type: ignore[method-assign]


def test_a_recovery_does_not_put_back_a_fault_that_ended_while_it_waited(fake, monkeypatch):
    """Two toxics end together; one's removal sticks, the other is reverted meanwhile. The restart
    must re-apply what is active when it happens, not what was active when the stuck revert began."""
    import threading

    monkeypatch.setattr(undo_network, "REMOVE_TIMEOUT", 1.0)
    run = Run(fake)
    run.start("a", "link.latency")
    b = make_fault(run.stack, "link.latency", "relay-2", {"latency": "80ms"}, token="b", duration=10.0)
    bid = run.ledger.intend(b.describe(), b.undo())
    b.apply()
    run.ledger.mark(bid, "applied")
    fake.stuck |= run.toxic_names("a")
    stuck = threading.Thread(target=run.end, args=("a",))
    stuck.start()
    time.sleep(0.2)
    assert run.ledger.revert_entry(run.ledger.entries[bid]) is None  # b ends while a's removal hangs
    stuck.join(timeout=30)
    assert fake.restarts == 1
    assert not Toxiproxy(fake.url).proxy("relay-2").toxics, "the restart put back a fault that had ended"


def test_a_down_fault_whose_apply_never_landed_does_not_fail_the_others_verification(fake):
    run = Run(fake)
    run.start("a", "link.latency")
    down = make_fault(run.stack, "link.down", LINK, {}, token="d", duration=10.0)
    run.ledger.intend(down.describe(), down.undo())  # "applying": its apply failed before acting
    report = run.ledger.rollback()
    assert report.ok, report.failed
    assert link_state(fake) == (True, set())


def test_faults_of_two_dead_runs_on_one_link_settle_in_one_sweep(fake):
    from chaos.faults.ledger import sweep

    first, second = Run(fake), Run(fake)
    first.start("a", "link.down")
    second.start("b", "link.latency")
    first.ledger.release()
    second.ledger.release()  # both runs died
    results = sweep()
    assert [r.ok for _, r in results] == [True, True], [r.failed for _, r in results]
    assert link_state(fake) == (True, set())


def test_deadair_toxics_that_no_ledger_owns_are_removed_when_the_last_fault_ends(fake):
    Toxiproxy(fake.url).add_toxic(LINK, Toxic("deadair_lost_downstream", "latency", "downstream", 1.0, {"latency": 5}))
    run = Run(fake)
    run.start("a", "link.down")
    run.end("a")
    assert link_state(fake) == (True, set())
    assert "deadair_lost_downstream" in run.ledger.entries[run.ids["a"]]["detail"]


def test_two_flaps_on_one_link_still_flap_and_are_down_while_either_is(fake):
    run = Run(fake)
    run.start("a", "link.flap")
    run.start("b", "link.flap")
    ups = 0
    for _ in range(60):
        ups += link_state(fake)[0]
        time.sleep(0.01)
    assert ups > 0, "two flaps held each other down for good"
    run.end("a")
    run.end("b")
    assert link_state(fake) == (True, set())


@pytest.mark.parametrize(
    "first,second", [("link.down", "link.down"), ("link.down", "link.flap"), ("link.flap", "link.flap")]
)
def test_two_down_faults_ended_together_bring_the_link_up(fake, first, second):
    """Faults that last to the method's end are reverted together, each in a worker thread. Each
    revert saw the other still active, left the link down as "held", and was marked reverted and
    verified: the run ended with the link down and nothing pending (40 of 40 tries before the
    per-target lock). Reverts of one target now take turns."""
    pool = concurrent.futures.ThreadPoolExecutor(2)
    try:
        for i in range(10):
            run = Run(fake)
            run.start(f"a{i}", first)
            run.start(f"b{i}", second)
            ends = [pool.submit(run.ledger.revert_entry, run.ledger.entries[run.ids[k]]) for k in (f"a{i}", f"b{i}")]
            assert [f.result(timeout=60) for f in ends] == [None, None]
            assert link_state(fake) == (True, set()), f"try {i}: the link is left down"
            assert not run.ledger.pending()
            run.ledger.close()
    finally:
        pool.shutdown()
