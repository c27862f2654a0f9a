"""How faults on one target compose: which other active faults hold the same link or node, and
a revert in progress, which restores what the experiment declared given those.

A link is down while any down-type fault on it is active; a node stays down while another
fault holds it down (see chaos.faults.undo for the whole contract).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Entry = dict[str, Any]  # a ledger entry: id, fault (its description), undo (the action), status


@dataclass
class Outcome:
    """What a revert did, beyond "reverted and verified"."""

    gone: str | None = None  # why the entry is resolved as gone with its stack
    detail: str | None = None  # e.g. the link was left down because another fault holds it
    events: list[dict[str, Any]] = field(default_factory=list)  # for the run's timeline


LINK_DOWN = ("link.enable", "link.flap.stop")  # undo actions of faults that take a link down
NODE_DOWN = ("container.start",)  # stop, kill, pause, restart, crash


def link_key(action: dict[str, Any]) -> tuple[str, str] | None:
    if "proxy" not in action:
        return None
    stack = action.get("stack")
    return (stack["project"] if stack else str(action.get("toxiproxy")), str(action["proxy"]))


def on_same_link(action: dict[str, Any], others: list[Entry], kinds: tuple[str, ...] | None = None) -> list[Entry]:
    key = link_key(action)
    return [o for o in others if link_key(o["undo"]) == key and (kinds is None or o["undo"]["action"] in kinds)]


def on_same_node(action: dict[str, Any], others: list[Entry], kinds: tuple[str, ...]) -> list[Entry]:
    return [o for o in others if o["undo"].get("container") == action.get("container") and o["undo"]["action"] in kinds]


def names_of(entries: list[Entry]) -> str:
    return ", ".join(str(e.get("fault")) for e in entries)


@dataclass
class Revert:
    """One revert in progress: its action, the faults still active beside it, what it did."""

    action: dict[str, Any]
    others: list[Entry]
    history: list[Entry] = field(default_factory=list)  # every entry of the ledger, for unions
    outcome: Outcome = field(default_factory=Outcome)
    refresh: Callable[[], list[Entry]] | None = None  # the active others, read again (after a slow step)

    def active_now(self) -> list[Entry]:
        return list(self.refresh()) if self.refresh is not None else self.others

    def holders(self, kinds: tuple[str, ...]) -> list[Entry]:
        if kinds == LINK_DOWN:
            return on_same_link(self.action, self.others, kinds)
        return on_same_node(self.action, self.others, kinds)

    def held(self, kinds: tuple[str, ...], what: str) -> bool:
        """True (and noted) when other active faults hold the target: leave it as they want it."""
        found = self.holders(kinds)
        if found:
            self.outcome.detail = f"{what} left as {names_of(found)} still require(s)"
        return bool(found)
