"""The browser client in real headless Chromium against real nodes.

Each test drives ``clients/js/e2e/watch.mjs`` (playwright-core with Debian's
chromium, installed by ``make test``) over a line protocol: wait for the page
to connect, publish from the backend side, then ask the page what it shows.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse

import pytest

from broker.client import Publisher
from broker.core.tokens import mint
from tests.chromium import E2E, PageDriver, opener
from tests.node import BACKEND_SECRET, BROKER, PUBLISHER_SECRET, TOKEN_SECRET, Node

pytestmark = pytest.mark.node

WATCH = E2E / "watch.mjs"


class Page(PageDriver):
    """One Chromium page on ``url``, driven through watch.mjs."""

    def __init__(self, url: str, no_websocket: bool = False) -> None:
        super().__init__(WATCH, url, {"NO_WEBSOCKET": "1" if no_websocket else "0"})

    def events(self, prefix: str, count: int) -> list[dict[str, Any]]:
        return sorted(self.ask(expect=count, prefix=prefix)["events"], key=lambda e: e["cursor"])


@pytest.fixture
def pages() -> Iterator[Callable[..., Page]]:
    yield from opener(Page)  # type: ignore[misc]


def publisher(node: Node) -> Publisher:
    return Publisher(node.url, "dev", PUBLISHER_SECRET)


def test_http_publish_appears_on_the_page(node: Node, pages: Callable[..., Page]) -> None:
    prefix = f"public.browser.{uuid.uuid4().hex[:8]}."
    page = pages(f"{node.url}/")
    sent = [publisher(node).publish(f"{prefix}{n}", {"n": n}) for n in range(3)]
    shown = page.events(prefix, 3)
    assert [(e["topic"], e["data"]) for e in shown] == [(f"{prefix}{n}", {"n": n}) for n in range(3)]
    assert [e["cursor"] for e in shown] == [p.position["cursor"] for p in sent if p.position]


def test_long_poll_fallback_delivers_without_websocket(node: Node, pages: Callable[..., Page]) -> None:
    prefix = f"public.lp.{uuid.uuid4().hex[:8]}."
    page = pages(f"{node.url}/", no_websocket=True)
    publisher(node).publish(f"{prefix}a", "via long-poll")
    [shown] = page.events(prefix, 1)
    assert shown["data"] == "via long-poll"


def sqlite_history(config: dict[str, Any]) -> None:
    extra = config["workers"][0]["components"][0]["extra"]
    extra["history"]["store"] = {"type": "sqlite", "path": "history.sqlite3"}


def test_page_recovers_every_event_across_a_node_restart(
    make_node: Callable[..., Node], pages: Callable[..., Page]
) -> None:
    node = make_node(sqlite_history)
    prefix = "public.restart."
    page = pages(f"{node.url}/")
    publisher(node).publish(f"{prefix}a", 0)
    assert [e["data"] for e in page.events(prefix, 1)] == [0]
    node.stop(signal.SIGKILL)
    page.ask(state="reconnecting")
    restarted = Node(node.workdir, mutate=sqlite_history, port=node.port).start()
    try:
        for n in range(1, 6):  # published while the page is still (re)connecting, or just after
            publisher(restarted).publish(f"{prefix}a", n)
        shown = page.events(prefix, 6)
        assert [e["data"] for e in shown] == [0, 1, 2, 3, 4, 5]  # each exactly once, in order
        assert [e["seq"] for e in shown] == [1, 2, 3, 4, 5, 6]
    finally:
        restarted.stop()


def test_page_served_at_root_loads_the_bundle(node: Node) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{node.url}/dist/broker.js", timeout=10) as response:
        assert response.status == 200
        assert len(response.read()) > 10_000


class TokenServer:
    """The backend's token endpoint, as a page on another origin sees it (CORS with credentials).

    ``ttl_for(n)`` is the lifetime of the n-th token (from 1); the ``hold``-th
    request is answered only once the next one has arrived (a refresh that
    comes too late).
    """

    def __init__(
        self,
        origin: str,
        grants_for: Callable[[str], list[dict[str, str]]],
        ttl_for: Callable[[int], int] = lambda n: 300,
        hold: int | None = None,
    ) -> None:
        self.requests: list[str] = []
        self.expired_first = False
        self.arrived = threading.Condition()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = parse_qs(urlparse(self.path).query)
                sub = query["sub"][0]
                with server.arrived:
                    server.requests.append(sub)
                    n = len(server.requests)
                    server.arrived.notify_all()
                if n == hold:
                    server.wait_for_requests(n + 1, timeout=30)
                now = time.time()
                if server.expired_first and n == 1:
                    now -= 3600  # a token that expired long ago
                token = mint(TOKEN_SECRET, sub, server.grants_for(sub), ttl=ttl_for(n), now=now)
                body = json.dumps({"token": token}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Access-Control-Allow-Origin", origin)
                self.send_header("Access-Control-Allow-Credentials", "true")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.grants_for = grants_for
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def wait_for_requests(self, count: int, timeout: float = 20) -> bool:
        """Whether ``count`` tokens have been asked for within ``timeout`` seconds."""
        with self.arrived:
            return self.arrived.wait_for(lambda: len(self.requests) >= count, timeout)

    def url(self, sub: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/token?sub={sub}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tokens(node: Node) -> Iterator[TokenServer]:
    server = TokenServer(node.origin, lambda sub: [{"uri": f"user.{sub}.", "match": "prefix"}])
    yield server
    server.close()


def token_page(node: Node, tokens: TokenServer, sub: str, topics: list[str]) -> str:
    return f"{node.url}/e2e/token.html?" + urlencode(
        {"tokenUrl": tokens.url(sub), "topics": ",".join(topics)}
    )


def test_user_token_receives_only_its_own_topics(
    node: Node, pages: Callable[..., Page], tokens: TokenServer
) -> None:
    page = pages(token_page(node, tokens, "42", ["user.42.", "user.43."]))
    errors = page.ask(error="subscribe user.43.")["errors"]
    assert any("wamp.error.not_authorized" in e for e in errors), errors
    backend = Publisher(node.url, "dev", PUBLISHER_SECRET)
    backend.publish("user.43.inbox", "for 43")
    backend.publish("user.42.inbox", "for 42")
    [shown] = page.events("user.", 1)
    assert (shown["topic"], shown["data"]) == ("user.42.inbox", "for 42")
    backend.publish("user.42.inbox", "again")
    assert [e["data"] for e in page.events("user.", 2)] == ["for 42", "again"]  # 43's never arrived


def test_expired_token_is_refreshed_without_user_action(
    node: Node, pages: Callable[..., Page], tokens: TokenServer
) -> None:
    tokens.expired_first = True
    page = pages(token_page(node, tokens, "7", ["user.7."]))  # ready = connected, after a refresh
    assert tokens.requests[:2] == ["7", "7"]
    Publisher(node.url, "dev", PUBLISHER_SECRET).publish("user.7.inbox", "hello")
    assert [e["data"] for e in page.events("user.7.", 1)] == ["hello"]


def test_readme_user_page_works_as_written(node: Node, pages: Callable[..., Page]) -> None:
    """README "Dashboards in the browser": the example page with a token from `broker token`."""
    token = subprocess.run(
        [str(BROKER), "token", "42", "--subscribe", "user.42.:prefix", "--ttl", "3600"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "BROKER_TOKEN_SECRET": TOKEN_SECRET},
    ).stdout.strip()
    page = pages(f"{node.url}/examples/user.html#{token}")
    topic = f"user.42.readme{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [str(BROKER), "publish", topic, '{"hi": 1}', "--url", node.ws_url],
        capture_output=True,
        text=True,
        env={**os.environ, "BROKER_BACKEND_SECRET": BACKEND_SECRET},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    [shown] = page.events("user.42.", 1)
    assert (shown["topic"], shown["data"], shown["seq"]) == (topic, {"hi": 1}, 1)


def test_user_token_works_over_the_long_poll_fallback(
    node: Node, pages: Callable[..., Page], tokens: TokenServer
) -> None:
    page = pages(token_page(node, tokens, "42", ["user.42."]), no_websocket=True)
    topic = f"user.42.lp{uuid.uuid4().hex[:8]}"
    Publisher(node.url, "dev", PUBLISHER_SECRET).publish(topic, "via long-poll")
    [shown] = page.events(topic, 1)
    assert shown["data"] == "via long-poll"


LEEWAY = 1


def short_leeway(config: dict[str, Any]) -> None:
    config["workers"][0]["components"][0]["extra"]["tokens"]["leeway"] = LEEWAY


def own_topics(sub: str) -> list[dict[str, str]]:
    return [{"uri": f"user.{sub}.", "match": "prefix"}]


def test_page_keeps_receiving_through_a_token_refresh(
    make_node: Callable[..., Node], pages: Callable[..., Page]
) -> None:
    """The client refreshes before ``exp``: the node never has to end its session."""
    node = make_node(short_leeway)
    tokens = TokenServer(node.origin, own_topics, ttl_for=lambda n: 4 if n == 1 else 300)
    try:
        page = pages(token_page(node, tokens, "7", ["user.7."]))
        backend = publisher(node)
        backend.publish("user.7.inbox", "before")
        assert [e["data"] for e in page.events("user.7.", 1)] == ["before"]
        assert tokens.wait_for_requests(2)  # the refresh, half-way through the first token's life
        backend.publish("user.7.inbox", "during")
        page.ask(state="connected")
        backend.publish("user.7.inbox", "after")
        shown = page.events("user.7.", 3)
        assert [e["data"] for e in shown] == ["before", "during", "after"]  # each once, in order
        assert "ending session" not in node.log()
    finally:
        tokens.close()


def test_page_recovers_when_the_node_ends_its_session_at_token_expiry(
    make_node: Callable[..., Node], pages: Callable[..., Page]
) -> None:
    """The refresh comes too late (a throttled tab): the node ends the session with
    ``broker.error.token_expired``; the page fetches a fresh token at once and recovers."""
    node = make_node(short_leeway)
    tokens = TokenServer(node.origin, own_topics, ttl_for=lambda n: 2 if n == 1 else 300, hold=2)
    try:
        page = pages(token_page(node, tokens, "7", ["user.7."]))
        backend = publisher(node)
        backend.publish("user.7.inbox", "before")
        assert [e["data"] for e in page.events("user.7.", 1)] == ["before"]
        assert tokens.wait_for_requests(3), "the page did not ask for a fresh token after the GOODBYE"
        backend.publish("user.7.inbox", "during")  # while the page reconnects
        page.ask(state="connected")
        backend.publish("user.7.inbox", "after")
        shown = page.events("user.7.", 3)
        assert [e["data"] for e in shown] == ["before", "during", "after"]  # each once, in order
        assert [e["seq"] for e in shown] == [1, 2, 3]
        assert node.log().count("broker.error.token_expired: token expired at") == 1
    finally:
        tokens.close()


def test_a_fresh_page_load_counts_no_unrecoverable_recovery(
    make_node: Callable[..., Node], pages: Callable[..., Page]
) -> None:
    """The dashboard's first "where is the stream now" call is a position request, so an alert
    on broker_recoveries_total{outcome="unrecoverable"} does not fire on ordinary page loads."""
    from tests.test_metrics import scrape, series

    node = make_node()
    prefix = f"public.first.{uuid.uuid4().hex[:8]}."
    publisher(node).publish(f"{prefix}before", 0)  # history exists before the page opens
    page = pages(f"{node.url}/")
    publisher(node).publish(f"{prefix}a", 1)
    # shown only once the page's first recovery call was answered (live events wait for it)
    assert [e["data"] for e in page.events(prefix + "a", 1)] == [1]
    _, samples = scrape(node)
    outcomes = series(samples, "broker_recoveries_total", "outcome")
    assert outcomes.get("position", 0) >= 1
    assert outcomes.get("unrecoverable", 0) == 0
