"""The HTTP publish path's shortcuts decide exactly what the long way decided.

Each shortcut of ``POST /api/publish`` (issue 16) against the check it
stands in for: the JSON nesting limit decided after decoding against the
bracket scanner run first; :func:`wire_bound` against :func:`wire_size` on
the values that outgrow their JSON text the most, and a batch whose body fits
the message limit while an event does not; the nonce journal's pruning; and
Twisted's form parsing skipped for the publish resource's requests only.
"""

from __future__ import annotations

import json
import random
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from twisted.web import server
from twisted.web.resource import Resource
from twisted.web.test.requesthelper import DummyChannel

from broker.core.protocol import MAX_JSON_NESTING, json_nesting_exceeds
from broker.core.publishing import (
    WIRE_PER_TEXT_BYTE,
    Event,
    events_text,
    parse_body,
    parse_events,
    wire_bound,
)
from broker.core.replay import NonceCache
from broker.engines.publish_memory import SQLitePublishMemory
from broker.errors import ClientError, PayloadTooLarge
from broker.history.wiresize import wire_size
from broker.router.crossbar.forms import leads_to, skipping_forms
from broker.router.publish_api import publish_all
from broker.router.state import STATE
from tests.engines import settle
from tests.test_publish_batch import POLICIES, CountingStore, Recorder


def scanned_first(body: bytes) -> str:
    """The outcome of parse_body's checks as they ran before: the bracket scanner, then the decoder."""
    if json_nesting_exceeds(body):
        return "deep"
    try:
        json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return "invalid"
    return "ok"


def outcome(body: bytes) -> str:
    try:
        parse_body(body, 100)
    except ClientError as error:
        if "nested deeper" in str(error):
            return "deep"
        if "not valid JSON" in str(error):
            return "invalid"
    return "ok"


def deep(levels: int, inner: str = "1") -> str:
    return "[" * levels + inner + "]" * levels


def event(data: str, tail: str = "}") -> str:
    """A single-event body around ``data``, JSON text as it is (valid or not)."""
    return '{"topic": "public.a", "data": ' + data + tail


BODIES = [
    event(deep(MAX_JSON_NESTING - 1)),  # 100 deep with the object
    event(deep(MAX_JSON_NESTING)),  # 101
    event(deep(5000)),  # the decoder itself gives up
    event('"' + "[" * 500 + '"'),  # brackets inside a string do not nest
    event('"\\"' + "{" * 500 + '"'),  # ... after an escaped quote too
    event(deep(200)[:-1], tail=""),  # deep and cut off: the scanner's verdict
    event("[" * 150 + "}" * 150),  # brackets mismatched, shallow count
    event(deep(50), tail=', "x": "' + "{" * 200),  # unterminated string
    json.dumps({"events": [{"topic": "public.a", "data": {"n": [n, {"m": n}]}} for n in range(100)]}),
    json.dumps({"events": [{"topic": "public.a", "data": json.loads(deep(98))}] * 2}),  # exactly 100
    json.dumps({"events": [{"topic": "public.a", "data": json.loads(deep(99))}] * 2}),  # 101
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_the_nesting_limit_decided_after_decoding_is_the_scanners(body: str) -> None:
    assert outcome(body.encode()) == scanned_first(body.encode())


def test_random_bracket_soup_is_judged_as_by_the_scanner() -> None:
    rng = random.Random(16)
    pieces = ["[", "]", "{", "}", '"', "\\", "1", ",", ':"a"', '{"k":', "[]"]
    for _ in range(3000):
        body = '{"topic": "public.a", "data": ' + "".join(rng.choices(pieces, k=rng.randint(90, 260))) + "}"
        assert outcome(body.encode()) == scanned_first(body.encode()), body


#: JSON texts that take the most on the wire per byte of text (floats: 9 bytes at least, or repr)
WORST = [
    "1e15",
    "1E15",
    "1e9",
    "9e9",
    "0.0",
    "-1e15",
    "true",
    "null",
    "-1",
    "23",
    "24",
    "32768",
    "2147483648",
    "18446744073709551616",
    "[]",
    "{}",
    '""',
    '"\\u0000"',
    '"\\ud83d\\ude00"',
    '"' + "x" * 300 + '"',
    "NaN",
    "-Infinity",
    "[" + ",".join(["1e15"] * 300) + "]",
    "{" + ",".join(f'"{i}":1e15' for i in range(300)) + "}",
]


@pytest.mark.parametrize("text", WORST)
def test_wire_bound_covers_every_encoding_of_what_the_text_decodes_to(text: str) -> None:
    assert wire_size(json.loads(text)) <= wire_bound(len(text))


TIGHT_BODIES = [
    '{"topic":"a"}',  # no data: null, 5 bytes on the wire, from no text at all
    '{"events":[{"topic":"a"},{"topic":"b"},{"topic":"c"}]}',
    '{"topic":"a","data":1e15}',
    '{"topic":"a","data":0}',  # 18 bytes of structure around 4 of text
    '{"events":[{"topic":"a","data":1e15},{"topic":"b"}]}',
    '{"events":[' + ",".join(['{"topic":"a","data":1e15}'] * 100) + "]}",
    '{"events":[' + ",".join(['{"topic":"a"}'] * 100) + '],"idempotency_key":"k"}',
]


@pytest.mark.parametrize("body", TIGHT_BODIES, ids=range(len(TIGHT_BODIES)))
def test_the_text_a_body_leaves_its_events_bounds_their_topics_and_data(body: str) -> None:
    events, _, with_data = parse_events(body.encode(), 100)
    largest = sum(wire_size(e.topic) + wire_size(e.data) for e in events)
    assert with_data == body.count('"data"')
    assert largest <= wire_bound(events_text(len(body), len(events), with_data))
    assert events_text(len(body), len(events), with_data) <= events_text(len(body), len(events))


def test_wire_bound_is_not_looser_than_it_has_to_be() -> None:
    """``1e15`` takes 18 bytes (``1000000000000000.0``) of 4: a factor of 4 would not cover it."""
    assert wire_size(1e15) == 18
    assert 4 * len("1e15") < 18 <= WIRE_PER_TEXT_BYTE * len("1e15")


@pytest.fixture
def store() -> Any:
    saved = (STATE.history, STATE.history_policies, STATE.message_limit, STATE.stopping)
    made = CountingStore()
    STATE.history, STATE.history_policies, STATE.message_limit, STATE.stopping = made, POLICIES, 65536, False
    yield made
    STATE.history, STATE.history_policies, STATE.message_limit, STATE.stopping = saved


def test_a_body_under_the_limit_whose_event_is_over_it_is_refused(store: CountingStore) -> None:
    """50 kB of ``1e15`` is 190 kB on the wire: the body's size proves nothing, the event is measured."""
    body = ('{"topic":"public.a","data":[' + ",".join(["1e15"] * 10_000) + "]}").encode()
    events, _ = parse_body(body, 100)
    assert len(body) < 65536
    with pytest.raises(PayloadTooLarge, match="over this node's message limit of 65536 bytes"):
        settle(publish_all(Recorder(), events, None, len(body)))  # type: ignore[arg-type]
    assert store.calls == []  # nothing stored


def test_one_event_over_the_limit_in_a_batch_refuses_the_batch(store: CountingStore) -> None:
    floats = ",".join(["1e15"] * 4000)
    body = (
        '{"events":[{"topic":"public.a","data":1},{"topic":"public.a","data":['
        + floats
        + ']},{"topic":"public.a","data":3}]}'
    ).encode()
    events, _ = parse_body(body, 100)
    assert len(body) < 65536 < wire_bound(len(body))  # a body the API takes, too large to prove
    with pytest.raises(PayloadTooLarge, match=r"'public\.a' would take up to"):
        settle(publish_all(Recorder(), events, None, len(body)))  # type: ignore[arg-type]
    assert store.calls == []


def test_a_batch_that_surely_fits_is_published(store: CountingStore) -> None:
    events = tuple(Event("public.a", {"n": n, "note": "x" * 40}) for n in range(100))
    body = json.dumps({"events": [{"topic": e.topic, "data": e.data} for e in events]}).encode()
    (status, answer), _ = settle(publish_all(Recorder(), events, None, len(body)))  # type: ignore[arg-type]
    assert status == 200 and len(answer["published"]) == 100
    assert len(store.calls) == 1


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def rows(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM publish_nonces").fetchone()[0])


def test_expired_nonces_leave_the_journal_within_a_second(tmp_path: Path) -> None:
    clock, path = Clock(), tmp_path / "h.sqlite"
    cache = NonceCache(60, 100, clock, journal=SQLitePublishMemory(str(path), clock).nonces)
    for now, nonce, kept in [
        (1000.0, "n1", 1),
        (1060.5, "n2", 1),  # n1 expired: deleted with this write
        (1061.0, "n3", 2),
        (1120.2, "n4", 2),  # n2 expired: deleted
        (1121.1, "n5", 3),  # n3 expired 0.1 s ago, 0.9 s after the last deletion: still on disk
        (1121.3, "n6", 3),  # a second on: deleted
    ]:
        clock.now = now
        cache.remember("dev", nonce, int(now))
        assert rows(path) == kept, nonce
    again = NonceCache(60, 100, clock, journal=SQLitePublishMemory(str(path), clock).nonces)
    assert len(again) == 3


class Echo(Resource):
    """A leaf that keeps what it was handed: ``request.seen`` is (its resource, its body)."""

    isLeaf = True

    def render(self, request: server.Request) -> bytes:
        request.seen = (self, request.content.read())  # type: ignore[attr-defined]
        return json.dumps(sorted(k.decode() for k in request.args)).encode()


class Formless(Echo):
    """Stands for the publish API: a leaf whose requests skip form parsing."""


class Arriving(server.Request):
    """Twisted's request with the door's ``requestReceived`` (:func:`forms.install` patches Twisted's)."""

    requestReceived = skipping_forms((Formless,), server.Request.requestReceived)


def tree() -> server.Site:
    """A site as crossbar mounts it: a root with ``/api`` (formless) and ``/x`` (reads forms) beneath."""
    root = Resource()
    root.putChild(b"api", Formless())
    root.putChild(b"x", Echo())
    return server.Site(root)


def posted(site: server.Site, target: bytes) -> server.Request:
    """A form-encoded POST of ``a=1`` to ``target`` (with its query, if any), received by ``site``."""
    channel = DummyChannel()
    channel.site = site
    request = Arriving(channel)
    body = b"a=1"
    request.requestHeaders.setRawHeaders(b"content-type", [b"application/x-www-form-urlencoded"])
    request.gotLength(len(body))
    request.handleContentChunk(body)
    request.requestReceived(b"POST", target, b"HTTP/1.1")
    return request


def test_only_the_publish_resources_requests_skip_form_parsing() -> None:
    site = tree()
    assert sorted(posted(site, b"/x?q=2").args) == [b"a", b"q"]  # Twisted's default: the body is parsed
    publish = posted(site, b"/api/publish?q=2")
    assert sorted(publish.args) == [b"q"]  # its query still is, its body not
    assert publish.seen[1] == b"a=1"  # and it reads the body whole
    assert sorted(posted(site, b"/x?q=2").args) == [b"a", b"q"]  # the site's setting is left alone
    assert site._parsePOSTFormSubmission


@pytest.mark.parametrize(
    ("target", "skipped"),
    [
        (b"/api", True),
        (b"/api/", True),
        (b"/%61pi/publish", True),  # unquoted as Twisted routes it
        (b"/api?x=1", True),
        (b"/apix/publish", False),
        (b"/x/api", False),
        (b"/", False),
        (b"/nowhere/api", False),
        (b"http://127.0.0.1/api/publish", False),  # Twisted routes an absolute target by its first segment
    ],
)
def test_the_walk_routes_as_twisted_does(target: bytes, skipped: bool) -> None:
    site = tree()
    assert leads_to(site.resource, target, (Formless,)) is skipped
    request = posted(site, target)
    routed = getattr(request, "seen", (None,))[0]  # what Twisted rendered (None: its 404)
    assert isinstance(routed, Formless) is skipped
    assert (b"a" not in request.args) is skipped


def test_a_formless_root_or_a_leaf_before_it() -> None:
    assert leads_to(Formless(), b"/anything", (Formless,))
    assert not leads_to(Echo(), b"/api", (Formless,))  # a leaf: nothing beneath it is reached
    assert not leads_to(None, b"/api", (Formless,))
