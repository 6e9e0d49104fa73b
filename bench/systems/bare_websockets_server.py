"""The ceiling: a bare ``websockets`` server that broadcasts each publisher message to every subscriber.

No routing, no authorization, no serialization: ``/sub`` connections join a
set (and are told ``ready``), every message on ``/pub`` goes to all of them
with ``websockets.broadcast`` and is answered ``ack``. It is the floor of
what a Python WebSocket server spends per delivery — except that asyncio's
``transport.write`` tries one ``send()`` per frame, where Twisted (crossbar)
buffers and writes once per connection per reactor turn, so at large N a
router can overtake it.

    python bench/systems/bare_websockets_server.py PORT
"""

from __future__ import annotations

import asyncio
import signal
import sys

from websockets.asyncio.server import ServerConnection, broadcast, serve

SUBSCRIBERS: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    if ws.request is not None and ws.request.path == "/pub":
        async for message in ws:
            broadcast(SUBSCRIBERS, message)
            await ws.send("ack")
        return
    SUBSCRIBERS.add(ws)
    try:
        await ws.send("ready")
        await ws.wait_closed()
    finally:
        SUBSCRIBERS.discard(ws)


async def main(port: int) -> None:
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set_result, None)
    async with serve(handler, "127.0.0.1", port, compression=None, ping_interval=None, max_size=2**20):
        await stop


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
