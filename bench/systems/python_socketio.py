"""python-socketio (aiohttp server) and a raw Engine.IO v4 / Socket.IO v5 client over ``websockets``.

The client skips python-socketio's own client (too slow to load the server):
it opens ``/socket.io/?EIO=4&transport=websocket``, reads the Engine.IO open
packet, connects to the default namespace with ``40{"role": ...}`` and then
sees events as ``42["ev",{...}]``; it answers the server's ping ``2`` with
``3``. The publisher emits ``42<id>["pub",{...}]`` and gets the ack ``43<id>["ok"]``.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.systems import Client, Connection, Data, ProcessServer, free_port, open_websocket

SERVER = Path(__file__).with_name("python_socketio_server.py")


@dataclass(frozen=True)
class SocketIOClient(Client):
    url: str

    async def _join(self, role: str) -> Connection:
        ws = await open_websocket(f"{self.url}/socket.io/?EIO=4&transport=websocket")
        opened = await ws.recv()
        if not str(opened).startswith("0"):
            raise ConnectionError(f"no Engine.IO open packet: {opened!r}")
        ws.send("40" + json.dumps({"role": role}))
        connected = await ws.recv()
        if not str(connected).startswith("40"):
            raise ConnectionError(f"namespace connect refused: {connected!r}")
        return ws

    async def subscribe(self) -> Connection:
        return await self._join("sub")

    def is_event(self, frame: Data) -> bool:
        return frame[:2] == "42"

    def sent_at(self, frame: Data) -> float:
        return float(json.loads(frame[2:])[1]["ts"])

    async def publisher(self) -> Connection:
        return await self._join("pub")

    def publish(self, payload: dict[str, Any], request: int) -> Data:
        return f"42{request}" + json.dumps(["pub", payload], separators=(",", ":"))

    def acked(self, frame: Data) -> bool | None:
        return frame[:2] == "43" or None

    def answer(self, frame: Data) -> Data | None:
        return "3" if frame == "2" else None


class PythonSocketIO(ProcessServer):
    name = "python-socketio"
    #: several times slower than crossbar at N >= 1000: fewer events keep each case bounded
    deliveries_scale = 0.5

    def start(self, workdir: Path) -> Client:
        port = free_port()
        self.launch([sys.executable, str(SERVER), str(port)], workdir / "socketio.log", port)
        return SocketIOClient(f"ws://127.0.0.1:{port}")
