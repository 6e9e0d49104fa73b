"""A raw WAMP-over-long-poll client for any base URL (a node, or a proxy in front of several).

One HTTP request per call, unbatched WAMP JSON (one message per receive), as
autobahn-js does it: ``POST /lp/open`` answers the transport id, every later
request echoes it in the path (``/lp/<transport>/send``, ``/receive``,
``/close``). :class:`tests.test_longpoll.LongPoll` is the same against one
node's port; this one takes ``https://host:port`` with a TLS context, so it
also runs through nginx.
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
    base: str, path: str, body: bytes = b"", context: ssl.SSLContext | None = None, timeout: float = 20
) -> Answer:
    """One ``POST <base><path>`` (a receive blocks until data, or the transport's poll timeout)."""
    url = urllib.parse.urlsplit(base)
    port = url.port or (443 if url.scheme == "https" else 80)
    conn: http.client.HTTPConnection
    if url.scheme == "https":
        conn = http.client.HTTPSConnection(url.hostname or "", port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(url.hostname or "", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        return Answer(response.status, response.headers, response.read())
    finally:
        conn.close()


class LongPollSession:
    """One long-poll transport opened at ``base`` (``http(s)://host:port``)."""

    def __init__(self, base: str, context: ssl.SSLContext | None = None) -> None:
        self.base = base
        self.context = context
        opened = post(base, "/lp/open", json.dumps({"protocols": ["wamp.2.json"]}).encode(), context)
        if opened.status != 200:
            raise AssertionError(f"/lp/open answered {opened.status}: {opened.body!r}")
        self.transport: str = opened.json()["transport"]
        self._request = 0

    def request(self, operation: str, body: bytes = b"") -> Answer:
        """``POST /lp/<transport>/<operation>``."""
        return post(self.base, f"/lp/{self.transport}/{operation}", body, self.context)

    def send(self, msg: list[Any]) -> None:
        sent = self.request("send", json.dumps(msg).encode())
        if sent.status != 204:
            raise AssertionError(f"send answered {sent.status}: {sent.body!r}")

    def recv(self) -> list[Any]:
        got = self.request("receive")
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
