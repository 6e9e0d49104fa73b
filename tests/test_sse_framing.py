"""The pure part of ``GET /sse`` (:mod:`broker.core.sse`): ids, frames, requests, the live gate, the index."""

from __future__ import annotations

import pytest

from broker.core.sse import (
    MAX_TOPICS,
    LiveGate,
    StreamIndex,
    StreamRequest,
    event_data,
    event_id,
    frame,
    parse_event_id,
    parse_request,
    redact,
)
from broker.errors import ClientError, InvalidUri


def test_an_event_id_round_trips() -> None:
    assert event_id("a0fb24a96daa7de6", 42) == "a0fb24a96daa7de6:42"
    assert parse_event_id("a0fb24a96daa7de6:42") == ("a0fb24a96daa7de6", 42)
    assert parse_event_id("e:0") == ("e", 0)
    assert parse_event_id(f"e:{2**63 - 1}") == ("e", 2**63 - 1)


@pytest.mark.parametrize(
    "text",
    ["", "nope", "e:", ":5", "e:-1", "e:01", "e:1.5", "e f:1", "e:1:2", f"e:{2**63}", "e:" + "9" * 20],
)
def test_a_bad_event_id_is_a_client_error_naming_it(text: str) -> None:
    with pytest.raises(ClientError) as raised:
        parse_event_id(text)
    assert str(raised.value) == (
        f"invalid Last-Event-ID {text!r}: expected <epoch>:<cursor> as this node sent it in id:"
    )


def test_a_long_bad_event_id_is_shortened_in_the_message() -> None:
    with pytest.raises(ClientError, match=r"'x{77}\.\.\.'"):
        parse_event_id("x" * 500)


def test_a_frame_is_id_event_and_one_data_line() -> None:
    data = event_data("public.a", ["two\nlines"], {"k": 1}, {"epoch": "e", "seq": 1, "cursor": 3})
    assert frame("event", data, "e:3") == (
        b'id: e:3\nevent: event\ndata: {"topic":"public.a","args":["two\\nlines"],"kwargs":{"k":1},'
        b'"position":{"epoch":"e","seq":1,"cursor":3}}\n\n'
    )
    assert frame("ready", {"epoch": "e", "cursor": 0}) == b'event: ready\ndata: {"epoch":"e","cursor":0}\n\n'


def test_a_request_names_topics_match_position_and_token() -> None:
    wanted = parse_request(
        {"topic": ["public.a.", "public.b."], "match": ["prefix"], "since": ["e:4"], "token": ["t"]}, None
    )
    assert (wanted.topics, wanted.match, wanted.since, wanted.token) == (
        ("public.a.", "public.b."),
        "prefix",
        ("e", 4),
        "t",
    )
    assert wanted.wants("public.b.x") and not wanted.wants("public.c.x")
    defaults = parse_request({"topic": ["public.a"]}, None)
    assert (defaults.match, defaults.since, defaults.token) == ("exact", None, None)


def test_last_event_id_wins_over_since_and_the_query_token_over_the_cookie() -> None:
    wanted = parse_request({"topic": ["t"], "since": ["e:1"], "token": ["q"]}, "e:9", cookie_token="c")
    assert (wanted.since, wanted.token) == (("e", 9), "q")
    assert parse_request({"topic": ["t"]}, "", cookie_token="c").token == "c"


@pytest.mark.parametrize(
    ("query", "error", "message"),
    [
        ({}, ClientError, "name at least one topic: /sse?topic=<uri>"),
        ({"topic": ["t"] * (MAX_TOPICS + 1)}, ClientError, f"at most {MAX_TOPICS} topics per stream, not 33"),
        ({"topic": ["t"], "match": ["a", "b"]}, ClientError, "match may be given once, not 2 times"),
        (
            {"topic": ["t"], "match": ["glob"]},
            InvalidUri,
            "invalid match policy 'glob' (expected one of exact, prefix, wildcard)",
        ),
        (
            {"topic": ["public.*"], "match": ["prefix"]},
            InvalidUri,
            "invalid topic 'public.*' (prefix): '*' matches only itself; WAMP wildcards are empty "
            "components: public..x, and a prefix pattern ends in a dot: public. (here: 'public.')",
        ),
        ({"topic": ["t"], "since": ["x"]}, ClientError, "invalid Last-Event-ID 'x'"),
    ],
)
def test_a_bad_request_is_refused_with_its_reason(
    query: dict[str, list[str]], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as raised:
        parse_request(query, None)
    assert str(raised.value).startswith(message)
    assert type(raised.value) is error


def test_redact_replaces_every_token_and_keeps_the_rest() -> None:
    assert redact(b"/sse?topic=a&token=secret.jwt&token=two") == b"/sse?topic=a&token=REDACTED&token=REDACTED"
    assert redact(b"/sse?topic=a") == b"/sse?topic=a"
    assert redact(b"/sse") == b"/sse"
    assert redact(b"/sse?tokenish=1&topic=a") == b"/sse?tokenish=1&topic=a"


def test_the_gate_holds_live_events_then_drops_those_the_replay_covered() -> None:
    gate: LiveGate[str] = LiveGate()
    assert gate.live(4, "four", 10) == []
    assert gate.live(None, "no position", 5) == []
    assert gate.live(6, "six", 10) == []
    assert gate.held_bytes == 25
    assert gate.open(5) == ["no position", "six"]  # 4 was replayed
    assert gate.held_bytes == 0
    assert gate.live(5, "five again", 1) == []  # at the boundary: replayed already
    assert gate.live(7, "seven") == ["seven"]
    assert gate.live(None, "unpositioned") == ["unpositioned"]


def _wanted(*topics: str, match: str = "exact") -> StreamRequest:
    return parse_request({"topic": list(topics), "match": [match]}, None)


def test_the_index_answers_exact_streams_by_topic_and_asks_pattern_streams() -> None:
    index: StreamIndex[str] = StreamIndex()
    index.add("one", _wanted("public.a"))
    index.add("both", _wanted("public.a", "public.b"))
    index.add("prefix", _wanted("public.", match="prefix"))
    index.add("wild", _wanted("public..x", match="wildcard"))
    assert sorted(index.wanting("public.a")) == ["both", "one", "prefix"]
    assert sorted(index.wanting("public.b")) == ["both", "prefix"]
    assert sorted(index.wanting("public.q.x")) == ["prefix", "wild"]
    assert index.wanting("private.a") == []


def test_a_stream_naming_two_matching_topics_is_answered_once() -> None:
    index: StreamIndex[str] = StreamIndex()
    index.add("twice", _wanted("public.", "public.a.", match="prefix"))
    assert index.wanting("public.a.b") == ["twice"]


def test_a_discarded_stream_gets_nothing_and_the_others_keep_theirs() -> None:
    index: StreamIndex[str] = StreamIndex()
    index.add("gone", _wanted("public.a", "public.b"))
    index.add("kept", _wanted("public.a"))
    index.add("gone-prefix", _wanted("public.", match="prefix"))
    index.discard("gone", _wanted("public.a", "public.b"))
    index.discard("gone-prefix", _wanted("public.", match="prefix"))
    index.discard("never-added", _wanted("public.c"))
    assert index.wanting("public.a") == ["kept"]
    assert index.wanting("public.b") == []
    assert index._exact.keys() == {"public.a"}  # no empty entries left behind
