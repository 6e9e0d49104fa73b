"""The Redis engine's Lua scripts: each one runs atomically, so every node sees one history.

Why scripts: a batch's cursor and seq assignment, its per-topic stream
appends, trimming, eviction and its entry in the shared log must happen as
one step, or two nodes appending at once could issue the same position. All
keys share the hash tag of their prefix (``{broker}:...``) and, below the
meta hash, the epoch (``{broker}:<epoch>:...``): a history that starts
afresh never meets the streams of an old one.

Keys (``B`` = ``{prefix}``, ``E`` = ``B:<epoch>``):

- ``B:meta`` hash: ``e`` epoch, ``c`` last cursor, ``ev`` highest cursor of an evicted topic;
- ``E:seq`` / ``E:trim`` hashes: topic -> last seq / highest trimmed cursor;
- ``E:recent`` zset: topic scored by its last cursor (eviction; the topics a read looks at);
- ``E:t:<topic>`` stream: ID ``<cursor>-0``, fields ``s`` seq, ``p`` time, ``d`` ``[args, kwargs]``;
- ``E:log`` stream (``MAXLEN ~``): every event of every node, same ID and fields plus
  ``t`` topic and ``b`` the batch id (``<node>:<n>``) the other nodes read; an event of a
  topic without history is here only, with ``s`` 0;
- ``E:node:<node>``: the cursor a node last saw on its command connection (a day's expiry);
- ``B:once:<len(key id)>:<key id>:<idempotency key>``: JSON ``[fingerprint, epoch, now,
  [[seq, cursor]...]]`` of the batch appended under that key (``PX`` the idempotency window);
- ``B:nonce:<len(key id)>:<key id>:<nonce>``: a nonce claimed (``PX`` two timestamp windows);
- ``B:rate:<len(key id)>:<key id>`` hash: ``k`` tokens, ``t`` when counted, of a key's bucket
  (``PX`` until it would be full again).

A probe (:data:`PROBE`) is a log entry ``<cursor>-<n>`` (``n`` > 0) with one field ``n``, the
probing node's token: it takes no cursor or seq, and every reader skips it but its own node's.

A Redis restored to an older copy (an old RDB or AOF) holds the epoch a node knows with a
cursor below one that node has seen: it would issue those positions again for other events.
Every script that is told what its node knows (``rewind``) then drops that history's keys and
starts one new epoch, atomically: a second node finds the new epoch and adopts it.
"""

from __future__ import annotations

from typing import Final

#: Adopts the proposed epoch (ARGV[2], always a fresh one) if Redis has none; shared by every script.
_EPOCH: Final = """
local meta = KEYS[1]
local epoch = redis.call('HGET', meta, 'e')
if not epoch then
  epoch = ARGV[2]
  redis.call('HSET', meta, 'e', epoch, 'c', 0, 'ev', 0)
end
local e = ARGV[1] .. ':' .. epoch
local function rewind(known, seen)
  if known ~= epoch or tonumber(seen) <= tonumber(redis.call('HGET', meta, 'c')) then return end
  for _, topic in ipairs(redis.call('ZRANGE', e .. ':recent', 0, -1)) do
    redis.call('DEL', e .. ':t:' .. topic)
  end
  redis.call('DEL', e .. ':seq', e .. ':trim', e .. ':recent', e .. ':log')
  epoch = ARGV[2]
  redis.call('HSET', meta, 'e', epoch, 'c', 0, 'ev', 0)
  e = ARGV[1] .. ':' .. epoch
end
"""

#: Takes one request's nonce and tokens (shared by :data:`ADMIT` and :data:`APPEND`): KEYS the
#: nonce's key and the publisher key's bucket; ARGV how long to keep the nonce (ms), then
#: per_second, burst, tokens to take and now ('' = Redis TIME), all '' without a bucket. Returns
#: ``claimed, wait``: 0 if a node had already claimed the nonce (``SET NX PX``: one winner on the
#: whole cluster; nothing else is done), else 1 and the seconds until the bucket holds the tokens
#: ('0': taken, 'inf': more than the burst), as a string.
_ADMIT_ONE: Final = """
local clock = nil
local function admit_one(claim, bucket, px, per_second, burst_of, count, at)
  if not redis.call('SET', claim, '1', 'NX', 'PX', px) then return 0, '0' end
  if per_second == '' then return 1, '0' end
  local rate, burst, take = tonumber(per_second), tonumber(burst_of), tonumber(count)
  local now = tonumber(at)
  if not now then
    clock = clock or redis.call('TIME')
    now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
  end
  if take > burst then return 1, 'inf' end
  local tokens, when = unpack(redis.call('HMGET', bucket, 'k', 't'))
  if tokens then
    tokens = math.min(burst, tonumber(tokens) + math.max(0, now - tonumber(when)) * rate)
  else
    tokens = burst
  end
  if tokens < take then return 1, string.format('%.17g', (take - tokens) / rate) end
  tokens = tokens - take
  redis.call('HSET', bucket, 'k', string.format('%.17g', tokens), 't', string.format('%.17g', now))
  redis.call('PEXPIRE', bucket, math.ceil((burst - tokens) / rate * 1000) + 1000)
  return 1, '0'
end
"""

#: ARGV: base, proposed epoch, node, joining ('1': the node's mark starts at the cursor),
#: known epoch, highest cursor seen. Returns {epoch, cursor}.
INIT: Final = (
    _EPOCH
    + """
rewind(ARGV[5], ARGV[6])
local cursor = redis.call('HGET', meta, 'c')
if ARGV[4] == '1' then redis.call('SET', e .. ':node:' .. ARGV[3], cursor, 'EX', 86400) end
return {epoch, cursor}
"""
)

#: KEYS: meta, then the idempotency scopes ``B:once:...`` of the batches that have one.
#: ARGV: base, proposed epoch, known epoch, known cursor, node, now ('' = Redis TIME), max_topics, log_max,
#: whether the node's mark bounds the gap ('1'; '0' after a call of this node went unanswered: its entries,
#: and the gap before them, are this node's to feed, though its mark in Redis is past them), the number of
#: batches, then per batch (:func:`broker.engines.redis_batcher.call`): its id, the index of its scope in KEYS
#: ('0': none), the request's fingerprint and how long to keep the scope (ms), the index in KEYS of its
#: claim's two keys ('0': none) and the claim's five arguments (:data:`_ADMIT_ONE`'s; '' without a claim), n,
#: then per event: topic, max_events, max_age, payload. A batch's claim is decided first: refused, nothing of
#: the batch is done. An event with max_events 0 (a topic without history) goes to the log only: no seq (0),
#: no topic stream, not in ``E:recent``, nothing trimmed or evicted; it takes a cursor like any other.
#: Returns {epoch, now, gap, results}: ``gap`` holds the log entries after what this node last saw
#: and before the first batch appended, so it can feed them first (per-topic order; empty if none
#: was); per batch one string ``once epoch now seq cursor seq cursor ...`` (words, not an array:
#: a reply of a few elements per batch, not eight per event, for the node to read), ``once`` 0
#: (appended), 1 (the scope was held: nothing appended, the epoch, time and positions are the
#: first append's), 2 (held with another fingerprint: nothing appended, no time), or, the claim
#: refused, ``3`` (its nonce was taken) or ``4 wait`` (the tokens are there in ``wait`` s). Batches are
#: appended in order, so one's cursors follow the previous one's. A topic is scored in ``E:recent``
#: and trimmed once per call, after its last event (before a new topic's eviction too): the
#: stored state is the one trimming after each event leaves (tests/test_engine_contract.py).
#: Likewise a topic's seq is read once per call and written back at its end (not an HINCRBY
#: per event).
APPEND: Final = (
    _EPOCH
    + _ADMIT_ONE
    + """
rewind(ARGV[3], ARGV[4])
local now = ARGV[6]
if now == '' then
  local t = redis.call('TIME')
  now = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end
local nowf = tonumber(now)
local cursor = tonumber(redis.call('HGET', meta, 'c'))
local ev = tonumber(redis.call('HGET', meta, 'ev'))
local nodekey = e .. ':node:' .. ARGV[5]
local log = e .. ':log'
local seqs, trims, recent = e .. ':seq', e .. ':trim', e .. ':recent'
local max_topics = tonumber(ARGV[7])
local gap = nil
local results = {}
local function answer(once, epoch_of, time_of, positions)  -- one line: once epoch now seq cursor ...
  local words = {once, epoch_of, time_of}
  for _, p in ipairs(positions) do words[#words + 1] = p[1] .. ' ' .. p[2] end
  return table.concat(words, ' ')
end
-- a topic's score in E:recent and its trimming, once per call (at its last event): the same end
-- state as after each event (one horizon per call; keeping the last max_events and those not
-- older than the horizon, after each append or once after the last, removes the same entries)
local pending, order = {}, {}
-- a topic's last seq, read from E:seq at its first event of the call and written back at its end
local seqof = {}
local function settle(topic)
  local p = pending[topic]
  if not p then return end
  pending[topic] = nil
  local stream, max_events, horizon = p[1], p[2], p[3]
  redis.call('ZADD', recent, p[4], topic)
  local trimmed = 0
  local excess = redis.call('XLEN', stream) - max_events
  if excess > 0 then
    local old = redis.call('XRANGE', stream, '-', '+', 'COUNT', excess)
    trimmed = tonumber(string.match(old[#old][1], '^(%d+)'))
  end
  local aged, look = true, 1  -- the oldest is seldom too old: look at one, then at more
  while aged do
    local oldest = redis.call('XRANGE', stream, (trimmed + 1) .. '-0', '+', 'COUNT', look)
    aged, look = #oldest > 0, 64
    for _, entry in ipairs(oldest) do
      if tonumber(entry[2][4]) >= horizon then aged = false break end
      trimmed = tonumber(string.match(entry[1], '^(%d+)'))
    end
  end
  if trimmed > 0 then
    redis.call('XTRIM', stream, 'MINID', (trimmed + 1) .. '-0')
    redis.call('HSET', trims, topic, trimmed)
  end
end
local function settle_all()
  for _, topic in ipairs(order) do settle(topic) end
  order = {}
end
local at = 11
for b = 1, tonumber(ARGV[10]) do
  local batch, scope, fingerprint, keep, claim = ARGV[at], tonumber(ARGV[at + 1]), ARGV[at + 2],
    ARGV[at + 3], tonumber(ARGV[at + 4])
  local n = tonumber(ARGV[at + 10])
  local first = at + 11
  local held = false
  if claim > 0 then  -- the request's nonce and tokens first, as ADMIT would take them alone
    local claimed, wait = admit_one(KEYS[claim], KEYS[claim + 1], ARGV[at + 5], ARGV[at + 6],
                                    ARGV[at + 7], ARGV[at + 8], ARGV[at + 9])
    if claimed == 0 then held, results[b] = true, '3'
    elseif wait ~= '0' then held, results[b] = true, '4 ' .. wait end
  end
  at = first + 4 * n
  if scope > 0 and not held then
    local kept = redis.call('GET', KEYS[scope])
    if kept then
      held = true
      local was = cjson.decode(kept)
      if was[1] ~= fingerprint then results[b] = answer(2, epoch, '', {})
      else results[b] = answer(1, was[2], was[3], was[4]) end
    end
  end
  if not held then
    if not gap then
      local from = 0
      if ARGV[3] == epoch then from = tonumber(ARGV[4]) end
      local mark = ARGV[9] == '1' and redis.call('GET', nodekey)
      if mark and tonumber(mark) > from then from = tonumber(mark) end
      gap = {}
      if from < cursor then gap = redis.call('XRANGE', log, (from + 1) .. '-0', '+') end
    end
    local out = {}
    for i = first, at - 1, 4 do
      local topic = ARGV[i]
      local max_events = tonumber(ARGV[i + 1])
      local horizon = nowf - tonumber(ARGV[i + 2])
      local payload = ARGV[i + 3]
      local stream = e .. ':t:' .. topic
      local kept = max_events > 0  -- else a topic without history: in the log only, seq 0
      local seq = 0
      if kept then
        seq = (seqof[topic] or tonumber(redis.call('HGET', seqs, topic) or '0')) + 1
        seqof[topic] = seq
      end
      if seq == 1 then
        settle_all()  -- eviction sees every topic's score and length as after each event
        local count = redis.call('ZCARD', recent)
        if count >= max_topics then
          local victims = redis.call('ZRANGE', recent, 0, count - max_topics, 'WITHSCORES')
          for j = 1, #victims, 2 do
            local v = victims[j]
            redis.call('DEL', e .. ':t:' .. v)
            redis.call('HDEL', seqs, v)
            seqof[v] = nil  -- evicted: it starts again at seq 1, and is not written back
            redis.call('HDEL', trims, v)
            redis.call('ZREM', recent, v)
            local last = tonumber(victims[j + 1])
            if last > ev then ev = last end
          end
        end
      end
      cursor = cursor + 1
      local id = cursor .. '-0'
      if kept then
        redis.call('XADD', stream, id, 's', seq, 'p', now, 'd', payload)
        local p = pending[topic]
        if p and (p[2] ~= max_events or p[3] ~= horizon) then  -- a reload within the call
          settle(topic)
          p = nil
        end
        if p then
          p[4] = cursor
        else
          pending[topic] = {stream, max_events, horizon, cursor}
          order[#order + 1] = topic
        end
      end
      redis.call('XADD', log, 'MAXLEN', '~', ARGV[8], id, 's', seq, 'p', now, 'd', payload,
                 't', topic, 'b', batch)
      out[#out + 1] = {string.format('%d', seq), string.format('%d', cursor)}
    end
    if scope > 0 then
      redis.call('SET', KEYS[scope], cjson.encode({fingerprint, epoch, now, out}), 'PX', keep)
    end
    results[b] = answer(0, epoch, now, out)
  end
end
settle_all()
for topic, seq in pairs(seqof) do redis.call('HSET', seqs, topic, seq) end
if gap then
  redis.call('HSET', meta, 'c', cursor, 'ev', ev)
  redis.call('SET', nodekey, cursor, 'EX', 86400)
end
return {epoch, now, gap or {}, results}
"""
)

#: ARGV: base, proposed epoch, cursor, known epoch, highest cursor seen. Returns {epoch, last
#: cursor, evicted cursor, topics, trims}: every topic with an event after ``cursor`` and its
#: trimmed cursor (the first half of a read).
TOPICS: Final = (
    _EPOCH
    + """
rewind(ARGV[4], ARGV[5])
local topics = redis.call('ZRANGE', e .. ':recent', '(' .. ARGV[3], '+inf', 'BYSCORE')
local trims = {}
for i, topic in ipairs(topics) do trims[i] = redis.call('HGET', e .. ':trim', topic) or '0' end
return {epoch, redis.call('HGET', meta, 'c'), redis.call('HGET', meta, 'ev'), topics, trims}
"""
)

#: ARGV: base, proposed epoch, cursor, snapshot cursor, count, topics... Returns {epoch, ok, entries}:
#: each topic's events in (cursor, snapshot cursor]; ``ok`` 0 when one was trimmed or evicted
#: since (the second half of a read, which the snapshot cursor keeps consistent with the first).
EVENTS: Final = (
    _EPOCH
    + """
local after = tonumber(ARGV[3])
if tonumber(redis.call('HGET', meta, 'ev')) > after then return {epoch, 0, {}} end
local found = {}
for i = 6, #ARGV do
  local topic = ARGV[i]
  if tonumber(redis.call('HGET', e .. ':trim', topic) or '0') > after then return {epoch, 0, {}} end
  found[#found + 1] = redis.call('XRANGE', e .. ':t:' .. topic, (after + 1) .. '-0', ARGV[4] .. '-0',
                                 'COUNT', ARGV[5])
end
return {epoch, 1, found}
"""
)

#: ARGV: base, proposed epoch, known epoch, highest cursor seen, token, log_max.
#: Returns {epoch, cursor}: appends a probe (``<cursor>-*``) to the log for the node's reader.
PROBE: Final = (
    _EPOCH
    + """
rewind(ARGV[3], ARGV[4])
local cursor = redis.call('HGET', meta, 'c')
redis.call('XADD', e .. ':log', 'MAXLEN', '~', ARGV[6], cursor .. '-*', 'n', ARGV[5])
return {epoch, cursor}
"""
)

#: Admits one or more requests, each as if alone, in order (a key's tokens are taken in that
#: order): per request two KEYS and five ARGV, those of :data:`_ADMIT_ONE`.
#: Returns one {claimed, wait} per request (:data:`_ADMIT_ONE`'s).
ADMIT: Final = (
    _ADMIT_ONE
    + """
local out = {}
for i = 0, #KEYS / 2 - 1 do
  local a = 5 * i
  local claimed, wait = admit_one(KEYS[2 * i + 1], KEYS[2 * i + 2], ARGV[a + 1], ARGV[a + 2],
                                  ARGV[a + 3], ARGV[a + 4], ARGV[a + 5])
  out[i + 1] = {claimed, wait}
end
return out
"""
)
