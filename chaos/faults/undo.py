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

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from docker.errors import APIError, DockerException, NotFound
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from chaos.errors import EnvironmentNotReady, FaultError
from chaos.faults import flooder as floods
from chaos.stack import engine
from chaos.stack.compose import ensure_links, networks_of
from chaos.stack.definition import StackError, links_from_labels
from chaos.stack.toxiproxy import Toxic, Toxiproxy, ToxiproxyError

VERIFY_TIMEOUT = 30.0  # a started container must be running and healthy within this
# A toxic's removal right after clients went away takes rounds of Toxiproxy's 5 s flush timeout:
# 10 to 15 s measured with 1 to 60 clients (bench/results/rollback-paths-*.json). Toxiproxy
# answers any request after 25 s with an empty 503 itself: a removal still going then is stuck.
REMOVE_TIMEOUT = 23.0
RESTART_TIMEOUT = 30.0  # a restarted Toxiproxy must answer within this

Entry = dict[str, Any]  # a ledger entry: id, fault (its description), undo (the action), status


class Gone(Exception):
    """The target went away with its stack: nothing is left to revert (not a failure)."""


@dataclass
class Outcome:
    """What a revert did, beyond "reverted and verified"."""

    gone: str | None = None  # why the entry is resolved as gone with its stack
    detail: str | None = None  # e.g. the link was left down because another fault holds it
    events: list[dict[str, Any]] = field(default_factory=list)  # for the run's timeline


# -- finding the stack's parts by identity -----------------------------------------------------


class Locator(Protocol):
    """Finds a stack's Toxiproxy and containers from what an undo action names."""

    def toxiproxy(self, ref: dict[str, Any], timeout: float) -> Toxiproxy: ...

    def restart_toxiproxy(self, ref: dict[str, Any]) -> dict[str, str]: ...

    def container(self, action: dict[str, Any]) -> Any: ...


class DockerLocator:
    """The default: the Docker engine, by compose project and service labels."""

    def __init__(self) -> None:
        self._client: Any = None

    def client(self) -> Any:
        """One engine connection for every revert (each call still has the client's timeout)."""
        if self._client is None:
            self._client = engine.connect()
        return self._client

    def _toxiproxy_container(self, ref: dict[str, Any]) -> Any:
        labels = [f"com.docker.compose.project={ref['project']}", f"com.docker.compose.service={ref['service']}"]
        found = engine.list_containers(self.client(), all=True, filters={"label": labels})
        if not found:
            raise Gone(f"stack {ref['project']} has no Toxiproxy container any more: gone with the stack")
        c = found[0]
        if c.status == "paused":
            raise FaultError(
                f"Toxiproxy of {ref['project']} is paused and cannot answer; unpause it, then run `deadair sweep`"
            )
        if c.status != "running":
            others = engine.list_containers(
                self.client(), filters={"label": f"com.docker.compose.project={ref['project']}"}
            )
            if others:  # the stack runs without its links: broken, not gone
                raise FaultError(
                    f"Toxiproxy of {ref['project']} is {c.status} while the rest of the stack runs: "
                    "every link is down; run `deadair stack up`, then `deadair sweep`"
                )
            raise Gone(
                f"Toxiproxy of {ref['project']} is {c.status}, and so is the rest of its stack: "
                "the links' state went with its process"
            )
        return c

    def toxiproxy(self, ref: dict[str, Any], timeout: float) -> Toxiproxy:
        c = self._toxiproxy_container(ref)
        for b in (c.attrs.get("NetworkSettings", {}).get("Ports") or {}).get(f"{ref['port']}/tcp") or []:
            host = b.get("HostIp") or "127.0.0.1"
            if ":" in host:
                continue
            host = "127.0.0.1" if host in ("0.0.0.0", "") else host
            return Toxiproxy(f"http://{host}:{b['HostPort']}", timeout=timeout)
        raise FaultError(f"the API port {ref['port']} of Toxiproxy of {ref['project']} is not published")

    def restart_toxiproxy(self, ref: dict[str, Any]) -> dict[str, str]:
        c = self._toxiproxy_container(ref)
        c.restart(timeout=1)
        return dict(c.labels)

    def container(self, action: dict[str, Any]) -> Any:
        client = self.client()
        try:
            return client.containers.get(action["container"])
        except NotFound:
            pass
        node, project = action.get("node"), action.get("project")
        if project:
            now = engine.list_containers(
                client,
                all=True,
                filters={"label": [f"com.docker.compose.project={project}", f"com.docker.compose.service={node}"]},
            )
            if now:
                raise Gone(f"node {node}'s container was replaced (its stack was recreated): the fault went with it")
            raise Gone(f"node {node} of {project} is gone with its stack")
        raise Gone(f"node {node}'s container {action['container'][:12]} is gone")


LOCATOR: Locator = DockerLocator()


def toxiproxy_of(action: dict[str, Any], timeout: float = 5.0) -> Toxiproxy:
    """The Toxiproxy an action names: by stack identity, or (ledgers of older versions) by URL;
    such a URL that refuses connections and that no container publishes is gone."""
    if "stack" in action:
        return LOCATOR.toxiproxy(action["stack"], timeout)
    tox = Toxiproxy(action["toxiproxy"], timeout=timeout)
    try:
        tox.version(timeout=3.0)
    except ToxiproxyError as exc:
        if exc.timed_out:
            raise
        port = action["toxiproxy"].rsplit(":", 1)[-1].strip("/")
        for c in engine.list_containers(engine.connect()):
            for binds in (c.attrs.get("NetworkSettings", {}).get("Ports") or {}).values():
                if any(str(b.get("HostPort")) == port for b in binds or []):
                    raise
        raise Gone(
            f"nothing answers at {action['toxiproxy']} and no container publishes it "
            "(a ledger of an older deadair, whose stack is gone)"
        ) from exc
    return tox


# -- composition: which other active faults hold the same target --------------------------------

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


def _names(entries: list[Entry]) -> str:
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
            self.outcome.detail = f"{what} left as {_names(found)} still require(s)"
        return bool(found)


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
        raise FaultError(f"link {proxy} is up although {_names(down)} is still active")
    if not down and not maybe_down and not p.enabled:
        raise FaultError(f"link {proxy} is down and no active fault holds it down")
    expected = {n for o in active if o["undo"]["action"] == "toxics.remove" for n in o["undo"]["toxics"]}
    stray = names - expected
    if stray:
        why = "no fault is active on it" if not active else f"only {_names(active)} is active on it"
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
    labels = LOCATOR.restart_toxiproxy(ref)
    tox = None
    try:
        for attempt in Retrying(
            stop=stop_after_delay(RESTART_TIMEOUT),
            wait=wait_fixed(0.2),
            retry=retry_if_exception_type((ToxiproxyError, FaultError, Gone)),
            reraise=True,
        ):
            with attempt:
                tox = LOCATOR.toxiproxy(ref, 5.0)
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

FLAPPERS: dict[str, Any] = {}  # key -> (stop event, thread); filled by chaos.faults.LinkFlap
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


# -- nodes ---------------------------------------------------------------------------------------


def _start_container(r: Revert) -> None:
    if r.held(NODE_DOWN, f"node {r.action.get('node')}"):
        return
    c = LOCATOR.container(r.action)
    c.reload()
    if c.status == "paused":
        c.unpause()
    elif c.status != "running":
        c.start()


def _running_and_healthy(action: dict[str, Any]) -> None:
    def check() -> None:
        c = LOCATOR.container(action)
        state = c.attrs.get("State", {})
        health = (state.get("Health") or {}).get("Status", "none")
        if not (state.get("Status") == "running" and health in ("healthy", "none")):
            raise FaultError(f"node {action.get('node')} is {state.get('Status')}/{health}, not running and healthy")

    for attempt in Retrying(
        stop=stop_after_delay(VERIFY_TIMEOUT),
        wait=wait_fixed(0.2),
        retry=retry_if_exception_type(FaultError),
        reraise=True,
    ):
        with attempt:
            check()


def _verify_container(r: Revert) -> None:
    if r.holders(NODE_DOWN):
        return  # another fault holds the node down; its own revert starts and verifies it
    _running_and_healthy(r.action)


def _signal_holders(r: Revert) -> list[Entry]:
    return [
        o
        for o in on_same_node(r.action, r.others, ("container.signal",))
        if o["undo"].get("signal") == r.action.get("signal")
    ]


def _send_undo_signal(r: Revert) -> None:
    """Lift a mute: the undo signal to a running process; a process that is not running is left
    to the fault that holds it down, or started (a new process starts unmuted)."""
    node = r.action.get("node")
    if _signal_holders(r):
        r.outcome.detail = f"node {node} left as {_names(_signal_holders(r))} still require(s)"
        return
    if r.held(NODE_DOWN, f"node {node}"):
        return
    c = LOCATOR.container(r.action)
    c.reload()
    if c.status == "running":
        r.action["sent_at"] = time.time()
        c.kill(signal=r.action["signal"])
    elif c.status == "paused":
        c.unpause()
        r.action["sent_at"] = time.time()
        c.kill(signal=r.action["signal"])
    else:
        c.start()  # it died meanwhile: a fresh process is in the declared state (unmuted)
        r.outcome.detail = f"node {node} was {c.status}; started again (a new process starts unmuted)"


def _verify_undo_signal(r: Revert) -> None:
    if _signal_holders(r) or r.holders(NODE_DOWN):
        return
    _running_and_healthy(r.action)
    if not r.action.get("log") or "sent_at" not in r.action:
        return
    c = LOCATOR.container(r.action)
    since = int(r.action["sent_at"]) - 1
    for attempt in Retrying(
        stop=stop_after_delay(5), wait=wait_fixed(0.1), retry=retry_if_exception_type(FaultError), reraise=True
    ):
        with attempt:
            if r.action["log"].encode() not in c.logs(stdout=True, stderr=True, since=since, tail=50):
                raise FaultError(
                    f"node {r.action.get('node')} did not confirm {r.action['signal']} "
                    f"(no {r.action['log']!r} in its log)"
                )


def _wanted_networks(r: Revert) -> list[dict[str, Any]]:
    """Every network any disconnect of this container in the ledger took it off (a second
    disconnect finds it on none, so its own record is empty)."""
    seen: dict[str, dict[str, Any]] = {n["name"]: n for n in r.action["networks"]}
    for e in r.history:
        u = e["undo"]
        if u.get("action") == "network.connect" and u.get("container") == r.action.get("container"):
            for n in u.get("networks") or []:
                seen.setdefault(n["name"], n)
    return list(seen.values())


def _reconnect(r: Revert) -> None:
    if r.held(("network.connect",), f"node {r.action.get('node')}"):
        return
    client = engine.connect()
    c = LOCATOR.container(r.action)
    attached = set(networks_of(c))
    for net in _wanted_networks(r):
        if net["name"] in attached:
            continue
        network = client.networks.get(net["network"])
        try:  # the same address, so that peers that resolved it once still reach it
            network.connect(c, aliases=net["aliases"], ipv4_address=net["ipv4"])
        except APIError as exc:
            if "user configured subnets" not in str(exc) and "user specified IP" not in str(exc):
                raise
            network.connect(c, aliases=net["aliases"])


def _verify_connected(r: Revert) -> None:
    if r.holders(("network.connect",)):
        return
    c = LOCATOR.container(r.action)
    attached = set(networks_of(c))
    missing = [n["name"] for n in _wanted_networks(r) if n["name"] not in attached]
    if missing:
        raise FaultError(f"node {r.action.get('node')} is still off {', '.join(missing)}")
    if not r.holders(NODE_DOWN):
        _running_and_healthy(r.action)


# -- stacks and floods ------------------------------------------------------------------------------


def _stack_down(r: Revert) -> None:
    from chaos.stack.compose import Compose

    client = engine.connect()
    label = f"com.docker.compose.project={r.action['project']}"
    left = engine.list_containers(client, all=True, filters={"label": label})
    if not left:
        return  # already down
    if Path(r.action["compose_file"]).is_file():
        Compose(r.action["project"], Path(r.action["compose_file"])).run("down", "--remove-orphans", "-v", "-t", "2")
        return
    # the compose file is gone (a temporary project): what compose would remove, by its labels
    for c in left:
        try:
            c.remove(force=True, v=True)
        except NotFound:
            pass  # removed meanwhile: what this step wants
    for net in client.networks.list(filters={"label": label}):
        net.remove()
    r.outcome.detail = f"compose file {r.action['compose_file']} is gone: removed the project's containers and networks"


def _verify_stack_down(r: Revert) -> None:
    left = engine.list_containers(
        engine.connect(), all=True, filters={"label": f"com.docker.compose.project={r.action['project']}"}
    )
    if left:
        raise FaultError(f"{len(left)} container(s) of {r.action['project']} still exist")


def _stop_flood(r: Revert) -> None:
    """Stop a flood's process (it stops by itself at its deadline; this is for the early exits)."""
    floods.stop_floods(r.action["flood"])


def _verify_flood(r: Revert) -> None:
    left = floods.flood_pids(r.action["flood"])
    if left:
        raise FaultError(f"flood {r.action['flood']} still running (pid {', '.join(map(str, left))})")


UNDO: dict[str, tuple[Callable[[Revert], None], Callable[[Revert], None]]] = {
    "link.enable": (_enable_link, _verify_link),
    "toxics.remove": (_remove_toxics, _verify_toxics),
    "container.start": (_start_container, _verify_container),
    "stack.down": (_stack_down, _verify_stack_down),
    "link.flap.stop": (_stop_flapping, _verify_flapping_stopped),
    "container.signal": (_send_undo_signal, _verify_undo_signal),
    "network.connect": (_reconnect, _verify_connected),
    "flood.stop": (_stop_flood, _verify_flood),
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
