"""Undo actions of network faults: links enabled, toxics removed, flapping stopped, and
Toxiproxy's recovery when a toxic's removal deadlocks (its issues 210, 412, 558).
"""

from __future__ import annotations

import time
from typing import Any

from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from chaos.errors import FaultError
from chaos.faults import locate
from chaos.faults.composition import LINK_DOWN, Entry, Revert, link_key, names_of, on_same_link
from chaos.faults.locate import Gone, toxiproxy_of
from chaos.stack.compose import ensure_links
from chaos.stack.definition import links_from_labels
from chaos.stack.toxiproxy import Toxic, ToxiproxyError

# A toxic's removal right after clients went away takes rounds of Toxiproxy's 5 s flush timeout:
# 10 to 15 s measured with 1 to 60 clients (bench/results/rollback-paths-*.json). Toxiproxy
# answers any request after 25 s with an empty 503 itself: a removal still going then is stuck.
REMOVE_TIMEOUT = 23.0
RESTART_TIMEOUT = 30.0  # a restarted Toxiproxy must answer within this


# -- links ---------------------------------------------------------------------------------------


def _enable_link(r: Revert) -> None:
    if r.held(LINK_DOWN, f"link {r.action['proxy']}"):
        return
    toxiproxy_of(r.action).set_enabled(r.action["proxy"], True)
    _remove_orphans(r)


def _verify_link(r: Revert) -> None:
    verify_declared_link(r.action, r.others, mine=())


def verify_declared_link(action: dict[str, Any], others: list[Entry], mine: tuple[str, ...]) -> None:
    """The link is as the experiment declares given the faults still active on it: down while a
    down fault is active (either state while only a flap is), else up; none of `mine` left; and
    no toxic but those of the active faults (none once nothing is active on it)."""
    proxy = action["proxy"]
    p = toxiproxy_of(action).proxy(proxy)
    names = {t.name for t in p.toxics}
    if names & set(mine):
        raise FaultError(f"toxics {', '.join(sorted(names & set(mine)))} still on link {proxy}")
    active = on_same_link(action, others)
    # a down fault whose apply may not have landed (still "applying"), or a flap: either state
    down = [o for o in active if o["undo"]["action"] == "link.enable" and o.get("status") != "applying"]
    maybe_down = [o for o in active if o["undo"]["action"] in LINK_DOWN and o not in down]
    if down and p.enabled:
        raise FaultError(f"link {proxy} is up although {names_of(down)} is still active")
    if not down and not maybe_down and not p.enabled:
        raise FaultError(f"link {proxy} is down and no active fault holds it down")
    expected = {n for o in active if o["undo"]["action"] == "toxics.remove" for n in o["undo"]["toxics"]}
    stray = names - expected
    if stray:
        why = "no fault is active on it" if not active else f"only {names_of(active)} is active on it"
        raise FaultError(f"link {proxy} still has toxic(s) {', '.join(sorted(stray))}, but {why}")


def _remove_orphans(r: Revert) -> None:
    """deadair's own toxics on this link that no ledger owns any more (a run whose ledger was lost,
    such as a test's private directory that was deleted) are removed when the last fault on the
    link ends, and said; anyone else's toxic is left, and fails verification."""
    if on_same_link(r.action, r.others):
        return
    tox = toxiproxy_of(r.action)
    mine = set(r.action.get("toxics") or ())
    orphans = [
        t.name for t in tox.proxy(r.action["proxy"]).toxics if t.name.startswith("deadair_") and t.name not in mine
    ]
    for name in orphans:
        tox.remove_toxic(r.action["proxy"], name, timeout=REMOVE_TIMEOUT)
    if orphans:
        note = f"removed toxic(s) {', '.join(orphans)} that no ledger owns"
        r.outcome.detail = f"{r.outcome.detail}; {note}" if r.outcome.detail else note


def _remove_toxics(r: Revert) -> None:
    """Remove this fault's toxics only (the link's `enabled` belongs to the down faults).

    Toxiproxy 2.12 can deadlock here: a removal holds the link's toxic lock while it interrupts
    the toxic on every connection; a bandwidth toxic blocked handing a chunk to a connection
    whose client stopped reading or went away never takes the interrupt, and that connection's
    writer waits for the same lock to unregister itself. Nothing but a restart clears it. So a
    removal gets the time it may legitimately need; if it still has no answer while the server
    answers GET /version (which takes no proxy lock), the proxy is stuck: recover."""
    action, proxy = r.action, r.action["proxy"]
    tox = toxiproxy_of(action, timeout=REMOVE_TIMEOUT)
    for name in action["toxics"]:
        try:
            tox.remove_toxic(proxy, name, timeout=REMOVE_TIMEOUT)
        except ToxiproxyError as exc:
            if not (exc.timed_out or exc.status == 503):  # 503: Toxiproxy's own 25 s request timeout
                raise
            try:
                tox.version(timeout=3.0)
            except ToxiproxyError as down:
                raise FaultError(
                    f"Toxiproxy stopped answering while removing toxic {name} from link {proxy}: {down}"
                ) from down
            recover_toxiproxy(
                r,
                f"removing toxic {name} from link {proxy} did not finish within "
                f"{REMOVE_TIMEOUT:g}s (Toxiproxy's stuck-removal deadlock)",
            )
            return
    _remove_orphans(r)


def _verify_toxics(r: Revert) -> None:
    verify_declared_link(r.action, r.others, mine=tuple(r.action["toxics"]))


def recover_toxiproxy(r: Revert, reason: str) -> None:
    """Restart the stack's Toxiproxy, recreate every link from its labels, and put back the faults
    still active on it (their toxics, their links down). Every connection through every link is
    dropped: the event says so, for the timeline and the verdicts."""
    ref = r.action.get("stack")
    if ref is None:
        raise FaultError(
            f"{reason}; this ledger names Toxiproxy by URL, so it cannot be restarted: "
            "restart the Toxiproxy container, then run `deadair sweep`"
        )
    t0 = time.monotonic()
    labels = locate.LOCATOR.restart_toxiproxy(ref)
    tox = None
    try:
        for attempt in Retrying(
            stop=stop_after_delay(RESTART_TIMEOUT),
            wait=wait_fixed(0.2),
            retry=retry_if_exception_type((ToxiproxyError, FaultError, Gone)),
            reraise=True,
        ):
            with attempt:
                tox = locate.LOCATOR.toxiproxy(ref, 5.0)
                tox.version()
    except (ToxiproxyError, FaultError, Gone) as exc:
        raise FaultError(f"{reason}; Toxiproxy did not come back after a restart: {exc}") from exc
    assert tox is not None
    links = links_from_labels(labels)
    ensure_links(tox, links.values())
    reapplied = []
    for other in r.active_now():  # not the list taken when this revert began: others ended meanwhile
        u = other["undo"]
        if (u.get("stack") or {}).get("project") != ref["project"] or u["action"] not in (
            "toxics.remove",
            "link.enable",
        ):
            continue
        if u["action"] == "link.enable":
            tox.set_enabled(u["proxy"], False)
        else:
            for spec in u.get("specs") or []:
                try:
                    tox.add_toxic(u["proxy"], Toxic(**spec))
                except ToxiproxyError as exc:
                    if exc.status != 409:  # already there
                        raise
        reapplied.append(str(other.get("fault")))
    took = time.monotonic() - t0
    r.outcome.detail = f"recovered by restarting Toxiproxy ({took:.1f}s): {reason}"
    r.outcome.events.append(
        {
            "kind": "harness.toxiproxy_restart",
            "reason": reason,
            "took": round(took, 3),
            "links": sorted(links),
            "reapplied": reapplied,
            "effect": "every connection through every link was dropped",
        }
    )


# -- links that flap: a thread in the runner's process --------------------------------------------

FLAPPERS: dict[str, Any] = {}  # key -> (stop event, thread); filled by chaos.faults.network.LinkFlap
FLAP_PHASES: dict[Any, dict[str, bool]] = {}  # link -> flapper -> in a down phase now


def _stop_flapping(r: Revert) -> None:
    key = r.action["flapper"]
    found = FLAPPERS.get(key)
    if found is not None:  # in another process (sweep after a SIGKILL) the thread died with its own
        stop, thread = found
        stop.set()
        thread.join(timeout=5)
        if not thread.is_alive():
            FLAPPERS.pop(key, None)
    FLAP_PHASES.get(link_key(r.action), {}).pop(key, None)
    _enable_link(r)


def _verify_flapping_stopped(r: Revert) -> None:
    if r.action["flapper"] in FLAPPERS:
        raise FaultError(f"the flapping of link {r.action['proxy']} did not stop")
    _verify_link(r)
