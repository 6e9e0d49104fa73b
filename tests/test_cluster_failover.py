"""A node killed with SIGKILL loses nothing acknowledged: its clients come back through nginx
on another node and recover (issue 14).

One real redis-server, three real nodes sharing it and real nginx in front (docs/operators.md's
multi-node block, :mod:`tests.cluster`), for the whole module; a node a test killed is started
again (same port, same id) before the next test. A subscriber's node is the one whose
``broker_sessions`` gauge rose as it joined through nginx (:meth:`tests.cluster.Cluster.joined`).

- HTTP, WAMP and ``broker publish`` on each node and through nginx reach exact, prefix and
  wildcard subscribers on every node once each, at the one position the publisher was answered.
- A raw WAMP subscriber on each node, through nginx (wildcard, exact, prefix); publishers on
  the two nodes of the others (WAMP and HTTP, each publish acknowledged) and one on the victim
  with publishes in flight; the victim is killed mid-stream. Its subscriber reconnects through
  nginx, lands on a survivor, subscribes, runs ``broker.recover`` from the last position it saw
  and ends with the same events at the same positions as the other two: every acknowledged
  event once, in seq order; the victim's unacknowledged publishes at most once.
- A page of the JS client (WebSocket) through nginx sees events published on another node
  (on its port, then through nginx) once each with their positions; its node is killed; it
  reconnects through nginx elsewhere and shows what it missed, gapless, by ``broker.recover``
  (nginx is held stopped while its node dies and the missed events are published, so they can
  only come by recovery).
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker.client import Publisher
from tests.chromium import PageDriver, opener
from tests.cluster import Cluster
from tests.node import PUBLISHER_SECRET, Node
from tests.rawwamp import CALL, ERROR, EVENT, PUBLISH, PUBLISHED, RESULT, SUBSCRIBED, Closed, RawWamp
from tests.redisserver import RedisServer
from tests.test_browser import WATCH
from tests.test_cli_e2e import broker
from tests.test_metrics import scrape, series
from tests.test_recovery import POSITION, backend
from tools.nginxconf import NGINX

pytestmark = pytest.mark.node

#: Events of each phase of the stream (before the kill, while the subscriber is away, after).
PHASE = 20
#: Publishes the victim's own publisher has in flight as it is killed.
IN_FLIGHT = 200
#: Any single read here gives up after this long (s): nothing waits unbounded.
READ_TIMEOUT = 15


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Redis, three nodes on it and nginx (plain HTTP), for the module; stopped by PID afterwards."""
    if not (os.path.isfile(NGINX) and os.access(NGINX, os.X_OK)):
        pytest.fail(f"nginx is not installed ({NGINX} not found): run `make nginx` first")
    directory = tmp_path_factory.mktemp("failover")
    redis = RedisServer(directory / "redis")
    running = Cluster(directory, tls=False, redis_url=redis.url, redis_prefix=f"f{secrets.token_hex(6)}")
    try:
        running.start()
        yield running
    finally:
        running.stop()
        redis.stop()


@pytest.fixture
def whole(cluster: Cluster) -> Cluster:
    """The module's cluster with its three nodes: one an earlier test killed is started again."""
    cluster.revive()
    return cluster


#: The test's connections through nginx, closed after it (nginx's graceful stop waits for them).
THROUGH_NGINX: list[RawWamp] = []


@pytest.fixture(autouse=True)
def _close_through_nginx() -> Iterator[None]:
    yield
    while THROUGH_NGINX:
        THROUGH_NGINX.pop().close()


def through_nginx(cluster: Cluster) -> RawWamp:
    """An anonymous WAMP session opened through nginx's ``/ws`` (closed after the test)."""
    client = RawWamp(cluster.ws_url, origin=cluster.public)
    THROUGH_NGINX.append(client)
    assert client.hello()[0] == 2
    return client


Seen = tuple[Any, dict[str, Any]]


def as_seen(event: list[Any]) -> Seen:
    return event[4][0], event[5][POSITION]


def until(client: RawWamp, last: Any, bound: int) -> list[Seen]:
    """The client's events up to and including the one whose argument is ``last`` (at most ``bound``)."""
    seen: list[Seen] = []
    for _ in range(bound):
        seen.append(as_seen(client.event(READ_TIMEOUT)))
        if seen[-1][0] == last:
            return seen
    raise AssertionError(f"{last!r} not among {bound} events: {seen[-3:]}")


def until_closed(client: RawWamp, bound: int) -> list[list[Any]]:
    """Every message the client still gets until its connection ends (at most ``bound``)."""
    received = []
    for _ in range(bound):
        try:
            received.append(client.recv(READ_TIMEOUT))
        except Closed:
            return received
    raise AssertionError(f"the connection is still open after {bound} messages")


def recover_live(
    client: RawWamp, topic: str, match: str, epoch: str, after: int
) -> tuple[list[Seen], list[Seen]]:
    """``broker.recover`` from ``(epoch, after)``, paged to the end, as a subscribed client does
    it: (recovered, live events that arrived meanwhile)."""
    recovered: list[Seen] = []
    live: list[Seen] = []
    for _ in range(20):
        request = client.next_id()
        client.send(
            [CALL, request, {}, "broker.recover", [topic], {"match": match, "epoch": epoch, "after": after}]
        )
        for _ in range(10 * PHASE):
            message = client.recv(READ_TIMEOUT)
            if message[0] == EVENT:
                live.append(as_seen(message))
                continue
            assert message[0] == RESULT and message[1] == request, message
            break
        else:
            raise AssertionError("no answer to broker.recover")
        answer = message[3][0]
        assert answer["unrecoverable"] is False, answer
        recovered += [(e["args"][0], e["position"]) for e in answer["events"]]
        if not answer["more"]:
            return recovered, live
        after = answer["events"][-1]["position"]["cursor"]
    raise AssertionError("broker.recover still has more after 20 pages")


def http_publish(url: str, topic: str, data: Any) -> dict[str, Any]:
    """``POST /api/publish`` to ``url`` (a node or nginx) with the SDK; the position answered."""
    position = Publisher(url, "dev", PUBLISHER_SECRET).publish(topic, data).position
    assert position is not None
    return position


def cli_publish(url: str, topic: str, data: Any) -> dict[str, Any]:
    """``broker publish`` (a process of its own) to ``url``; the position it printed."""
    result = broker("publish", topic, json.dumps(data), "--url", url)
    assert result.returncode == 0, result.stderr
    position: dict[str, Any] = json.loads(result.stdout)["position"]
    return position


def test_every_path_on_every_node_reaches_every_subscriber_once_at_one_position(whole: Cluster) -> None:
    """HTTP, WAMP and ``broker publish``, on each node's port and through nginx; exact, prefix
    and wildcard subscribers on every node: all see the same events at the same positions,
    the ones their publishers were answered."""
    cluster = whole
    uid = uuid.uuid4().hex[:8]
    topic = f"public.paths.{uid}.x.feed"
    patterns = [
        ("exact", topic),
        ("prefix", f"public.paths.{uid}."),
        ("wildcard", f"public.paths.{uid}..feed"),
    ]
    subscribers = []
    for node in cluster.nodes:
        for match, pattern in patterns:
            client = RawWamp(node.ws_url, origin=node.origin)
            assert client.hello()[0] == 2
            assert client.subscribe(pattern, match)[0] == SUBSCRIBED
            subscribers.append(client)
    answered: dict[Any, dict[str, Any]] = {}
    published: list[Any] = []
    for node in cluster.nodes:
        data = f"http {node.node_id}"
        answered[data] = http_publish(node.url, topic, data)
        data = f"wamp {node.node_id}"
        assert backend(node).publish(topic, [data])[0] == PUBLISHED  # type: ignore[index]
        published.append(data)
        data = f"cli {node.node_id}"
        answered[data] = cli_publish(node.ws_url, topic, data)
    answered["http nginx"] = http_publish(cluster.public, topic, "http nginx")
    answered["cli nginx"] = cli_publish(cluster.ws_url, topic, "cli nginx")
    published += answered
    seen = [until(client, "cli nginx", 2 * len(published)) for client in subscribers]
    assert all(each == seen[0] for each in seen), "the subscribers disagree"
    assert sorted(arg for arg, _ in seen[0]) == sorted(published)  # each once
    positions = dict(seen[0])
    assert all(positions[data] == position for data, position in answered.items())
    assert [p["seq"] for _, p in seen[0]] == list(range(1, len(published) + 1))
    assert len({p["epoch"] for _, p in seen[0]}) == 1


def test_a_subscriber_of_a_killed_node_recovers_through_nginx_with_the_positions_of_all(
    whole: Cluster,
) -> None:
    cluster = whole
    uid = uuid.uuid4().hex[:8]
    topic = f"public.failover.{uid}.feed"
    subscribers: list[RawWamp] = []
    homes: list[Node] = []
    wildcard = f"public..{uid}.feed"  # the victim's: recovered by pattern, as exact and prefix are
    for match, pattern in (("wildcard", wildcard), ("exact", topic), ("prefix", f"public.failover.{uid}.")):
        client, home = cluster.joining(lambda: through_nginx(cluster))
        assert client.subscribe(pattern, match)[0] == SUBSCRIBED
        subscribers.append(client)
        homes.append(home)
    # least_conn spread them: one subscriber per node
    assert len({home.node_id for home in homes}) == 3, [home.node_id for home in homes]
    victim, wamp_node, http_node = homes
    wamp = backend(wamp_node)
    http = Publisher(http_node.url, "dev", PUBLISHER_SECRET)
    answered: dict[Any, dict[str, Any]] = {}

    def publish(n: int) -> None:
        if n % 2:
            assert wamp.publish(topic, [n])[0] == PUBLISHED  # type: ignore[index]
        else:
            position = http.publish(topic, n).position
            assert position is not None
            answered[n] = position

    for n in range(PHASE):
        publish(n)
    # the victim's own publisher: IN_FLIGHT publishes sent, one acknowledged, then kill -9
    doomed = backend(victim)
    requests = {}
    for k in range(IN_FLIGHT):
        requests[doomed.next_id()] = f"v{k}"
        doomed.send([PUBLISH, max(requests), {"acknowledge": True}, topic, [f"v{k}"], {}])
    first = doomed.recv(READ_TIMEOUT)
    assert first[0] == PUBLISHED, first
    cluster.kill(victim)
    acked_on_victim = {requests[first[1]]}
    for message in until_closed(doomed, IN_FLIGHT):
        assert message[0] in (PUBLISHED, ERROR), message
        if message[0] == PUBLISHED:
            acked_on_victim.add(requests[message[1]])
    # what the victim's subscriber got before its connection ended: its last position
    away = subscribers[0]
    before = [as_seen(m) for m in until_closed(away, 2 * PHASE + IN_FLIGHT) if m[0] == EVENT]
    assert before, "the victim's subscriber got nothing before the kill"
    last = before[-1][1]

    for n in range(PHASE, 2 * PHASE):  # published while it is away
        publish(n)
    back, landed = cluster.joining(lambda: through_nginx(cluster))
    assert landed.node_id != victim.node_id and landed.node_id in {wamp_node.node_id, http_node.node_id}
    assert back.subscribe(wildcard, "wildcard")[0] == SUBSCRIBED
    recovered, live = recover_live(back, wildcard, "wildcard", last["epoch"], last["cursor"])
    assert set(range(PHASE, 2 * PHASE)) <= {arg for arg, _ in recovered}  # recovery returned the gap
    for n in range(2 * PHASE, 3 * PHASE):  # published after it is back
        publish(n)
    sentinel = http.publish(topic, "end").position
    bound = 3 * PHASE + IN_FLIGHT + 1
    newest = recovered[-1][1]["cursor"] if recovered else last["cursor"]
    live += until(back, "end", bound)
    merged = before + recovered + [seen for seen in live if seen[1]["cursor"] > newest]

    everyone = [until(client, "end", bound) for client in subscribers[1:]]
    assert everyone[0] == everyone[1]  # exact and prefix subscribers on the two survivors
    assert merged == everyone[0]  # the moved subscriber: the same events at the same positions
    args = [arg for arg, _ in merged]
    assert len(args) == len(set(args)), args  # nothing twice
    numbered = [arg for arg in args if isinstance(arg, int)]
    assert numbered == list(range(3 * PHASE))  # every acknowledged event, in the order published
    from_victim = [arg for arg in args if isinstance(arg, str) and arg.startswith("v")]
    assert acked_on_victim <= set(from_victim), (acked_on_victim, from_victim)  # acknowledged: kept
    assert from_victim == sorted(from_victim, key=lambda v: int(v[1:]))  # in the order it sent them
    assert args[-1] == "end"
    positions = [position for _, position in merged]
    assert {p["epoch"] for p in positions} == {last["epoch"]}
    assert [p["seq"] for p in positions] == list(range(1, len(positions) + 1))  # gapless
    cursors = [p["cursor"] for p in positions]
    assert cursors == sorted(set(cursors))
    assert all(dict(merged)[n] == position for n, position in answered.items())
    assert positions[-1] == sentinel


class Page(PageDriver):
    """The dashboard at nginx's ``/`` in Chromium (watch.mjs), over WebSocket."""

    def __init__(self, url: str) -> None:
        super().__init__(WATCH, url, {"NO_WEBSOCKET": "0"})

    def events(self, prefix: str, count: int) -> list[dict[str, Any]]:
        """The page's events under ``prefix``, as listed, once it lists ``count`` of them."""
        return sorted(self.ask(expect=count, prefix=prefix)["events"], key=lambda e: e["cursor"])


@pytest.fixture
def pages() -> Iterator[Callable[..., Page]]:
    yield from opener(Page)  # type: ignore[misc]


def recoveries(node: Node) -> float:
    return series(scrape(node)[1], "broker_recoveries_total", "outcome").get("recovered", 0.0)


def test_a_page_through_nginx_sees_other_nodes_events_and_recovers_after_its_node_is_killed(
    whole: Cluster, pages: Callable[..., Page]
) -> None:
    cluster = whole
    page, home = cluster.joining(lambda: pages(f"{cluster.public}/"))
    other = next(node for node in cluster.nodes if node.node_id != home.node_id)
    prefix = f"public.failover.page{uuid.uuid4().hex[:8]}."
    direct = Publisher(other.url, "dev", PUBLISHER_SECRET)
    via_nginx = Publisher(cluster.public, "dev", PUBLISHER_SECRET)
    sent = [direct.publish(f"{prefix}a", n).position for n in range(3)]
    sent += [via_nginx.publish(f"{prefix}a", n).position for n in range(3, 6)]
    shown = page.events(prefix, 6)
    assert [e["data"] for e in shown] == list(range(6))
    assert [(e["seq"], e["cursor"]) for e in shown] == [(p["seq"], p["cursor"]) for p in sent if p]

    counted = {node.node_id: recoveries(node) for node in cluster.nodes if node is not home}
    with cluster.frozen_proxy():  # the page can get nothing until its reconnect, even by chance
        cluster.kill(home)
        sent += [direct.publish(f"{prefix}a", n).position for n in range(6, 12)]  # while it is away
        before = cluster.sessions()
    # nginx sees its upstream gone, closes the page's WebSocket; the page reconnects through it
    landed = cluster.joined(before)
    assert landed.node_id != home.node_id
    sent += [via_nginx.publish(f"{prefix}a", n).position for n in range(12, 14)]
    shown = page.events(prefix, 14)
    assert [e["data"] for e in shown] == list(range(14))  # each once, in order: no gap
    assert [(e["seq"], e["cursor"]) for e in shown] == [(p["seq"], p["cursor"]) for p in sent if p]
    assert page.ask(state="connected")["state"] == "connected"
    # the missed six came by broker.recover, answered by the survivor the page landed on
    assert recoveries(landed) == counted[landed.node_id] + 1
