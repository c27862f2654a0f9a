"""The listeners: they join (through the stream, or a room of room-api), warm up until each hears
audio, and leave when the live phases end. What they hear is the timeline the verdicts read.
A `join` step's crowd joins the same swarm later (chaos.runner.method) and leaves with it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from chaos.errors import EnvironmentNotReady
from chaos.listen.ears import EarSettings
from chaos.listen.listener import ListenerSettings, PlayoutSettings, StreamAddress
from chaos.listen.shards.engine import CONNECT_TIMEOUT, RayEngine
from chaos.listen.shards.fleet import ShardedSwarm
from chaos.listen.swarm import Swarm
from chaos.runner.context import RunContext
from chaos.stack.compose import Stack
from chaos.stack.room import RoomApi, RoomApiError


@dataclass
class Audience:
    """The listening swarm and, when they joined through room-api, the room: what `leave` undoes."""

    swarm: Swarm | ShardedSwarm
    room_api: RoomApi | None = None
    room: str | None = None


async def join(ctx: RunContext, stack: Stack) -> Audience:
    """Start the swarm and wait (warm-up) until every listener hears audio, or the warm-up is over."""
    exp, tl, clock = ctx.exp, ctx.timeline, ctx.timeline.clock
    spec = exp.listeners
    host, port = stack.link_address(spec.via)
    common: dict[str, Any] = dict(
        count=spec.count,
        backoff=spec.backoff,
        ears=spec.ears,
        arrival=spec.arrival,
        arrival_over=spec.arrival_over,
        arrival_rate=spec.arrival_rate,
        arrival_rate_to=spec.arrival_rate_to,
        source_addresses=spec.source_addresses,
        playout=PlayoutSettings(
            min_stall=spec.min_stall,
            read_timeout=spec.read_timeout,
            response_timeout=spec.response_timeout,
            prebuffer=spec.prebuffer,
        ),
    )
    room_api, room = None, None
    if spec.join == "room-api":
        room_api = RoomApi(f"http://{host}:{port}")
        room = await ctx.blocking(lambda: room_api.live_room(f"deadair: {exp.title}"))
        tl.record("run.room", "runner", room=room, api=room_api.base_url)
        settings = ListenerSettings(join_api=(host, port), room=room, **common)
    else:
        settings = ListenerSettings(stream=StreamAddress(host, port, spec.path), **common)
    ears = EarSettings.from_services(stack.definition.services)
    swarm: Swarm | ShardedSwarm
    if spec.workers is not None or ctx.opt.cluster:
        swarm = await _sharded(ctx, settings, ears)
    else:
        swarm = Swarm(settings, tl, random.Random(exp.seed), ear_settings=ears)
    ctx.swarm = swarm  # join steps add their crowds to it
    tl.record("run.listeners", "runner", count=settings.count, join=spec.join, via=spec.via, address=f"{host}:{port}")
    joined = clock.now()
    await swarm.start()
    heard = await swarm.wait_all_hearing(exp.windows.warmup + spec.arrival_span)
    ctx.timings["warmup"] = clock.now() - joined
    ctx.say(f"  {heard}/{settings.count} listeners hear audio {ctx.timings['warmup']:.2f}s after joining")
    return Audience(swarm, room_api, room)


async def _sharded(ctx: RunContext, settings: ListenerSettings, ears: EarSettings) -> ShardedSwarm:
    """The distributed swarm (chaos.listen.shards): its engine started or joined (the embedded
    local cluster unless --cluster), the shards placed; the engine is closed on every exit path
    (`ctx.engines`, closed by the runner after the listeners leave, whatever ended the run)."""
    exp, spec = ctx.exp, ctx.exp.listeners
    engine = RayEngine(ctx.opt.cluster)
    ctx.engines.append(engine)
    ctx.say(
        f"  starting the swarm's engine: {'Ray at ' + ctx.opt.cluster if ctx.opt.cluster else 'a local Ray cluster'}"
    )
    try:
        info = await ctx.blocking(engine.connect, timeout=CONNECT_TIMEOUT)
    except TimeoutError as exc:
        where = f"the Ray cluster at {ctx.opt.cluster}" if ctx.opt.cluster else "a local Ray cluster"
        raise EnvironmentNotReady(f"the swarm's engine did not start or join {where} in {CONNECT_TIMEOUT:g}s") from exc
    workers = spec.workers if isinstance(spec.workers, int) else max(1, int(info["cpus"]))
    joins = sum(s.join.count for s in exp.method if s.join is not None)
    ctx.timeline.record("swarm.engine", "runner", workers=workers, **info)
    swarm = ShardedSwarm(
        settings,
        ctx.timeline,
        engine,
        workers,
        random.Random(exp.seed),
        ear_settings=ears,
        sample=spec.sample,
        capacity=settings.count + joins,
        bandwidth=spec.bandwidth,
        say=ctx.say,
    )
    ctx.say(f"  {workers} shard(s) on {info['nodes']} node(s), {info['cpus']:g} CPU(s)")
    return swarm


async def leave(ctx: RunContext, audience: Audience) -> None:
    """Stop the swarm and end the room; a room that cannot be ended outlives the run only in room-api."""
    await audience.swarm.stop()
    room_api, room = audience.room_api, audience.room
    if room_api is not None and room:
        try:
            await ctx.blocking(lambda: room_api.transition(room, "end"), timeout=5)
        except (TimeoutError, RoomApiError):
            pass  # the room outlives the run only in room-api's store
