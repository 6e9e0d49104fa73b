"""Bytes in a payload are stored and read back as bytes, by every engine; older text still reads.

A MessagePack or CBOR publisher may send bytes (the publish checks allow them),
and the SQLite and Redis engines keep payloads as text
(:mod:`broker.history.storedtext`). What a store gives back must be what was
appended, so a recovery answers it as live delivery did. Rows and log entries
written by an older node (plain ``json.dumps``) must read as they did.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from broker.engines import ENGINES
from broker.engines import redis_wire as wire
from broker.engines.sqlite import SQLiteStore
from broker.history import HistoryStore, Retention, storedtext
from tests.engines import after, append, make, recover

KEEP = Retention(max_events=100, max_age=3600.0)
#: bytes at the top, in lists and maps, beside maps that look like the tag, and empty bytes
ARGS: list[Any] = [b"\x00\xffraw", [b"in a list", b""], {"d": b"in a map"}, "text", 7]
KWARGS: dict[str, Any] = {
    "blob": b"kw",
    "nested": {"list": [b"deep", {"more": b"\x01"}]},
    "\x00b": "a key that looks like the tag",
    "lookalike": {"\x00b": "YWJj"},
    "escaped": {"\x00\x00b": [b"x"], "\x00other": 1},
}


@pytest.fixture(params=sorted(ENGINES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryStore]:
    made = make(request.param, tmp_path, lambda: 1000.0, request=request)
    yield made
    made.close()


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (ARGS, KWARGS),
        ([{"\x00b": "YWJj"}], {"\x00b": "YWJj"}),  # no bytes: plain JSON, lookalikes stay maps
        ([1, "é", 2**64 - 1, -(2**63), 1.5, None, True], {"k": [None, {"x": "y"}]}),
    ],
    ids=["bytes", "lookalike-without-bytes", "ordinary"],
)
def test_the_text_reads_back_as_written(args: list[Any], kwargs: dict[str, Any]) -> None:
    assert storedtext.decode(storedtext.encode(args, kwargs)) == (args, kwargs)


def test_a_payload_without_bytes_is_the_plain_json_older_nodes_wrote() -> None:
    assert storedtext.encode([1, "a"], {"k": None}) == '[[1,"a"],{"k":null}]'
    assert storedtext.encode([b"x"], {})[0] == storedtext.TAGGED


def test_older_text_reads_as_before() -> None:
    """What ``json.dumps([args, kwargs])`` wrote, spaces and all, even a lone surrogate."""
    for args, kwargs in [([1, {"\x00b": "YWJj"}], {"k": "v"}), (["a\ud800"], {}), ([2**64], {})]:
        assert storedtext.decode(json.dumps([args, kwargs])) == (args, kwargs)


@pytest.mark.parametrize(
    "text", ['b[[{"\\u0000b":"not base64!"}],{}]', 'b[[{"\\u0000b":1}],{}]', "b[[],{}] x", "x[[],{}]"]
)
def test_text_no_node_wrote_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        storedtext.decode(text)


def test_every_engine_gives_back_the_bytes_it_was_given(store: HistoryStore) -> None:
    appended = append(store, "public.bin", ARGS, KWARGS, KEEP)
    assert (appended.args, appended.kwargs) == (ARGS, KWARGS)
    [read] = after(store, lambda t: True, 0, 10) or []
    assert (read.args, read.kwargs) == (ARGS, KWARGS)
    answer = recover(store, "public.bin", "exact", store.epoch, 0)
    assert [(e["args"], e["kwargs"]) for e in answer["events"]] == [(ARGS, KWARGS)]
    assert answer["unrecoverable"] is False and answer["more"] is False


def test_sqlite_keeps_bytes_across_a_reopen_and_reads_an_older_row(tmp_path: Path) -> None:
    path = str(tmp_path / "history.db")
    first = SQLiteStore(path, clock=lambda: 1000.0)
    append(first, "public.bin", ARGS, KWARGS, KEEP)
    first.close()
    older = sqlite3.connect(path, isolation_level=None)  # a row as an older node wrote it
    older.execute(
        "INSERT INTO events VALUES (2, 'public.bin', 2, 1000.0, ?)",
        (json.dumps([[1, {"\x00b": "YWJj"}], {"k": "v"}]),),
    )
    older.execute("UPDATE topics SET last_seq = 2, last_cursor = 2")
    older.execute("INSERT OR REPLACE INTO meta VALUES ('cursor', '2')")
    older.close()
    reopened = SQLiteStore(path, clock=lambda: 1000.0)
    try:
        events = after(reopened, lambda t: True, 0, 10) or []
        assert [(e.args, e.kwargs) for e in events] == [(ARGS, KWARGS), ([1, {"\x00b": "YWJj"}], {"k": "v"})]
    finally:
        reopened.close()


def test_a_redis_log_entry_fed_to_other_nodes_keeps_bytes() -> None:
    """The shared log's entries, as another node reads them (the feed), new and older alike."""
    for text, payload in [
        (storedtext.encode(ARGS, KWARGS), (ARGS, KWARGS)),
        ('[[1],{"k":"v"}]', ([1], {"k": "v"})),
    ]:
        flat = ["s", "3", "p", "1000.0", "d", text, "t", "public.bin", "b", "batch"]
        event = wire.entry(["7-0", flat]).event()
        assert (event.topic, event.seq, event.cursor, event.args, event.kwargs) == (
            "public.bin",
            3,
            7,
            *payload,
        )
        assert wire.stored("public.bin", ["7-0", flat]).args == payload[0]
