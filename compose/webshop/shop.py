#!/usr/bin/env python3
"""The webshop's app: a tiny HTTP service (the standard library only) that reads and writes Redis
on every request, so that a fault anywhere between the client and Redis shows in its answers.

    GET  /live          the process answers (no Redis)     200 {"live": true}: the healthcheck
    GET  /health        PING (and count the hit)           200 {"redis": "PONG", "hits": n}
    POST /items         store the body as a new item       201 {"id": n}
    GET  /items/N       the item (and count its views)     200 {"id", "item", "views"}, 404

Redis is reached through deadair's app-redis link (REDIS_HOST:REDIS_PORT), one fresh connection
per request. A Redis that refuses, resets, closes or stays silent for REDIS_TIMEOUT seconds turns
the request into a 503 whose error says which: the app never hangs on its database.
"""

import json
import os
import re
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REDIS = (os.environ.get("REDIS_HOST", "redis"), int(os.environ.get("REDIS_PORT", "6379")))
REDIS_TIMEOUT = float(os.environ.get("REDIS_TIMEOUT", "3"))
MAX_BODY = 64 * 1024
ITEM = re.compile(r"^/items/(\d{1,18})$")


class RedisError(Exception):
    """Redis could not answer; the message says why (it becomes the 503's error)."""


def _encode(command: list) -> bytes:
    parts = [str(a).encode() if not isinstance(a, bytes) else a for a in command]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def _reply(f):
    line = f.readline()
    if not line.endswith(b"\r\n"):
        raise RedisError("redis closed the connection")
    kind, rest = line[:1], line[1:-2].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RedisError(f"redis answered an error: {rest}")
    if kind == b":":
        return int(rest)
    if kind == b"$":
        if int(rest) < 0:
            return None
        data = f.read(int(rest) + 2)
        if len(data) != int(rest) + 2:
            raise RedisError("redis closed the connection")
        return data[:-2].decode("utf-8", "replace")
    raise RedisError(f"redis answered something unexpected: {line[:40]!r}")


def redis(*commands: list) -> list:
    """Send the commands in one round trip (Redis's protocol, RESP) and return their replies."""
    try:
        with socket.create_connection(REDIS, timeout=REDIS_TIMEOUT) as sock:
            sock.sendall(b"".join(_encode(c) for c in commands))
            f = sock.makefile("rb")
            return [_reply(f) for _ in commands]
    except TimeoutError:
        raise RedisError(f"redis timed out: no answer within {REDIS_TIMEOUT:g}s") from None
    except ConnectionRefusedError:
        raise RedisError("redis refused the connection") from None
    except ConnectionResetError:
        raise RedisError("redis reset the connection") from None
    except OSError as exc:
        raise RedisError(f"redis unreachable: {exc}") from None


class Shop(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/live":  # liveness only: a Redis fault must not make the app "unhealthy"
            self._send(200, {"live": True})
            return
        if self.path == "/health":
            self._answer(lambda: (200, dict(zip(("redis", "hits"), redis(["PING"], ["INCR", "hits"])))))
            return
        m = ITEM.match(self.path)
        if m is None:
            self._send(404, {"error": f"no such page: {self.path}"})
            return
        n = int(m.group(1))

        def item():
            found, views = redis(["GET", f"item:{n}"], ["INCR", f"views:{n}"])
            if found is None:
                return 404, {"error": f"no item {n}"}
            return 200, {"id": n, "item": found, "views": views}

        self._answer(item)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True  # its body stays unread
            self._send(413, {"error": f"an item is at most {MAX_BODY} bytes"})
            return
        body = self.rfile.read(length)
        if self.path != "/items":
            self._send(404, {"error": f"no such page: {self.path}"})
            return

        def create():
            (n,) = redis(["INCR", "items:next"])
            redis(["SET", f"item:{n}", body])
            return 201, {"id": n}

        self._answer(create)

    def _answer(self, handler) -> None:
        try:
            status, doc = handler()
        except RedisError as exc:
            status, doc = 503, {"error": str(exc)}
        self._send(status, doc)

    def _send(self, status: int, doc: dict) -> None:
        body = json.dumps(doc).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # one line per request is noise here
        pass


if __name__ == "__main__":
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8000"))), Shop)
    server.daemon_threads = True
    server.serve_forever()
