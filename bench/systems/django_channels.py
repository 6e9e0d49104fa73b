"""Django Channels: daphne serving bench/channels_project, channels-redis on a redis-server of our own.

The natural fast path: a publisher's WebSocket message reaches its consumer,
which ``group_send``s it to the group every subscriber consumer joined; each
subscriber consumer sends it on. redis-server is started on a free port
without persistence (``--save '' --appendonly no``) and stopped by PID.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from bench.systems import BroadcastClient, Client, ProcessServer, StartError, free_port

PROJECT = Path(__file__).resolve().parent.parent / "channels_project"
DAPHNE = Path(sys.executable).with_name("daphne")


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
        return BroadcastClient(f"ws://127.0.0.1:{port}")
