"""Recovery and delivery within the transport's message limit, against a real node.

The shipped config limits WebSocket messages to 64 KiB (``max_message_size``).
A recovery answer is paged to fit it, whatever the events' sizes and the
caller's serializer or transport, and an event is accepted only if it can be
delivered live and recovered: a publish at the limit is refused with
``broker.error.too_large`` (WAMP and HTTP alike), never accepted and lost.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest

from tests.node import BACKEND_SECRET, Node
from tests.rawwamp import CALL, ERROR, EVENT, PUBLISH, PUBLISHED, RESULT, SUBSCRIBED, RawWamp
from tests.test_longpoll import LongPoll
from tests.test_publish_api import request

pytestmark = pytest.mark.node

LIMIT = 65536
POSITION = "broker_position"
TOO_LARGE = re.compile(
    r"the event on '[^']+' would take up to \d+ bytes on the wire with its position "
    r"\(512 of them kept for the WAMP envelope\), over this node's message limit of 65536 bytes "
    r"\(max_message_size\): make it smaller"
)


def joined(node: Node, serializer: str = "json", backend: bool = False) -> RawWamp:
    client = RawWamp(node.ws_url, origin=node.origin, serializer=serializer)
    welcome = client.hello(authid="backend", secret=BACKEND_SECRET) if backend else client.hello()
    assert welcome[0] == 2, welcome
    return client


def publish_mixed(publisher: RawWamp, prefix: str) -> list[tuple[str, int]]:
    """600 small events and 20 of 10 KB, interleaved across two topics: what was published."""
    published = []
    for n in range(620):
        topic = f"{prefix}{'a' if n % 2 else 'b.c'}"
        data = {"n": n, "blob": "z" * 10_000} if n % 31 == 0 else {"n": n}
        reply = publisher.publish(topic, [data])
        assert reply is not None and reply[0] == PUBLISHED, reply
        published.append((topic, n))
    return published


def recover_pages(client: Any, topic: str, epoch: str, after: int) -> tuple[list[dict[str, Any]], int]:
    """Recover everything after ``after``, page by page: (events, pages); every answer a RESULT."""
    events: list[dict[str, Any]] = []
    pages = 0
    while True:
        reply = client.call("broker.recover", [topic], {"match": "prefix", "epoch": epoch, "after": after})
        assert reply[0] == RESULT, reply  # not ERROR wamp.error.invalid_argument (payload limit)
        answer = reply[3][0]
        assert answer["unrecoverable"] is False
        assert answer["events"], answer
        events += answer["events"]
        pages += 1
        after = answer["events"][-1]["position"]["cursor"]
        if not answer["more"]:
            return events, pages


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
def test_everything_missed_is_recovered_in_pages_that_fit(node: Node, serializer: str) -> None:
    prefix = f"public.pages.{uuid.uuid4().hex[:8]}."
    publisher = joined(node, backend=True)
    canary = joined(node)
    assert canary.subscribe(prefix, "prefix")[0] == SUBSCRIBED
    assert publisher.publish(f"{prefix}start", ["start"])[0] == PUBLISHED
    start = canary.event()[5][POSITION]

    published = publish_mixed(publisher, prefix)
    reader = joined(node, serializer)
    events, pages = recover_pages(reader, prefix, start["epoch"], start["cursor"])

    assert [(e["topic"], e["args"][0]["n"]) for e in events] == published  # each once, in order
    cursors = [e["position"]["cursor"] for e in events]
    assert cursors == sorted(set(cursors))
    assert pages > 2  # ~230 KB of events: more than one answer
    # the canary got every event live, the large ones too
    live = [canary.event()[4][0]["n"] for _ in published]
    assert live == [n for _, n in published]


def test_long_poll_recovery_pages_fit_the_websocket_limit(node: Node) -> None:
    prefix = f"public.lppages.{uuid.uuid4().hex[:8]}."
    publisher = joined(node, backend=True)
    assert publisher.publish(f"{prefix}start", ["start"])[0] == PUBLISHED
    reader = LongPoll(node)
    assert reader.hello()[0] == 2
    probe = _lp_call(reader, prefix, "", 0)  # another epoch: answers the current position
    published = publish_mixed(publisher, prefix)

    events: list[dict[str, Any]] = []
    after = probe["cursor"]
    while True:
        answer = _lp_call(reader, prefix, probe["epoch"], after)
        assert answer["unrecoverable"] is False and answer["events"]
        events += answer["events"]
        after = answer["events"][-1]["position"]["cursor"]
        if not answer["more"]:
            break
    assert [(e["topic"], e["args"][0]["n"]) for e in events] == published
    reader.close()


def _lp_call(reader: LongPoll, topic: str, epoch: str, after: int) -> dict[str, Any]:
    reader._request += 1
    options = {"match": "prefix", "epoch": epoch, "after": after}
    reader.send([CALL, reader._request, {}, "broker.recover", [topic], options])
    got = reader.receive()
    assert got.status == 200, (got.status, got.body)
    assert len(got.body) <= LIMIT  # what a WebSocket caller could take too
    reply = json.loads(got.body)
    assert reply[0] == RESULT, reply
    return reply[3][0]  # type: ignore[no-any-return]


def _publish_frame(topic: str, n: int) -> list[Any]:
    return [PUBLISH, 1, {"acknowledge": True}, topic, ["x" * n], {}]


def _frame_size(topic: str, n: int) -> int:
    return len(json.dumps(_publish_frame(topic, n), separators=(",", ":")).encode())


def test_publish_at_the_limit_is_refused_or_delivered_and_recoverable(node: Node) -> None:
    topic = f"public.limit.{uuid.uuid4().hex[:8]}"
    publisher = joined(node, backend=True)
    subscribers = {name: joined(node, name) for name in ("json", "msgpack")}
    for client in subscribers.values():  # a pattern subscription: the EVENT carries the topic too
        assert client.subscribe(topic[:-1], "prefix")[0] == SUBSCRIBED
    before = node.rejections().get("EventTooLarge", 0)

    # the largest PUBLISH the WebSocket takes in (64 KiB): accepted today, then never delivered
    n = next(n for n in range(LIMIT, 0, -1) if _frame_size(topic, n) <= LIMIT)
    publisher.send(json.dumps(_publish_frame(topic, n), separators=(",", ":")))
    reply = publisher.recv()
    assert reply[:2] == [ERROR, PUBLISH] and reply[4] == "broker.error.too_large", reply
    assert TOO_LARGE.fullmatch(reply[5][0]), reply[5][0]
    assert node.rejections().get("EventTooLarge", 0) == before + 1

    # the largest accepted payload: delivered to both serializers, and recoverable alone
    low, high = 0, n
    while low < high:
        mid = (low + high + 1) // 2
        reply = publisher.publish(topic, ["x" * mid])
        assert reply is not None
        if reply[0] == PUBLISHED:
            low = mid
            for client in subscribers.values():
                assert len(client.event()[4][0]) == mid
        else:
            assert reply[4] == "broker.error.too_large" and TOO_LARGE.fullmatch(reply[5][0]), reply
            high = mid - 1
    assert low > LIMIT - 2048  # the reserve costs little: the limit is for the event, not half of it
    refused = publisher.publish(topic, ["x" * (low + 1)])
    assert refused is not None and refused[4] == "broker.error.too_large"
    assert publisher.publish(topic, ["x" * low])[0] == PUBLISHED  # type: ignore[index]
    positions = {}
    for name, client in subscribers.items():
        msg = client.event()
        assert msg[0] == EVENT and len(msg[4][0]) == low and client.last_size <= LIMIT, name
        positions[name] = msg[5][POSITION]
    for name, position in positions.items():
        reader = joined(node, name)
        reply = reader.call(
            "broker.recover",
            [topic],
            {"match": "exact", "epoch": position["epoch"], "after": position["cursor"] - 1},
        )
        assert reply[0] == RESULT, reply
        answer = reply[3][0]
        assert [len(e["args"][0]) for e in answer["events"]] == [low] and answer["more"] is False
        assert reader.last_size <= LIMIT, name
    # bystanders still get a small event after all this
    assert publisher.publish(topic, ["small"])[0] == PUBLISHED  # type: ignore[index]
    for client in subscribers.values():
        assert client.event()[4] == ["small"]


def test_http_publish_at_the_limit_is_413_and_publishes_nothing(node: Node) -> None:
    topic = f"public.httplimit.{uuid.uuid4().hex[:8]}"
    canary = joined(node)
    assert canary.subscribe(topic)[0] == SUBSCRIBED
    # a body of exactly max_body_bytes (64 KiB): the body limit takes it, the event would not fit
    overhead = len(json.dumps({"topic": topic, "data": ""}).encode())
    body = {"topic": topic, "data": "x" * (LIMIT - overhead)}
    assert len(json.dumps(body).encode()) == LIMIT
    status, answer, _ = request(node, body)
    assert (status, answer["error"]) == (413, "broker.error.too_large"), answer
    assert TOO_LARGE.fullmatch(answer["message"]), answer["message"]
    # a batch with one such event publishes none of it
    status, answer, _ = request(
        node, {"events": [{"topic": topic, "data": "first"}, {"topic": topic, "data": "x" * (LIMIT - 600)}]}
    )
    assert (status, answer["error"]) == (413, "broker.error.too_large"), answer
    status, answer, _ = request(node, {"topic": topic, "data": "sentinel"})
    assert status == 200, answer
    assert canary.event()[4] == ["sentinel"]  # nothing came before it
