"""A client of the stack's room-api, for the runner and tests (the listeners join asynchronously).

Every call has a timeout; an answer that is not 2xx raises RoomApiError with the API's message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests


class RoomApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(f"room-api: HTTP {status}: {message}" if status else f"room-api: {message}")
        self.status = status
        self.message = message


@dataclass
class RoomApi:
    base_url: str  # e.g. http://127.0.0.1:32805 (the entry-api link)
    timeout: float = 5.0

    def call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        try:
            r = requests.request(method, self.base_url.rstrip("/") + path, json=body, timeout=self.timeout)
        except requests.RequestException as exc:
            raise RoomApiError(0, f"{method} {path}: {exc}") from exc
        try:
            data = r.json()
        except ValueError:
            data = {"error": r.text[:200]}
        if not 200 <= r.status_code < 300:
            raise RoomApiError(r.status_code, str(data.get("error", data)))
        return data

    def create_room(self, title: str, host: str = "deadair") -> dict[str, Any]:
        return self.call("POST", "/rooms", {"title": title, "host": host})

    def transition(self, room: str, action: str) -> dict[str, Any]:
        return self.call("POST", f"/rooms/{room}/{action}")

    def live_room(self, title: str) -> str:
        """Create a room, open it and start it; returns its id."""
        room = self.create_room(title)["id"]
        self.transition(room, "open")
        self.transition(room, "start")
        return room

    def join(self, room: str, user: str = "deadair") -> dict[str, Any]:
        return self.call("POST", f"/rooms/{room}/join", {"user": user})

    def listeners(self, room: str) -> int:
        return int(self.call("GET", f"/rooms/{room}/listeners")["count"])
