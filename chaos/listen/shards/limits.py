"""What one shard may hold, checked before it takes a listener (README "Running the swarm on a
cluster", "Limits per worker").

- Open files: one socket per listener (plus a join's short-lived one); the shard raises its soft
  limit to the hard one and refuses more listeners than that leaves room for.
- Ephemeral ports: a TCP connection is (source address, source port, destination); the kernel
  gives each source address the ports of `ip_local_port_range` toward one destination, so one
  shard holds at most that many listeners per source address. More: more workers, or more source
  addresses (`listeners.source_addresses`; on loopback any 127.0.0.0/8 address will do).
- Bandwidth: every listener receives the stream's bitrate; a shard whose host cannot carry it
  reports audio arriving late as dead air. Each shard measures what it receives (swarm.health
  `rx_bps`) and refuses more than `listeners.bandwidth` per worker, when one is set.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass
from pathlib import Path

FD_SPARE = 256  # descriptors a shard keeps for its worker, joins in flight, logs
PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


class ShardLimitError(Exception):
    """A shard was asked to hold more listeners than its host allows."""


@dataclass(frozen=True)
class HostLimits:
    open_files: int  # the soft limit after raising it to the hard one
    ports_per_source: int  # ephemeral ports toward one destination, per source address

    @classmethod
    def here(cls) -> HostLimits:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
            except (ValueError, OSError):
                pass
        try:
            low, high = (int(x) for x in PORT_RANGE.read_text().split())
            ports = high - low + 1
        except (OSError, ValueError):
            ports = 28_232  # Linux's default range, 32768-60999
        return cls(open_files=soft, ports_per_source=ports)

    def problem(self, listeners: int, sources: int) -> str | None:
        """Why this host cannot hold `listeners` on one shard (None: it can)."""
        if listeners + FD_SPARE > self.open_files:
            return (
                f"{listeners} listeners need {listeners + FD_SPARE} open files; this worker may open "
                f"{self.open_files} (ulimit -n): use more workers"
            )
        if listeners > self.ports_per_source * max(1, sources):
            return (
                f"{listeners} listeners need as many ephemeral ports toward one destination; "
                f"{max(1, sources)} source address(es) give {self.ports_per_source * max(1, sources)} "
                "(ip_local_port_range): use more workers or listeners.source_addresses"
            )
        return None
