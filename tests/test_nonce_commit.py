"""Group commit of the HTTP API's nonces: held nonces are refused at once, on disk after one commit
per reactor turn, and a request goes on only after its nonce's commit (unit tests, no node; the
kill -9 of a real node is tests/test_publish_restart.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from broker.core.replay import NonceCache, Remembered
from broker.engines.publish_memory import SQLitePublishMemory
from broker.errors import Replayed
from broker.router.nonce_commit import GroupCommit
from tests.test_replay import Clock


def cache(path: Path, clock: Clock, capacity: int = 10) -> NonceCache:
    return NonceCache(60, capacity, clock, journal=SQLitePublishMemory(str(path), clock).nonces)


def test_a_held_nonce_is_refused_at_once_and_on_disk_only_after_the_commit(tmp_path: Path) -> None:
    clock, path = Clock(), tmp_path / "m.sqlite"
    first = cache(path, clock)
    first.remember("dev", "n1", 1000, hold=True)
    first.remember("dev", "n2", 1000, hold=True)
    with pytest.raises(Replayed):
        first.remember("dev", "n1", 1000, hold=True)  # this process refuses it before any commit
    cache(path, clock).remember("dev", "n1", 1001)  # not on disk yet: a new process would take it
    first.commit()
    restarted = cache(path, clock)  # a new process after the commit: both refused
    for nonce in ("n1", "n2"):
        with pytest.raises(Replayed, match=f"nonce '{nonce}' was already used"):
            restarted.remember("dev", nonce, 1000)


class _Journal:
    """A nonce journal that records its writes and can be made to fail."""

    def __init__(self) -> None:
        self.writes: list[list[tuple[str, str, float]]] = []
        self.fail = False

    def load(self, horizon: float) -> Remembered:
        return Remembered(float("-inf"), float("-inf"), [])

    def record(self, key_id: str, nonce: str, timestamp: float, floor: float, horizon: float) -> None:
        self.record_many([(key_id, nonce, timestamp)], floor, horizon)

    def record_many(self, nonces: Sequence[tuple[str, str, float]], floor: float, horizon: float) -> None:
        if self.fail:
            raise sqlite3.OperationalError("disk I/O error")
        self.writes.append(list(nonces))


def test_held_nonces_are_one_write_and_a_failed_write_keeps_them_for_the_next() -> None:
    journal = _Journal()
    nonces = NonceCache(60, 10, Clock(), journal=journal)
    for n in ("a", "b", "c"):
        nonces.remember("dev", n, 1000, hold=True)
    journal.fail = True
    with pytest.raises(sqlite3.OperationalError):
        nonces.commit()
    with pytest.raises(Replayed):
        nonces.remember("dev", "b", 1000)  # still refused here
    nonces.remember("dev", "d", 1000, hold=True)
    journal.fail = False
    nonces.commit()
    assert journal.writes == [
        [("dev", "a", 1000), ("dev", "b", 1000), ("dev", "c", 1000), ("dev", "d", 1000)]
    ]
    nonces.commit()  # nothing held: no write
    nonces.remember("dev", "e", 1000)  # not held: written at once, alone
    assert journal.writes[1:] == [[("dev", "e", 1000)]]


class _Gate:
    def __init__(self) -> None:
        self.commits = 0
        self.fail = False

    def commit_nonces(self) -> None:
        self.commits += 1
        if self.fail:
            raise sqlite3.OperationalError("disk I/O error")


def _turns() -> tuple[GroupCommit, list[Callable[[], Any]]]:
    later: list[Callable[[], Any]] = []

    def call_later(delay: float, fn: Callable[..., Any], *args: Any) -> None:
        assert delay == 0
        later.append(lambda: fn(*args))

    return GroupCommit(call_later), later


def test_the_requests_of_one_turn_go_on_after_one_commit() -> None:
    group, later = _turns()
    gate = _Gate()
    went_on: list[int] = []
    for i in range(3):
        group.after(gate, went_on.append, lambda failure, i: went_on.append(-1), i)
    assert (went_on, gate.commits, len(later)) == ([], 0, 1)  # nothing goes on in the turn it came
    later.pop()()
    assert (went_on, gate.commits) == ([0, 1, 2], 1)
    group.after(gate, went_on.append, lambda failure, i: None, 3)  # the next turn: a commit of its own
    assert len(later) == 1
    later.pop()()
    assert (went_on, gate.commits) == ([0, 1, 2, 3], 2)


def test_a_failed_commit_fails_every_request_waiting_on_it_and_only_those() -> None:
    group, later = _turns()
    gate, other = _Gate(), _Gate()
    gate.fail = True
    outcomes: list[Any] = []

    def written(n: int) -> None:
        outcomes.append(("written", n))

    def failed(failure: Any, n: int) -> None:
        outcomes.append((failure.type, n))

    for n, g in enumerate((gate, other, gate)):
        group.after(g, written, failed, n)
    later.pop()()
    assert outcomes == [(sqlite3.OperationalError, 0), ("written", 1), (sqlite3.OperationalError, 2)]
    assert (gate.commits, other.commits) == (1, 1)  # one write per gate


def test_one_answer_that_fails_does_not_hold_back_the_others() -> None:
    group, later = _turns()
    gate = _Gate()
    went_on: list[int] = []

    def written(n: int) -> None:
        if n == 0:
            raise RuntimeError("the client's answer could not be written")
        went_on.append(n)

    for n in range(3):
        group.after(gate, written, lambda failure, n: None, n)
    later.pop()()
    assert went_on == [1, 2]


def test_a_file_with_the_keyed_nonce_table_is_converted_and_keeps_its_nonces(tmp_path: Path) -> None:
    """A file written before group commit (nonces keyed ``WITHOUT ROWID``) opens as the rowid table,
    and a nonce it held is still refused (a replay after the upgrade is 409)."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE publish_meta (key TEXT PRIMARY KEY, value REAL NOT NULL);
            INSERT INTO publish_meta VALUES ('since', 900);
            CREATE TABLE publish_nonces (
                key_id TEXT NOT NULL, nonce TEXT NOT NULL, ts REAL NOT NULL, PRIMARY KEY (key_id, nonce)
            ) WITHOUT ROWID;
            CREATE INDEX publish_nonces_by_ts ON publish_nonces (ts);
            INSERT INTO publish_nonces VALUES ('dev', 'old1', 990), ('dev', 'old2', 995);
            """
        )
    upgraded = cache(path, Clock())
    for nonce in ("old1", "old2"):
        with pytest.raises(Replayed):
            upgraded.remember("dev", nonce, 1000)
    upgraded.remember("dev", "new", 1000)
    with sqlite3.connect(path) as db:
        (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'publish_nonces'").fetchone()
        indexes = db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'publish_nonces'"
        )
        assert "WITHOUT ROWID" not in sql.upper()
        assert [name for (name,) in indexes] == ["publish_nonces_by_ts"]
        assert db.execute("SELECT nonce FROM publish_nonces ORDER BY rowid").fetchall() == [
            ("old1",),
            ("old2",),
            ("new",),
        ]


def test_the_gate_holds_the_nonce_of_an_admitted_and_of_a_refused_request_until_its_commit(
    tmp_path: Path,
) -> None:
    """Through the whole gate on a file: with ``hold_nonce`` a request's nonce is refused at once
    and on disk after ``commit_nonces``, also for a request refused after its signature was
    checked (400: a body that is no event), which the resource commits before answering."""
    from broker.core.publishing import PUBLISH_PATH, PublishGate
    from broker.errors import ClientError
    from tests.test_publish_gate_clock import BODY, headers, make_gate

    clock = Clock(1000.0)
    path = tmp_path / "publish-memory.sqlite3"

    def gate() -> PublishGate:
        fresh = make_gate(clock)
        journals = SQLitePublishMemory(str(path), clock)
        return PublishGate(fresh.settings, fresh.publishers, journals=journals, clock=clock)

    first = gate()
    clock.now = 1001.0  # the requests are signed after the journal began
    first.admit("POST", PUBLISH_PATH, headers(1001, "accepted"), BODY, hold_nonce=True)
    not_an_event = b'{"nope": 1}'
    with pytest.raises(ClientError):
        first.admit(
            "POST", PUBLISH_PATH, headers(1001, "refused", not_an_event), not_an_event, hold_nonce=True
        )
    with pytest.raises(Replayed):  # refused here before any commit
        first.admit("POST", PUBLISH_PATH, headers(1001, "accepted"), BODY, hold_nonce=True)
    first.commit_nonces()
    restarted = gate()
    for nonce, body in (("accepted", BODY), ("refused", not_an_event)):
        with pytest.raises(Replayed):
            restarted.admit("POST", PUBLISH_PATH, headers(1001, nonce, body), body)


def test_a_nonce_the_shared_engine_claimed_is_never_written_and_one_it_did_not_is_written_alone() -> None:
    """A Redis node settles each held nonce alone: claimed cluster-wide, it leaves the journal
    untouched (and the next commit writes nothing of it); not claimed, it is written at once; a
    failing write keeps it held for the next commit, and it stays refused in memory throughout."""
    journal, clock = _Journal(), Clock()
    nonces = NonceCache(60, 10, clock, journal=journal)
    for nonce in ("claimed", "repeat", "other"):
        nonces.remember("dev", nonce, 1000, hold=True)
    nonces.settle("dev", "claimed", claimed=True)
    assert journal.writes == []
    nonces.settle("dev", "repeat", claimed=False)
    assert journal.writes == [[("dev", "repeat", 1000)]]
    nonces.settle("dev", "repeat", claimed=False)  # settled already: nothing more
    journal.fail = True
    with pytest.raises(sqlite3.OperationalError):
        nonces.settle("dev", "other", claimed=False)
    journal.fail = False
    nonces.commit()
    assert journal.writes == [[("dev", "repeat", 1000)], [("dev", "other", 1000)]]
    for nonce in ("claimed", "repeat", "other"):
        with pytest.raises(Replayed):
            nonces.remember("dev", nonce, 1000)
