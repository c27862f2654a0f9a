"""Undo actions of node faults (containers started, signals undone, networks reconnected),
of a stack deadair started (brought down) and of floods (stopped).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from docker.errors import APIError, NotFound
from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from chaos.errors import FaultError
from chaos.faults import flooder as floods
from chaos.faults import locate
from chaos.faults.composition import NODE_DOWN, Entry, Revert, names_of, on_same_node
from chaos.stack import engine
from chaos.stack.compose import networks_of

VERIFY_TIMEOUT = 30.0  # a started container must be running and healthy within this


# -- nodes ---------------------------------------------------------------------------------------


def _start_container(r: Revert) -> None:
    if r.held(NODE_DOWN, f"node {r.action.get('node')}"):
        return
    c = locate.LOCATOR.container(r.action)
    c.reload()
    if c.status == "paused":
        c.unpause()
    elif c.status != "running":
        c.start()


def _running_and_healthy(action: dict[str, Any]) -> None:
    def check() -> None:
        c = locate.LOCATOR.container(action)
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
        r.outcome.detail = f"node {node} left as {names_of(_signal_holders(r))} still require(s)"
        return
    if r.held(NODE_DOWN, f"node {node}"):
        return
    c = locate.LOCATOR.container(r.action)
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
    c = locate.LOCATOR.container(r.action)
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
    c = locate.LOCATOR.container(r.action)
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
    c = locate.LOCATOR.container(r.action)
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
