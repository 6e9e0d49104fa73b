"""The HTTP publish API's memory on disk: accepted nonces and idempotency answers.

A restart (even kill -9) must not reopen what the publish API promised: that
each signed request is accepted once (:mod:`broker.core.replay`) and that a retry
with an idempotency key publishes once (:mod:`broker.core.idempotency`). Both
caches decide in memory and write through to the journals here, each write
committed before the request goes on (the nonces of one reactor turn's requests in
one transaction: :meth:`broker.core.replay.NonceCache.commit`). With SQLite history they live in the
history's own database file (tables of their own, a connection of their own).
With memory history events are not kept, but the publish memory still is, in
a small file of its own in the node directory (:data:`MEMORY_STORE_FILE`):
without it a retry after a restart would publish a second event, and the
only safe alternative (refusing every idempotency key that might be a retry)
would make keys useless for a day. Rows are bounded like the caches: expired
ones are deleted through an index (nonces at most once a second, so a nonce
costs one INSERT), and neither table outgrows its cache's capacity by more
than a second of requests. A file that is new (the first start, or the directory
was wiped) records when it began, and requests signed before then are
refused (see docs/http-publish.md, "Across restarts").

Nonce rows go in insertion order (a rowid table, no key of their own: the
cache in memory refuses a nonce twice, and loads what is here): a commit
writes the last page of the table and of its time index, where a table keyed
by the random nonce wrote a random page of up to ``nonce_capacity`` rows
(four times the cost per nonce when full). A file from before is converted
when opened (:func:`_rowid_nonces`).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from broker.core.idempotency import Answer, Kept, Scope
from broker.core.replay import Remembered

#: the publish memory's own file in the node directory, for a node whose history is in memory
MEMORY_STORE_FILE = "publish-memory.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS publish_meta (key TEXT PRIMARY KEY, value REAL NOT NULL);
CREATE TABLE IF NOT EXISTS publish_nonces (key_id TEXT NOT NULL, nonce TEXT NOT NULL, ts REAL NOT NULL);
CREATE INDEX IF NOT EXISTS publish_nonces_by_ts ON publish_nonces (ts);
CREATE TABLE IF NOT EXISTS publish_answers (
    key_id TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created REAL NOT NULL,
    status INTEGER,
    body TEXT,
    PRIMARY KEY (key_id, idempotency_key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS publish_answers_by_created ON publish_answers (created);
"""


class SQLitePublishMemory:
    """Both journals in one SQLite file: ``nonces`` (:class:`broker.core.replay.NonceJournal`)
    and ``answers`` (:class:`broker.core.idempotency.AnswerJournal`)."""

    def __init__(self, path: str, clock: Callable[[], float] = time.time) -> None:
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA busy_timeout = 5000")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        _rowid_nonces(self._db)
        self._db.executescript(_SCHEMA)
        # the journal's first start: nothing before it was recorded (whole seconds, like timestamps)
        self._db.execute("INSERT OR IGNORE INTO publish_meta VALUES ('since', ?)", (math.floor(clock()),))
        self.nonces = _Nonces(self._db)
        self.answers = _Answers(self._db)

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()


def _rowid_nonces(db: sqlite3.Connection) -> None:
    """Convert a nonce table keyed by ``(key_id, nonce)`` (``WITHOUT ROWID``, before group commit)
    into the rowid table of :data:`_SCHEMA`, rows kept, in one transaction."""
    found = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'publish_nonces'")
    row = found.fetchone()
    if row is None or "WITHOUT ROWID" not in row[0].upper():
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("DROP INDEX IF EXISTS publish_nonces_by_ts")
        db.execute("ALTER TABLE publish_nonces RENAME TO publish_nonces_keyed")
        db.execute(
            "CREATE TABLE publish_nonces (key_id TEXT NOT NULL, nonce TEXT NOT NULL, ts REAL NOT NULL)"
        )
        db.execute(
            "INSERT INTO publish_nonces SELECT key_id, nonce, ts FROM publish_nonces_keyed ORDER BY ts"
        )
        db.execute("DROP TABLE publish_nonces_keyed")
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


class _Nonces:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        #: the horizon expired rows were last deleted below (at most once a second)
        self._pruned = float("-inf")

    def load(self, horizon: float) -> Remembered:
        meta = dict(self._db.execute("SELECT key, value FROM publish_meta").fetchall())
        floor = meta.get("floor", float("-inf"))
        self._db.execute("DELETE FROM publish_nonces WHERE ts < ? OR ts <= ?", (horizon, floor))
        rows = self._db.execute("SELECT key_id, nonce, ts FROM publish_nonces ORDER BY ts").fetchall()
        return Remembered(floor=floor, since=meta["since"], nonces=rows)

    def record(self, key_id: str, nonce: str, timestamp: float, floor: float, horizon: float) -> None:
        self.record_many([(key_id, nonce, timestamp)], floor, horizon)

    def record_many(self, nonces: Sequence[tuple[str, str, float]], floor: float, horizon: float) -> None:
        db = self._db
        prune = horizon - self._pruned >= 1  # expired rows are refused by timestamp: drop them
        if floor < horizon and len(nonces) == 1 and not prune:  # one statement, its own transaction
            db.execute("INSERT INTO publish_nonces VALUES (?, ?, ?)", nonces[0])
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT INTO publish_nonces VALUES (?, ?, ?)", nonces)
            if floor >= horizon:  # the memory was full: keep the floor, drop what it refuses
                db.execute("INSERT OR REPLACE INTO publish_meta VALUES ('floor', ?)", (floor,))
                db.execute("DELETE FROM publish_nonces WHERE ts <= ?", (floor,))
            if prune:
                db.execute("DELETE FROM publish_nonces WHERE ts < ?", (horizon,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        if prune:
            self._pruned = horizon


class _Answers:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def load(self, horizon: float) -> Sequence[Kept]:
        self._db.execute("DELETE FROM publish_answers WHERE created < ?", (horizon,))
        return [
            Kept((key_id, key), fingerprint, created, None if status is None else (status, json.loads(body)))
            for key_id, key, fingerprint, created, status, body in self._db.execute(
                "SELECT key_id, idempotency_key, fingerprint, created, status, body "
                "FROM publish_answers ORDER BY created"
            )
        ]

    def started(
        self, scope: Scope, fingerprint: str, created: float, horizon: float, dropped: Sequence[Scope]
    ) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM publish_answers WHERE created < ?", (horizon,))
            self._delete(dropped)
            db.execute(
                "INSERT OR REPLACE INTO publish_answers VALUES (?, ?, ?, ?, NULL, NULL)",
                (*scope, fingerprint, created),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def answered(self, scope: Scope, answer: Answer) -> None:
        status, body = answer
        self._db.execute(
            "UPDATE publish_answers SET status = ?, body = ? WHERE key_id = ? AND idempotency_key = ?",
            (status, json.dumps(body), *scope),
        )

    def forget(self, scopes: Sequence[Scope]) -> None:
        self._delete(scopes)

    def _delete(self, scopes: Sequence[Scope]) -> None:
        self._db.executemany(
            "DELETE FROM publish_answers WHERE key_id = ? AND idempotency_key = ?", [tuple(s) for s in scopes]
        )


def open_publish_memory(spec: Mapping[str, Any], base_dir: str = ".") -> SQLitePublishMemory:
    """The publish memory for a history store spec: in the history's file if it has one,
    else in :data:`MEMORY_STORE_FILE` in ``base_dir`` (the node directory), created if new."""
    if spec.get("type", "memory") == "sqlite":
        return SQLitePublishMemory(os.path.join(base_dir, spec["path"]))
    return SQLitePublishMemory(os.path.join(base_dir, MEMORY_STORE_FILE))
