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
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker.client import Publisher
from tests.node import PUBLISHER_SECRET, ROOT, Node

pytestmark = pytest.mark.node

WATCH = ROOT / "clients" / "js" / "e2e" / "watch.mjs"


class Page:
    """One Chromium page on ``url``, driven through watch.mjs."""

    def __init__(self, url: str, no_websocket: bool = False) -> None:
        env = {**os.environ, "PAGE_URL": url, "NO_WEBSOCKET": "1" if no_websocket else "0"}
        self.proc = subprocess.Popen(
            ["node", str(WATCH)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=WATCH.parent.parent,
        )
        self.ready = self._read()
        assert self.ready.get("ready"), self.ready

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"watch.mjs ended: {self.proc.stderr.read() if self.proc.stderr else ''}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise AssertionError(f"page: {answer['error']}\n" + "\n".join(answer.get("logs", [])))
        return answer

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def events(self, prefix: str, count: int) -> list[dict[str, Any]]:
        return sorted(self.ask(expect=count, prefix=prefix)["events"], key=lambda e: e["cursor"])

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"quit": True}) + "\n")
                self.proc.stdin.close()
            except (BrokenPipeError, ValueError):
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def pages() -> Iterator[Callable[..., Page]]:
    opened: list[Page] = []

    def open_(url: str, **kwargs: Any) -> Page:
        page = Page(url, **kwargs)
        opened.append(page)
        return page

    yield open_
    for page in opened:
        page.close()


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
