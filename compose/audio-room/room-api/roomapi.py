#!/usr/bin/env python3
"""room-api: rooms, joins, roles and listener counts for the audio room, backed by Redis.

A small real service (aiohttp on asyncio, redis-py's asyncio client), built from Debian's
packages. Every answer is JSON. Bad input gets a 4xx with {"error", "status"}; Redis being
down or slow gets a 503 within about a second, never a hang.

    GET    /health                         200, or 503 when Redis does not answer
    GET    /stats                          request and join counters
    POST   /rooms                          {"title", "host"}            -> 201 room
    GET    /rooms/{id}                                                  -> room
    POST   /rooms/{id}/open|start|end                                   -> room (409 if not allowed)
    POST   /rooms/{id}/join                {"user"?}                    -> listener_id, stream_url
    POST   /rooms/{id}/leave               {"listener_id"}
    POST   /rooms/{id}/heartbeat           {"listener_id"}
    GET    /rooms/{id}/listeners                                        -> count (seen in the last 60 s)
    GET    /rooms/{id}/speakers                                         -> roster
    POST   /rooms/{id}/speakers            {"user", "role": host|speaker}
    DELETE /rooms/{id}/speakers/{user}
"""

import asyncio
import json
import logging
import os
import re
import time
import uuid

import redis.asyncio as aioredis
from aiohttp import web, web_protocol
from redis.exceptions import RedisError

REDIS_HOST = os.environ.get("REDIS_HOST", "redis")
REDIS_PORT = int(os.environ.get("REDIS_PORT", "6379"))
STREAM_BASE_URL = os.environ.get("STREAM_BASE_URL", "http://lb:8000").rstrip("/")
STREAM_PATH = os.environ.get("STREAM_PATH", "/live")
MAX_BODY = 16 * 1024
REDIS_TIMEOUT = 0.5  # per Redis call; the whole request gives up after 1 s
LISTENER_TTL = 60.0
ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
TRANSITIONS = {
    "open": ({"created"}, "open"),
    "start": ({"created", "open"}, "live"),
    "end": ({"created", "open", "live"}, "ended"),
}

log = logging.getLogger("room-api")
stats = {"requests": 0, "errors_4xx": 0, "errors_5xx": 0, "joins": 0, "started": time.time()}


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(status: int, message: str, headers=None) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status, headers=headers)


@web.middleware
async def json_errors(request: web.Request, handler):
    stats["requests"] += 1
    try:
        response = await asyncio.wait_for(handler(request), timeout=2 * REDIS_TIMEOUT + 0.2)
    except ApiError as exc:
        response = error_response(exc.status, exc.message)
    except web.HTTPException as exc:  # aiohttp's own: no route, wrong method, body too large
        if exc.status < 400:
            raise
        headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        message = {
            404: "no such resource",
            405: f"method {request.method} not allowed",
            413: f"request body over {MAX_BODY} bytes",
        }.get(exc.status, exc.reason)
        response = error_response(exc.status, message, headers)
    except (RedisError, asyncio.TimeoutError, OSError) as exc:
        response = error_response(503, f"room store unavailable ({type(exc).__name__})")
    except Exception:  # a bug: say so honestly, keep serving
        log.exception("unexpected error on %s %s", request.method, request.path)
        response = error_response(500, "internal error")
    if response.status >= 500:
        stats["errors_5xx"] += 1
    elif response.status >= 400:
        stats["errors_4xx"] += 1
    return response


async def body(request: web.Request) -> dict:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise ApiError(413, f"request body over {MAX_BODY} bytes")
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(400, "expected a JSON object")
    return data


def text_field(data: dict, name: str, required: bool = True, limit: int = 200, default: str = "") -> str:
    value = data.get(name, None)
    if value is None:
        if required:
            raise ApiError(400, f"missing field {name!r}")
        return default
    if not isinstance(value, str) or not value.strip():
        raise ApiError(400, f"field {name!r} must be a non-empty string")
    if len(value) > limit:
        raise ApiError(400, f"field {name!r} is longer than {limit} characters")
    return value


def room_id(request: web.Request) -> str:
    rid = request.match_info["room"]
    if not ID.match(rid):
        raise ApiError(404, f"no room {rid[:64]!r}")
    return rid


class Rooms:
    def __init__(self, r: aioredis.Redis):
        self.r = r

    async def get(self, rid: str) -> dict:
        room = await self.r.hgetall(f"room:{rid}")
        if not room:
            raise ApiError(404, f"no room {rid!r}")
        return room

    async def view(self, rid: str) -> dict:
        room = await self.get(rid)
        return {
            "id": rid,
            "title": room["title"],
            "host": room["host"],
            "state": room["state"],
            "created": float(room["created"]),
            "joined": int(room.get("joined", 0)),
            "listeners": await self.count(rid),
        }

    async def count(self, rid: str) -> int:
        key = f"room:{rid}:listeners"
        await self.r.zremrangebyscore(key, 0, time.time() - LISTENER_TTL)
        return int(await self.r.zcard(key))


def rooms(request: web.Request) -> Rooms:
    return request.app["rooms"]


async def health(request: web.Request) -> web.Response:
    await rooms(request).r.ping()
    return web.json_response({"status": "ok"})


async def get_stats(request: web.Request) -> web.Response:
    return web.json_response({**stats, "uptime": time.time() - stats["started"]})


async def create_room(request: web.Request) -> web.Response:
    data = await body(request)
    title = text_field(data, "title")
    host = text_field(data, "host")
    rid = "r-" + uuid.uuid4().hex[:10]
    await rooms(request).r.hset(
        f"room:{rid}", mapping={"title": title, "host": host, "state": "created", "created": time.time(), "joined": 0}
    )
    await rooms(request).r.hset(f"room:{rid}:speakers", host, "host")
    return web.json_response(await rooms(request).view(rid), status=201)


async def get_room(request: web.Request) -> web.Response:
    return web.json_response(await rooms(request).view(room_id(request)))


async def transition(request: web.Request) -> web.Response:
    rid = room_id(request)
    action = request.match_info["action"]
    allowed, target = TRANSITIONS[action]
    room = await rooms(request).get(rid)
    if room["state"] not in allowed:
        raise ApiError(409, f"cannot {action} a room that is {room['state']}")
    await rooms(request).r.hset(f"room:{rid}", "state", target)
    return web.json_response(await rooms(request).view(rid))


async def join(request: web.Request) -> web.Response:
    rid = room_id(request)
    data = await body(request)
    user = text_field(data, "user", required=False, default="anonymous")
    room = await rooms(request).get(rid)
    if room["state"] not in ("open", "live"):
        raise ApiError(409, f"room is {room['state']}; listeners can join once it is open")
    lid = uuid.uuid4().hex
    async with rooms(request).r.pipeline(transaction=False) as pipe:
        pipe.zadd(f"room:{rid}:listeners", {lid: time.time()})
        pipe.hincrby(f"room:{rid}", "joined", 1)
        await pipe.execute()
    stats["joins"] += 1
    return web.json_response(
        {
            "listener_id": lid,
            "room": rid,
            "user": user,
            "state": room["state"],
            "stream_url": STREAM_BASE_URL + STREAM_PATH,
        }
    )


async def listener_update(request: web.Request) -> web.Response:
    rid = room_id(request)
    data = await body(request)
    lid = text_field(data, "listener_id", limit=64)
    await rooms(request).get(rid)
    key = f"room:{rid}:listeners"
    if request.match_info["action"] == "leave":
        removed = await rooms(request).r.zrem(key, lid)
        if not removed:
            raise ApiError(404, f"no listener {lid!r} in room {rid!r}")
    else:
        if await rooms(request).r.zscore(key, lid) is None:
            raise ApiError(404, f"no listener {lid!r} in room {rid!r}; join again")
        await rooms(request).r.zadd(key, {lid: time.time()})
    return web.json_response({"listener_id": lid, "room": rid, "ok": True})


async def listeners(request: web.Request) -> web.Response:
    rid = room_id(request)
    await rooms(request).get(rid)
    return web.json_response({"room": rid, "count": await rooms(request).count(rid)})


async def speakers(request: web.Request) -> web.Response:
    rid = room_id(request)
    await rooms(request).get(rid)
    key = f"room:{rid}:speakers"
    if request.method == "POST":
        data = await body(request)
        user = text_field(data, "user")
        role = text_field(data, "role", required=False, default="speaker")
        if role not in ("host", "speaker"):
            raise ApiError(400, "field 'role' must be 'host' or 'speaker'")
        await rooms(request).r.hset(key, user, role)
    roster = await rooms(request).r.hgetall(key)
    return web.json_response({"room": rid, "speakers": [{"user": u, "role": r} for u, r in sorted(roster.items())]})


async def remove_speaker(request: web.Request) -> web.Response:
    rid = room_id(request)
    await rooms(request).get(rid)
    user = request.match_info["user"]
    if not await rooms(request).r.hdel(f"room:{rid}:speakers", user):
        raise ApiError(404, f"{user[:64]!r} is not a speaker of room {rid!r}")
    return web.json_response({"room": rid, "removed": user})


async def on_startup(app: web.Application) -> None:
    app["rooms"] = Rooms(
        aioredis.Redis(
            host=REDIS_HOST,
            port=REDIS_PORT,
            decode_responses=True,
            socket_connect_timeout=REDIS_TIMEOUT,
            socket_timeout=REDIS_TIMEOUT,
            retry_on_timeout=False,
            max_connections=256,
        )
    )


async def on_cleanup(app: web.Application) -> None:
    await app["rooms"].r.close()


def _json_protocol_errors() -> None:
    """Requests that are not HTTP at all never reach the middleware: aiohttp answers them
    itself, in text/plain. Make that answer JSON too, like every other error."""

    def handle_error(self, request, status=500, exc=None, message=None):
        self.log_exception("Error handling request", exc_info=exc) if status >= 500 else None
        if request.writer.output_size > 0:
            raise ConnectionError("response already started")
        stats["errors_5xx" if status >= 500 else "errors_4xx"] += 1
        text = "malformed HTTP request" if status == 400 else "internal error"
        resp = web.json_response({"error": text, "status": status}, status=status)
        resp.force_close()
        return resp

    web_protocol.RequestHandler.handle_error = handle_error


def make_app() -> web.Application:
    app = web.Application(middlewares=[json_errors], client_max_size=MAX_BODY)
    app.router.add_get("/health", health)
    app.router.add_get("/stats", get_stats)
    app.router.add_post("/rooms", create_room)
    app.router.add_get("/rooms/{room}", get_room)
    app.router.add_post("/rooms/{room}/{action:open|start|end}", transition)
    app.router.add_post("/rooms/{room}/join", join)
    app.router.add_post("/rooms/{room}/{action:leave|heartbeat}", listener_update)
    app.router.add_get("/rooms/{room}/listeners", listeners)
    app.router.add_route("GET", "/rooms/{room}/speakers", speakers)
    app.router.add_route("POST", "/rooms/{room}/speakers", speakers)
    app.router.add_delete("/rooms/{room}/speakers/{user}", remove_speaker)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


if __name__ == "__main__":
    _json_protocol_errors()
    logging.basicConfig(level=logging.INFO, format="room-api: %(levelname)s %(message)s")
    web.run_app(
        make_app(),
        host="0.0.0.0",
        port=int(os.environ.get("PORT", "8080")),
        access_log=None,
        print=lambda *_: log.info("listening on :%s", os.environ.get("PORT", "8080")),
    )
