"""Request bodies, response parsing, endpoints and settings, without sockets."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from broker.client import BadRequest, Published, Publisher, PublishError
from broker.client.core import Endpoint
from broker.client.wire import MAX_EVENTS, batch_body, new_idempotency_key, parse_published, single_body


def test_single_body_is_compact_utf8_json() -> None:
    raw = single_body("public.x", {"n": 1, "s": "é"}, "k1")
    assert raw == '{"topic":"public.x","data":{"n":1,"s":"é"},"idempotency_key":"k1"}'.encode()


def test_batch_body_keeps_order_and_accepts_tuples_mappings_and_generators() -> None:
    events = (e for e in [("a", 1), {"topic": "b", "data": [2]}, ("c", None)])
    raw, count = batch_body(events, "k2")
    assert count == 3
    assert json.loads(raw) == {
        "events": [{"topic": "a", "data": 1}, {"topic": "b", "data": [2]}, {"topic": "c", "data": None}],
        "idempotency_key": "k2",
    }


def test_a_full_batch_is_allowed() -> None:
    _, count = batch_body([("t", n) for n in range(MAX_EVENTS)], "k")
    assert count == MAX_EVENTS


@pytest.mark.parametrize("topic", [123, None, b"public.x", ["public.x"]])
def test_a_topic_that_is_not_a_str_is_refused_before_sending(topic: Any) -> None:
    for build in (lambda: single_body(topic, 1, "k"), lambda: batch_body([("ok", 1), (topic, 1)], "k")):
        with pytest.raises(BadRequest) as caught:
            build()
        assert caught.value.status is None
        assert caught.value.error == "broker.error.bad_request"
        assert "topic must be a str" in caught.value.message


@pytest.mark.parametrize(
    "events",
    [
        [],
        [("t", n) for n in range(MAX_EVENTS + 1)],
        [("t", 1, 2)],
        [["t", 1]],
        ["t"],
        [{"topic": "t"}],
        [{"topic": "t", "payload": 1}],
        [{"topic": "t", "data": 1, "extra": 2}],
    ],
)
def test_malformed_batches_are_refused_before_sending(events: list[Any]) -> None:
    with pytest.raises(BadRequest) as caught:
        batch_body(events, "k")
    assert caught.value.status is None


@pytest.mark.parametrize("data", [object(), float("nan"), {"s": {1, 2}}])
def test_data_that_is_not_json_is_refused_before_sending(data: Any) -> None:
    with pytest.raises(BadRequest) as caught:
        single_body("t", data, "k")
    assert isinstance(caught.value.__cause__, TypeError | ValueError)


@pytest.mark.parametrize("key", ["", 5])
def test_an_invalid_idempotency_key_is_refused(key: Any) -> None:
    with pytest.raises(BadRequest):
        single_body("t", 1, key)


def test_generated_idempotency_keys_are_fresh_uuid_hex() -> None:
    keys = {new_idempotency_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(re.fullmatch(r"[0-9a-f]{32}", key) for key in keys)


def test_parse_published() -> None:
    raw = b'{"published": [{"topic": "a", "id": 7}, {"topic": "b", "id": 9007199254740991}]}'
    assert parse_published(raw, 2) == [Published("a", 7), Published("b", 9007199254740991)]


def test_a_replay_from_another_cluster_node_has_no_id() -> None:
    """A retry that reached another node than the one that published: the positions, ``id`` null."""
    position = {"epoch": "e", "seq": 1, "cursor": 5}
    raw = json.dumps({"published": [{"topic": "a", "id": None, "position": position}]}).encode()
    assert parse_published(raw, 1) == [Published("a", None, position)]


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"published": {"topic": "a", "id": 1}}',
        b'{"published": [{"topic": "a"}]}',
        b'{"published": [{"topic": "a", "id": "1"}]}',
        b'{"published": [{"topic": "a", "id": true}]}',
        b'{"published": [{"topic": 1, "id": 1}]}',
        b'{"published": []}',
        b'{"published": [{"topic": "a", "id": 1}, {"topic": "a", "id": 2}]}',
    ],
)
def test_unexpected_success_bodies_are_publish_errors(raw: bytes) -> None:
    with pytest.raises(PublishError) as caught:
        parse_published(raw, 1)
    assert type(caught.value) is PublishError
    assert caught.value.status == 200


def test_published_is_frozen() -> None:
    with pytest.raises(AttributeError):
        Published("a", 1).id = 2  # type: ignore[misc]


@pytest.mark.parametrize(
    ("url", "endpoint", "host_header"),
    [
        ("http://127.0.0.1:8080", Endpoint("http", "127.0.0.1", 8080, "/api/publish"), "127.0.0.1:8080"),
        ("https://Broker.example.com/", Endpoint("https", "broker.example.com", 443, "/api/publish"),
         "broker.example.com"),
        ("http://[::1]/prefix/", Endpoint("http", "::1", 80, "/prefix/api/publish"), "[::1]"),
        ("https://h:8443/a/b", Endpoint("https", "h", 8443, "/a/b/api/publish"), "h:8443"),
    ],
)  # fmt: skip
def test_endpoints(url: str, endpoint: Endpoint, host_header: str) -> None:
    assert Endpoint.parse(url) == endpoint
    assert endpoint.host_header == host_header


@pytest.mark.parametrize(
    "url",
    ["127.0.0.1:8080", "ftp://h", "http://", "http://h/?q=1", "http://h/#f", "http://u:p@h", "http://h/a b",
     "http://h:99999"],
)  # fmt: skip
def test_invalid_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        Endpoint.parse(url)


@pytest.mark.parametrize(
    ("key_id", "secret", "options"),
    [
        ("bad key", "s", {}),
        ("", "s", {}),
        ("dev", "", {}),
        ("dev", "s", {"timeout": 0}),
        ("dev", "s", {"retries": -1}),
        ("dev", "s", {"backoff": 10.0, "max_backoff": 1.0}),
    ],
)
def test_invalid_settings_are_refused(key_id: str, secret: str, options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Publisher("http://127.0.0.1:8080", key_id, secret, **options)


def test_the_secret_is_never_in_a_repr() -> None:
    publisher = Publisher("http://127.0.0.1:8080", "dev", "hunter2-secret")
    assert repr(publisher) == "Publisher('http://127.0.0.1:8080/api/publish', key_id='dev')"
    assert "hunter2" not in repr(publisher.settings)
