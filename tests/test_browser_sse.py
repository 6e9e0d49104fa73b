"""``GET /sse`` in real headless Chromium: a plain ``EventSource``, no client library.

The page (clients/js/e2e/sse.html, driven by sse.mjs) lists every event it
receives. What must hold: it survives a node restart (SQLite history) by the
browser's own reconnect and ``Last-Event-ID``, seeing every event once, in
order; a page on a foreign origin is refused (the browser gives up), one on
an allowed other origin is served (CORS), and a page beside them is unaffected.
"""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import pytest

from broker.client import Publisher
from tests.chromium import E2E, PageDriver, opener
from tests.node import PUBLISHER_SECRET, Node
from tests.test_browser import sqlite_history

pytestmark = pytest.mark.node

SSE = E2E / "sse.mjs"


class Page(PageDriver):
    """One Chromium page with an EventSource, driven through sse.mjs."""

    def __init__(self, url: str) -> None:
        super().__init__(SSE, url)

    def events(self, prefix: str, count: int) -> list[dict[str, Any]]:
        return list(self.ask(expect=count, prefix=prefix)["events"])


@pytest.fixture
def pages() -> Iterator[Callable[..., Page]]:
    yield from opener(Page)  # type: ignore[misc]


def page_url(base: str, topic: str, match: str = "exact", node: str | None = None) -> str:
    query = {"topic": topic, "match": match, **({"node": node} if node else {})}
    return f"{base}/e2e/sse.html?" + urlencode(query)


def publisher(node: Node) -> Publisher:
    return Publisher(node.url, "dev", PUBLISHER_SECRET)


@pytest.mark.parametrize("stop", [signal.SIGKILL, signal.SIGTERM], ids=["killed", "stopped"])
def test_an_event_source_survives_a_node_restart_and_sees_every_event_once(
    make_node: Callable[..., Node], pages: Callable[..., Page], stop: signal.Signals
) -> None:
    node = make_node(sqlite_history)
    prefix = f"public.sserestart.{uuid.uuid4().hex[:8]}."
    page = pages(page_url(node.url, prefix, "prefix"))
    page.ask(state="open")
    publisher(node).publish(f"{prefix}a", 0)
    assert [e["data"] for e in page.events(prefix, 1)] == [0]
    node.stop(stop)  # stopped: a reconnect while it stops is told to retry, not refused
    page.ask(state="reconnecting")
    restarted = Node(node.workdir, mutate=sqlite_history, port=node.port).start()
    try:
        for n in (1, 2, 3):  # most likely before the browser is back (it waits retry: 2 s)
            publisher(restarted).publish(f"{prefix}a", n)
        page.ask(state="open")
        for n in (4, 5):
            publisher(restarted).publish(f"{prefix}b", n)
        answer = page.ask(expect=6, prefix=prefix)
        shown, notes = answer["events"], answer["notes"]
        assert [e["data"] for e in shown] == [0, 1, 2, 3, 4, 5]  # each exactly once, in order
        assert [e["seq"] for e in shown] == [1, 2, 3, 4, 1, 2]
        cursors = [e["cursor"] for e in shown]
        assert cursors == sorted(cursors)
        assert [e["id"].rsplit(":", 1)[1] for e in shown] == [str(c) for c in cursors]
        assert not [n for n in notes if n.startswith("unrecoverable")]  # SQLite kept the epoch
        assert len([n for n in notes if n.startswith("ready")]) == 2  # the first visit, the reconnect
        assert len(page.events(prefix, 6)) == 6  # and nothing came twice since
    finally:
        restarted.stop()


class PageServer:
    """Serves clients/js (the test page) on its own origin: ``http://<host>:<port>``."""

    def __init__(self, host: str) -> None:
        directory = str(E2E.parent)

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=directory, **kwargs)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.origin = f"http://{host}:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def foreign() -> Iterator[PageServer]:
    server = PageServer("127.0.0.2")  # not in the node's allowed origins (127.0.0.1:*, localhost:*)
    yield server
    server.close()


def test_a_foreign_origin_page_is_refused_and_a_page_beside_it_is_not(
    node: Node, pages: Callable[..., Page], foreign: PageServer
) -> None:
    topic = f"public.sseorigin.{uuid.uuid4().hex[:8]}"
    before = node.rejections().get("ForeignOrigin", 0)
    own = pages(page_url(node.url, topic))
    own.ask(state="open")
    refused = pages(page_url(foreign.origin, topic, node=node.url))
    refused.ask(state="closed")  # a 403 ends an EventSource for good
    assert node.rejections().get("ForeignOrigin", 0) == before + 1
    publisher(node).publish(topic, "for the own page")
    assert [e["data"] for e in own.events(topic, 1)] == ["for the own page"]


def test_an_allowed_other_origin_page_is_served_with_cors(node: Node, pages: Callable[..., Page]) -> None:
    server = PageServer("127.0.0.1")
    try:
        other = f"http://localhost:{server.httpd.server_address[1]}"  # allowed: http://localhost:*
        topic = f"public.ssecors.{uuid.uuid4().hex[:8]}"
        page = pages(page_url(other, topic, node=node.url))
        page.ask(state="open")
        publisher(node).publish(topic, "across origins")
        assert [e["data"] for e in page.events(topic, 1)] == ["across origins"]
    finally:
        server.close()
