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
A call's gap starts at this node's mark in Redis (its last call's cursor), except
after a call that went unanswered: then at what this node fed, so that call's
entries, if it was stored, and the gap before it are fed in order, not skipped.

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
from broker.engines.redis_reader import BLOCK_MS as BLOCK_MS
from broker.engines.redis_reader import PROBE_BOUND as PROBE_BOUND
from broker.engines.redis_reader import PROBE_INTERVAL as PROBE_INTERVAL
from broker.engines.redis_reader import QUIET_WAIT as QUIET_WAIT
from broker.engines.redis_reader import READ_COUNT as READ_COUNT
from broker.engines.redis_reader import RECOVERY_BLOCK_MS as RECOVERY_BLOCK_MS
from broker.engines.redis_reader import LogReader
from broker.engines.redis_wire import Connect as Connect
from broker.engines.redis_wire import Future
from broker.engines.redis_wire import RedisLink as RedisLink
from broker.errors import HistoryUnanswered
from broker.history import (
    DEFAULT_MAX_TOPICS,
    DEFAULT_REDIS_TIMEOUT,
    Appended,
    Claim,
    Feed,
    Lost,
    NewEvent,
    Once,
    Snapshot,
)

#: Defaults of the store's options (see :data:`broker.history.STORE_OPTIONS`).
DEFAULT_PREFIX: Final = "broker"
DEFAULT_LOG_MAX: Final = 100_000


class RedisStore(LogReader):
    """A :class:`broker.history.HistoryStore` in Redis, shared by every node on it."""

    #: Other nodes read what this one appends (topics without history too, ``NO_HISTORY``), and
    #: nonces, idempotency scopes and rate limits are kept here for every node on this Redis.
    shared = True
    #: :meth:`append` takes a request's :class:`~broker.history.Claim` in its own script call.
    admits_in_append = True

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
        self._read_count = READ_COUNT
        self._quiet: Future | None = None  # the reader waiting for this node's appends, since when
        #: resolved once every append of the last call is answered (None: they are; :meth:`_finish`)
        self._settling: Future | None = None
        #: whether this node's mark in Redis (its last call's cursor) may bound the next call's gap:
        #: not after a call that went unanswered, whose entries only the log can bring
        self._mark_bounds = True
        self._quiet_since = 0.0

    # -- the HistoryStore interface ----------------------------------------

    async def append(
        self, batch: Sequence[NewEvent], once: Once | None = None, claim: Claim | None = None
    ) -> Appended:
        """Store ``batch`` (:meth:`broker.history.HistoryStore.append`) in the next ``APPEND`` call,
        which carries every append that arrived while one was in flight
        (:mod:`broker.engines.redis_batcher`) and checks and records ``once``
        (:mod:`broker.engines.redis_limits`). With ``claim`` the same call first takes the
        request's nonce and tokens as :meth:`admit` would: refused, nothing is appended
        (:class:`broker.errors.NotAdmitted`). Raises :class:`HistoryUnavailable` if it was not stored for
        certain, :class:`HistoryUnanswered` if it may have been."""
        if not batch and once is None and claim is None:
            return Appended(self.epoch, ())
        refusal = self._batcher.refusal(len(batch))
        if refusal is not None:
            raise refusal
        since = time.monotonic()
        me = Pending(f"{self._node}:{next(self._batches)}", batch, wire.event_args(batch), once, since)
        if claim is not None:
            me.claim = limits.claim_call(self._base, claim, self._clock)
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
            [*head, str(self.max_topics), str(self._log_max), "1" if self._mark_bounds else "0"],
            group,
            self._meta,
            self._base,
        )
        self._feeder.inflight.update(ids)
        try:
            try:
                epoch, _, gap, results = await self._call(scripts.APPEND, args, keys)
            finally:  # sent while the last call's appends were answered: answered after them
                if (settling := self._settling) is not None:
                    await settling
            outcomes = [batcher.outcome(p, r) for p, r in zip(group, results, strict=True)]
        except Exception as error:
            self._feeder.inflight.difference_update(ids)  # it may have been stored: the reader then feeds it
            failure = batcher.failure(error, self._timeout)
            if isinstance(failure, HistoryUnanswered):  # its entries (and its gap) are ours to feed
                self._mark_bounds = False
            self._finish(group, [failure] * len(group))
            raise failure from error
        if any(isinstance(o, Appended) and not o.replayed for o in outcomes):  # the script appended
            self._mark_bounds = True  # its gap started at what this node fed, and its mark is its own
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
        """Answer the call's first batch now (its leader returns it) and pass the turn on, so
        the next call is on its way while this one's batches are dispatched; answer the others
        in order on the next turn, after the leader's caller has dispatched, then feed what the
        reader holds after them (one callback: nothing is held after a call of one batch when
        nothing is buffered now, since only the reader and the next call buffer, and both feed
        what they can themselves). A link answers a call on a later turn than it sent it
        (Redis's reply is a read), after what was called soon before; should it answer
        sooner, the next call's answer still waits for these others (:attr:`_settling`)."""
        feeder = self._feeder
        if len(group) == 1:
            self._answer([(group[0], outcomes[0])], hand_on=True)
            if feeder.buffer:
                self._link.call_soon(feeder.drain)
            return
        settling = self._settling = self._link.future()
        rest = list(zip(group[1:], outcomes[1:], strict=True))

        def answer_rest() -> None:
            self._answer(rest, hand_on=False)
            feeder.drain()
            if self._settling is settling:
                self._settling = None
            settling.resolve(None)

        self._answer([(group[0], outcomes[0])], hand_on=True)
        self._link.call_soon(answer_rest)

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
