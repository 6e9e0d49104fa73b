import assert from "node:assert/strict";
import { test } from "node:test";
import { EVENTS_CAP, capNote, matchesFilter, trimOldest } from "../src/dashboard/events.js";

/** A stand-in for <ol id="events">: `prepend` puts the newest first, like the page. */
class FakeList {
  constructor() {
    this.children = [];
  }
  prepend(label) {
    const child = { label, remove: () => this.children.splice(this.children.indexOf(child), 1) };
    this.children.unshift(child);
  }
  get lastElementChild() {
    return this.children[this.children.length - 1] ?? null;
  }
  labels() {
    return this.children.map((c) => c.label);
  }
}

test("the cap is 500 rows", () => {
  assert.equal(EVENTS_CAP, 500);
});

test("trimOldest keeps the newest `cap` rows, newest first", () => {
  const list = new FakeList();
  let removed = 0;
  for (let n = 1; n <= 8; n++) {
    list.prepend(n);
    removed += trimOldest(list, 3);
  }
  assert.deepEqual(list.labels(), [8, 7, 6]);
  assert.equal(removed, 5);
});

test("trimOldest removes nothing under the cap, and several rows at once over it", () => {
  const list = new FakeList();
  for (let n = 1; n <= 5; n++) list.prepend(n);
  assert.equal(trimOldest(list, 5), 0);
  assert.equal(trimOldest(list, 10), 0);
  assert.deepEqual(list.labels(), [5, 4, 3, 2, 1]);
  assert.equal(trimOldest(list, 2), 3);
  assert.deepEqual(list.labels(), [5, 4]);
  assert.equal(trimOldest(list, 0), 2);
  assert.deepEqual(list.labels(), []);
  assert.equal(trimOldest(list, 0), 0);
});

test("trimOldest defaults to EVENTS_CAP over a long run", () => {
  const list = new FakeList();
  let removed = 0;
  for (let n = 1; n <= EVENTS_CAP * 3 + 7; n++) {
    list.prepend(n);
    removed += trimOldest(list);
  }
  assert.equal(list.children.length, EVENTS_CAP);
  assert.equal(list.labels()[0], EVENTS_CAP * 3 + 7);
  assert.equal(list.labels()[EVENTS_CAP - 1], EVENTS_CAP * 2 + 8);
  assert.equal(removed, EVENTS_CAP * 2 + 7);
});

test("trimOldest refuses a cap that is not a number >= 0", () => {
  for (const cap of [-1, NaN, "x"]) assert.throws(() => trimOldest(new FakeList(), cap), RangeError);
});

test("capNote says how many rows are shown once some were removed", () => {
  assert.equal(capNote(0), "");
  assert.equal(capNote(1), "showing the newest 500 events (1 older one removed)");
  assert.equal(capNote(12345), "showing the newest 500 events (12,345 older ones removed)");
  assert.equal(capNote(2, 3), "showing the newest 3 events (2 older ones removed)");
});

test("matchesFilter: substring of the topic, empty filter shows all", () => {
  assert.equal(matchesFilter("public.orders.7", ""), true);
  assert.equal(matchesFilter("public.orders.7", "orders"), true);
  assert.equal(matchesFilter("public.orders.7", "public.orders.7"), true);
  assert.equal(matchesFilter("public.orders.7", "prices"), false);
});
