"""The experiment as the rest of deadair reads it: typed, frozen, validated by the loader.

Nothing here knows how a fault is injected or a measure computed: steps name faults and checks
name measures, and the loader checked those names against the registries.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaos.language.arrival import Arrival
from chaos.language.probes import ProbeSpec

PHASES = ("before", "during", "after")
# LiveKit's client reconnect schedule: 0, 0.3, 1.2, 2.7, 4.8 s, then 7 s, ten tries in all.
DEFAULT_BACKOFF = (0.0, 0.3, 1.2, 2.7, 4.8, 7.0, 7.0, 7.0, 7.0, 7.0)


@dataclass(frozen=True)
class Check:
    """A steady-state check: an expectation on a measure, or a probe with a tolerance."""

    measure: str | None = None
    expect: str | None = None
    probe: ProbeSpec | None = None
    tolerance: Any = None
    every: float | None = 2.0  # probes: sampling interval during the method; None: once, at its end
    when: tuple[str, ...] = PHASES
    line: int = 0
    column: int = 0

    @property
    def name(self) -> str:
        return self.measure if self.measure else f"probe {self.probe.name}"  # type: ignore[union-attr]

    @property
    def bound(self) -> str:
        return (self.expect or "") if self.measure else f"tolerance {json.dumps(self.tolerance)}"


@dataclass(frozen=True)
class Join:
    """A `join` step's crowd: `count` more listeners (ordinary swarm listeners, ids J<step>-<n>)
    arriving from the step's start as `arrival` says; they stay until the run ends."""

    count: int
    arrival: Arrival = field(default_factory=Arrival)


@dataclass(frozen=True)
class Step:
    index: int
    at: float
    kind: str  # fault, probe, action or join
    fault: str | None = None
    probe: ProbeSpec | None = None  # for probe and action steps
    duration: float | None = None  # `for`; None: a fault is reverted right after it acts
    every: float | None = None
    times: int | None = None
    until: float | None = None
    target: str | None = None
    one_of: tuple[str, ...] | None = None
    params: dict[str, Any] = field(default_factory=dict)  # converted for the fault
    raw_params: dict[str, Any] = field(default_factory=dict)  # as written
    expect: tuple[Check, ...] = ()
    line: int = 0
    join: Join | None = None  # join steps

    @property
    def name(self) -> str:
        if self.join is not None:
            return "join"
        return self.fault or (self.probe.name if self.probe else "")

    @property
    def end(self) -> float:
        return self.at + (self.duration or 0.0)


DEFAULT_LISTENERS = 20  # listeners of a stack that has audio, when the experiment does not say


@dataclass(frozen=True)
class ListenersSpec:
    """The simulated listeners. Where they get in is the stack's fact (its deadair.listeners.*
    labels) unless the experiment says; the neutral defaults here are those of a stack without
    audio: nobody listens."""

    count: int = 0
    join: str = "direct"  # "room-api": join through room-api, then stream the URL it returns
    via: str = ""  # the link joins go through (room-api) or streams come from (direct)
    path: str = "/"  # direct only
    backoff: tuple[float, ...] = DEFAULT_BACKOFF
    read_timeout: float = 10.0
    response_timeout: float = 8.0  # request sent -> response head (ExoPlayer's default read timeout)
    min_stall: float = 0.02
    prebuffer: float = 0.0
    ears: int = 0  # golden ears among the listeners (they decode what they hear)
    arrival: str = "all"  # all, ramp, poisson or rising
    arrival_over: float = 0.0  # ramp: seconds over which the joins spread
    arrival_rate: float = 0.0  # poisson: joins per second; rising: the first rate
    arrival_rate_to: float = 0.0  # rising: the last rate
    # The distributed swarm (chaos.listen.shards): None = one process, no engine; "auto" = one
    # shard per core of the cluster; N = N shards. `sample`: listeners (besides the ears) whose
    # shard ships every event; the others ship per-listener digests.
    workers: int | str | None = None
    sample: int = 20
    source_addresses: tuple[str, ...] = ()  # connect from these (ephemeral ports are per source address)
    bandwidth: float = 0.0  # bits/s one worker's host may receive (0: no budget); over it, its fails are unknown

    @property
    def arrival_span(self) -> float:
        """Roughly how long the joins take (the warm-up waits this long on top)."""
        if self.arrival == "ramp":
            return self.arrival_over
        if self.arrival == "rising" and self.arrival_rate + self.arrival_rate_to > 0:
            return 2.0 * max(0, self.count - 1) / (self.arrival_rate + self.arrival_rate_to)
        if self.arrival == "poisson" and self.arrival_rate:
            return self.count / self.arrival_rate * 1.5
        return 0.0


@dataclass(frozen=True)
class Windows:
    warmup: float = 30.0  # longest wait for every listener to hear audio before the gate
    gate: float = 5.0  # steady state is observed this long before any fault
    grace: float = 0.0  # the "during" check starts this long after the method starts
    recovery: float = 5.0  # steady state must hold this long after the method ends


@dataclass(frozen=True)
class Capacity:
    """A `capacity:` section: the sweep `deadair capacity` runs (chaos.capacity). `vary` is set to
    each of `steps` as `--var` would; `slo` is judged per step; `target` is the launch's figure in
    `unit` (listeners or joins/s); `knee_used` the share of an SLO's margin whose use marks the
    knee; the target holds when the capacity reaches target x (1 + `headroom`)."""

    vary: str
    steps: tuple[float, ...]
    slo: tuple[Check, ...]
    target: float | None = None
    knee_used: float = 0.5
    line: int = 0
    unit: str = "listeners"  # of the steps and the target: listeners or joins/s (readiness's matching target)
    headroom: float = 0.25  # the capacity must reach target x (1 + headroom)


@dataclass(frozen=True)
class Experiment:
    path: Path
    title: str
    description: str = ""
    tags: tuple[str, ...] = ()
    seed: int = 0
    stack: str = "audio-room"
    listeners: ListenersSpec = field(default_factory=ListenersSpec)
    windows: Windows = field(default_factory=Windows)
    steady_state: tuple[Check, ...] = ()
    abort_when: tuple[Check, ...] = ()
    method: tuple[Step, ...] = ()
    rollbacks: tuple[ProbeSpec, ...] = ()
    variables: dict[str, Any] = field(default_factory=dict)
    source: str = "deadair"  # or "chaostoolkit" (translated on load)
    capacity: Capacity | None = None  # a capacity sweep's section; a plain run ignores it
