"""python-socketio on aiohttp: subscribers join a room, each publisher emit is re-broadcast to it.

The most natural fast path for socket.io: a client emits ``pub`` with an
acknowledgement; the server emits ``ev`` to the room ``bench`` and returns
``ok`` (the ack). A client that connects with auth ``{"role": "sub"}`` joins
the room. Given a Redis URL, the server shares its rooms with every server on
that Redis through ``socketio.AsyncRedisManager`` (python-socketio's documented
way to run several servers): an emit is published to Redis and every server,
this one included, delivers it to its own members of the room.

    python bench/systems/python_socketio_server.py PORT [REDIS_URL]
"""

from __future__ import annotations

import sys
from typing import Any

import socketio
from aiohttp import web

ROOM = "bench"


def make_server(redis_url: str | None) -> socketio.AsyncServer:
    """The server, on one process's rooms or (``redis_url``) on rooms shared through Redis."""
    options: dict[str, Any] = {"client_manager": socketio.AsyncRedisManager(redis_url)} if redis_url else {}
    sio = socketio.AsyncServer(async_mode="aiohttp", **options)

    @sio.event
    async def connect(sid: str, environ: dict[str, Any], auth: dict[str, Any] | None) -> None:
        if (auth or {}).get("role") == "sub":
            await sio.enter_room(sid, ROOM)

    @sio.on("pub")
    async def publish(sid: str, data: Any) -> str:
        await sio.emit("ev", data, room=ROOM)
        return "ok"

    return sio


if __name__ == "__main__":
    app = web.Application()
    make_server(sys.argv[2] if len(sys.argv) > 2 else None).attach(app)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
