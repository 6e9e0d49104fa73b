"""A raw WAMP-over-long-poll client for any base URL (a node, or a proxy in front of several).

One HTTP request per call, unbatched WAMP JSON (one message per receive), as
autobahn-js does it: ``POST /lp/open`` answers the transport id, every later
request echoes it in the path (``/lp/<transport>/send``, ``/receive``,
``/close``). It takes any ``http(s)://host:port`` (with a TLS context, so it
also runs through nginx) and an optional ``Origin``;
:class:`tests.test_longpoll.LongPoll` is this against one node's port.
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any

from tests.rawwamp import HELLO, SUBSCRIBE

ROLES: dict[str, dict[str, Any]] = {"subscriber": {}, "publisher": {}, "caller": {}}


@dataclass
class Answer:
    """One HTTP answer: status, headers, body."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def post(
    base: str,
    path: str,
    body: bytes = b"",
    context: ssl.SSLContext | None = None,
    timeout: float = 20,
    origin: str | None = None,
) -> Answer:
    """One ``POST <base><path>`` (a receive blocks until data, or the transport's poll timeout)."""
    url = urllib.parse.urlsplit(base)
    port = url.port or (443 if url.scheme == "https" else 80)
    conn: http.client.HTTPConnection
    if url.scheme == "https":
        conn = http.client.HTTPSConnection(url.hostname or "", port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(url.hostname or "", port, timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if origin is not None:
        headers["Origin"] = origin
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        conn.close()


class LongPollSession:
    """One long-poll transport opened at ``base`` (``http(s)://host:port``)."""

    def __init__(self, base: str, context: ssl.SSLContext | None = None, origin: str | None = None) -> None:
        self.base = base
        self.context = context
        self.origin = origin
        opened = post(
            base, "/lp/open", json.dumps({"protocols": ["wamp.2.json"]}).encode(), context, origin=origin
        )
        if opened.status != 200:
            raise AssertionError(f"/lp/open answered {opened.status}: {opened.body!r}")
        answer = opened.json()
        if answer["protocol"] != "wamp.2.json":
            raise AssertionError(f"/lp/open chose {answer['protocol']!r}")
        self.transport: str = answer["transport"]
        self._request = 0

    def request(self, operation: str, body: bytes = b"") -> Answer:
        """``POST /lp/<transport>/<operation>``."""
        return post(self.base, f"/lp/{self.transport}/{operation}", body, self.context, origin=self.origin)

    def send(self, msg: list[Any]) -> None:
        self.send_raw(json.dumps(msg).encode())

    def send_raw(self, body: bytes) -> None:
        sent = self.request("send", body)
        if sent.status != 204:
            raise AssertionError(f"send answered {sent.status}: {sent.body!r}")

    def receive(self) -> Answer:
        """One ``receive``, whatever it answers."""
        return self.request("receive")

    def recv(self) -> list[Any]:
        got = self.receive()
        if got.status != 200:
            raise AssertionError(f"receive answered {got.status}: {got.body!r}")
        return got.json()  # type: ignore[no-any-return]

    def hello(self) -> list[Any]:
        self.send([HELLO, "app", {"roles": ROLES}])
        return self.recv()

    def subscribe(self, topic: str) -> list[Any]:
        self._request += 1
        self.send([SUBSCRIBE, self._request, {}, topic])
        return self.recv()

    def close(self) -> None:
        self.request("close")
