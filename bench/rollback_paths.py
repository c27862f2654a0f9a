"""What the rollback paths cost on this machine, against the real stack (issue 11).

1. A dead upstream through a link: seconds until a connection through Toxiproxy to a container
   that was just killed fails, with the stack's Toxiproxy (its neighbour sysctls) and with a
   Toxiproxy of the kernel's defaults beside it; and a direct connection from lb for comparison.
2. Removing a 2 KB/s bandwidth toxic from entry-lb right after N clients closed their
   connections: the time Toxiproxy legitimately takes (rounds of its 5 s flush timeout).
3. A stuck removal (a client that stops reading, then leaves): the time deadair takes to detect
   it and recover (restart Toxiproxy, recreate links, re-apply), through chaos.faults.undo.

Each point is repeated (default 3) and reported as median, min and max. Writes
bench/results/rollback-paths-<time>.json with the commit, host, cores and time.

    .venv/bin/python bench/rollback_paths.py [--repeats 3]     (the stack must be up)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from chaos.faults import undo_network  # noqa: E402
from chaos.faults.ledger import Ledger  # noqa: E402
from chaos.stack.compose import Stack, _free_port  # noqa: E402
from chaos.stack.definition import find_stack  # noqa: E402
from chaos.stack.toxiproxy import Toxic, Toxiproxy  # noqa: E402


def stats(xs: list[float]) -> dict:
    return {
        "median": round(statistics.median(xs), 3),
        "min": round(min(xs), 3),
        "max": round(max(xs), 3),
        "runs": [round(x, 3) for x in xs],
    }


def wait_version(tox: Toxiproxy) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            tox.version()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def dead_upstream(stack: Stack, via: str) -> float:
    """Kill a helper that a link had just reached; time the next connection through the link.

    via: "stack" (the stack's Toxiproxy), "plain" (a fresh Toxiproxy with the kernel's neighbour
    defaults: its accept loop stays stuck in the dial, so one per measurement), "direct"."""
    net = f"{stack.project}_default"
    if via == "plain":
        pc = stack.docker.containers.run(
            "deadair/toxiproxy:2.12.0",
            ["-host=0.0.0.0", "-port=8474"],
            detach=True,
            name=f"bench-plain-{uuid.uuid4().hex[:6]}",
            network=net,
            ports={"8474/tcp": ("127.0.0.1", _free_port(set()))},
        )
        try:
            wait_version(Toxiproxy(_api_of(stack, pc.name)))
            return dead_upstream(stack, pc.name)
        finally:
            pc.remove(force=True)
    helper = stack.docker.containers.run(
        "deadair/audio-room:latest",
        ["python3", "-m", "http.server", "8000"],
        detach=True,
        name=f"bench-helper-{uuid.uuid4().hex[:6]}",
        network=net,
    )
    lb = stack.container("lb")
    try:
        helper.reload()
        ip = next(iter(helper.attrs["NetworkSettings"]["Networks"].values()))["IPAddress"]
        if via == "direct":
            url = f"http://{ip}:8000/"
        else:
            host = "toxiproxy" if via == "stack" else via
            tox = stack.toxiproxy() if via == "stack" else Toxiproxy(_api_of(stack, via))
            try:
                tox.delete_proxy("bench-dead")
            except Exception:
                pass
            tox.create_proxy("bench-dead", "0.0.0.0:9999", f"{ip}:8000")
            url = f"http://{host}:9999/"

        def get() -> tuple[str, float]:
            _, out = lb.exec_run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "-m", "90", url])
            code, secs = out.decode().split()
            return code, float(secs)

        deadline = time.monotonic() + 20
        while get()[0] != "200":
            if time.monotonic() > deadline:
                raise RuntimeError("helper never answered")
            time.sleep(0.2)
        helper.kill()
        code, secs = get()
        assert code == "000", code
        return secs
    finally:
        helper.remove(force=True)
        if via == "stack":
            stack.toxiproxy().delete_proxy("bench-dead")


def _api_of(stack: Stack, name: str) -> str:
    c = stack.docker.containers.get(name)
    b = c.attrs["NetworkSettings"]["Ports"]["8474/tcp"][0]
    return f"http://127.0.0.1:{b['HostPort']}"


def removal_after_clients_left(stack: Stack, clients: int) -> float:
    tox = stack.toxiproxy()
    tox.add_toxic("entry-lb", Toxic("bench_bw", "bandwidth", "downstream", 1.0, {"rate": 2}))
    host, port = stack.link_address("entry-lb")
    socks = [socket.create_connection((host, port), timeout=5) for _ in range(clients)]
    for s in socks:
        s.sendall(b"GET /live HTTP/1.0\r\nHost: x\r\n\r\n")
    time.sleep(2.0)
    for s in socks:
        s.close()
    t0 = time.monotonic()
    tox.remove_toxic("entry-lb", "bench_bw", timeout=60)
    took = time.monotonic() - t0
    time.sleep(1.0)
    return took


def stuck_recovery(stack: Stack) -> float:
    project = f"bench-stuck-{uuid.uuid4().hex[:4]}"
    api, probe = _free_port(set()), 0
    probe = _free_port({api})
    c = stack.docker.containers.run(
        "deadair/toxiproxy:2.12.0",
        ["-host=0.0.0.0", "-port=8474"],
        detach=True,
        name=project,
        labels={
            "com.docker.compose.project": project,
            "com.docker.compose.service": "toxiproxy",
            "deadair.link.probe": "0.0.0.0:9000 -> origin:8000",
        },
        network=f"{stack.project}_default",
        sysctls={"net.ipv4.tcp_wmem": "4096 4096 4096"},
        ports={"8474/tcp": ("127.0.0.1", api), "9000/tcp": ("127.0.0.1", probe)},
    )
    try:
        tox = Toxiproxy(f"http://127.0.0.1:{api}")
        wait_version(tox)
        tox.create_proxy("probe", "0.0.0.0:9000", "origin:8000")
        bw = Toxic("bench_stuck", "bandwidth", "downstream", 1.0, {"rate": 1000})
        tox.add_toxic("probe", bw)
        led = Ledger(meta={"bench": True})
        entry = led.intend(
            "bench",
            {
                "action": "toxics.remove",
                "stack": {"project": project, "service": "toxiproxy", "port": 8474},
                "proxy": "probe",
                "toxics": [bw.name],
                "specs": [vars(bw)],
            },
        )
        led.mark(entry, "applied")
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        client.connect(("127.0.0.1", probe))
        client.sendall(b"GET /hold HTTP/1.0\r\nHost: x\r\n\r\n")
        time.sleep(4.0)
        out: dict = {}
        t0 = time.monotonic()
        th = threading.Thread(target=lambda: out.setdefault("err", led.revert_entry(led.entries[entry])))
        th.start()
        time.sleep(1.5)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        client.close()
        th.join()
        took = time.monotonic() - t0
        assert out["err"] is None, out["err"]
        assert led.entries[entry].get("detail", "").startswith("recovered by restarting Toxiproxy"), led.entries[entry]
        led.close()
        return took
    finally:
        c.remove(force=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    os.environ.setdefault("DEADAIR_STATE", str(ROOT / ".deadair" / "bench-state"))
    stack = Stack(find_stack("audio-room"))
    if not stack.is_running():
        stack.up()
    n = args.repeats
    results = {
        "dead_upstream_s": {
            "through a link, the stack's Toxiproxy (neighbour sysctls)": stats(
                [dead_upstream(stack, "stack") for _ in range(n)]
            ),
            "through a link, Toxiproxy with the kernel's defaults": stats(
                [dead_upstream(stack, "plain") for _ in range(n)]
            ),
            "direct from lb (curl, no connect timeout)": stats([dead_upstream(stack, "direct") for _ in range(n)]),
        },
    }
    results["toxic_removal_after_clients_left_s"] = {
        f"{k} client(s)": stats([removal_after_clients_left(stack, k) for _ in range(n)]) for k in (1, 10, 60)
    }
    results["stuck_removal_recovery_s"] = stats([stuck_recovery(stack) for _ in range(n)])
    results["settings"] = {
        "remove_timeout_s": undo_network.REMOVE_TIMEOUT,
        "restart_timeout_s": undo_network.RESTART_TIMEOUT,
    }
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = bool(
        subprocess.run(
            ["git", "status", "--porcelain", "chaos", "bench", "compose"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    )
    doc = {
        "benchmark": "rollback_paths",
        "commit": commit,
        "dirty": dirty,
        "host": platform.node(),
        "cores": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "load_average": os.getloadavg(),
        "repeats": n,
        "results": results,
    }
    out = ROOT / "bench" / "results" / f"rollback-paths-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
