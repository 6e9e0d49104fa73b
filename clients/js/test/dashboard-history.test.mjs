import assert from "node:assert/strict";
import { test } from "node:test";
import { recentHistory } from "../src/dashboard/history.js";

/**
 * A stand-in for broker.recover over one pattern: `events` are the cursors on
 * the pattern (others' cursors are gaps), `trimmed` the cursor at and below
 * which some matching topic lost events, `page` the most events per answer.
 */
function fakeNode({ events, cursor, trimmed = 0, page = 50, epoch = "e1" }) {
  const calls = [];
  const call = async (askEpoch, after) => {
    calls.push(after);
    if (askEpoch !== epoch) return { unrecoverable: true, reason: "epoch changed", epoch, cursor };
    if (trimmed > after) return { unrecoverable: true, reason: "trimmed", epoch, cursor };
    const found = events.filter((c) => c > after);
    const taken = found.slice(0, page);
    return {
      unrecoverable: false,
      events: taken.map((c) => ({ topic: "public.t", args: [{ c }], kwargs: {}, position: { epoch, seq: c, cursor: c } })),
      more: found.length > taken.length,
      epoch,
      cursor,
    };
  };
  return { call, calls };
}
const cursors = (r) => r.events.map((e) => e.position.cursor);
const range = (lo, hi, step = 1) => Array.from({ length: Math.floor((hi - lo) / step) + 1 }, (_, i) => lo + i * step);

test("dense history: the newest `limit`, oldest first, from one window, without reading older ones", async () => {
  const { call, calls } = fakeNode({ events: range(1, 10_000), cursor: 10_000 });
  const r = await recentHistory(call, { epoch: "e1", cursor: 10_000, limit: 500 });
  assert.deepEqual(cursors(r), range(9501, 10_000));
  assert.equal(r.complete, true);
  assert.equal(calls[0], 9500);
  assert.equal(calls.length, 10); // 500 events in pages of 50
});

test("sparse history among other topics: windows widen until `limit` are found", async () => {
  const events = range(7, 100_000, 7); // one cursor in 7 is on the pattern
  const { call } = fakeNode({ events, cursor: 100_000, page: 200 });
  const r = await recentHistory(call, { epoch: "e1", cursor: 100_000, limit: 500, maxCalls: 50 });
  assert.deepEqual(cursors(r), events.slice(-500));
  assert.equal(r.complete, true);
});

test("events above the cursor asked for are left to the subscription", async () => {
  const { call } = fakeNode({ events: range(1, 120), cursor: 120 });
  const r = await recentHistory(call, { epoch: "e1", cursor: 100, limit: 30 });
  assert.deepEqual(cursors(r), range(71, 100));
});

test("less history than `limit`: all of it, complete", async () => {
  const { call } = fakeNode({ events: [3, 9, 27], cursor: 40 });
  const r = await recentHistory(call, { epoch: "e1", cursor: 40, limit: 500 });
  assert.deepEqual(cursors(r), [3, 9, 27]);
  assert.equal(r.complete, true);
});

test("trimmed history: the windows narrow to what is still there, newest first, no gap", async () => {
  const { call } = fakeNode({ events: range(1, 1000), cursor: 1000, trimmed: 900 });
  const r = await recentHistory(call, { epoch: "e1", cursor: 1000, limit: 500, maxCalls: 60 });
  const got = cursors(r);
  assert.equal(r.complete, false);
  assert.ok(got.length >= 90 && got.length <= 100, `${got.length} found`);
  assert.deepEqual(got, range(1001 - got.length, 1000)); // the newest, contiguous
});

test("the call bound drops a window it could not finish, so what is shown has no gap", async () => {
  const events = range(1, 5000);
  const { call, calls } = fakeNode({ events, cursor: 5000, page: 10 });
  const r = await recentHistory(call, { epoch: "e1", cursor: 5000, limit: 500, maxCalls: 8 });
  assert.equal(calls.length, 8);
  assert.deepEqual(cursors(r), []); // the first window needs 50 calls
  assert.equal(r.complete, false);
});

test("an epoch that changed under the load ends it with what was found", async () => {
  const { call } = fakeNode({ events: range(1, 10), cursor: 10, epoch: "e2" });
  const r = await recentHistory(call, { epoch: "e1", cursor: 10, limit: 5 });
  assert.deepEqual(r, { events: [], complete: false });
});

test("a malformed page is an error, not a silent gap", async () => {
  const call = async () => ({ unrecoverable: false, events: [], more: true, epoch: "e1", cursor: 9 });
  await assert.rejects(recentHistory(call, { epoch: "e1", cursor: 9, limit: 5 }), /more but holds no event/);
});
