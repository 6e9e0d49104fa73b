"""python-socketio on aiohttp: subscribers join a room, each publisher emit is re-broadcast to it.

The most natural fast path for socket.io: a client emits ``pub`` with an
acknowledgement; the server emits ``ev`` to the room ``bench`` and returns
``ok`` (the ack). A client that connects with auth ``{"role": "sub"}`` joins
the room.

    python bench/systems/python_socketio_server.py PORT
"""

from __future__ import annotations

import sys
from typing import Any

import socketio
from aiohttp import web

ROOM = "bench"

sio = socketio.AsyncServer(async_mode="aiohttp")


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: dict[str, Any] | None) -> None:
    if (auth or {}).get("role") == "sub":
        await sio.enter_room(sid, ROOM)


@sio.on("pub")
async def publish(sid: str, data: Any) -> str:
    await sio.emit("ev", data, room=ROOM)
    return "ok"


if __name__ == "__main__":
    app = web.Application()
    sio.attach(app)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
