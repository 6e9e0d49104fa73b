"""The bare ``websockets`` broadcast server (the ceiling) and its client: frames are the payloads."""

from __future__ import annotations

import sys
from pathlib import Path

from bench.systems import BroadcastClient, Client, ProcessServer, free_port

SERVER = Path(__file__).with_name("bare_websockets_server.py")


class BareWebsockets(ProcessServer):
    name = "bare websockets"

    def start(self, workdir: Path) -> Client:
        port = free_port()
        self.launch([sys.executable, str(SERVER), str(port)], workdir / "bare.log", port)
        return BroadcastClient(f"ws://127.0.0.1:{port}")
