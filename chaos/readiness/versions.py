"""Is a recorded result of this version of a scenario? (`--from-results` takes nothing else.)

A result (a run's summary, or a sweep's capacity.json) counts for a scenario only when it was
recorded from the same experiment as the suite would run now:
  - the same file content: the sha256 of the experiment file it recorded (`experiment_sha256`) is
    the file's now; a result that recorded none cannot show it is this version, and does not count;
  - the same resolved variables (the file's `vars` after every `--var`);
  - the same stack definition, when both are known: the compose file's and the stack's input
    files' hashes in its `stack_fingerprint` are the stack's now (the image ids need the engine,
    which `--from-results` does not touch);
  - a sweep: the same target it was run with (a `--target` given to `deadair capacity` makes another
    version) unless the policy's target is what judges it;
  - dated no more than MAX_FUTURE_S in the future (a clock that ran ahead is no evidence).
Dotted-key `--var` settings (`listeners.count=50`, not a declared variable) are not recorded in a
summary and so are not compared; the file's sha256 and its variables are.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from chaos.readiness.decision import MAX_FUTURE_S
from chaos.readiness.suite import Scenario


def file_sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def definition_parts(s: Scenario) -> dict[str, Any] | None:
    """The parts of the scenario's stack fingerprint read from files alone (compose file, inputs)."""
    from chaos.stack.definition import find_stack
    from chaos.stack.fingerprint import fingerprint

    try:
        name = s.experiment.stack if s.experiment is not None else "audio-room"
        fp = fingerprint(find_stack(name, near=s.path.resolve().parent), {})
    except Exception:  # an unreadable stack: unknown, so not compared
        return None
    return {"compose_file": fp.get("compose_file"), "files": fp.get("files")}


def _canon(x: Any) -> str:
    return json.dumps(x, sort_keys=True, default=str)


def mismatch(
    recorded: dict[str, Any],
    s: Scenario,
    sha: str | None,
    stack_now: dict[str, Any] | None,
    started: float,
    now: float,
) -> str | None:
    """Why a recorded result is not of this version of the scenario (None: it is)."""
    if started > now + MAX_FUTURE_S:
        return f"dated {started - now:.0f} s in the future (more than {MAX_FUTURE_S:g} s): not evidence"
    had = recorded.get("experiment_sha256")
    if not had:
        return "it recorded no sha256 of its experiment file: it cannot show it ran this version"
    if had != sha:
        return "its experiment file has changed since (sha256 differs)"
    if s.experiment is not None:
        was, now_vars = recorded.get("variables") or {}, s.experiment.variables
        if _canon(was) != _canon(now_vars):
            changed = sorted(k for k in set(was) | set(now_vars) if _canon(was.get(k)) != _canon(now_vars.get(k)))
            shown = ", ".join(f"{k}={was.get(k)!r} then, {now_vars.get(k)!r} now" for k in changed[:4])
            return f"its variables differ: {shown}"
    fp = recorded.get("stack_fingerprint")
    known = isinstance(fp, dict) and stack_now is not None and fp.get("compose_file") is not None
    if known and (fp.get("compose_file"), fp.get("files")) != (stack_now.get("compose_file"), stack_now.get("files")):  # type: ignore[union-attr]
        return "its stack definition differs from the stack's now (stack_fingerprint)"
    return None
