"""Live reload of the router's limits against real nodes: the slow-subscriber limit, the
HELLO deadline and the long-poll CORS origins, each edited in the node's config file and
applied by ``broker reload`` (no restart, the same router worker).

Each test fails if the reload stopped applying its setting: the node would keep the
value it started with, which the test shows to behave differently first.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker.config import configfile
from tests.node import BACKEND_SECRET, Node, children
from tests.rawwamp import ABORT, EVENT, PUBLISHED, SUBSCRIBED, WELCOME, RawWamp
from tests.test_longpoll import LongPoll, post
from tests.test_reload_node import EXTRA, config_of
from tests.test_reload_node import broker as broker_cli
from tests.test_slow_subscriber import RawSubscriber

pytestmark = pytest.mark.node

WS_OPTIONS = "$.workers[0].transports[0].paths.ws.options"


def edit(node: Node, change: Callable[[dict[str, Any]], None]) -> None:
    """Edit the node's config file as ``broker config`` would write it."""
    path = config_of(node)
    config = json.loads(path.read_text())
    change(config)
    configfile.write(path, configfile.format_config(config))


def extra_of(config: dict[str, Any]) -> dict[str, Any]:
    return config["workers"][0]["components"][0]["extra"]  # type: ignore[no-any-return]


def ws_options(config: dict[str, Any]) -> dict[str, Any]:
    return config["workers"][0]["transports"][0]["paths"]["ws"]["options"]  # type: ignore[no-any-return]


def reload(node: Node) -> list[str]:
    """``broker reload``; the lines it printed. The node is the same process afterwards."""
    reloaded = broker_cli(node, "reload")
    assert reloaded.returncode == 0, reloaded.stderr
    assert node.proc is not None and node.proc.poll() is None
    assert children(node.pid) == node.workers  # the same router worker: applied live
    return reloaded.stdout.splitlines()


def backend(node: Node) -> RawWamp:
    client = RawWamp(node.ws_url, origin=node.origin)
    assert client.hello(authid="backend", secret=BACKEND_SECRET)[0] == WELCOME
    return client


def subscriber(node: Node, topic: str) -> RawWamp:
    client = RawWamp(node.ws_url, origin=node.origin)
    assert client.hello()[0] == WELCOME
    assert client.subscribe(topic)[0] == SUBSCRIBED
    return client


# -- slow_subscriber.max_buffer_bytes -----------------------------------------------

LARGE_LIMIT = 64 * 1024 * 1024
SMALL_LIMIT = 64 * 1024  # the smallest the settings accept
EVENT_BYTES = 10_000


def burst_events() -> int:
    """Events whose bytes overflow what the kernel takes for a stalled peer by 2 MiB.

    The router's send buffer grows up to tcp_wmem's maximum (4 MiB by default) before
    anything waits in the router itself; the stalled peer's receive buffer is tiny.
    So at least 2 MiB wait in the router: far over the small limit, far under the large.
    """
    wmem_max = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    events = (wmem_max + 2 * 1024 * 1024) // EVENT_BYTES + 1
    assert events * EVENT_BYTES * 2 < LARGE_LIMIT
    return events


def burst(publisher: RawWamp, reader: RawWamp, topic: str, events: int, data: str) -> None:
    """Publish ``events`` events; the reading subscriber gets every one, in order."""
    for n in range(1, events + 1):
        assert (publisher.publish(topic, [n, data]) or [None])[0] == PUBLISHED
        assert reader.event()[4] == [n, data]


def test_a_lowered_slow_subscriber_limit_lets_the_next_stalled_peer_go(
    make_node: Callable[..., Node],
) -> None:
    def large(config: dict[str, Any]) -> None:
        extra_of(config)["slow_subscriber"] = {"max_buffer_bytes": LARGE_LIMIT}
        # a stalled peer cannot answer pings: keep auto-ping out of this test's way
        ws_options(config)["auto_ping_interval"] = 300_000

    node = make_node(large)
    topic = "public.reload.slow"
    data = "x" * EVENT_BYTES
    events = burst_events()
    publisher = backend(node)
    reader = subscriber(node, topic)

    # the large limit: a stalled peer keeps its connection through the whole burst
    kept = RawSubscriber(node, rcvbuf=4096)
    kept.join_and_subscribe(topic)
    burst(publisher, reader, topic, events, data)
    assert "SlowSubscriber" not in node.rejections()
    for n in range(1, events + 1):  # it reads again: nothing was dropped, its session is there
        message = kept.message()
        assert (message[0], message[4]) == (EVENT, [n, data])
    kept.close()

    def small(config: dict[str, Any]) -> None:
        extra_of(config)["slow_subscriber"]["max_buffer_bytes"] = SMALL_LIMIT

    edit(node, small)
    assert reload(node) == [f"changed: {EXTRA}.slow_subscriber.max_buffer_bytes"]

    # the same burst to a new stalled peer: let go, while the reader beside it gets every event
    stalled = RawSubscriber(node, rcvbuf=4096)
    stalled.join_and_subscribe(topic)
    burst(publisher, reader, topic, events, data)
    assert node.rejections() == {"SlowSubscriber": 1}
    # the close frame gets through only if the router's kernel buffer had room; either way it ends
    closed = stalled.until_closed()
    if closed is not None:
        code, reason = closed
        assert code == 1008
        assert reason.startswith("slow subscriber: ") and reason.endswith(" (limit 64 KiB)"), reason
    let_go = (
        r"closing tcp4:127\.0\.0\.1:\d+: slow subscriber: [\d.]+ [KM]iB waiting to be sent \(limit 64 KiB\)"
    )
    assert len(re.findall(let_go, node.log())) == 1
    stalled.close()
    # the reader and the publisher kept their sessions
    assert (publisher.publish(topic, ["after"]) or [None])[0] == PUBLISHED
    assert reader.event()[4] == ["after"]
    reader.close()
    publisher.close()


# -- hello_timeout --------------------------------------------------------------------

OLD_HELLO_TIMEOUT = 60
NEW_HELLO_TIMEOUT = 2


def test_a_shorter_hello_timeout_closes_the_next_silent_connection(make_node: Callable[..., Node]) -> None:
    def slow_hello(config: dict[str, Any]) -> None:
        extra_of(config)["hello_timeout"] = OLD_HELLO_TIMEOUT

    node = make_node(slow_hello)
    topic = "public.reload.hello"
    joined_before = subscriber(node, topic)

    def fast_hello(config: dict[str, Any]) -> None:
        extra_of(config)["hello_timeout"] = NEW_HELLO_TIMEOUT

    edit(node, fast_hello)
    assert reload(node) == [f"changed: {EXTRA}.hello_timeout"]

    # connected before the silent one, so its own deadline passes first: a joined session stays
    joined_after = subscriber(node, topic)
    silent = RawWamp(node.ws_url, origin=node.origin)
    started = time.monotonic()
    closed = silent.wait_closed(timeout=OLD_HELLO_TIMEOUT / 2)  # long before the old deadline
    elapsed = time.monotonic() - started
    assert closed.code == 1008
    assert closed.reason == f"no WAMP session established within {NEW_HELLO_TIMEOUT} s of connecting"
    assert silent.received_before_close == [[ABORT, {"message": closed.reason}, "broker.error.hello_timeout"]]
    assert elapsed < OLD_HELLO_TIMEOUT / 2, elapsed

    publisher = backend(node)
    assert (publisher.publish(topic, ["still here"]) or [None])[0] == PUBLISHED
    for client in (joined_before, joined_after):
        assert client.event()[4] == ["still here"]
        client.close()
    publisher.close()


# -- long-poll CORS (the WebSocket path's allowed_origins) ------------------------------

DASH = "https://dash.example.com"
OPEN = json.dumps({"protocols": ["wamp.2.json"]}).encode()


def assert_cors(node: Node, origin: str) -> None:
    opened = post(node, "open", OPEN, origin)
    assert opened.status == 200, (origin, opened.status, opened.body)
    assert opened.headers.get("Access-Control-Allow-Origin") == origin
    assert opened.headers.get("Access-Control-Allow-Credentials") == "true"
    post(node, f"{json.loads(opened.body)['transport']}/close", origin=origin)


def assert_no_cors(node: Node, origin: str) -> None:
    refused = post(node, "open", OPEN, origin)
    assert refused.status == 403, (origin, refused.status, refused.body)
    assert refused.headers.get("Access-Control-Allow-Origin") is None
    assert refused.headers.get("Access-Control-Allow-Credentials") is None


def test_longpoll_cors_follows_reloaded_allowed_origins(make_node: Callable[..., Node]) -> None:
    node = make_node(lambda config: None)
    local = f"http://localhost:{node.port}"
    assert_no_cors(node, DASH)
    assert_cors(node, local)

    def allow(config: dict[str, Any]) -> None:
        ws_options(config)["allowed_origins"].append(f"{DASH}:*")

    edit(node, allow)
    assert reload(node) == [f"changed: {WS_OPTIONS}.allowed_origins[2]"]
    assert_cors(node, DASH)
    dash = LongPoll(node, origin=DASH)
    assert dash.hello()[0] == WELCOME
    assert_cors(node, local)

    def remove(config: dict[str, Any]) -> None:
        ws_options(config)["allowed_origins"] = ["http://127.0.0.1:*"]

    edit(node, remove)
    assert reload(node) == [
        f"changed: {WS_OPTIONS}.allowed_origins[1]",
        f"changed: {WS_OPTIONS}.allowed_origins[2]",
    ]
    assert_no_cors(node, DASH)
    assert_no_cors(node, local)
    # a transport the removed origin opened before: its answers carry no CORS headers any more
    closed = post(node, f"{dash.transport}/close", origin=DASH)
    assert closed.headers.get("Access-Control-Allow-Origin") is None
    assert closed.headers.get("Access-Control-Allow-Credentials") is None
    assert_cors(node, f"http://127.0.0.1:{node.port}")  # the origin that stayed
    assert "Traceback" not in node.log()
