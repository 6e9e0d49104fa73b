"""Django Channels: daphne serving bench/channels_project, channels-redis on a redis-server of our own.

The natural fast path: a publisher's WebSocket message reaches its consumer,
which ``group_send``s it to the group every subscriber consumer joined; each
subscriber consumer sends it on. redis-server is started on a free port
without persistence (``--save '' --appendonly no``) and stopped by PID.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.systems import Client, Connection, Data, ProcessServer, StartError, free_port, open_websocket

PROJECT = Path(__file__).resolve().parent.parent / "channels_project"
DAPHNE = Path(sys.executable).with_name("daphne")


@dataclass(frozen=True)
class ChannelsClient(Client):
    url: str

    async def subscribe(self) -> Connection:
        ws = await open_websocket(f"{self.url}/sub")
        if await ws.recv() != "ready":
            raise ConnectionError("no ready from the consumer")
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


class DjangoChannels(ProcessServer):
    name = "Django Channels"
    #: an order of magnitude slower than the others: fewer events keep each case bounded
    deliveries_scale = 0.1

    def start(self, workdir: Path) -> Client:
        redis = shutil.which("redis-server")
        if redis is None:
            raise StartError("redis-server not found (make bench-deps installs it)")
        redis_port, port = free_port(), free_port()
        redis_argv = [
            redis,
            "--port",
            str(redis_port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.launch(redis_argv, workdir / "redis.log", redis_port, cwd=workdir)
        env = {
            "BENCH_REDIS_PORT": str(redis_port),
            "DJANGO_SETTINGS_MODULE": "benchsite.settings",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT), os.environ.get("PYTHONPATH")])),
        }
        daphne_argv = [str(DAPHNE), "-b", "127.0.0.1", "-p", str(port), "benchsite.asgi:application"]
        self.launch(daphne_argv, workdir / "daphne.log", port, cwd=PROJECT, env=env)
        return ChannelsClient(f"ws://127.0.0.1:{port}")
