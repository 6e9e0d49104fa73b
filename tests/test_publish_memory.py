"""The publish API's memory in SQLite: nonces and idempotency answers survive a new process."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from broker.core.idempotency import IdempotencyCache
from broker.core.replay import NonceCache
from broker.engines.publish_memory import MEMORY_STORE_FILE, SQLitePublishMemory, open_publish_memory
from broker.engines.sqlite import SQLiteStore
from broker.errors import IdempotencyMismatch, IdempotencyUnknown, Replayed, Unauthenticated
from tests.test_replay import Clock


def rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def nonces(path: Path, clock: Clock, capacity: int = 10) -> NonceCache:
    return NonceCache(
        window=60, capacity=capacity, clock=clock, journal=SQLitePublishMemory(str(path), clock).nonces
    )


def answers(path: Path, clock: Clock, capacity: int = 10) -> IdempotencyCache:
    return IdempotencyCache(
        window=60, capacity=capacity, clock=clock, journal=SQLitePublishMemory(str(path), clock).answers
    )


def test_a_nonce_is_refused_by_the_next_process(tmp_path: Path) -> None:
    clock, path = Clock(), tmp_path / "h.sqlite"
    nonces(path, clock).remember("dev", "n1", 1000)
    again = nonces(path, clock)  # a new process on the same file
    with pytest.raises(Replayed, match="nonce 'n1' was already used"):
        again.remember("dev", "n1", 1000)
    again.remember("other", "n1", 1000)


def test_the_journal_is_shared_with_the_history_file(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    SQLiteStore(str(path)).close()
    memory = open_publish_memory({"type": "sqlite", "path": "h.sqlite"}, base_dir=str(tmp_path))
    assert memory is not None
    NonceCache(60, 10, Clock(), journal=memory.nonces).remember("dev", "n1", 1000)
    assert rows(path, "publish_nonces") == 1
    assert rows(path, "events") == 0  # the history's own tables are untouched


def test_memory_history_gets_a_publish_memory_file_of_its_own(tmp_path: Path) -> None:
    clock = Clock()
    memory = open_publish_memory({"type": "memory"}, base_dir=str(tmp_path))
    NonceCache(60, 10, clock, journal=memory.nonces).remember("dev", "n1", 1000)
    memory.close()
    assert rows(tmp_path / MEMORY_STORE_FILE, "publish_nonces") == 1
    again = open_publish_memory({"type": "memory"}, base_dir=str(tmp_path))  # the next process
    with pytest.raises(Replayed):
        NonceCache(60, 10, clock, journal=again.nonces).remember("dev", "n1", 1000)


def test_a_full_memory_keeps_its_floor_and_its_rows_bounded(tmp_path: Path) -> None:
    clock, path = Clock(980), tmp_path / "h.sqlite"
    cache = nonces(path, clock, capacity=2)
    clock.now = 1000
    for nonce, timestamp in [("a", 990), ("b", 995), ("c", 999)]:
        cache.remember("dev", nonce, timestamp)
    assert rows(path, "publish_nonces") == 2  # "a" is gone from disk too
    again = nonces(path, clock, capacity=2)
    with pytest.raises(Unauthenticated, match="replay memory is full"):
        again.check_timestamp(990)  # "a" could be replayed otherwise
    with pytest.raises(Replayed):
        again.remember("dev", "b", 995)


def test_expired_nonces_are_deleted_from_disk(tmp_path: Path) -> None:
    clock, path = Clock(), tmp_path / "h.sqlite"
    cache = nonces(path, clock)
    cache.remember("dev", "n1", 1000)
    clock.now = 1061
    cache.remember("dev", "n2", 1061)
    assert rows(path, "publish_nonces") == 1


def test_a_journal_remembers_since_when_it_exists(tmp_path: Path) -> None:
    """A new (or deleted) history file cannot vouch for requests signed before it existed."""
    clock, path = Clock(1000.5), tmp_path / "h.sqlite"
    with pytest.raises(Unauthenticated, match="before the node's replay memory begins"):
        nonces(path, clock).check_timestamp(999)
    clock.now = 1010
    nonces(path, clock).check_timestamp(1000)  # a later start: still since 1000 (whole seconds)


def test_an_answer_is_given_again_by_the_next_process(tmp_path: Path) -> None:
    clock, path = Clock(), tmp_path / "h.sqlite"
    first = answers(path, clock)
    assert first.begin(("dev", "k"), "fp") is None
    first.finish(("dev", "k"), (200, {"published": [{"position": {"cursor": 7}}]}), keep=True)
    entry = answers(path, clock).begin(("dev", "k"), "fp")
    assert entry is not None and entry.answer == (200, {"published": [{"position": {"cursor": 7}}]})
    with pytest.raises(IdempotencyMismatch):
        answers(path, clock).begin(("dev", "k"), "other body")


def test_a_request_cut_off_by_a_restart_is_not_published_again(tmp_path: Path) -> None:
    clock, path = Clock(), tmp_path / "h.sqlite"
    answers(path, clock).begin(("dev", "k"), "fp")  # the process dies before the answer
    with pytest.raises(IdempotencyUnknown, match="whether it was published is unknown"):
        answers(path, clock).begin(("dev", "k"), "fp")


def test_a_request_cut_off_by_a_restart_goes_on_when_the_engine_knows(tmp_path: Path) -> None:
    """With Redis history the engine records each key with its append: the cut-off request's
    repeat goes on (Redis answers it, published or not) instead of 409 idempotency_unknown."""
    clock, path = Clock(), tmp_path / "h.sqlite"
    answers(path, clock).begin(("dev", "k"), "fp")  # the process dies before the answer
    again = answers(path, clock)
    assert again.begin(("dev", "k"), "fp", engine_knows=True) is None
    with pytest.raises(IdempotencyMismatch):  # still this body's key
        again.begin(("dev", "k"), "other", engine_knows=True)
    pending = again.begin(("dev", "k"), "fp", engine_knows=True)
    assert pending is not None and pending.answer is None  # a repeat now waits for the resumed one
    again.finish(("dev", "k"), (200, {"published": []}), keep=True)
    assert answers(path, clock).begin(("dev", "k"), "fp") is not None  # answered, on disk too


def test_failed_answers_are_forgotten_on_disk_too(tmp_path: Path) -> None:
    clock, path = Clock(), tmp_path / "h.sqlite"
    first = answers(path, clock)
    first.begin(("dev", "k"), "fp")
    first.finish(("dev", "k"), (503, {}), keep=False)
    assert answers(path, clock).begin(("dev", "k"), "fp") is None


def test_answer_rows_are_bounded_by_window_and_capacity(tmp_path: Path) -> None:
    clock, path = Clock(), tmp_path / "h.sqlite"
    cache = answers(path, clock, capacity=2)
    for key in "abc":
        cache.begin(("dev", key), "fp")
        cache.finish(("dev", key), (200, {}), keep=True)
    assert rows(path, "publish_answers") == 2
    assert answers(path, clock, capacity=2).begin(("dev", "a"), "fp") is None  # "a" was dropped
    clock.now += 61
    cache.begin(("dev", "d"), "fp")
    assert rows(path, "publish_answers") == 1
