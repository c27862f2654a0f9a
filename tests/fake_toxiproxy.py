"""An in-memory Toxiproxy v2 HTTP API for unit tests: proxies with `enabled` and toxics, the
same paths, answers and error statuses as the real server (404 unknown, 409 exists), and two
failure modes of the real one:

- `stuck`: toxic names whose removal never answers, and blocks every later call on that proxy,
  until `restart()` (Toxiproxy 2.12's stuck-removal deadlock, as read from its source);
- `restart()`: what a process restart does: every proxy and toxic is gone.

It carries no traffic; the composition of link faults is about the API's state only.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class FakeToxiproxy:
    def __init__(self) -> None:
        self.proxies: dict[str, dict[str, Any]] = {}
        self.stuck: set[str] = set()  # toxic names whose removal deadlocks
        self.blocked: set[str] = set()  # proxies whose lock a stuck removal holds
        self.restarts = 0
        self._unstick = threading.Event()
        self._lock = threading.Lock()
        self.calls: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: Any = None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self) -> Any:
                n = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(n) or b"null")

            def _route(self, method: str) -> None:
                fake.calls.append((method, self.path))
                status, body = fake.handle(method, self.path, self._body() if method in ("POST", "PATCH") else None)
                if status == -1:  # stuck: never answer (until a restart closes the connection)
                    fake._unstick.wait()
                    self.close_connection = True
                    return
                self._answer(status, body)

            def do_GET(self) -> None:
                self._route("GET")

            def do_POST(self) -> None:
                self._route("POST")

            def do_PATCH(self) -> None:
                self._route("PATCH")

            def do_DELETE(self) -> None:
                self._route("DELETE")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._unstick.set()
        self.server.shutdown()
        self.server.server_close()

    def restart(self) -> None:
        with self._lock:
            self.proxies.clear()
            self.blocked.clear()
            self.stuck.clear()
            self.restarts += 1
            self._unstick.set()
            self._unstick = threading.Event()

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        with self._lock:
            if path == "/version":
                return 200, {"version": "2.12.0"}
            if path == "/reset" and method == "POST":
                for p in self.proxies.values():
                    p["enabled"], p["toxics"] = True, []
                return 204, None
            if path == "/proxies":
                if method == "GET":
                    return 200, {n: dict(p) for n, p in self.proxies.items()}
                if body["name"] in self.proxies:
                    return 409, {"error": "proxy already exists", "status": 409}
                p = {
                    "name": body["name"],
                    "listen": body["listen"].replace("0.0.0.0", "[::]"),
                    "upstream": body["upstream"],
                    "enabled": bool(body.get("enabled", True)),
                    "toxics": [],
                }
                self.proxies[p["name"]] = p
                return 201, p
            m = re.fullmatch(r"/proxies/([^/]+)(?:/toxics(?:/([^/]+))?)?", path)
            if not m or m.group(1) not in self.proxies:
                return 404, {"error": "proxy not found", "status": 404}
            name, toxic = m.group(1), m.group(2)
            p = self.proxies[name]
            if name in self.blocked and path != "/version":
                return -1, None
            if "/toxics" not in path:
                if method == "GET":
                    return 200, p
                if method == "PATCH":
                    p["enabled"] = bool(body.get("enabled", p["enabled"]))
                    return 200, p
                del self.proxies[name]
                return 204, None
            if toxic is None:
                if method == "GET":
                    return 200, p["toxics"]
                if any(t["name"] == body["name"] for t in p["toxics"]):
                    return 409, {"error": "toxic already exists", "status": 409}
                t = {
                    "name": body["name"],
                    "type": body["type"],
                    "stream": body.get("stream", "downstream"),
                    "toxicity": body.get("toxicity", 1.0),
                    "attributes": body.get("attributes") or {},
                }
                p["toxics"].append(t)
                return 200, t
            found = [t for t in p["toxics"] if t["name"] == toxic]
            if not found:
                return 404, {"error": "toxic not found", "status": 404}
            if method == "DELETE":
                if toxic in self.stuck:
                    self.blocked.add(name)
                    return -1, None
                p["toxics"].remove(found[0])
                return 204, None
            if method == "PATCH":
                found[0]["attributes"].update(body.get("attributes") or {})
                return 200, found[0]
            return 200, found[0]
