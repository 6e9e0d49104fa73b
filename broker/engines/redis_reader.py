"""The Redis engine's log reader and health: what a node reads of the shared log, and what it knows is wrong.

Why a module of its own: :class:`broker.engines.redis.RedisStore` appends and
reads history; reading the shared log (``XREAD BLOCK``) in the background,
probing it, adopting a new epoch and saying what is wrong with Redis from
outcomes already seen are one concern, kept here as the store's base class
(:class:`LogReader`): it owns the script calls' health ("commands") and the
reader's ("reader"). See :mod:`broker.engines.redis` for the ordering and
integrity rules it keeps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Final

from broker.engines import redis_batcher as batcher
from broker.engines import redis_scripts as scripts
from broker.engines import redis_wire as wire
from broker.engines.redis_feed import Feeder
from broker.engines.redis_wire import Future, RedisLink

#: How long one ``XREAD`` blocks (ms) before the reader checks the epoch again.
BLOCK_MS: Final = 5000
#: Entries one ``XREAD`` returns at most.
READ_COUNT: Final = 512
#: Entries the next ``XREAD`` asks for after one that held only this node's own: what wakes it
#: is most likely this node's next append, which then need not be read back whole.
WAKE_COUNT: Final = 1
#: How long the first ``XREAD`` after a failure blocks (ms): a quiet log answers soon, proving the path.
RECOVERY_BLOCK_MS: Final = 100
#: How long the reader waits at most for this node's appends in flight before reading on (s).
QUIET_WAIT: Final = 0.25
#: How often the reader probes the log (s), and how long its probe may take to come back (s).
PROBE_INTERVAL: Final = 3.0
PROBE_BOUND: Final = 5.0

_log = logging.getLogger("broker.engines.redis")


class LogReader:
    """The reader of the shared log and the health of a :class:`~broker.engines.redis.RedisStore`
    (its base class: the state below is set by the store's constructor)."""

    epoch: str
    _link: RedisLink
    _base: str
    _meta: str
    _node: str
    _log_max: int
    _feeder: Feeder
    _batcher: batcher.Batcher
    _adopted: bool
    _closed: bool
    _problems: dict[str, str]
    _read_bound: float
    _read_at: float | None
    _probe_interval: float
    _probe_bound: float
    _probes: Any
    _probe_token: str
    _probe_since: float | None
    _probe_due: float
    _probe_id: tuple[int, int]
    #: entries the next read asks for (:data:`READ_COUNT`, or :data:`WAKE_COUNT`)
    _read_count: int
    _quiet: Future | None
    _quiet_since: float

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
                reply = await self._link.block_read(stream, f"{after}-{skip}", self._read_count, block)
                self._read_at = time.monotonic()
                self._problems.pop("reader", None)
                if reply is None or recovering:
                    await self._init()  # quiet, or back: is it still the same history?
                if reply is None:
                    continue
                if stream == f"{self._base}:{self.epoch}:log":
                    self._read_count = READ_COUNT if self._from_log(reply[0][1]) else WAKE_COUNT
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

    def _from_log(self, raws: Sequence[Any]) -> bool:
        """Take what a read returned; whether any of it came from another node.

        Why it matters: this node's appends wake its own blocked read too (the reader waits
        for those in flight, :meth:`_wait_quiet`, but the next append comes while it blocks),
        and reading each such append back whole, only to drop it, was a tenth of the router's
        time at N=1. After a read of its own entries only, the next asks for
        :data:`WAKE_COUNT`: woken by its own append, it reads one entry of it; by another
        node's, it feeds that one and reads the rest at once (:data:`READ_COUNT`).
        """
        entries = []
        foreign = False
        mine = self._node + ":"
        for raw in raws:
            if (probe := wire.probe_id(raw)) is None:
                entry = wire.entry(raw)
                entries.append(entry)
                foreign = foreign or not entry.batch.startswith(mine)
                continue
            self._probe_id = max(self._probe_id, probe)
            if wire.fields(raw[1])["n"] == self._probe_token:
                self._probe_since = None
            else:
                foreign = True  # another node's probe: that node is there, its events may follow
        self._feeder.from_log(entries)
        return foreign

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
