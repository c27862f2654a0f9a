"""The binding resource: at the breakpoint (or the last step run), the resource nearest its limit.

Each candidate is a utilisation of a limit: a container's CPU against the cores it may use, its
memory against its limit, its open files against the soft limit of the process nearest it, the
host's CPU against all its cores, and the load generator's CPU (deadair's own process: swarm and
runner) against one core (its event loop runs on one). The highest names the resource, with its
numbers as evidence. When it is the load generator, the sweep measured deadair, not the stack.
"""

from __future__ import annotations

from typing import Any

LOAD_GENERATOR = "load generator CPU"


def _mb(x: float | None) -> str:
    return "?" if x is None else f"{x / 1e6:.0f} MB"


def candidates(resources: dict[str, Any]) -> list[dict[str, Any]]:
    """Every (resource, utilisation, evidence) a step's resources give, highest first."""
    out: list[dict[str, Any]] = []
    for name, c in (resources.get("containers") or {}).items():
        if c.get("cpu_util") is not None:
            out.append(
                {
                    "resource": f"{name} CPU",
                    "utilisation": c["cpu_util"],
                    "evidence": f"{name} used {c['cpu_cores']:.2f} of the {c['cpu_limit_cores']:g} cores it may use "
                    f"({c['cpu_util']:.0%})",
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
    if gen.get("cpu_util") is not None:
        lag = gen.get("lag_max")
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


def binding(resources: dict[str, Any], load: float | None = None) -> dict[str, Any] | None:
    """The binding resource of one step's resources, with evidence; None without any reading."""
    ranked = candidates(resources)
    if not ranked:
        return None
    top = ranked[0]
    is_gen = top["resource"] == LOAD_GENERATOR
    evidence = top["evidence"]
    if is_gen:
        evidence += ": the load generator, not the stack, ran out first; this sweep measured deadair"
    return {
        "resource": top["resource"],
        "utilisation": top["utilisation"],
        "evidence": (f"at {load:g}: " if load is not None else "") + evidence,
        "load_generator": is_gen,
        "next": [{k: c[k] for k in ("resource", "utilisation")} for c in ranked[1:4]],
    }
