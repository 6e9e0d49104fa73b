"""The HTTP publish API's memory on disk: accepted nonces and idempotency answers.

A restart (even kill -9) must not reopen what the publish API promised: that
each signed request is accepted once (:mod:`broker.core.replay`) and that a retry
with an idempotency key publishes once (:mod:`broker.core.idempotency`). Both
caches decide in memory and write through to the journals here, each write
committed before the request goes on. With SQLite history they live in the
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
CREATE TABLE IF NOT EXISTS publish_nonces (
    key_id TEXT NOT NULL,
    nonce TEXT NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (key_id, nonce)
) WITHOUT ROWID;
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
        self._db.executescript(_SCHEMA)
        # the journal's first start: nothing before it was recorded (whole seconds, like timestamps)
        self._db.execute("INSERT OR IGNORE INTO publish_meta VALUES ('since', ?)", (math.floor(clock()),))
        self.nonces = _Nonces(self._db)
        self.answers = _Answers(self._db)

    def close(self) -> None:
        """Close the database connection."""
        self._db.close()


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
        db = self._db
        if floor < horizon:  # the common case: one statement, its own transaction
            db.execute("INSERT INTO publish_nonces VALUES (?, ?, ?)", (key_id, nonce, timestamp))
            if horizon - self._pruned >= 1:  # expired rows are refused by timestamp: drop them
                db.execute("DELETE FROM publish_nonces WHERE ts < ?", (horizon,))
                self._pruned = horizon
            return
        db.execute("BEGIN IMMEDIATE")  # the memory was full: keep the floor, drop what it refuses
        try:
            db.execute("INSERT INTO publish_nonces VALUES (?, ?, ?)", (key_id, nonce, timestamp))
            db.execute("INSERT OR REPLACE INTO publish_meta VALUES ('floor', ?)", (floor,))
            db.execute("DELETE FROM publish_nonces WHERE ts <= ?", (floor,))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise


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
