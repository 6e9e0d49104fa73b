import assert from "node:assert/strict";
import { test } from "node:test";
import { BrokerClient } from "../src/client.js";

// BrokerClient driven through a stand-in for autobahn.Connection: each attempt is one FakeConnection,
// opened and closed by the test, with a FakeSession whose broker.recover answers are scripted.

const E = "e1";
const pos = (cursor) => ({ epoch: E, seq: cursor, cursor });
const page = (cursors, { cursor = 99, more = false } = {}) => ({
  unrecoverable: false,
  epoch: E,
  cursor,
  more,
  events: cursors.map((c) => ({ topic: "public.t", args: [`c${c}`], kwargs: {}, position: pos(c) })),
});

class FakeSession {
  constructor(answers = []) {
    this.isOpen = true;
    this.answers = answers; // one per broker.recover call: an answer, or an autobahn.Error-like {error, args}
    this.calls = [];
    this.subscribed = [];
    this.handlers = new Map();
  }

  async subscribe(topic, handler, options) {
    this.subscribed.push([topic, options]);
    this.handlers.set(topic, handler);
    return { session: this, unsubscribe: async () => {} };
  }

  call(procedure, args, kwargs) {
    this.calls.push([procedure, args, kwargs]);
    const answer = this.answers.shift();
    if (this.onCall) this.onCall(this.calls.length);
    if (answer === undefined) return Promise.reject(new Error(`unexpected call ${procedure}`));
    return answer.error ? Promise.reject(answer) : Promise.resolve(answer);
  }

  /** the router delivers an EVENT to the subscription on `topic` */
  publish(topic, data, position, concrete = topic) {
    this.handlers.get(topic)([data], position ? { broker_position: position } : {}, { topic: concrete });
  }
}

/** A client whose every attempt is a FakeConnection; `next()` resolves with the next one opened. */
function harness(options = {}) {
  const opened = [];
  const waiting = [];
  class FakeConnection {
    constructor(config) {
      this.config = config;
      this.closed = [];
    }

    open() {
      opened.push(this);
      const w = waiting.shift();
      if (w) w(this);
    }

    close(reason, message) {
      this.closed.push([reason, message]);
    }

    /** the session joined */
    join(session) {
      this.onopen(session, { transport: { type: "websocket" } });
      return session;
    }
  }
  const client = new BrokerClient({ url: "ws://broker.test/ws", backoff: { base: 1, cap: 1 }, ...options }, { Connection: FakeConnection });
  const states = [];
  const errors = [];
  client.on("state", (s) => states.push(s));
  client.on("error", (e) => errors.push(e));
  let seen = 0;
  const next = () => (opened.length > seen ? Promise.resolve(opened[seen++]) : new Promise((r) => waiting.push(r)).then((c) => (seen++, c)));
  return { client, states, errors, opened, next };
}

/** Let the client's awaited subscribe/recover promises settle. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

test("subscribe before the session joins; events are delivered with their positions", async (t) => {
  const { client, states, errors, next } = harness();
  t.after(() => client.close());
  const seen = [];
  const sub = client.subscribe("public.t", (data, meta) => seen.push([data, meta]));
  const wild = client.subscribe("public..x", (data, meta) => seen.push([data, meta]), { match: "wildcard" });
  const conn = await next();
  assert.deepEqual(conn.config.authmethods, ["anonymous"]);
  assert.equal(conn.config.realm, "app");
  const session = conn.join(new FakeSession());
  await settle();
  assert.deepEqual(session.subscribed, [
    ["public.t", {}],
    ["public..x", { match: "wildcard" }],
  ]);
  assert.equal(client.state, "connected");
  assert.equal(client.session, session);
  session.publish("public.t", "a", pos(3));
  session.publish("public..x", "b", null, "public.y.x");
  assert.deepEqual(seen, [
    ["a", { topic: "public.t", position: pos(3) }],
    ["b", { topic: "public.y.x", position: null }],
  ]);
  assert.deepEqual(sub.position, { epoch: E, cursor: 3 });
  assert.equal(wild.position, null);
  assert.deepEqual(states, ["connected"]);
  assert.deepEqual(errors, []);
  client.close();
  assert.deepEqual(conn.closed, [["wamp.close.normal", undefined]]);
  assert.equal(client.state, "closed");
});

test("after a reconnect the subscription recovers the gap: each event once, in order", async (t) => {
  const { client, states, errors, next } = harness();
  t.after(() => client.close());
  const seen = [];
  client.subscribe("public.t", (data, meta) => seen.push([data, Boolean(meta.recovered)]), { recover: true });

  const first = await next();
  const s1 = first.join(new FakeSession([page([], { cursor: 5 })])); // the probe: current position 5
  await settle();
  assert.deepEqual(s1.calls, [["broker.recover", ["public.t"], { match: "exact", epoch: "", after: 0 }]]);
  s1.publish("public.t", "c6", pos(6));
  s1.publish("public.t", "c7", pos(7));

  s1.isOpen = false;
  first.onclose("lost", { reason: "wamp.close.transport_lost" });
  assert.equal(client.state, "reconnecting");
  s1.publish("public.t", "stale", pos(8)); // a late event of the old session is not delivered
  const second = await next();
  const s2 = new FakeSession([page([8, 9, 10], { cursor: 10 })]);
  // cursor 10 arrives live while the recovery is under way, and is also in the recovered page
  s2.onCall = () => s2.publish("public.t", "c10", pos(10));
  second.join(s2);
  await settle();
  assert.deepEqual(s2.calls, [["broker.recover", ["public.t"], { match: "exact", epoch: E, after: 7 }]]);
  s2.publish("public.t", "c11", pos(11));
  assert.deepEqual(seen, [
    ["c6", false],
    ["c7", false],
    ["c8", true],
    ["c9", true],
    ["c10", true],
    ["c11", false],
  ]);
  assert.deepEqual(states, ["connected", "reconnecting", "connected"]);
  assert.deepEqual(errors, []);
});

test("a recovery answered with an ERROR calls onUnrecoverable, then live events continue", async (t) => {
  const { client, errors, next } = harness();
  t.after(() => client.close());
  const seen = [];
  const gaps = [];
  client.subscribe("public.t", (data) => seen.push(data), { recover: true, from: { epoch: E, cursor: 7 }, onUnrecoverable: (gap) => gaps.push(gap) });
  const conn = await next();
  const session = new FakeSession([{ error: "wamp.error.runtime_error", args: ["store unavailable"], kwargs: {} }]);
  session.onCall = () => session.publish("public.t", "c9", pos(9)); // held, then released
  conn.join(session);
  await settle();
  assert.deepEqual(session.calls[0][2], { match: "exact", epoch: E, after: 7 });
  assert.deepEqual(gaps, [{ topic: "public.t", match: "exact", reason: "recovery failed: wamp.error.runtime_error: store unavailable", epoch: E, cursor: 7 }]);
  session.publish("public.t", "c10", pos(10));
  assert.deepEqual(seen, ["c9", "c10"]);
  assert.deepEqual(errors, []);
});

test("a token-expired GOODBYE reconnects at once with a fresh token, without an error", { timeout: 5000 }, async (t) => {
  const tokens = ["t1", "t2"];
  // a backoff retry would wait 10 minutes: only the immediate path reconnects within the timeout
  const { client, states, errors, next } = harness({ getToken: async () => tokens.shift(), authid: "alice", backoff: { base: 600000, cap: 600000 } });
  t.after(() => client.close());
  const first = await next();
  assert.deepEqual(first.config.authmethods, ["ticket"]);
  assert.equal(first.config.authid, "alice");
  assert.equal(first.config.onchallenge(null, "ticket"), "t1");
  first.join(new FakeSession());
  first.onclose("closed", { reason: "broker.error.token_expired", message: "token expired at 2026-12-01T23:00:00Z" });
  assert.equal(client.state, "reconnecting");
  const second = await next();
  assert.equal(second.config.onchallenge(null, "ticket"), "t2");
  second.join(new FakeSession());
  assert.equal(client.state, "connected");
  assert.deepEqual(states, ["connected", "reconnecting", "connected"]);
  assert.deepEqual(errors, []);
});

test("with a fixed token, a token-expired GOODBYE is reported as an error", async (t) => {
  const { client, errors, next } = harness({ token: "fixed" });
  t.after(() => client.close());
  const first = await next();
  first.join(new FakeSession());
  first.onclose("closed", { reason: "broker.error.token_expired", message: "token expired" });
  assert.equal(errors.length, 1);
  assert.equal(errors[0].uri, "broker.error.token_expired");
  assert.equal(errors[0].message, "broker.error.token_expired: token expired");
});
