"""Plain crossbar 26.10 with a minimal config: the baseline every other system is a ratio to.

One router worker, realm ``app``, the ``anonymous`` role allowed everything
(static permissions, cached), no Broker component — and the same web
transport as Broker's node (its WebSocket options and serializers), so the
difference to Broker is Broker's code, not transport settings. Started with
``crossbar start --cbdir`` on a config generated into the work directory.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from bench.systems import Client, ProcessServer, free_port
from bench.systems.wamp import WampClient
from tests.node import PROJECT_CONFIG

CROSSBAR = Path(sys.executable).with_name("crossbar")
ALLOW_ALL = {"call": True, "register": True, "publish": True, "subscribe": True}


def minimal_config(port: int, static_dir: Path) -> dict[str, Any]:
    """The project's web transport with only ``/`` and ``/ws``, anonymous allowed everything."""
    project = json.loads(PROJECT_CONFIG.read_text())
    transport = copy.deepcopy(project["workers"][0]["transports"][0])
    transport["endpoint"]["port"] = port
    ws = transport["paths"]["ws"]
    ws["auth"] = {"anonymous": {"type": "static", "role": "anonymous"}}
    transport["paths"] = {"/": {"type": "static", "directory": str(static_dir)}, "ws": ws}
    role = {
        "name": "anonymous",
        "permissions": [
            {
                "uri": "",
                "match": "prefix",
                "allow": ALLOW_ALL,
                "disclose": {"caller": False, "publisher": False},
                "cache": True,
            }
        ],
    }
    realm = {"name": "app", "roles": [role]}
    return {
        "version": 2,
        "controller": {},
        "workers": [{"type": "router", "id": "router", "realms": [realm], "transports": [transport]}],
    }


class PlainCrossbar(ProcessServer):
    name = "plain crossbar"
    serializers = ("json", "msgpack")

    def start(self, workdir: Path) -> Client:
        cbdir = workdir / ".crossbar"
        cbdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        (cbdir / "config.json").write_text(json.dumps(minimal_config(port, workdir), indent=2))
        argv = [str(CROSSBAR), "start", "--cbdir", str(cbdir), "--loglevel", "warn"]
        self.launch(argv, workdir / "crossbar.log", port, cwd=workdir)
        return WampClient(f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}")
