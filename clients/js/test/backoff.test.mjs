import assert from "node:assert/strict";
import { test } from "node:test";
import { backoffCeiling, backoffDelay } from "../src/backoff.js";

test("ceiling doubles from base and stops at cap", () => {
  const opts = { base: 1000, cap: 30000 };
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5, 6, 50, 5000].map((n) => backoffCeiling(n, opts)),
    [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000, 30000],
  );
});

test("defaults: 1 s base, 30 s cap", () => {
  assert.equal(backoffCeiling(0), 1000);
  assert.equal(backoffCeiling(100), 30000);
});

test("full jitter: uniformly in [0, ceiling)", () => {
  assert.equal(backoffDelay(3, { random: () => 0 }), 0);
  assert.equal(backoffDelay(3, { random: () => 0.5 }), 4000);
  assert.equal(backoffDelay(3, { random: () => 0.999999 }), 7999);
  assert.equal(backoffDelay(40, { random: () => 0.999999 }), 29999);
  for (let i = 0; i < 1000; i++) {
    const d = backoffDelay(i % 10);
    assert.ok(Number.isInteger(d) && d >= 0 && d < 30000);
  }
});

test("a negative or missing attempt counts as the first", () => {
  assert.equal(backoffCeiling(-1), 1000);
  assert.equal(backoffCeiling(undefined), 1000);
});
