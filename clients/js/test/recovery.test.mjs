import assert from "node:assert/strict";
import { test } from "node:test";
import { PROBE_EPOCH, ResumeTracker, normalizeAnswer, recoveredItem } from "../src/recovery.js";

const E = "e1";
const pos = (cursor, epoch = E) => ({ epoch, seq: cursor, cursor });
const ev = (cursor, epoch = E) => [pos(cursor, epoch), `c${cursor}`];

test("first subscription: probe, hold live events, then release them all", () => {
  const t = new ResumeTracker();
  assert.equal(t.position, null);
  assert.deepEqual(t.begin(true), { epoch: PROBE_EPOCH, after: 0, probe: true });
  assert.deepEqual(t.live(...ev(11)), []);
  assert.deepEqual(t.live(...ev(12)), []);
  t.reset({ unrecoverable: true, epoch: E, cursor: 12 }); // live events up to 12 arrived after subscribing
  assert.deepEqual(t.finish(), ["c11", "c12"]);
  assert.deepEqual(t.live(...ev(13)), ["c13"]);
  assert.deepEqual(t.position, { epoch: E, cursor: 13 });
});

test("probe answer ahead of the held events still releases them, and the position is the store's", () => {
  const t = new ResumeTracker();
  t.begin(true);
  t.live(...ev(3));
  t.reset({ unrecoverable: true, epoch: E, cursor: 9 });
  assert.deepEqual(t.finish(), ["c3"]);
  assert.deepEqual(t.position, { epoch: E, cursor: 9 });
});

test("reconnect: recovered first, then held, duplicates by cursor dropped, order kept", () => {
  const t = new ResumeTracker({ epoch: E, cursor: 10 });
  assert.deepEqual(t.begin(true), { epoch: E, after: 10, probe: false });
  // live events arrive while broker.recover is under way; they overlap the answer
  assert.deepEqual(t.live(...ev(13)), []);
  assert.deepEqual(t.live(...ev(14)), []);
  assert.deepEqual(t.recovered([ev(11), ev(12), ev(13)]), ["c11", "c12", "c13"]);
  assert.deepEqual(t.finish(), ["c14"]);
  assert.deepEqual(t.live(...ev(14)), []); // a duplicate after recovery too
  assert.deepEqual(t.live(...ev(15)), ["c15"]);
  assert.deepEqual(t.position, { epoch: E, cursor: 15 });
});

test("recovered pages (more: true) in sequence", () => {
  const t = new ResumeTracker({ epoch: E, cursor: 0 });
  t.begin(true);
  t.live(...ev(2001));
  assert.equal(t.recovered(Array.from({ length: 1000 }, (_, i) => ev(i + 1))).length, 1000);
  assert.equal(t.cursor, 1000);
  assert.equal(t.recovered(Array.from({ length: 1001 }, (_, i) => ev(i + 1001))).length, 1001);
  assert.deepEqual(t.finish(), []); // 2001 came in the second page
});

test("exactly once, in order, for every interleaving of live and recovered events", () => {
  // missed: 5..9 (recovered in pages of 2); live during recovery: k..12 for each k
  for (let firstLive = 5; firstLive <= 13; firstLive++) {
    for (let pageBeforeLive = 0; pageBeforeLive <= 3; pageBeforeLive++) {
      const t = new ResumeTracker({ epoch: E, cursor: 4 });
      t.begin(true);
      const out = [];
      const pages = [[ev(5), ev(6)], [ev(7), ev(8)], [ev(9)]];
      pages.forEach((page, i) => {
        if (i === pageBeforeLive) for (let c = firstLive; c <= 12; c++) out.push(...t.live(...ev(c)));
        out.push(...t.recovered(page));
      });
      if (pageBeforeLive === 3) for (let c = firstLive; c <= 12; c++) out.push(...t.live(...ev(c)));
      out.push(...t.finish());
      out.push(...t.live(...ev(13)));
      const expected = [5, 6, 7, 8, 9, 10, 11, 12, 13].filter((c) => c <= 9 || c >= firstLive || c === 13).map((c) => `c${c}`);
      assert.deepEqual(out, expected, `firstLive=${firstLive} page=${pageBeforeLive}`);
    }
  }
});

test("unrecoverable: continue from the new epoch and cursor, release held live events", () => {
  const t = new ResumeTracker({ epoch: "old", cursor: 500 });
  t.begin(true);
  t.live(...ev(3, "new")); // a restarted memory store: small cursors in a new epoch
  t.reset({ unrecoverable: true, reason: "epoch changed: the history was reset", epoch: "new", cursor: 3 });
  assert.deepEqual(t.finish(), ["c3"]);
  assert.deepEqual(t.live(...ev(4, "new")), ["c4"]);
  assert.deepEqual(t.position, { epoch: "new", cursor: 4 });
});

test("without recover: live events pass straight through; a new epoch restarts the cursor comparison", () => {
  const t = new ResumeTracker();
  t.begin(false);
  assert.deepEqual(t.live(...ev(7)), ["c7"]);
  assert.deepEqual(t.live(...ev(7)), []);
  t.begin(false);
  assert.deepEqual(t.live(...ev(2, "e2")), ["c2"]);
  assert.deepEqual(t.position, { epoch: "e2", cursor: 2 });
});

test("events without a position are delivered as they come", () => {
  const t = new ResumeTracker({ epoch: E, cursor: 1 });
  t.begin(true);
  t.live(null, "a");
  assert.deepEqual(t.recovered([ev(2)]), ["c2"]);
  assert.deepEqual(t.finish(), ["a"]);
  assert.deepEqual(t.live(null, "b"), ["b"]);
});

test("abort (session lost during recovery) drops the held events; the next recovery fetches them", () => {
  const t = new ResumeTracker({ epoch: E, cursor: 10 });
  t.begin(true);
  t.live(...ev(12));
  t.abort();
  assert.deepEqual(t.begin(true), { epoch: E, after: 10, probe: false });
  assert.deepEqual(t.recovered([ev(11), ev(12)]), ["c11", "c12"]);
  assert.deepEqual(t.finish(), []);
});

test("a resume position given by the application is validated", () => {
  assert.equal(new ResumeTracker({ epoch: 3, cursor: 1 }).position, null);
  assert.equal(new ResumeTracker({ epoch: E, cursor: -1 }).position, null);
  assert.deepEqual(new ResumeTracker({ epoch: E, cursor: 0 }).position, { epoch: E, cursor: 0 });
});

test("answers: plain dict, or wrapped by autobahn", () => {
  const answer = { unrecoverable: false, events: [], more: false, epoch: E, cursor: 1 };
  assert.equal(normalizeAnswer(answer), answer);
  assert.equal(normalizeAnswer({ args: [answer], kwargs: {} }), answer);
  assert.equal(normalizeAnswer({ args: [], kwargs: answer }), answer);
  assert.throws(() => normalizeAnswer(null), TypeError);
  assert.throws(() => normalizeAnswer({ events: [] }), TypeError);
});

test("a recovered event looks like a live one", () => {
  const position = pos(4);
  assert.deepEqual(recoveredItem({ topic: "public.x", args: [{ n: 1 }], kwargs: {}, position }), [
    position,
    { data: { n: 1 }, meta: { topic: "public.x", position, recovered: true } },
  ]);
  assert.equal(recoveredItem({ topic: "t", args: [], position })[1].data, undefined);
});
