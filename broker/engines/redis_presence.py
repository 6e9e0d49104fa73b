"""Presence across nodes: each node's entries in the Redis they share, expiring with the node.

Why: ``broker.presence`` must answer the same on every node of a cluster, and
a node that dies (``kill -9``, a lost host) cannot say goodbye. So each node
keeps its own presence (:class:`broker.core.presence.PresenceBook`) and
writes it to one hash of its own, ``{prefix}:presence:node:<node id>``
(field: topic, value: its :class:`~broker.core.presence.Entry` as JSON),
which expires ``node_ttl`` seconds after the node last wrote it; it rewrites
the whole hash every ``node_ttl / 3`` seconds (a heartbeat, which also
repairs a Redis that lost it or a reload that enabled other topics) and
updates single topics as sessions join and leave. The live nodes are listed
in ``{prefix}:presence:nodes``; a node asked about a topic adds its own entry
to the other live nodes' (one script, which drops the nodes whose hash has
expired). A dead node's entries are therefore gone from every answer at most
``node_ttl`` seconds after its last heartbeat. No Twisted: the router hands
in a :class:`~broker.engines.redis_wire.RedisLink` of presence's own.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from broker.core.presence import Entry, PresenceBook, PresenceSettings, PresenceShare, SingleNode
from broker.engines.redis import DEFAULT_PREFIX
from broker.engines.redis_wire import Connect, RedisLink, describe
from broker.errors import PresenceUnavailable
from broker.history import DEFAULT_REDIS_TIMEOUT, parse_redis_url

#: The field every node hash holds besides its topics (no topic URI starts with ``$``).
NODE_FIELD: Final = "$node"

#: KEYS: the node's hash, the node list; ARGV: ttl ms, node id, "full" or "part", topic/value pairs
#: ("" removes the topic). A partial write to a hash that expired writes nothing and answers 0.
PUT: Final = """
if ARGV[3] == 'full' then
  redis.call('DEL', KEYS[1])
elseif redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], '$node', ARGV[2])
for i = 4, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], redis.call('TIME')[1], ARGV[2])
return 1
"""

#: KEYS: the node list; ARGV: topic, the asking node's id, the node hashes' key prefix. The other
#: live nodes' entries on the topic; a listed node whose hash expired is dropped from the list.
GET: Final = """
local found = {}
for _, node in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if node ~= ARGV[2] then
    local key = ARGV[3] .. node
    if redis.call('EXISTS', key) == 0 then
      redis.call('ZREM', KEYS[1], node)
    else
      local entry = redis.call('HGET', key, ARGV[1])
      if entry then
        table.insert(found, entry)
      end
    end
  end
end
return found
"""

_log = logging.getLogger("broker.engines.redis_presence")


class RedisPresence:
    """The :class:`~broker.core.presence.PresenceShare` of a node on a Redis shared with others."""

    def __init__(
        self,
        link: RedisLink,
        book: PresenceBook,
        settings: Callable[[], PresenceSettings],
        *,
        node_id: str,
        prefix: str = DEFAULT_PREFIX,
    ) -> None:
        self._link, self._book, self._settings, self._node = link, book, settings, node_id
        base = "{" + prefix + "}"
        self._nodes = f"{base}:presence:nodes"
        self._node_prefix = f"{base}:presence:node:"
        self._dirty: set[str] = set()
        self._flushing = False
        self._closed = False

    def start(self) -> None:
        """Write this node's entries now, and again every heartbeat, until :meth:`close`."""
        self._link.spawn(self._beat())

    def changed(self, topics: Sequence[str]) -> None:
        """Write these topics' entries soon (one write at a time, the latest state each time)."""
        self._dirty.update(topics)
        if not self._flushing and not self._closed:
            self._flushing = True
            self._link.spawn(self._flush())

    async def others(self, topic: str) -> list[Entry]:
        """The other live nodes' entries on ``topic``; :class:`PresenceUnavailable` if Redis fails."""
        try:
            found = await self._link.script(GET, [self._nodes], [topic, self._node, self._node_prefix])
        except Exception as error:
            raise PresenceUnavailable(
                f"the other nodes' presence cannot be read ({describe(error)})"
            ) from None
        return [Entry.from_wire(_json(raw)) for raw in found or ()]

    def close(self) -> None:
        """Stop writing and drop the connection; this node's hash expires within ``node_ttl``."""
        self._closed = True
        self._link.close()

    def _value(self, topic: str) -> str:
        entry = self._book.entry(topic) if self._settings().enabled(topic) else Entry()
        return json.dumps(entry.to_wire(), separators=(",", ":")) if entry.count else ""

    async def _put(self, topics: Sequence[str], full: bool) -> bool:
        ttl_ms = str(math.ceil(self._settings().node_ttl * 1000))
        args = [ttl_ms, self._node, "full" if full else "part"]
        for topic in topics:
            value = self._value(topic)
            if value or not full:
                args += [topic, value]
        reply = await self._link.script(PUT, [self._node_prefix + self._node, self._nodes], args)
        return bool(int(reply))

    async def _flush(self) -> None:
        try:
            while self._dirty and not self._closed:
                topics = sorted(self._dirty)
                self._dirty.clear()
                if not await self._put(topics, full=False):
                    await self._put(self._book.topics(), full=True)
        except Exception as error:  # the next heartbeat writes everything again
            _log.warning("presence: writing this node's entries to Redis failed (%s)", describe(error))
        finally:
            self._flushing = False

    async def _beat(self) -> None:
        while not self._closed:
            try:
                await self._put(self._book.topics(), full=True)
            except Exception as error:
                if self._closed:
                    return
                _log.warning("presence: heartbeat to Redis failed (%s)", describe(error))
            await self._link.sleep(self._settings().heartbeat)


def _json(raw: object) -> Any:
    try:
        return json.loads(raw) if isinstance(raw, str | bytes) else None
    except ValueError:
        return None


def open_presence(
    spec: Mapping[str, Any],
    book: PresenceBook,
    settings: Callable[[], PresenceSettings],
    node_id: str,
    connect: Connect | None,
) -> PresenceShare:
    """Presence as the history store ``spec`` shares it: across the nodes of a Redis store (a link of
    its own, started), else :class:`~broker.core.presence.SingleNode`."""
    if spec.get("type") != "redis" or connect is None:
        return SingleNode()
    timeout = float(spec.get("timeout", DEFAULT_REDIS_TIMEOUT))
    link = connect(parse_redis_url(spec["url"]), timeout)
    share = RedisPresence(link, book, settings, node_id=node_id, prefix=spec.get("prefix", DEFAULT_PREFIX))
    share.start()
    return share
