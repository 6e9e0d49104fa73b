"""A store in one SQLite file: history and epoch survive a node restart, even SIGKILL.

Each batch is appended in one transaction, committed before its events are
dispatched (WAL mode), so every event a publisher saw acknowledged is on disk
when the process dies; a batch is stored whole or not at all. The coroutines
of :class:`broker.history.HistoryStore` never suspend here (SQLite is called
synchronously underneath). Like the memory
store it keeps at most ``max_topics`` topics: a new topic beyond that deletes
the rows of the least recently published one (see docs/positions.md).
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Any

from broker.core.ratelimit import Quota
from broker.history import (
    DEFAULT_MAX_TOPICS,
    Appended,
    Feed,
    Lost,
    NewEvent,
    Once,
    Retention,
    Snapshot,
    StoredEvent,
    storedtext,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS topics (
    topic TEXT PRIMARY KEY,
    last_seq INTEGER NOT NULL,
    trimmed_cursor INTEGER NOT NULL DEFAULT 0,
    last_cursor INTEGER NOT NULL DEFAULT 0
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

#: Files written before ``max_topics`` lack ``topics.last_cursor``: add and fill it.
_MIGRATE_LAST_CURSOR = """
ALTER TABLE topics ADD COLUMN last_cursor INTEGER NOT NULL DEFAULT 0;
UPDATE topics SET last_cursor = MAX(
    trimmed_cursor, COALESCE((SELECT MAX(cursor) FROM events WHERE events.topic = topics.topic), 0)
);
"""


class SQLiteStore:
    """History in an SQLite database file (created if missing)."""

    #: One node's history: topics without history never reach it, and its publish gate keeps
    #: the HTTP API's limits (see ``HistoryStore.shared``).
    shared = False

    def __init__(
        self, path: str, clock: Callable[[], float] = time.time, max_topics: int = DEFAULT_MAX_TOPICS
    ) -> None:
        if max_topics < 1:
            raise ValueError(f"max_topics must be at least 1, not {max_topics}")
        self.clock = clock
        self.max_topics = max_topics
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        if "last_cursor" not in {row[1] for row in self._db.execute("PRAGMA table_info(topics)")}:
            self._db.executescript(f"BEGIN; {_MIGRATE_LAST_CURSOR} COMMIT;")
        self._db.execute("CREATE INDEX IF NOT EXISTS topics_by_recency ON topics (last_cursor)")
        self._topic_count: int = int(self._db.execute("SELECT COUNT(*) FROM topics").fetchone()[0])
        evicted = self._db.execute("SELECT value FROM meta WHERE key = 'evicted_cursor'").fetchone()
        #: highest cursor any evicted topic had issued (0: nothing evicted)
        self._evicted_cursor = 0 if evicted is None else int(evicted[0])
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

    async def append(self, batch: Sequence[NewEvent], once: Once | None = None) -> Appended:
        """Store ``batch`` in one transaction (:meth:`broker.history.HistoryStore.append`)."""
        now = self.clock()
        db = self._db
        before = (self._cursor, self._topic_count, self._evicted_cursor)
        db.execute("BEGIN IMMEDIATE")
        try:
            stored = tuple(self._append(e.topic, e.args, e.kwargs, e.retention, now) for e in batch)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('cursor', ?)", (str(self._cursor),))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._cursor, self._topic_count, self._evicted_cursor = before
            raise
        return Appended(self.epoch, stored)

    async def read(self, topics: Callable[[str], bool], cursor: int, limit: int) -> Snapshot:
        """One snapshot (:meth:`broker.history.HistoryStore.read`): nothing runs in between."""
        return Snapshot(self.epoch, self._cursor, self._after(topics, cursor, limit))

    def subscribe(self, feed: Feed, lost: Lost | None = None) -> None:
        """Nothing to feed: only this process appends to its file."""

    def _append(
        self, topic: str, args: list[Any], kwargs: dict[str, Any], retention: Retention, now: float
    ) -> StoredEvent:
        """Store one event inside the batch's transaction."""
        db = self._db
        row = db.execute("SELECT last_seq FROM topics WHERE topic = ?", (topic,)).fetchone()
        if row is None:
            if self._topic_count >= self.max_topics:
                self._evict(self._topic_count - self.max_topics + 1)
            self._topic_count += 1
        seq = 1 if row is None else row[0] + 1
        self._cursor += 1
        db.execute(
            "INSERT INTO topics (topic, last_seq, last_cursor) VALUES (?, ?, ?) "
            "ON CONFLICT (topic) DO UPDATE SET last_seq = excluded.last_seq, "
            "last_cursor = excluded.last_cursor",
            (topic, seq, self._cursor),
        )
        db.execute(
            "INSERT INTO events VALUES (?, ?, ?, ?, ?)",
            (self._cursor, topic, seq, now, storedtext.encode(args, kwargs)),
        )
        trimmed = db.execute(
            "SELECT MAX(cursor) FROM events WHERE topic = ? AND (seq <= ? OR published_at < ?)",
            (topic, seq - retention.max_events, now - retention.max_age),
        ).fetchone()[0]
        if trimmed is not None:
            db.execute("DELETE FROM events WHERE topic = ? AND cursor <= ?", (topic, trimmed))
            db.execute("UPDATE topics SET trimmed_cursor = ? WHERE topic = ?", (trimmed, topic))
        return StoredEvent(topic, seq, self._cursor, now, args, kwargs)

    def _evict(self, count: int) -> None:
        """Delete the ``count`` least recently published topics and their events (in a transaction)."""
        db = self._db
        victims = db.execute(
            "SELECT topic, last_cursor FROM topics ORDER BY last_cursor LIMIT ?", (count,)
        ).fetchall()
        for victim, _ in victims:
            db.execute("DELETE FROM events WHERE topic = ?", (victim,))
            db.execute("DELETE FROM topics WHERE topic = ?", (victim,))
        self._topic_count -= len(victims)
        self._evicted_cursor = max([self._evicted_cursor, *(last for _, last in victims)])
        db.execute("INSERT OR REPLACE INTO meta VALUES ('evicted_cursor', ?)", (str(self._evicted_cursor),))

    def _after(self, topics: Callable[[str], bool], cursor: int, limit: int) -> Sequence[StoredEvent] | None:
        # Evicted topics are forgotten by name, so any of them may match: a cursor
        # below the last evicted event can no longer be answered gaplessly.
        if self._evicted_cursor > cursor:
            return None
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
                args, kwargs = storedtext.decode(payload)
                found.append(StoredEvent(topic, seq, c, published_at, args, kwargs))
        found.sort(key=lambda e: e.cursor)
        return found[:limit]

    def cursor(self) -> int:
        """The highest cursor issued (0: none yet); it never goes back."""
        return self._cursor

    async def admit(self, key_id: str, nonce: str, ttl: float, quota: Quota | None = None) -> float | None:
        """Always: one node's nonces and rate limits are its own publish gate's to refuse."""
        return 0.0

    def problem(self) -> None:
        """Nothing: an engine inside the node has nothing to lose contact with."""
        return None

    def close(self) -> None:
        """Close the file."""
        self._db.close()
