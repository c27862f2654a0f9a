"""The distributed swarm's runner side (chaos.listen.shards.fleet) with shards in this process:
arrivals split over shards with the one-process ids, events merged on one timeline, a lost shard's
listeners reported as lost by the load generator and the verdict saying so. The same fleet on a
real multi-node Ray cluster: tests/integration/test_swarm_cluster.py."""

from __future__ import annotations

import asyncio
import random

from stream_server import StreamServer

from chaos.checkers.history import History, Window
from chaos.checkers.verdicts import check
from chaos.listen.listener import ListenerSettings, StreamAddress
from chaos.listen.shards.engine import InProcessEngine
from chaos.listen.shards.fleet import ShardedSwarm
from chaos.listen.swarm import Swarm
from chaos.timeline import Timeline


def _fleet(port: int, count: int, workers: int, sample: int = 0) -> tuple[ShardedSwarm, Timeline]:
    tl = Timeline()
    settings = ListenerSettings(count=count, stream=StreamAddress("127.0.0.1", port, "/live"))
    return ShardedSwarm(settings, tl, InProcessEngine(), workers, random.Random(3), sample=sample), tl


def test_listeners_are_spread_over_shards_with_the_one_process_ids():
    async def main(port: int) -> tuple[ShardedSwarm, Timeline]:
        fleet, tl = _fleet(port, 9, 3, sample=2)
        await fleet.start()
        assert await fleet.wait_all_hearing(10) == 9
        await asyncio.sleep(0.6)
        await fleet.stop()
        return fleet, tl

    with StreamServer() as server:
        fleet, tl = asyncio.run(main(server.port))
    one = Swarm(ListenerSettings(count=9, stream=StreamAddress("127.0.0.1", 1, "/")), Timeline())
    assert sorted(fleet.listeners) == sorted(lst.lid for lst in one.listeners)
    assert sorted(len(st.members) for st in fleet.shards) == [3, 3, 3]
    h = History(tl.events)
    assert sorted(h.listeners) == sorted(fleet.listeners)
    assert all(h.first_audio(lid) is not None for lid in h.listeners)
    shards = [e for e in tl.events if e.kind == "swarm.shard"]
    assert len(shards) == 3 and all(abs(e.data["clock_offset"]) <= e.data["clock_uncertainty"] + 1e-3 for e in shards)
    # sampled listeners ship every event (connection attempts included); the others digests only
    connects = {e.src for e in tl.events if e.kind == "listener.connect"}
    assert len(connects) == 2, connects
    assert {e.src for e in tl.events if e.kind == "swarm.health"} == {"swarm/0", "swarm/1", "swarm/2"}


def test_a_lost_shard_names_its_listeners_and_the_verdict_is_unknown_not_dead_air():
    async def main(port: int) -> tuple[ShardedSwarm, Timeline]:
        fleet, tl = _fleet(port, 8, 2)
        await fleet.start()
        assert await fleet.wait_all_hearing(10) == 8
        fleet.shards[1].handle.kill()
        await asyncio.sleep(2.0)  # the pump finds it within a flush
        await fleet.stop()
        tl.record("run.end", "runner")
        return fleet, tl

    with StreamServer() as server:
        fleet, tl = asyncio.run(main(server.port))
    lost = [e for e in tl.events if e.kind == "swarm.shard_lost"]
    assert len(lost) == 1 and lost[0].data["shard"] == 1 and lost[0].data["listeners"] == 4
    h = History(tl.events)
    assert set(h.lost) == set(fleet.shards[1].members)
    # the lost listeners' last events are their last flush's: no open dead air runs to the end
    spans = h.dead_air_spans()
    assert all(sum(e - s for s, e in spans[lid]) < 1.0 for lid in h.lost)
    w = Window(0.0, h.end)
    v = check(h, "dead_air", "max < 1s", w, "during")
    assert v.outcome == "unknown", v.note
    assert "4 listener(s) lost by the load generator" in v.note and "shard 1" in v.note
    assert v.summary["count"] == 4  # judged on the shard that kept listening
    assert (
        check(h, "dead_air", "max < 1s", w, "abort", lag_rule=False).outcome == "pass"
    )  # guardrails act on what they see
    # a verdict the others already fail stays a fail, and still names the lost
    v = check(h, "dead_air", "max < 0s", w, "during")
    assert v.outcome == "fail" and "lost by the load generator" in v.note


def test_a_worker_over_its_bandwidth_budget_makes_a_fail_unknown_not_a_pass():
    async def main(port: int) -> Timeline:
        tl = Timeline()
        settings = ListenerSettings(count=4, stream=StreamAddress("127.0.0.1", port, "/live"))
        fleet = ShardedSwarm(settings, tl, InProcessEngine(), 1, random.Random(3), bandwidth=1000.0)  # 1 kbit/s
        await fleet.start()
        await fleet.wait_all_hearing(10)
        await asyncio.sleep(1.2)
        await fleet.stop()
        tl.record("run.end", "runner")
        return tl

    with StreamServer() as server:
        tl = asyncio.run(main(server.port))
    limits = [e for e in tl.events if e.kind == "swarm.limit"]
    assert limits and all(e.data["rx_bps"] > e.data["budget_bps"] == 1000.0 for e in limits)
    h = History(tl.events)
    w = Window(0.0, h.end)
    failing = check(h, "dead_air", "max < 0s", w, "during")
    assert failing.outcome == "unknown" and "over its budget" in failing.note
    assert check(h, "dead_air", "max < 5s", w, "during").outcome == "pass"  # extra dead air cannot hide dead air


def test_a_host_that_cannot_hold_a_shard_says_which_limit():
    from chaos.listen.shards.limits import FD_SPARE, HostLimits

    small = HostLimits(open_files=1000, ports_per_source=28_232)
    assert small.problem(1000 - FD_SPARE, 0) is None
    assert "open files" in (small.problem(1000 - FD_SPARE + 1, 0) or "")
    big = HostLimits(open_files=10**6, ports_per_source=100)
    assert "ephemeral ports" in (big.problem(101, 0) or "")
    assert big.problem(200, 2) is None  # two source addresses, twice the ports


def test_shards_on_one_host_share_its_ephemeral_ports(monkeypatch):
    import pytest

    from chaos.errors import EnvironmentNotReady
    from chaos.listen.shards import limits

    monkeypatch.setattr(limits.HostLimits, "here", classmethod(lambda cls: cls(open_files=10**6, ports_per_source=100)))

    async def main() -> None:
        tl = Timeline()
        settings = ListenerSettings(count=150, stream=StreamAddress("127.0.0.1", 9, "/live"))
        fleet = ShardedSwarm(settings, tl, InProcessEngine(), 2, random.Random(3))  # 75 each: each fits alone
        with pytest.raises(EnvironmentNotReady, match="2 shards on .* 150 listeners"):
            await fleet.start()
        settings = ListenerSettings(
            count=150, stream=StreamAddress("127.0.0.1", 9, "/live"), source_addresses=("127.0.0.2", "127.0.0.3")
        )
        fleet = ShardedSwarm(settings, tl, InProcessEngine(), 2, random.Random(3))
        await fleet.start()  # two source addresses: 200 ports
        await fleet.stop()

    asyncio.run(main())


def test_a_cancelled_sync_still_merges_the_batch_the_shard_handed_over():
    async def main(port: int) -> tuple[ShardedSwarm, Timeline]:
        fleet, tl = _fleet(port, 6, 2)
        await fleet.start()
        for _ in range(20):  # cancel waiters mid-flight while listeners join and play
            waiter = asyncio.ensure_future(fleet.sync())
            await asyncio.sleep(0)
            waiter.cancel()
            await asyncio.sleep(0.02)
        assert await fleet.wait_all_hearing(10) == 6
        await fleet.stop()
        return fleet, tl

    with StreamServer() as server:
        fleet, tl = asyncio.run(main(server.port))
    assert not [e for e in tl.events if e.kind == "swarm.shard_lost"]
    h = History(tl.events)
    assert sorted(h.listeners) == sorted(fleet.listeners)
    assert all(h.first_audio(lid) is not None for lid in h.listeners)


def test_a_join_steps_crowd_on_shards_has_the_one_process_ids_and_cancels_what_never_joined():
    async def main(port: int):
        fleet, tl = _fleet(port, 2, 2)
        await fleet.start()
        crowd = fleet.add_crowd(3, [0.0, 0.0, 0.1, 30.0], key="3.0")
        await asyncio.sleep(0.5)
        never = fleet.cancel_crowds("the method stopped")
        await fleet.stop()
        tl.record("run.end", "runner")
        return fleet, tl, never, crowd

    with StreamServer() as server:
        fleet, tl, never, crowd = asyncio.run(main(server.port))
    assert crowd.listeners == ["J3-0000", "J3-0001", "J3-0002"] and never == 1
    [cancelled] = [e for e in tl.events if e.kind == "step.join_cancelled"]
    assert (cancelled.data["joined"], cancelled.data["cancelled"]) == (3, 1)
    assert {"J3-0000", "J3-0001", "J3-0002"} <= set(History(tl.events).listeners)
