"""The Redis engine never leaves a silent gap, against a real redis-server (two stores: two nodes).

Three holes it closes (issue 14): a cross-node path that stops delivering while
publishes still succeed (the reader's probe of the log, which must come back
to it); a Redis restored to an older copy (the same epoch with a lower
cursor: one new epoch, never positions issued twice); and a reader that fell
behind what the log keeps (``lost`` is called before anything after the gap
is fed). Each test names the failure and the exact outcome, and that what is
well-behaved beside it goes on.
"""

from __future__ import annotations

import secrets
import types
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from broker.engines import redis as engine
from broker.engines import redis_reader as reader
from broker.engines.redis import PROBE_BOUND, PROBE_INTERVAL, RedisStore
from broker.errors import HistoryUnanswered
from broker.history import Appended, NewEvent, Retention, parse_redis_url
from tests.engines import recover, settle
from tests.redisserver import RedisServer, SocketLink

KEEP = Retention(max_events=100, max_age=3600.0)


class Clock:
    """``time.monotonic`` for the engine, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class BlindLink(SocketLink):
    """A real link whose reader, while :attr:`blind`, reads a stream no script writes (a reader
    connected to the wrong server after a failover: its reads answer, with nothing); records
    each read's ``after``."""

    def __init__(self, server: RedisServer) -> None:
        super().__init__(parse_redis_url(server.url))
        self.blind = False
        self.afters: list[str] = []

    async def block_read(self, stream: str, after: str, count: int, block_ms: int) -> Any:
        self.afters.append(after)
        return await super().block_read(stream + (":elsewhere" if self.blind else ""), after, count, block_ms)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(engine, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(reader, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    return clock


@pytest.fixture
def nodes(redis_server: RedisServer) -> Iterator[Callable[..., tuple[RedisStore, BlindLink]]]:
    """Stores on one fresh prefix: each is one node."""
    prefix = f"i{secrets.token_hex(6)}"
    made: list[RedisStore] = []

    def node(**options: Any) -> tuple[RedisStore, BlindLink]:
        link = BlindLink(redis_server)
        store = RedisStore(link, prefix=prefix, **options)
        made.append(store)
        return store, link

    yield node
    for store in made:
        store.close()


def batch(*topics: str) -> list[NewEvent]:
    return [NewEvent(topic, [topic, n], {}, KEEP) for n, topic in enumerate(topics)]


def positions(appended: Appended) -> list[tuple[str, int, int]]:
    return [(e.topic, e.seq, e.cursor) for e in appended.events]


# -- the probe -----------------------------------------------------------------


def test_a_probe_comes_back_through_the_reader_and_takes_no_position(
    nodes: Callable[..., tuple[RedisStore, BlindLink]], clock: Clock
) -> None:
    a, a_link = nodes()
    b, b_link = nodes()
    fed_a: list[Appended] = []
    fed_b: list[Appended] = []
    a.subscribe(fed_a.append)
    b.subscribe(fed_b.append)
    first = settle(a.append(batch("t")))
    clock.now += PROBE_INTERVAL
    a_link.pump()  # reads A's own batch (not fed), then sends a probe before the next read
    log = a_link.command("XRANGE", f"{a._base}:{a.epoch}:log", "-", "+")
    assert [entry[0] for entry in log] == ["1-0", "1-1"]  # the probe: after cursor 1, no cursor of its own
    clock.now += PROBE_BOUND + 1
    assert a.problem() is not None  # sent, not read back yet
    a_link.pump()  # the read after 1-0 brings it
    assert a.problem() is None
    b_link.pump()  # the other node skips A's probe
    assert fed_a == [] and fed_b == [first]
    second = settle(b.append(batch("t")))
    assert positions(second) == [("t", 2, 2)]  # the probe took no seq, no cursor
    log = a_link.command("XRANGE", f"{a._base}:{a.epoch}:log", "-", "+")
    assert [entry[0] for entry in log] == ["1-0", "1-1", "1-2", "1-3", "2-0"]  # A's 2nd probe, B's
    # A's reads held only its own entries, so each next one asks for one (redis_reader.WAKE_COUNT):
    # its second probe; B's probe, another node's, so the next read takes the rest, B's event
    a_link.pump(3)
    assert fed_a == [second]
    assert a_link.afters == ["0-0", "1-0", "1-1", "1-2", "1-3", "2-0"]  # after each probe, never one twice
    assert b.problem() is None


def test_a_reader_that_reads_but_never_sees_its_probe_is_the_problem_and_is_reconnected(
    nodes: Callable[..., tuple[RedisStore, BlindLink]], clock: Clock
) -> None:
    """Publishes keep succeeding (the commands are fine): only the probe shows that other nodes'
    events no longer reach this node; the reader's connection is replaced, and once it reads
    the log again the problem clears by itself, and nothing was lost."""
    a, a_link = nodes()
    b, _ = nodes()
    fed: list[Appended] = []
    a.subscribe(fed.append)
    a_link.blind = True
    clock.now += PROBE_INTERVAL
    a_link.pump()  # a read of nothing; the probe is sent before the next
    theirs = settle(b.append(batch("t")))
    assert settle(a.append(batch("u"))).events  # A's publishes succeed all along
    clock.now += PROBE_BOUND
    assert a.problem() is None  # within the bound
    clock.now += 1
    late = "the Redis log reader has not read this node's probe in 6 s (other nodes' events may not arrive)"
    assert a.problem() == late
    assert a_link.resets == 0
    a_link.pump()  # the reader sees its probe overdue: a fresh connection, a fresh probe
    assert a_link.resets == 1
    assert a.problem() == late  # still: until a probe comes back
    a_link.blind = False
    a_link.pump()  # the read already waiting was still blind
    assert a.problem() == late
    a_link.pump()  # the fresh connection's read brings the fresh probe
    assert a.problem() is None
    assert fed == [theirs]  # B's batch was fed during A's append, before its own


def test_a_failing_probe_is_a_commands_problem_not_a_crash(
    nodes: Callable[..., tuple[RedisStore, BlindLink]], clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, a_link = nodes()
    a.subscribe(lambda appended: None)
    clock.now += PROBE_INTERVAL

    async def away(source: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        raise ConnectionError("Redis is away")

    monkeypatch.setattr(a_link, "script", away)
    a_link.pump()  # the probe fails: the reader pauses and tries again
    assert a.problem() == (
        "Redis commands fail (ConnectionError: Redis is away); "
        "the Redis log reader fails (ConnectionError: Redis is away)"
    )
    monkeypatch.undo()
    monkeypatch.setattr(engine, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(reader, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    a_link.pump(3)
    assert a.problem() is None


# -- a Redis restored to an older copy ---------------------------------------------


def snapshot(link: SocketLink, base: str) -> str:
    """Every key of the cluster, copied aside: what an RDB file of this moment would bring back."""
    copy = f"copy{secrets.token_hex(4)}:"
    for key in link.command("KEYS", f"{base}*"):
        link.command("COPY", key, copy + key)
    return copy


def restore(link: SocketLink, base: str, copy: str) -> None:
    """Redis restarted from that copy: only its keys, as they were."""
    for key in link.command("KEYS", f"{base}*"):
        link.command("DEL", key)
    for key in link.command("KEYS", f"{copy}*"):
        link.command("RENAME", key, key[len(copy) :])


def test_a_redis_restored_to_an_older_copy_is_one_new_epoch(
    nodes: Callable[..., tuple[RedisStore, BlindLink]],
) -> None:
    """Both nodes saw cursor 3; Redis comes back at 2. The first script to see it moves to a new
    epoch; the other node, which saw cursor 3 of the old epoch too, adopts that one, not a second."""
    a, a_link = nodes()
    b, _ = nodes()
    a.subscribe(lambda appended: None)
    old = settle(a.append(batch("t", "t")))
    copy = snapshot(a_link, a._base)  # the copy holds cursors 1, 2
    seen = settle(b.append(batch("t")))  # cursor 3: a subscriber may hold this position
    assert positions(seen) == [("t", 3, 3)]
    a_link.pump()
    assert a.cursor() == 3
    restore(a_link, a._base, copy)
    fresh = settle(b.append(batch("t")))  # B was issued cursor 3: Redis's 2 is older than that
    assert fresh.epoch != old.epoch
    assert positions(fresh) == [("t", 1, 1)]  # positions start again, never (epoch, 3) twice
    left = a_link.command("KEYS", f"{a._base}:{old.epoch}:*")  # the old copy's history is gone
    assert [key.split(":")[-2] for key in left] == ["node"]  # but a node's mark (it expires in a day)
    mine = settle(a.append(batch("t")))  # A, who saw cursor 3 of the old epoch, adopts the new one
    assert (mine.epoch, positions(mine)) == (fresh.epoch, [("t", 2, 2)])
    answer = recover(a, "t", "exact", old.epoch, 3)
    assert (answer["unrecoverable"], answer["reason"], answer["epoch"]) == (
        True,
        "epoch changed: the history was reset",
        fresh.epoch,
    )


def test_an_idle_node_finds_the_restored_copy_through_its_reader(
    nodes: Callable[..., tuple[RedisStore, BlindLink]],
) -> None:
    """No publish after the restore: the reader's quiet read asks Redis, which is a new epoch at once,
    and what is published next reaches the other node under it."""
    a, a_link = nodes()
    b, b_link = nodes()
    fed: list[Appended] = []
    b.subscribe(fed.append)
    settle(a.append(batch("t")))
    copy = snapshot(a_link, a._base)
    settle(a.append(batch("t")))
    b_link.pump()  # B read cursor 2
    old = b.epoch
    restore(a_link, a._base, copy)
    fed.clear()
    b_link.pump(2)  # a quiet read, then the script that finds Redis behind what B saw
    assert b.epoch != old
    assert a_link.command("HGET", f"{a._base}:meta", "e") == b.epoch
    later = settle(a.append(batch("t")))  # A adopts it (its cursor 2 is not below 0 of a new epoch)
    assert (later.epoch, positions(later)) == (b.epoch, [("t", 1, 1)])
    b_link.pump()
    assert fed == [later]


# -- a reader the log left behind --------------------------------------------------


def test_entries_trimmed_before_the_reader_got_them_are_reported_lost_before_what_follows(
    nodes: Callable[..., tuple[RedisStore, BlindLink]],
) -> None:
    a, a_link = nodes()
    b, _ = nodes()
    seen: list[object] = []
    a.subscribe(lambda appended: seen.append(positions(appended)), lambda low, high: seen.append((low, high)))
    settle(b.append(batch("t", "u", "t")))  # cursors 1..3
    after = settle(b.append(batch("t")))  # 4
    log = f"{a._base}:{a.epoch}:log"
    a_link.command("XTRIM", log, "MINID", "4-0")  # the log dropped 1..3 before A read them
    a_link.pump()
    assert seen == [(1, 3), positions(after)]  # told first, then what the log still has
    answer = recover(a, "t", "exact", a.epoch, 0)  # the topic's history still has them
    assert [e["position"]["cursor"] for e in answer["events"]] == [1, 3, 4]


def test_an_append_that_finds_the_log_trimmed_reports_it_before_returning(
    nodes: Callable[..., tuple[RedisStore, BlindLink]],
) -> None:
    """The gap is found by the append's script (the reader has not read yet): ``lost`` comes
    first, then the entries the log still holds, and only then does the append return."""
    a, a_link = nodes()
    b, _ = nodes()
    seen: list[object] = []
    a.subscribe(lambda appended: seen.append(positions(appended)), lambda low, high: seen.append((low, high)))
    settle(b.append(batch("t", "u")))  # 1, 2
    kept = settle(b.append(batch("u")))  # 3
    a_link.command("XTRIM", f"{a._base}:{a.epoch}:log", "MINID", "3-0")
    mine = settle(a.append(batch("t")))
    assert positions(mine) == [("t", 2, 4)]
    assert seen == [(1, 2), positions(kept)]
    a_link.pump()  # the reader reads 3 and 4: neither again
    assert seen == [(1, 2), positions(kept)]


def test_a_failing_lost_callback_is_logged_and_the_reader_goes_on(
    nodes: Callable[..., tuple[RedisStore, BlindLink]], caplog: pytest.LogCaptureFixture
) -> None:
    a, a_link = nodes()
    b, _ = nodes()
    fed: list[Appended] = []

    def lost(low: int, high: int) -> None:
        raise RuntimeError("the router could not end its sessions")

    a.subscribe(fed.append, lost)
    settle(b.append(batch("t")))
    after = settle(b.append(batch("t")))
    a_link.command("XTRIM", f"{a._base}:{a.epoch}:log", "MINID", "2-0")
    a_link.pump()
    assert fed == [after]
    assert "Redis log: reporting lost cursors 1 to 1 failed" in caplog.text
    assert a.problem() is None


# -- an append stored but unanswered --------------------------------------------


class LosingLink(BlindLink):
    """A real link whose next script, while :attr:`lose_next` is set, runs in Redis and then
    loses its answer (a connection cut after Redis wrote it: stored, the node cannot know)."""

    def __init__(self, server: RedisServer) -> None:
        super().__init__(server)
        self.lose_next = False

    async def script(self, source: str, keys: Sequence[str], args: Sequence[str]) -> Any:
        reply = await super().script(source, keys, args)
        if self.lose_next:
            self.lose_next = False
            raise TimeoutError("the answer was lost")
        return reply


def test_an_append_stored_but_unanswered_is_fed_before_the_next_append_returns(
    redis_server: RedisServer,
) -> None:
    """Its events reach this node's subscribers from the log ("may have been stored, and then it
    is delivered"), and the other node's entry appended before it too, in cursor order, before
    the next append of this node returns: none reported lost, although this node's mark in Redis
    (its last call's cursor) is past them; its reader has not read them."""
    prefix = f"i{secrets.token_hex(6)}"
    link = LosingLink(redis_server)
    mine, other = RedisStore(link, prefix=prefix), RedisStore(BlindLink(redis_server), prefix=prefix)
    try:
        fed: list[Appended] = []
        lost: list[tuple[int, int | None]] = []
        mine.subscribe(fed.append, lambda low, high: lost.append((low, high)))
        assert positions(settle(mine.append(batch("t")))) == [("t", 1, 1)]
        theirs = settle(other.append(batch("u")))  # cursor 2
        link.lose_next = True
        with pytest.raises(HistoryUnanswered):
            settle(mine.append(batch("t", "t")))  # cursors 3 and 4: stored, not answered
        after = settle(mine.append(batch("t")))
        assert positions(after) == [("t", 4, 5)]
        assert lost == []
        assert [positions(appended) for appended in fed] == [positions(theirs), [("t", 2, 3), ("t", 3, 4)]]
    finally:
        mine.close()
        other.close()
