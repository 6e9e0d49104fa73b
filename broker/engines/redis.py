"""The Redis engine: one history shared by every node that names the same Redis.

Why: several Broker nodes behind a load balancer must issue one sequence of
positions and answer ``broker.recover`` alike. Each batch is one atomic
script (:mod:`broker.engines.redis_scripts`) that assigns cursor and seq,
appends to the topic's stream and to a shared log, and trims by count and
age (Redis ``TIME``, so every node uses one clock). A read is two scripts
bound by one snapshot cursor. Every node reads the log (``XREAD BLOCK``) and
feeds the batches other nodes appended to :meth:`RedisStore.subscribe`'s
feed; its own it does not (the router delivers them after the append).
Events of topics without history come through the log too (retention
:data:`broker.history.NO_HISTORY`: a cursor, no seq, no topic stream), so
every node delivers them, in the same order, without a position.

Group commit: a node keeps one ``APPEND`` call in flight; the appends that
arrive meanwhile wait and share the next call, each with its own answer, and
one that cannot be answered in time is refused before it is sent
(:mod:`broker.engines.redis_batcher`). A refusal says whether the event was
stored: :class:`broker.errors.HistoryUnavailable` (not, for certain) or
:class:`broker.errors.HistoryUnanswered` (the call went unanswered: perhaps).

Order: the log holds every cursor, in order. Before an append returns, every
foreign entry below its first cursor is fed (the script returns those this
node has not seen), and the reader never feeds past an entry of an append
still waiting for its answer (it waits for the answers, 0.25 s at most, then
reads on past them: not this node's events back); the appends sharing a call
are answered in their order, this node going past each one's cursors only as
it is answered (:mod:`broker.engines.redis_feed`): each topic in seq order everywhere.

Health: :meth:`RedisStore.problem` says what is wrong from outcomes already
seen (the last script call failed, the reader's last ``XREAD`` failed, the
reader has not come back from one for longer than a read can take, or this
node's probe of the log has not come back to its reader in time), so
``/health`` and ``/metrics`` cost no round trip to Redis. After a failure
the reader reads with a short block and runs a script, so a Redis that is
back is known to work again within a fraction of a second, publishes or not.

Integrity: the reader probes the log (an entry never fed) and must read it
back in time, or ``problem()`` says so and its connection is replaced; each
script learns the highest cursor seen here, so a Redis restored to an older
copy is one new epoch; log entries trimmed before this node read them are
reported to ``lost`` (:meth:`RedisStore.subscribe`) before anything after.

No Twisted here: the engine speaks to Redis through a :class:`RedisLink`
(the router's is :mod:`broker.router.redislink`), which also runs its
background reader.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, cast

from broker.core.ratelimit import Quota
from broker.engines import redis_batcher as batcher
from broker.engines import redis_limits as limits
from broker.engines import redis_scripts as scripts
from broker.engines import redis_wire as wire
from broker.engines.redis_admit import AdmitGroups
from broker.engines.redis_batcher import Pending
from broker.engines.redis_feed import Feeder
from broker.engines.redis_wire import Connect as Connect
from broker.engines.redis_wire import Future
from broker.engines.redis_wire import RedisLink as RedisLink
from broker.history import (
    DEFAULT_MAX_TOPICS,
    DEFAULT_REDIS_TIMEOUT,
    Appended,
    Feed,
    Lost,
    NewEvent,
    Once,
    Snapshot,
)

#: Defaults of the store's options (see :data:`broker.history.STORE_OPTIONS`).
DEFAULT_PREFIX: Final = "broker"
DEFAULT_LOG_MAX: Final = 100_000
#: How long one ``XREAD`` blocks (ms) before the reader checks the epoch again.
BLOCK_MS: Final = 5000
#: Entries one ``XREAD`` returns at most.
READ_COUNT: Final = 512
#: How long the first ``XREAD`` after a failure blocks (ms): a quiet log answers soon, proving the path.
RECOVERY_BLOCK_MS: Final = 100
#: How long the reader waits at most for this node's appends in flight before reading on (s).
QUIET_WAIT: Final = 0.25
#: How often the reader probes the log (s), and how long its probe may take to come back (s).
PROBE_INTERVAL: Final = 3.0
PROBE_BOUND: Final = 5.0

_log = logging.getLogger("broker.engines.redis")


class RedisStore:
    """A :class:`broker.history.HistoryStore` in Redis, shared by every node on it."""

    #: Other nodes read what this one appends (topics without history too, ``NO_HISTORY``), and
    #: nonces, idempotency scopes and rate limits are kept here for every node on this Redis.
    shared = True

    def __init__(
        self,
        link: RedisLink,
        *,
        prefix: str = DEFAULT_PREFIX,
        max_topics: int = DEFAULT_MAX_TOPICS,
        log_max: int = DEFAULT_LOG_MAX,
        timeout: float = DEFAULT_REDIS_TIMEOUT,
        clock: Callable[[], float] | None = None,
        probe_interval: float = PROBE_INTERVAL,
        probe_bound: float = PROBE_BOUND,
        queue_events: int = batcher.QUEUE_EVENTS,
    ) -> None:
        if max_topics < 1:
            raise ValueError(f"max_topics must be at least 1, not {max_topics}")
        self._link = link
        self._base = "{" + prefix + "}"
        self._meta = f"{self._base}:meta"
        self.max_topics = max_topics
        self._log_max = log_max
        #: tests move time by hand; None: Redis TIME, one clock for every node
        self._clock = clock
        #: the epoch as last seen from Redis (until then, one no other store has)
        self.epoch = wire.propose()
        self._node = secrets.token_hex(6)
        self._batches = itertools.count(1)
        #: what is fed and held back (:mod:`broker.engines.redis_feed`)
        self._feeder = Feeder(self.epoch)
        self._timeout = timeout
        #: the appends waiting for a call (they wait half the timeout at most, then are refused)
        self._batcher = batcher.Batcher(timeout / 2, queue_events=queue_events)
        self._admits = AdmitGroups(link, self._call)
        self._adopted = False  # whether the epoch came from Redis (a change is then worth a warning)
        self._closed = False
        #: what failed last, by path ("commands": scripts, "reader": the log's XREAD); cleared on success
        self._problems: dict[str, str] = {}
        #: the longest one XREAD of the reader can take before the link gives up on it (s)
        self._read_bound = BLOCK_MS / 1000 + 2 * timeout + 1.0
        #: ``time.monotonic()`` when the reader last started or came back from an XREAD (None: no reader)
        self._read_at: float | None = None
        self._probe_interval, self._probe_bound = probe_interval, probe_bound
        self._probes = itertools.count(1)
        #: the last probe's token, since when one is unread (None: none), when the next is due, and
        #: the log ID of the last probe the reader took (the next read starts after it)
        self._probe_token, self._probe_since, self._probe_due = "", cast(float | None, None), 0.0
        self._probe_id = (0, 0)
        self._quiet: Future | None = None  # the reader waiting for this node's appends, since when
        self._quiet_since = 0.0

    # -- the HistoryStore interface ----------------------------------------

    async def append(self, batch: Sequence[NewEvent], once: Once | None = None) -> Appended:
        """Store ``batch`` (:meth:`broker.history.HistoryStore.append`) in the next ``APPEND`` call,
        which carries every append that arrived while one was in flight
        (:mod:`broker.engines.redis_batcher`) and checks and records ``once``
        (:mod:`broker.engines.redis_limits`). Raises :class:`HistoryUnavailable` if it was not
        stored for certain, :class:`HistoryUnanswered` if it may have been."""
        if not batch and once is None:
            return Appended(self.epoch, ())
        refusal = self._batcher.refusal(len(batch))
        if refusal is not None:
            raise refusal
        since = time.monotonic()
        me = Pending(f"{self._node}:{next(self._batches)}", batch, wire.event_args(batch), once, since)
        if self._batcher.enqueue(me):
            me.waiter = self._link.future()
            done = await me.waiter  # its answer, or None: its turn to send the next call
            if done is not None:
                return cast(Appended, done)
        return await self._lead(me)

    async def _lead(self, me: Pending) -> Appended:
        """Send the next call, ``me`` first; answer ``me``, the others in order on the next turn."""
        if expired := self._batcher.expire(time.monotonic()):
            late = self._batcher.late()
            self._answer([(p, late) for p in expired if p is not me], hand_on=me in expired)
            if me in expired:
                raise late
        group = self._batcher.take()
        ids = [p.batch_id for p in group]
        now = "" if self._clock is None else repr(float(self._clock()))
        head = [self._base, wire.propose(), self.epoch, str(self._feeder.fed), self._node, now]
        keys, args = batcher.call(
            [*head, str(self.max_topics), str(self._log_max)], group, self._meta, self._base
        )
        self._feeder.inflight.update(ids)
        try:
            epoch, _, gap, results = await self._call(scripts.APPEND, args, keys)
            outcomes = [batcher.outcome(p, r) for p, r in zip(group, results, strict=True)]
        except Exception as error:
            self._feeder.inflight.difference_update(ids)  # it may have been stored: the reader then feeds it
            failure = batcher.failure(error, self._timeout)
            self._finish(group, [failure] * len(group))
            raise failure from error
        if any(isinstance(o, Appended) and not o.replayed for o in outcomes):  # the script appended
            self._adopt(epoch)
            self._feeder.take(wire.entry(raw) for raw in gap if wire.probe_id(raw) is None)
            cursors = [o.events[0].cursor for o in outcomes if isinstance(o, Appended) and o.events]
            self._feeder.bridge(
                min(cursors, default=self._feeder.fed + 1) - 1
            )  # stops at a batch still in flight
        self._finish(group, outcomes)
        if isinstance(outcomes[0], Exception):
            raise outcomes[0]
        return outcomes[0]

    def _finish(self, group: Sequence[Pending], outcomes: Sequence[Any]) -> None:
        """Answer the call's first batch now (its leader returns it), the others in order on the
        next turn, after the leader's caller has dispatched; then the turn passes on."""
        self._answer([(group[0], outcomes[0])], hand_on=len(group) == 1)
        if len(group) > 1:
            rest = list(zip(group[1:], outcomes[1:], strict=True))
            self._link.call_soon(lambda: self._answer(rest, hand_on=True))
        self._link.call_soon(self._feeder.drain)  # what the reader holds after them, once they are out

    def _answer(self, answers: Sequence[tuple[Pending, Any]], hand_on: bool) -> None:
        """Give each batch its outcome in order, going past its cursors only then (nothing the log
        holds after it is fed before it); with ``hand_on`` the call's turn passes on."""
        for pending, outcome in answers:
            self._feeder.advance(batcher.last_cursor(outcome) or 0)
            self._feeder.inflight.discard(pending.batch_id)
            pending.answer(outcome)
        if hand_on and (following := self._batcher.release()) is not None:
            following.answer(None)
        quiet = self._quiet
        if quiet is not None and (
            not self._batcher.busy or time.monotonic() - self._quiet_since >= QUIET_WAIT or self._problems
        ):
            self._quiet = None
            self._link.call_soon(lambda: quiet.resolve(None))

    async def read(self, topics: Callable[[str], bool], cursor: int, limit: int) -> Snapshot:
        """One snapshot (:meth:`broker.history.HistoryStore.read`), at the first script's cursor."""
        while True:
            epoch, top, evicted, names, trims = await self._call(
                scripts.TOPICS, [self._base, wire.propose(), str(cursor), self.epoch, str(self._feeder.top)]
            )
            self._adopt(epoch)
            snapshot = int(top)
            self._feeder.top = max(self._feeder.top, snapshot)
            matching = [name for name in names if topics(name)]
            trimmed = [int(t) for n, t in zip(names, trims, strict=True) if topics(n)]
            if int(evicted) > cursor or any(t > cursor for t in trimmed):
                return Snapshot(epoch, snapshot, None)
            if not matching:
                return Snapshot(epoch, snapshot, [])
            args = [self._base, wire.propose(), str(cursor), str(snapshot), str(max(limit, 1)), *matching]
            again, ok, found = await self._call(scripts.EVENTS, args)
            if again != epoch:  # the history was reset in between: read the new one
                self._adopt(again)
                continue
            if not int(ok):
                return Snapshot(epoch, snapshot, None)
            pairs = zip(matching, found, strict=True)
            events = [wire.stored(name, raw) for name, entries in pairs for raw in entries]
            events.sort(key=lambda e: e.cursor)
            return Snapshot(epoch, snapshot, events[:limit])

    async def admit(self, key_id: str, nonce: str, ttl: float, quota: Quota | None = None) -> float | None:
        """Claim the nonce and take the key's tokens for the whole cluster, in one script shared
        with the requests waiting meanwhile (:meth:`broker.history.HistoryStore.admit`,
        :mod:`broker.engines.redis_admit`). Not tied to the epoch: a reset history
        reopens no nonce."""
        keys, args = limits.admit_call(self._base, key_id, nonce, ttl, quota, self._clock)
        return limits.admitted(await self._admits.admit(keys, args))

    def cursor(self) -> int:
        """The highest cursor seen from Redis (0: none yet)."""
        return self._feeder.top

    def problem(self) -> str | None:
        """What is wrong with Redis as this node last saw it (None: nothing), without asking it."""
        if self._closed:
            return None
        found = [self._problems[path] for path in ("commands", "reader") if path in self._problems]
        now = time.monotonic()
        if self._read_at is not None and "reader" not in self._problems:
            quiet = now - self._read_at
            if quiet > self._read_bound:
                stalled = f"the Redis log reader has not come back from a read for {quiet:.0f} s"
                found.append(f"{stalled} (other nodes' events stall)")
        if self._probe_since is not None and now - self._probe_since > self._probe_bound:
            late = f"the Redis log reader has not read this node's probe in {now - self._probe_since:.0f} s"
            found.append(f"{late} (other nodes' events may not arrive)")
        return "; ".join(found) or None

    def subscribe(self, feed: Feed, lost: Lost | None = None) -> None:
        """Feed other nodes' batches to ``feed``, cursors the log lost to ``lost``; starts the reader."""
        self._feeder.feed, self._feeder.lost = feed, lost
        self._read_at = self._probe_due = time.monotonic()
        self._probe_due += self._probe_interval
        self._link.spawn(self._run())

    def close(self) -> None:
        """Stop reading and drop the connections."""
        self._closed = True
        self._link.close()

    # -- the shared log ------------------------------------------------------

    async def _call(self, source: str, args: Sequence[str], keys: Sequence[str] | None = None) -> Any:
        """One script (on ``keys``, else the meta hash) on the command connection; its outcome is
        the "commands" health."""
        try:
            reply = await self._link.script(source, [self._meta] if keys is None else keys, args)
        except Exception as error:
            self._problems["commands"] = f"Redis commands fail ({wire.describe(error)})"
            raise
        self._problems.pop("commands", None)
        return reply

    async def _run(self) -> None:
        """Read the log from where this node stands, forever; a failure is retried after a pause."""
        pause = 0.1
        started = False
        while not self._closed:
            try:
                if not started:
                    await self._init(joining=True)
                    started = True
                await self._wait_quiet()
                await self._probe()
                stream = f"{self._base}:{self.epoch}:log"
                after = max(self._feeder.read, self._feeder.fed)
                skip = self._probe_id[1] if self._probe_id[0] == after else 0
                # after a failure (here or a script's): a short read, then a script, to learn soon
                # that both work again (and the epoch), even with no publish on this node
                recovering = bool(self._problems)
                block = RECOVERY_BLOCK_MS if recovering else BLOCK_MS
                reply = await self._link.block_read(stream, f"{after}-{skip}", READ_COUNT, block)
                self._read_at = time.monotonic()
                self._problems.pop("reader", None)
                if reply is None or recovering:
                    await self._init()  # quiet, or back: is it still the same history?
                if reply is None:
                    continue
                if stream == f"{self._base}:{self.epoch}:log":
                    self._from_log(reply[0][1])
                pause = 0.1
            except Exception as error:  # Redis away: try again, without flooding it
                if self._closed:
                    return
                self._read_at = time.monotonic()
                self._problems["reader"] = f"the Redis log reader fails ({wire.describe(error)})"
                _log.warning("Redis log reader: %s; retrying in %.1f s", error, pause)
                await self._link.sleep(pause)
                pause = min(pause * 2, 2.0)

    async def _wait_quiet(self) -> None:
        """Wait for this node's appends in flight to be answered (at most :data:`QUIET_WAIT`):
        they and the other nodes' entries before them come with the answers, so the read after
        starts past them instead of reading this node's own events back."""
        if not self._batcher.busy or self._problems:
            return
        quiet = self._quiet = self._link.future()
        self._quiet_since = time.monotonic()
        await quiet

    async def _probe(self) -> None:
        """Append a probe to the log when one is due; one overdue first replaces the reader's connection."""
        now = time.monotonic()
        overdue = self._probe_since is not None and now - self._probe_since > self._probe_bound
        if now < self._probe_due or (self._probe_since is not None and not overdue):
            return
        if overdue:
            _log.warning("Redis log probe not read back in time: reconnecting the reader")
            self._link.reset_reader()
        self._probe_token = f"{self._node}:{next(self._probes)}"
        self._probe_due = now + self._probe_interval
        args = [
            self._base,
            wire.propose(),
            self.epoch,
            str(self._feeder.top),
            self._probe_token,
            str(self._log_max),
        ]
        epoch, cursor = await self._call(scripts.PROBE, args)
        self._adopt(epoch)
        self._feeder.top = max(self._feeder.top, int(cursor))
        if self._probe_since is None:
            self._probe_since = now

    async def _init(self, joining: bool = False) -> None:
        """Learn Redis's epoch and cursor; a joining node delivers only what is appended after it."""
        known = [self.epoch, str(self._feeder.top)]
        epoch, cursor = await self._call(
            scripts.INIT, [self._base, wire.propose(), self._node, "1" if joining else "0", *known]
        )
        self._adopt(epoch)
        if joining:
            self._feeder.advance(int(cursor))
        self._feeder.top = max(self._feeder.top, int(cursor))

    def _from_log(self, raws: Sequence[Any]) -> None:
        entries = []
        for raw in raws:
            if (probe := wire.probe_id(raw)) is None:
                entries.append(wire.entry(raw))
                continue
            self._probe_id = max(self._probe_id, probe)
            if wire.fields(raw[1])["n"] == self._probe_token:
                self._probe_since = None
        self._feeder.from_log(entries)

    def _adopt(self, epoch: str) -> None:
        """Take Redis's epoch: a different one is a new history, read from its start; what this
        node had not fed of the old one may be lost (Redis lost its data): ``lost`` first."""
        if epoch != self.epoch:
            if self._adopted:
                _log.warning("Redis history is a new epoch %s (was %s)", epoch, self.epoch)
                self._feeder.report(self._feeder.fed + 1, None)
            self.epoch = epoch
            self._feeder.reset(epoch)
            self._probe_id = (0, 0)
        self._adopted = True
