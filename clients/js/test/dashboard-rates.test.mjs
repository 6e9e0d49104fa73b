import assert from "node:assert/strict";
import { test } from "node:test";
import { Buckets, HISTORY, INITIAL, MIN_SPAN_S, RateWindow, WINDOW, rateSpan } from "../src/dashboard/rates.js";

const T0 = 1_796_000_000_000; // a whole second, in ms

test("in the first seconds a rate divides by the time counted, not by the window", () => {
  const r = new RateWindow();
  const since = T0 + 300;
  for (let i = 0; i < 20; i++) r.add(since + i * 100); // 20 events within 2 s
  assert.equal(r.rate(since + 2500, since), 20 / 2.5);
  assert.equal(rateSpan(since + 200, since), MIN_SPAN_S); // no burst from the first event
});

test("after the window a rate covers the last WINDOW buckets exactly", () => {
  const r = new RateWindow();
  const since = T0;
  for (let s = 0; s < 30; s++) r.add(since + s * 1000 + 10); // one event a second
  const now = since + 29_500; // half-way through second 29
  // buckets 20..29 are counted, and they span from 20.000 s to now
  assert.equal(r.count(now), WINDOW);
  assert.equal(rateSpan(now, since), WINDOW - 0.5);
  assert.equal(r.rate(now, since), WINDOW / (WINDOW - 0.5));
  assert.equal(r.rate(now + 20_000, since), 0); // idle long enough: all slots cleared
});

test("the chart draws complete seconds only, from the first whole second counted", () => {
  const b = new Buckets(T0 + 400); // counting began 0.4 s into a second
  b.add(T0 + 500); // in the partial first second: not drawn
  b.add(T0 + 1100);
  b.add(T0 + 1900);
  b.add(T0 + 2100); // the current second at T0 + 2.5 s: not drawn yet
  assert.equal(b.advance(T0 + 2500), true);
  assert.deepEqual(b.xs, [T0 / 1000 + 1]);
  assert.deepEqual(b.ys, [2]);
  assert.equal(b.advance(T0 + 2900), false); // nothing completed since
  b.advance(T0 + 4000);
  assert.deepEqual(b.ys, [2, 1, 0]);
  b.add(T0 + 2200); // a late arrival for a second already drawn is not counted twice
  assert.deepEqual(b.ys, [2, 1, 0]);
  const [lo, hi] = b.range(T0 + 4000);
  assert.equal(hi, T0 / 1000 + 3);
  assert.equal(hi - lo + 1, INITIAL); // the axis spans INITIAL s, the time before counting empty
});

test("the chart keeps the newest HISTORY seconds, even after a long pause", () => {
  const b = new Buckets(T0);
  b.add(T0 + 5);
  b.advance(T0 + 3_600_000);
  assert.equal(b.xs.length, HISTORY);
  assert.equal(b.xs[b.xs.length - 1], T0 / 1000 + 3599);
  assert.ok(b.ys.every((n) => n === 0));
  assert.equal(b.pending.size, 0);
  const [lo, hi] = b.range(T0 + 3_600_000);
  assert.equal(hi - lo + 1, HISTORY);
});
