import assert from "node:assert/strict";
import { test } from "node:test";
import { Subscription } from "../src/subscription.js";
import { pageProblem, withTimeout } from "../src/recovery.js";

// A Subscription driven by a stand-in session: every broker.recover outcome is scripted, and a
// live event (cursor 50) arrives while the first call is under way.

const E = "e1";
const pos = (cursor) => ({ epoch: E, seq: cursor, cursor });
const page = (cursors, more = false) => ({
  unrecoverable: false,
  epoch: E,
  cursor: 99,
  more,
  events: cursors.map((c) => ({ topic: "public.t", args: [`c${c}`], kwargs: {}, position: pos(c) })),
});

function fakeSession(outcomes) {
  const session = { isOpen: true, asked: [], onEvent: null };
  session.subscribe = async (topic, onEvent) => {
    session.onEvent = onEvent;
    return { unsubscribe: async () => {} };
  };
  session.call = (procedure, args, kwargs) => {
    assert.equal(procedure, "broker.recover");
    session.asked.push(kwargs.after);
    if (session.asked.length === 1) session.onEvent([`c50`], { broker_position: pos(50) }, { topic: "public.t" });
    const outcome = outcomes.shift();
    if (outcome === "hang") return new Promise(() => {});
    if (outcome instanceof Error || (outcome && outcome.error)) return Promise.reject(outcome);
    return Promise.resolve(outcome);
  };
  return session;
}

async function resume(outcomes, options = {}) {
  const errors = [];
  const client = { _subs: new Set(), _emit: (kind, err) => errors.push([kind, err]) };
  const seen = [];
  const gaps = [];
  const sub = new Subscription(client, "public.t", (data) => seen.push(data), {
    recover: true,
    from: { epoch: E, cursor: 10 },
    onUnrecoverable: (gap) => gaps.push(gap),
    recoverTimeout: 50,
    ...options,
  });
  const session = fakeSession(outcomes);
  await sub._attach(session);
  return { seen, gaps, errors, session, sub };
}

test("recovery pages until more is false, then releases the held live events", async () => {
  const { seen, gaps, session } = await resume([page([11, 12], true), page([13], true), page([14])]);
  assert.deepEqual(seen, ["c11", "c12", "c13", "c14", "c50"]);
  assert.deepEqual(session.asked, [10, 12, 13]);
  assert.deepEqual(gaps, []);
});

const failures = [
  ["an ERROR answer", { error: "wamp.error.invalid_argument", args: ["too big"], kwargs: {} }, "recovery failed: wamp.error.invalid_argument: too big"],
  ["no answer in time", "hang", "recovery failed: broker.recover: no answer within 50 ms"],
  ["an answer that is not one", { events: [] }, "recovery failed: broker.recover returned an unexpected answer"],
  ["more without events", page([], true), "recovery failed: the answer says more but holds no event"],
  ["an event without a position", { ...page([11]), events: [{ topic: "public.t", args: [] }] }, "recovery failed: an event in the answer lacks its topic or position"],
];

for (const [name, outcome, reason] of failures) {
  test(`recovery error => onUnrecoverable: ${name}`, async () => {
    const { seen, gaps, errors, sub } = await resume([page([11, 12], true), outcome]);
    assert.deepEqual(gaps, [{ topic: "public.t", match: "exact", reason, epoch: E, cursor: 12 }]);
    assert.deepEqual(seen, ["c11", "c12", "c50"]); // recovered, then the live event: the gap is reported
    assert.deepEqual(errors, []);
    assert.deepEqual(sub.position, { epoch: E, cursor: 50 });
  });
}

test("an unrecoverable answer goes to onUnrecoverable with the node's position", async () => {
  const answer = { unrecoverable: true, reason: "some missed events are no longer in history", epoch: E, cursor: 40 };
  const { gaps, seen } = await resume([answer]);
  assert.deepEqual(gaps, [{ topic: "public.t", match: "exact", reason: answer.reason, epoch: E, cursor: 40 }]);
  assert.deepEqual(seen, ["c50"]);
});

test("without onUnrecoverable, a failed recovery is an error event, not silence", async () => {
  const { errors, gaps } = await resume([{ error: "wamp.error.invalid_argument", args: ["too big"] }], { onUnrecoverable: undefined });
  assert.deepEqual(gaps, []);
  assert.equal(errors.length, 1);
  const [kind, err] = errors[0];
  assert.equal(kind, "error");
  assert.equal(err.message, "missed events on public.t cannot be recovered: recovery failed: wamp.error.invalid_argument: too big");
  assert.equal(err.unrecoverable.cursor, 10);
});

test("pageProblem accepts pages and unrecoverable answers", () => {
  assert.equal(pageProblem(page([1, 2], true)), null);
  assert.equal(pageProblem(page([])), null);
  assert.equal(pageProblem({ unrecoverable: true }), null);
  assert.equal(pageProblem({ unrecoverable: false, events: [], more: "yes" }), "the answer has no events or no more");
});

test("withTimeout passes a prompt answer through", async () => {
  assert.equal(await withTimeout(Promise.resolve(7), 1000), 7);
  await assert.rejects(withTimeout(new Promise(() => {}), 10, "x"), /x: no answer within 10 ms/);
});
