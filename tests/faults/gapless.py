"""A gapless subscriber written from the wire protocol: subscribe, recover by pages, dedupe.

It is what any client has to do to keep Broker's promise (docs/positions.md),
without Broker's own client libraries: subscribe first, then ask
``broker.recover`` for everything after the last position seen, page by page
while ``more`` is true, and drop live events it already has (by cursor). A
recovery that fails in any way is recorded as an error, never skipped over.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from tests.node import Node
from tests.rawwamp import CALL, ERROR, EVENT, RESULT, SUBSCRIBED, RawWamp

POSITION = "broker_position"


@dataclass
class GaplessSubscriber:
    """Events of ``(pattern, match)`` by cursor, across reconnects."""

    pattern: str
    match: str
    received: list[Any] = field(default_factory=list)  # the ``args[0]`` of each event, in order
    cursors: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    epoch: str | None = None
    last: int | None = None
    reconnects: int = 0
    recovered: int = 0
    pages: int = 0
    client: RawWamp | None = None

    def connect(self, node: Node) -> None:
        """(Re)connect, subscribe, and recover what was missed since the last position."""
        client = RawWamp(node.ws_url, origin=node.origin)
        self.client = client
        if client.hello()[0] != 2:
            raise ConnectionError("no WELCOME")
        reply = client.subscribe(self.pattern, self.match)
        if reply[0] != SUBSCRIBED:
            raise ConnectionError(f"subscribe refused: {reply}")
        if self.epoch is None:
            return
        self.reconnects += 1
        live: list[list[Any]] = []
        more = True
        while more:
            request = client.next_id()
            client.send(
                [
                    CALL,
                    request,
                    {},
                    "broker.recover",
                    [self.pattern],
                    {"match": self.match, "epoch": self.epoch, "after": self.last},
                ]
            )
            while True:
                msg = client.recv(timeout=30)
                if msg[0] == EVENT:
                    live.append(msg)
                elif msg[0] in (RESULT, ERROR) and msg[1 if msg[0] == RESULT else 2] == request:
                    break
            if msg[0] == ERROR:
                self.errors.append(f"recovery failed: {json.dumps(msg)[:300]}")
                return
            answer = msg[3][0]
            if answer.get("unrecoverable"):
                self.errors.append(f"unrecoverable: {answer.get('reason')}")
                self.epoch, self.last = answer["epoch"], answer["cursor"]
                return
            self.pages += 1
            for event in answer["events"]:
                self.recovered += 1
                self._take(event["args"], event["position"])
            more = bool(answer["more"])
        for msg in live:
            self.on_event(msg)

    def _take(self, args: list[Any], position: dict[str, Any]) -> None:
        cursor = position["cursor"]
        if self.epoch == position["epoch"] and self.last is not None and cursor <= self.last:
            return  # already have it (recovered, then delivered live too)
        self.epoch, self.last = position["epoch"], cursor
        self.received.append(args[0] if args else None)
        self.cursors.append(cursor)

    def on_event(self, msg: list[Any]) -> None:
        """Take one EVENT message (``[36, sub, pub, details, args, kwargs]``)."""
        kwargs = msg[5] if len(msg) > 5 else {}
        self._take(msg[4] if len(msg) > 4 else [], kwargs[POSITION])

    def read(self, timeout: float) -> None:
        """Read live events for ``timeout`` seconds (or until the connection ends)."""
        assert self.client is not None
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = self.client.recv(timeout=left)
            except TimeoutError:
                return
            if msg[0] == EVENT:
                self.on_event(msg)

    def drop(self) -> None:
        """Go away without a goodbye (a dropped network)."""
        if self.client is not None:
            try:
                self.client.ws.socket.close()
            except OSError:
                pass
            self.client = None
