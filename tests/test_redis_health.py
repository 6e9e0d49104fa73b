"""The Redis engine's health signal (:meth:`RedisStore.problem`), against a real redis-server.

``/health`` and ``/metrics`` read it on every answer, so it must come from
outcomes already seen, never a round trip: a failing script call, a failing
log read, or a reader that has not come back from a read for longer than one
can take (other nodes' events would silently stop arriving while publishes
still succeed). Each test names the failure and the exact text, and that it
clears by itself once Redis answers again.
"""

from __future__ import annotations

import secrets
import types
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from broker.engines import redis as engine
from broker.engines import redis_reader as reader
from broker.engines.redis import BLOCK_MS, RECOVERY_BLOCK_MS, RedisStore
from broker.engines.redis_batcher import MAYBE_STORED
from broker.errors import HistoryUnanswered
from broker.history import Appended, NewEvent, Retention, parse_redis_url
from tests.engines import settle
from tests.redisserver import RedisServer, SocketLink

KEEP = Retention(max_events=100, max_age=3600.0)
AWAY = "ConnectionError: Redis is away"


class FlakyLink(SocketLink):
    """A real link that fails every call while :attr:`down` is set, and records each read's block."""

    def __init__(self, server: RedisServer) -> None:
        super().__init__(parse_redis_url(server.url))
        self.prefix = f"h{secrets.token_hex(6)}"
        self.down = False
        self.blocks: list[int] = []

    async def script(self, source: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        if self.down:
            raise ConnectionError("Redis is away")
        return await super().script(source, keys, args)

    async def block_read(self, stream: str, after: str, count: int, block_ms: int) -> Any:
        self.blocks.append(block_ms)
        reply = await super().block_read(stream, after, count, block_ms)
        if self.down:
            raise ConnectionError("Redis is away")
        return reply


@pytest.fixture
def flaky(redis_server: RedisServer) -> Iterator[tuple[RedisStore, FlakyLink]]:
    link = FlakyLink(redis_server)
    store = RedisStore(link, prefix=link.prefix, timeout=0.5)
    yield store, link
    store.close()


def one(topic: str) -> list[NewEvent]:
    return [NewEvent(topic, [1], {}, KEEP)]


def test_a_failing_script_is_the_problem_until_one_succeeds(flaky: tuple[RedisStore, FlakyLink]) -> None:
    store, link = flaky
    assert store.problem() is None
    link.down = True
    with pytest.raises(HistoryUnanswered) as refused:  # a link error that may have come after sending
        settle(store.append(one("t")))
    assert str(refused.value) == f"the history engine did not answer ({AWAY}): {MAYBE_STORED}"
    assert store.problem() == f"Redis commands fail ({AWAY})"
    link.down = False
    appended = settle(store.append(one("t")))
    assert [e.seq for e in appended.events] == [1]
    assert store.problem() is None


def test_a_failed_script_clears_once_the_reader_finds_redis_back_without_a_publish(
    flaky: tuple[RedisStore, FlakyLink], redis_server: RedisServer
) -> None:
    """Another node keeps the log busy (no quiet read): the reader itself proves the commands work."""
    store, link = flaky
    other = RedisStore(SocketLink(parse_redis_url(redis_server.url)), prefix=link.prefix)
    fed: list[Appended] = []
    store.subscribe(fed.append)
    link.down = True
    with pytest.raises(HistoryUnanswered):
        settle(store.append(one("t")))
    link.down = False
    try:
        settle(other.append(one("u")))
        link.pump()  # the read that was waiting brings it; nothing has proven the commands yet
        assert store.problem() == f"Redis commands fail ({AWAY})"
        settle(other.append(one("u")))
        link.pump()  # a short read brings the next, then the reader's own script succeeds
        assert store.problem() is None
    finally:
        other.close()
    assert [[e.seq for e in batch.events] for batch in fed] == [[1], [2]]
    assert link.blocks == [BLOCK_MS, RECOVERY_BLOCK_MS, BLOCK_MS]


def test_a_failing_reader_is_the_problem_until_a_short_read_succeeds(
    flaky: tuple[RedisStore, FlakyLink],
) -> None:
    store, link = flaky
    fed: list[Appended] = []
    store.subscribe(fed.append)  # joins (a script), then waits in its first read
    link.down = True
    link.pump()  # that read fails; the reader pauses
    assert store.problem() == f"the Redis log reader fails ({AWAY})"
    link.down = False
    link.pump()  # after the pause: a read with the short block, still unanswered
    assert store.problem() == f"the Redis log reader fails ({AWAY})"
    link.pump()  # it answers (nothing new): the path works again
    assert store.problem() is None
    assert link.blocks == [BLOCK_MS, RECOVERY_BLOCK_MS, BLOCK_MS]
    assert fed == []


def test_a_reader_that_never_comes_back_is_the_problem(
    flaky: tuple[RedisStore, FlakyLink], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read that neither answers nor fails (a lost connection nobody noticed): past the longest
    a read can take (the block, twice the timeout, a second), the store says the reader stalls."""
    now = [100.0]
    monkeypatch.setattr(engine, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    monkeypatch.setattr(reader, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    store, _ = flaky
    store.subscribe(lambda appended: None)  # and the test never pumps its read
    now[0] += BLOCK_MS / 1000 + 2 * 0.5 + 0.9
    assert store.problem() is None
    now[0] += 2.3  # 9.2 s after the read began
    stalled = "the Redis log reader has not come back from a read for 9 s (other nodes' events stall)"
    assert store.problem() == stalled
