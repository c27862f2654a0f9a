"""The binding resource: at the breakpoint (or the last step run), the resource nearest its limit.

Each candidate is a utilisation of a limit: a container's CPU against the cores it may use, its
memory against its limit, its open files against the soft limit of the process nearest it, the
host's CPU against all its cores, and the load generator's CPU (deadair's own process: swarm and
runner) against one core (its event loop runs on one). The highest names the resource, with its
numbers as evidence. Written down (README "Capacity" says the same):
  - no container of the stack was read in the window: no resource is named ("no readings of the
    stack's resources"); containers never read are listed in the evidence;
  - a container with no CPU limit of its own (its limit is every core of the host) whose busiest
    process is single-threaded (SINGLE_THREADED: room-api's one aiohttp event loop, redis's one
    command thread) is rated against one core: that loop cannot use a second one; the others
    (Icecast, HAProxy: threaded) against the cores they may use;
  - the load generator is a candidate only when it crosses a threshold: CPU at least
    GENERATOR_CPU of its core, or its event loop lagging GENERATOR_LAG_S or more; it then binds
    when it is the highest, and the sweep measured deadair, not the stack;
  - other work on the machine (host busy cores less the containers' and the load generator's)
    above OTHER_WORK_SHARE of the host's cores: the machine, not the stack, bound it
    (`other_work`: chaos.capacity.knee.exit_code makes a break below the target exit 4).
"""

from __future__ import annotations

from typing import Any

LOAD_GENERATOR = "load generator CPU"
SINGLE_THREADED = {"room-api": "one aiohttp event loop", "redis": "one command thread"}
GENERATOR_CPU = 0.9  # of one core
GENERATOR_LAG_S = 0.25  # the swarm's event loop's worst lag in the window
OTHER_WORK_SHARE = 0.25  # of the host's cores
NO_READINGS = "no readings of the stack's resources"


def _mb(x: float | None) -> str:
    return "?" if x is None else f"{x / 1e6:.0f} MB"


def candidates(resources: dict[str, Any]) -> list[dict[str, Any]]:
    """Every (resource, utilisation, evidence) a step's resources give, highest first."""
    out: list[dict[str, Any]] = []
    cores = float((resources.get("host") or {}).get("cores") or 1)
    for name, c in (resources.get("containers") or {}).items():
        if c.get("cpu_util") is not None:
            limit, util, why = c["cpu_limit_cores"], c["cpu_util"], ""
            if name in SINGLE_THREADED and limit >= cores:  # no limit of its own: one loop, one core
                limit, util, why = 1.0, round(c["cpu_cores"], 4), f" ({SINGLE_THREADED[name]}: one core)"
            out.append(
                {
                    "resource": f"{name} CPU",
                    "utilisation": util,
                    "evidence": f"{name} used {c['cpu_cores']:.2f} of the {limit:g} cores it may use{why} ({util:.0%})",
                }
            )
        if c.get("memory_util") is not None:
            out.append(
                {
                    "resource": f"{name} memory",
                    "utilisation": c["memory_util"],
                    "evidence": f"{name} held {_mb(c.get('memory_bytes'))} of its {_mb(c.get('memory_limit_bytes'))} "
                    f"limit ({c['memory_util']:.1%})",
                }
            )
        if c.get("open_files_util") is not None:
            out.append(
                {
                    "resource": f"{name} open files",
                    "utilisation": c["open_files_util"],
                    "evidence": f"{name} ({c.get('open_files_process') or 'a process'}) had {c['open_files']} files open "
                    f"of its soft limit {c['open_files_limit']} ({c['open_files_util']:.1%})",
                }
            )
    host = resources.get("host") or {}
    if host.get("cpu_util") is not None:
        out.append(
            {
                "resource": "host CPU",
                "utilisation": host["cpu_util"],
                "evidence": f"the host's {host['cores']} cores were {host['cpu_util']:.0%} busy "
                f"({host['cpu_cores']:.2f} cores)",
            }
        )
    gen = resources.get("load_generator") or {}
    lag = gen.get("lag_max")
    if gen.get("cpu_util") is not None and (gen["cpu_util"] >= GENERATOR_CPU or (lag or 0.0) >= GENERATOR_LAG_S):
        out.append(
            {
                "resource": LOAD_GENERATOR,
                "utilisation": gen["cpu_util"],
                "evidence": f"deadair's own process (swarm and runner) used {gen['cpu_mean']:.2f} of one core on "
                f"average ({gen['cpu_util']:.0%}), {gen['cpu_max']:.2f} at most"
                + (f"; its event loop lagged up to {lag * 1000:.0f} ms" if lag is not None else ""),
            }
        )
    return sorted(out, key=lambda c: -float(c["utilisation"]))


def other_work(resources: dict[str, Any]) -> float | None:
    """Cores the host was busy with beyond the stack's containers and the load generator (None:
    the host or the containers were not read)."""
    host, containers = resources.get("host") or {}, resources.get("containers") or {}
    if host.get("cpu_cores") is None or not any(c.get("cpu_cores") is not None for c in containers.values()):
        return None
    ours = sum(float(c.get("cpu_cores") or 0.0) for c in containers.values())
    ours += float((resources.get("load_generator") or {}).get("cpu_mean") or 0.0)
    return round(max(0.0, float(host["cpu_cores"]) - ours), 4)


def binding(resources: dict[str, Any], load: float | None = None) -> dict[str, Any] | None:
    """The binding resource of one step's resources, with evidence (`resource` None: the stack was
    not read); None without the step's resources at all."""
    if not resources:
        return None
    at = f"at {load:g}: " if load is not None else ""
    unread = list(resources.get("unread") or [])
    missing = f"; no readings of {', '.join(unread)}" if unread else ""
    no_cpu = [n for n, c in (resources.get("containers") or {}).items() if c.get("cpu_note")]
    missing += f"; no CPU figure for {', '.join(no_cpu)}" if no_cpu else ""
    read = any(any(v is not None for v in c.values()) for c in (resources.get("containers") or {}).values())
    if not read:
        return {"resource": None, "utilisation": None, "evidence": at + NO_READINGS + missing,
                "load_generator": False, "other_work": False, "next": []}  # fmt: skip
    ranked = candidates(resources)
    top = ranked[0]
    is_gen = top["resource"] == LOAD_GENERATOR
    evidence = top["evidence"]
    if is_gen:
        evidence += ": the load generator, not the stack, ran out first; this sweep measured deadair"
    other = other_work(resources)
    cores = float((resources.get("host") or {}).get("cores") or 1)
    machine = other is not None and other > OTHER_WORK_SHARE * cores
    if machine:
        evidence += (
            f"; other work on the machine used {other:.2f} of its {cores:g} cores (more than "
            f"{OTHER_WORK_SHARE:g} of them): the machine, not the stack, bound it"
        )
    return {
        "resource": top["resource"],
        "utilisation": top["utilisation"],
        "evidence": at + evidence + missing,
        "load_generator": is_gen,
        "other_work": machine,
        "other_work_cores": other,
        "next": [{k: c[k] for k in ("resource", "utilisation")} for c in ranked[1:4]],
    }
