"""Undo actions: how each fault is put back, replayable from the ledger alone.

An undo action is a plain dict that the rollback ledger writes to disk before its fault acts.
It names what to put back by the stack's identity (compose project, Toxiproxy service, link
name, container id), never by a host port, so another process (`deadair sweep` after a
SIGKILL) finds the same Toxiproxy and containers after they restarted, and can tell when they
are gone with their stack: then there is nothing left to revert, and the entry is resolved as
gone rather than failed.

Faults on one target compose. Each revert receives the other faults still active (from the
ledger) and restores what the experiment declared for the target given those:
- a link is down while any down-type fault on it (down, cut, flap) is active, and up once the
  last one ends; a toxic fault removes only its own toxics and never touches `enabled`;
- a node stays down while another fault holds it down (stop, kill, pause, restart, crash),
  stays off its networks while another disconnect is active, and a mute is lifted only when
  the last mute on it ends.
Verification checks that declared state (links up with no toxics once nothing is active on
them; nodes running and healthy), not a snapshot taken when the fault began.

Toxiproxy can deadlock while removing a toxic (its issues 210, 412, 558; see
`_remove_toxics`): a removal that does not finish in time, on a server that still answers, is
recovered by restarting the Toxiproxy container, recreating every link from its labels and
re-applying the faults still active. That drops every connection through every link, so it is
reported as an event that the runner puts on the timeline and the verdicts name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from docker.errors import APIError, DockerException, NotFound

from chaos.errors import EnvironmentNotReady, FaultError
from chaos.faults import undo_network, undo_node
from chaos.faults.composition import Entry, Outcome, Revert
from chaos.faults.locate import Gone
from chaos.stack.definition import StackError
from chaos.stack.toxiproxy import ToxiproxyError

UNDO: dict[str, tuple[Callable[[Revert], None], Callable[[Revert], None]]] = {  # action -> (do, verify)
    "link.enable": (undo_network._enable_link, undo_network._verify_link),
    "toxics.remove": (undo_network._remove_toxics, undo_network._verify_toxics),
    "container.start": (undo_node._start_container, undo_node._verify_container),
    "stack.down": (undo_node._stack_down, undo_node._verify_stack_down),
    "link.flap.stop": (undo_network._stop_flapping, undo_network._verify_flapping_stopped),
    "container.signal": (undo_node._send_undo_signal, undo_node._verify_undo_signal),
    "network.connect": (undo_node._reconnect, undo_node._verify_connected),
    "flood.stop": (undo_node._stop_flood, undo_node._verify_flood),
}


def revert(
    action: dict[str, Any],
    others: list[Entry] | None = None,
    history: list[Entry] | None = None,
    refresh: Callable[[], list[Entry]] | None = None,
) -> Outcome:
    """Run an undo action and verify the declared state, given the other faults still active.

    Returns what was done; raises FaultError when the stack is not as declared. A target gone
    with its stack is an outcome (`gone`), not an error."""
    try:
        do, verify = UNDO[action["action"]]
    except KeyError:
        raise FaultError(f"unknown undo action {action.get('action')!r}") from None
    r = Revert(action, list(others or []), list(history or []), refresh=refresh)
    try:
        do(r)
        verify(r)
    except Gone as exc:
        r.outcome.gone = str(exc)
    except NotFound as exc:
        raise FaultError(f"cannot revert {action['action']}: {exc}") from exc
    except (ToxiproxyError, APIError, DockerException, StackError) as exc:
        raise FaultError(f"reverting {action['action']} failed: {exc}") from exc
    except EnvironmentNotReady as exc:
        raise FaultError(f"reverting {action['action']} failed: {exc}") from exc
    return r.outcome
