"""Long-poll behind a load balancer: three real nodes behind real nginx, configured by the
multi-node block of docs/operators.md (:mod:`tests.cluster`).

A long-poll session lives on the node that opened it; nginx balances ``/lp/open`` over the
nodes and sends every later request of a session to the node its transport id names
(``<node id>.<random>``, :mod:`broker.core.nodeid`). Each session here is opened through
nginx, works end to end (HELLO, SUBSCRIBE, an event published on its own node through that
node's ``/api/publish``), and nginx's log shows every one of its requests reached its node and
no other. The nodes share one Redis (one broker, issue 14): a page in headless Chromium
without WebSocket long-polls its node through nginx with the JS client and receives the events
published on every node, its own and the two others, once each with their positions.
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from broker.client import Publisher
from broker.core.nodeid import issuing_node
from tests.chromium import PageDriver, opener
from tests.cluster import Cluster
from tests.lpclient import LongPollSession, post
from tests.node import PUBLISHER_SECRET, Node
from tests.rawwamp import EVENT, SUBSCRIBED, WELCOME
from tests.redisserver import RedisServer
from tests.sseclient import SseClient
from tests.test_browser import WATCH
from tests.test_reverse_proxy import NGINX

pytestmark = pytest.mark.node

#: Sessions opened through nginx in the main test: enough for every node to get some.
SESSIONS = 9


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Cluster]:
    """Three nodes on the session's Redis behind the doc's nginx block, with TLS; stopped by PID."""
    if not (os.path.isfile(NGINX) and os.access(NGINX, os.X_OK)):
        pytest.fail(f"nginx is not installed ({NGINX} not found): run `make nginx` first")
    prefix = f"lp{secrets.token_hex(6)}"
    running = Cluster(
        tmp_path_factory.mktemp("cluster"), redis_url=redis_server.url, redis_prefix=prefix
    ).start()
    try:
        yield running
    finally:
        running.stop()
        assert running.nginx is not None
        print(f"nginx error log:\n{running.nginx.log()}")


def publish_on(node: Node, topic: str, data: object) -> object:
    """Publish through ``node``'s own HTTP API (not through nginx); its position."""
    return Publisher(node.url, "dev", PUBLISHER_SECRET).publish(topic, data).position


def subscribed(cluster: Cluster, topic: str) -> LongPollSession:
    session = LongPollSession(cluster.public, cluster.context)
    assert session.hello()[0] == WELCOME
    assert session.subscribe(topic)[0] == SUBSCRIBED
    return session


def receives(cluster: Cluster, session: LongPollSession, topic: str, data: object) -> None:
    """An event published on the session's own node reaches it through nginx, with its position."""
    node_id = issuing_node(session.transport)
    assert node_id is not None, session.transport
    position = publish_on(cluster.node(node_id), topic, data)
    event = session.recv()
    assert (event[0], event[4]) == (EVENT, [data])
    assert event[5]["broker_position"] == position


def logged(cluster: Cluster, skip: int, count: int, timeout: float = 10) -> list[tuple[str, str, str, int]]:
    """The long-poll requests in nginx's log after its first ``skip`` lines, once there are
    ``count`` of them (nginx writes a line as a request ends, maybe after its answer)."""
    deadline = time.monotonic() + timeout
    while True:
        lp = [entry for entry in cluster.served()[skip:] if entry[1].startswith("/lp/")]
        if len(lp) >= count or time.monotonic() > deadline:
            return lp
        time.sleep(0.05)


def test_every_session_reaches_its_own_node_through_nginx(cluster: Cluster) -> None:
    addresses = {node.node_id: f"127.0.0.1:{node.port}" for node in cluster.nodes}
    before = len(cluster.served())
    canary = subscribed(cluster, "public.cluster.canary")
    sessions: list[LongPollSession] = []
    for n in range(SESSIONS):
        topic = f"public.cluster.s{n}"
        session = subscribed(cluster, topic)
        sessions.append(session)
        receives(cluster, session, topic, n)
    openers = [issuing_node(session.transport) for session in [canary, *sessions]]
    # the balancer spread the opens: every node opened some (least_conn, ties round-robin)
    assert set(openers) == set(addresses), openers
    receives(cluster, canary, "public.cluster.canary", "still here")
    for session in [canary, *sessions]:
        session.close()

    # 10 sessions x (open, HELLO and SUBSCRIBE sent, their answers and one event received, close)
    lp = logged(cluster, before, 10 * 7)
    assert len(lp) == 10 * 7
    opens = [entry for entry in lp if entry[1] == "/lp/open"]
    assert len(opens) == 10 and {upstream for _, _, upstream, _ in opens} == set(addresses.values())
    by_session = [entry for entry in lp if entry[1] != "/lp/open"]
    assert len(by_session) == 10 * 6
    for method, uri, upstream, status in by_session:
        transport = uri.split("/")[2]
        node_id = issuing_node(transport)
        assert node_id is not None, uri
        assert (method, upstream) == ("POST", addresses[node_id]), (uri, upstream)
        assert status in (200, 204), (uri, status)
    # and no node ever saw another node's session
    assert all("MisroutedLongPoll" not in node.rejections() for node in cluster.nodes)


def test_a_transport_of_no_node_is_a_json_404_from_nginx(cluster: Cluster) -> None:
    canary = subscribed(cluster, "public.cluster.canary404")
    before = len(cluster.served())
    for transport in ("nosuchnode.K3XKJ7WH4RRA", "K3XKJ7WH4RRA", "bad%20node.abc"):
        answer = post(cluster.public, f"/lp/{transport}/receive", context=cluster.context)
        assert answer.status == 404, (transport, answer.body)
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.json() == {
            "error": "broker.error.unknown_transport",
            "message": "no node of this proxy issued this long-poll transport: open a new one",
        }
    # nginx answered those itself: no node was asked
    assert [(upstream, status) for _, _, upstream, status in logged(cluster, before, 3)] == [("-", 404)] * 3
    # a known node, an unknown transport: that node answers, in the same JSON
    node = cluster.nodes[0]
    stale = f"{node.node_id}.K3XKJ7WH4RRA"
    answer = post(cluster.public, f"/lp/{stale}/receive", context=cluster.context)
    assert (answer.status, answer.json()["error"]) == (404, "broker.error.unknown_transport")
    expected = f"no long-poll transport {stale!r} on this node (closed or expired): open a new one"
    assert answer.json()["message"] == expected
    receives(cluster, canary, "public.cluster.canary404", "unaffected")
    canary.close()


@pytest.fixture
def pages() -> Iterator[Callable[..., PageDriver]]:
    yield from opener(PageDriver)


def test_a_page_without_websocket_long_polls_its_node_through_nginx(
    cluster: Cluster, pages: Callable[..., PageDriver]
) -> None:
    before = len(cluster.served())
    page = pages(WATCH, f"{cluster.public}/", {"NO_WEBSOCKET": "1", "IGNORE_HTTPS_ERRORS": "1"})
    # the page joined over long-poll, through nginx: which node opened its session?
    lp = [entry for entry in cluster.served()[before:] if entry[1].startswith("/lp/")]
    opened = [entry for entry in lp if entry[1] == "/lp/open"]
    assert len(opened) == 1, lp
    transports = {entry[1].split("/")[2] for entry in lp if entry[1] != "/lp/open"}
    assert len(transports) == 1, lp
    own = cluster.node(str(issuing_node(transports.pop())))
    # one event published on each node's own port: all three reach the page, once each, in the
    # order they were published, with the positions their publishers were answered
    prefix = f"public.cluster.page{uuid.uuid4().hex[:8]}."
    positions = [publish_on(node, f"{prefix}a", node.node_id) for node in cluster.nodes]
    shown = sorted(page.ask(expect=3, prefix=prefix)["events"], key=lambda e: e["cursor"])
    assert [e["data"] for e in shown] == [node.node_id for node in cluster.nodes]
    assert [{"seq": e["seq"], "cursor": e["cursor"]} for e in shown] == [
        {"seq": p["seq"], "cursor": p["cursor"]}  # type: ignore[index]
        for p in positions
    ]
    last = publish_on(own, f"{prefix}a", "last")
    shown = sorted(page.ask(expect=4, prefix=prefix)["events"], key=lambda e: e["cursor"])
    assert [e["data"] for e in shown] == [*(node.node_id for node in cluster.nodes), "last"]  # none twice
    assert shown[-1]["cursor"] == last["cursor"]  # type: ignore[index]
    # every long-poll request of the page went to that node
    lp = [entry for entry in cluster.served()[before:] if entry[1].startswith("/lp/")]
    own_address = f"127.0.0.1:{own.port}"
    assert all(upstream == own_address for _, uri, upstream, _ in lp if uri != "/lp/open"), lp


def test_an_sse_stream_through_nginx_gets_every_nodes_events_unbuffered(cluster: Cluster) -> None:
    """``GET /sse`` through the doc's multi-node block (``location = /sse``): events published on
    each node's own port arrive once each, in order, with their positions as ids."""
    topic = f"public.lp.sse.{uuid.uuid4().hex[:8]}"
    port = int(cluster.public.rsplit(":", 1)[1])
    stream = SseClient(port, f"/sse?topic={topic}", {"Origin": cluster.public}, ssl_context=cluster.context)
    try:
        assert stream.open().status == 200
        assert stream.response_headers["content-type"].startswith("text/event-stream")
        assert stream.next().event == "ready"
        names = [f"from {node.node_id}" for node in cluster.nodes]
        pairs = zip(names, cluster.nodes, strict=True)
        sent = [(name, publish_on(node, topic, name)) for name, node in pairs]
        got = [stream.next() for _ in sent]
        assert [(e.event, e.data["args"], e.data["position"]) for e in got] == [
            ("event", [data], position) for data, position in sent
        ]
        assert [e.id for e in got] == [f"{p['epoch']}:{p['cursor']}" for _, p in sent]  # type: ignore[index]
    finally:
        stream.close()
