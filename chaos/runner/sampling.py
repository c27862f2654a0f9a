"""Probes sampled onto the timeline: the experiment's own (steady state, method steps) and what the
servers report about themselves. Each sample is a timeline event, so verdicts can be judged later
from the journal alone.
"""

from __future__ import annotations

import asyncio
from typing import Any

from chaos.errors import DeadairError
from chaos.language.model import Check
from chaos.language.probes import ProbeSpec
from chaos.listen.probes import ProbeError, ServerProbe, run_probe, server_probes
from chaos.runner.context import RunContext
from chaos.stack.compose import Stack


async def sample(
    ctx: RunContext, spec: ProbeSpec, phase: str, kind: str = "probe.sample", keep_body: bool = False, **extra: Any
) -> None:
    """Run one probe off the loop and record what it returned (or why it did not) at its start."""
    t = ctx.timeline.clock.now()
    data: dict[str, Any] = {"phase": phase, **extra}
    try:
        output = await ctx.blocking(lambda: run_probe(spec, ctx.links), timeout=spec.timeout + 2)
        data["elapsed"] = round(ctx.timeline.clock.now() - t, 6)
        data["output"] = output if keep_body else trim(output)
        if isinstance(output, dict):
            data["output"] = {k: v for k, v in data["output"].items() if k != "headers"}
    except (TimeoutError, ProbeError) as exc:
        data["error"] = str(exc) or "timed out"
    ctx.timeline.record(kind, spec.name, t=t, **data)


async def sample_checks(ctx: RunContext, phase: str, only_every: bool | None = None) -> None:
    """Sample, together, every steady-state probe judged in `phase` (a window's end sample)."""
    checks = [
        (c.probe, c)
        for c in ctx.exp.steady_state
        if c.probe and phase in c.when and (only_every is None or (c.every is not None) == only_every)
    ]
    await asyncio.gather(*(sample(ctx, probe, phase, keep_body=needs_body(c)) for probe, c in checks))


async def sample_every(ctx: RunContext, c: Check, start: float, end: float) -> None:
    """Sample one probe every `c.every` seconds during the method (the end sample is separate)."""
    clock = ctx.timeline.clock
    t = start
    while t < end - 1e-6:
        await asyncio.sleep(max(0.0, t - clock.now()))
        await sample(ctx, c.probe, "during", keep_body=needs_body(c))  # type: ignore[arg-type]
        t += c.every  # type: ignore[operator]


async def sample_servers(ctx: RunContext, stack: Stack, every: float = 1.0) -> None:
    """What the servers report about themselves (Icecast, HAProxy, room-api), once a second."""
    probes = server_probes(stack.definition.services)
    bases = {}
    for p in probes:
        try:
            host, port = stack.published(p.node, p.port)
            bases[p.node] = f"http://{host}:{port}"
        except DeadairError:
            continue
    if not bases:
        return
    clock, n = ctx.timeline.clock, 0
    while True:
        t = clock.now()

        def sample_all() -> list[tuple[ServerProbe, dict]]:
            out = []
            for p in probes:
                if p.node in bases:
                    try:
                        out.append((p, p.sample(bases[p.node])))
                    except ProbeError as exc:
                        out.append((p, {"error": str(exc)}))
            return out

        try:
            for p, data in await ctx.blocking(sample_all, timeout=10):
                ctx.timeline.record("server.sample", p.node, t=t, probe=p.kind, round=n, **data)
        except Exception as exc:
            ctx.timeline.record("run.warning", "server-probes", t=t, error=f"{type(exc).__name__}: {exc}")
            ctx.say(f"  server probes stopped: {type(exc).__name__}: {exc}")
            return
        n += 1
        await asyncio.sleep(max(0.0, t + every - clock.now()))


def needs_body(c: Check) -> bool:
    """A tolerance that reads the body (regex, jsonpath) is judged on it untrimmed."""
    return isinstance(c.tolerance, dict) and c.tolerance.get("type") in ("regex", "jsonpath")


def trim(output: Any) -> Any:
    """A probe's output as the journal keeps it: no headers, strings cut at 2000 characters."""
    if isinstance(output, dict):
        return {k: (v[:2000] if isinstance(v, str) else v) for k, v in output.items() if k != "headers"}
    return output


def links_by_name(stack: Stack) -> dict[str, str]:
    """Each link's published address, for probes that name a link (those not published are left out)."""
    out = {}
    for link in stack.definition.links.values():
        try:
            host, port = stack.link_address(link.name)
            out[link.name] = f"http://{host}:{port}"
        except DeadairError:
            continue
    return out
