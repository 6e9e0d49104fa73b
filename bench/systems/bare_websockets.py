"""The bare ``websockets`` broadcast server (the ceiling) and its client: frames are the payloads."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.systems import Client, Connection, Data, ProcessServer, free_port, open_websocket

SERVER = Path(__file__).with_name("bare_websockets_server.py")


@dataclass(frozen=True)
class BareClient(Client):
    url: str

    async def subscribe(self) -> Connection:
        ws = await open_websocket(f"{self.url}/sub")
        if await ws.recv() != "ready":
            raise ConnectionError("no ready from the server")
        return ws

    def is_event(self, frame: Data) -> bool:
        return True

    def sent_at(self, frame: Data) -> float:
        return float(json.loads(frame)["ts"])

    async def publisher(self) -> Connection:
        return await open_websocket(f"{self.url}/pub")

    def publish(self, payload: dict[str, Any], request: int) -> Data:
        return json.dumps(payload, separators=(",", ":"))

    def acked(self, frame: Data) -> bool | None:
        return frame == "ack" or None


class BareWebsockets(ProcessServer):
    name = "bare websockets"

    def start(self, workdir: Path) -> Client:
        port = free_port()
        self.launch([sys.executable, str(SERVER), str(port)], workdir / "bare.log", port)
        return BareClient(f"ws://127.0.0.1:{port}")
