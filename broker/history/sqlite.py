"""A store in one SQLite file: history and epoch survive a node restart, even SIGKILL.

Each append commits before the event is dispatched (WAL mode), so every event
a publisher saw acknowledged is on disk when the process dies.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from broker.history import Retention, StoredEvent

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS topics (
    topic TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    trimmed_cursor INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    cursor INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    seq INTEGER NOT NULL,
    published_at REAL NOT NULL,
    payload TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_topic ON events (topic, seq);
"""


class SQLiteStore:
    """History in an SQLite database file (created if missing)."""

    def __init__(self, path: str, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        if row is None:
            self.epoch = secrets.token_hex(8)
            self._db.execute("INSERT INTO meta VALUES ('epoch', ?)", (self.epoch,))
        else:
            self.epoch = row[0]
        self._cursor: int = int(self._db.execute("SELECT COALESCE(MAX(cursor), 0) FROM events").fetchone()[0])
        stored = self._db.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()
        if stored is not None:  # events may all be trimmed: the cursor never goes back
            self._cursor = max(self._cursor, int(stored[0]))

    def append(
        self, topic: str, args: list[Any], kwargs: dict[str, Any], retention: Retention
    ) -> StoredEvent:
        now = self.clock()
        db = self._db
        before = self._cursor
        db.execute("BEGIN IMMEDIATE")
        try:
            row = db.execute("SELECT last_seq FROM topics WHERE topic = ?", (topic,)).fetchone()
            seq = 1 if row is None else row[0] + 1
            self._cursor += 1
            db.execute(
                "INSERT INTO topics (topic, last_seq) VALUES (?, ?) "
                "ON CONFLICT (topic) DO UPDATE SET last_seq = excluded.last_seq",
                (topic, seq),
            )
            db.execute(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
                (self._cursor, topic, seq, now, json.dumps([args, kwargs])),
            )
            db.execute("INSERT OR REPLACE INTO meta VALUES ('cursor', ?)", (str(self._cursor),))
            trimmed = db.execute(
                "SELECT MAX(cursor) FROM events WHERE topic = ? AND (seq <= ? OR published_at < ?)",
                (topic, seq - retention.max_events, now - retention.max_age),
            ).fetchone()[0]
            if trimmed is not None:
                db.execute("DELETE FROM events WHERE topic = ? AND cursor <= ?", (topic, trimmed))
                db.execute("UPDATE topics SET trimmed_cursor = ? WHERE topic = ?", (trimmed, topic))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._cursor = before
            raise
        return StoredEvent(topic, seq, self._cursor, now, args, kwargs)

    def after(self, topics: Callable[[str], bool], cursor: int, limit: int) -> Sequence[StoredEvent] | None:
        rows = self._db.execute("SELECT topic, trimmed_cursor FROM topics").fetchall()
        matching = [(topic, trimmed) for topic, trimmed in rows if topics(topic)]
        if any(trimmed > cursor for _, trimmed in matching):
            return None
        found: list[StoredEvent] = []
        for topic, _ in matching:
            for c, seq, published_at, payload in self._db.execute(
                "SELECT cursor, seq, published_at, payload FROM events WHERE topic = ? AND cursor > ? "
                "ORDER BY cursor LIMIT ?",
                (topic, cursor, limit),
            ):
                args, kwargs = json.loads(payload)
                found.append(StoredEvent(topic, seq, c, published_at, args, kwargs))
        found.sort(key=lambda e: e.cursor)
        return found[:limit]

    def cursor(self) -> int:
        return self._cursor

    def close(self) -> None:
        self._db.close()
