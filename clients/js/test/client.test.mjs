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
  constructor(answers = [], { refuse = new Set() } = {}) {
    this.isOpen = true;
    this.refuse = refuse; // topics whose SUBSCRIBE the router refuses (wamp.error.not_authorized)
    this.answers = answers; // one per broker.recover call: an answer, or an autobahn.Error-like {error, args}
    this.calls = [];
    this.subscribed = [];
    this.handlers = new Map();
  }

  async subscribe(topic, handler, options) {
    this.subscribed.push([topic, options]);
    if (this.refuse.has(topic)) throw { error: "wamp.error.not_authorized", args: [`no grant for ${topic}`], kwargs: {} };
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

/** An unsigned JWT that expires at `expSeconds` (the client only reads `exp`; the router verifies). */
const jwt = (expSeconds) => `e30.${Buffer.from(JSON.stringify({ exp: expSeconds })).toString("base64url")}.sig`;

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

test("an unrecoverable answer goes to onUnrecoverable with the node's position; live continues from it", async (t) => {
  const { client, errors, next } = harness();
  t.after(() => client.close());
  const seen = [];
  const gaps = [];
  const sub = client.subscribe("public.t", (data) => seen.push(data), { recover: true, from: { epoch: "old", cursor: 40 }, onUnrecoverable: (gap) => gaps.push(gap) });
  const conn = await next();
  const reset = { unrecoverable: true, reason: "epoch changed: the history was reset", epoch: E, cursor: 3 };
  const session = new FakeSession([reset]);
  session.onCall = () => session.publish("public.t", "c2", pos(2)); // live during the call: released, not deduped against 40
  conn.join(session);
  await settle();
  assert.deepEqual(session.calls[0][2], { match: "exact", epoch: "old", after: 40 });
  assert.deepEqual(gaps, [{ topic: "public.t", match: "exact", reason: "epoch changed: the history was reset", epoch: E, cursor: 3 }]);
  session.publish("public.t", "c4", pos(4));
  assert.deepEqual(seen, ["c2", "c4"]);
  assert.deepEqual(sub.position, { epoch: E, cursor: 4 });
  assert.deepEqual(errors, []);
});

test("without onUnrecoverable, an unrecoverable gap is an error event naming it, never silence", async (t) => {
  const { client, errors, next } = harness();
  t.after(() => client.close());
  client.subscribe("public.t", () => {}, { recover: true, from: { epoch: "old", cursor: 40 } });
  const conn = await next();
  conn.join(new FakeSession([{ unrecoverable: true, reason: "epoch changed: the history was reset", epoch: E, cursor: 3 }]));
  await settle();
  assert.equal(errors.length, 1);
  assert.equal(errors[0].message, "missed events on public.t cannot be recovered: epoch changed: the history was reset");
  assert.equal(errors[0].topic, "public.t");
  assert.deepEqual(errors[0].unrecoverable, { topic: "public.t", match: "exact", reason: "epoch changed: the history was reset", epoch: E, cursor: 3 });
});

test("a refused subscribe is an error carrying its URI and topic; the subscription beside it receives", async (t) => {
  const { client, errors, next } = harness();
  t.after(() => client.close());
  const seen = [];
  client.subscribe("public.secret", () => seen.push("secret"));
  client.subscribe("public.t", (data) => seen.push(data)); // the bystander
  const conn = await next();
  const session = conn.join(new FakeSession([], { refuse: new Set(["public.secret"]) }));
  await settle();
  assert.equal(errors.length, 1);
  assert.equal(errors[0].uri, "wamp.error.not_authorized");
  assert.equal(errors[0].topic, "public.secret");
  assert.equal(errors[0].message, "wamp.error.not_authorized: no grant for public.secret");
  session.publish("public.t", "c1", pos(1));
  assert.deepEqual(seen, ["c1"]);
  assert.equal(client.state, "connected");
});

test("a refused sign-in is an error naming its URI; the retry asks getToken for a fresh token", async (t) => {
  const tokens = ["t1", "t2"];
  const { client, states, errors, next } = harness({ getToken: async () => tokens.shift() });
  t.after(() => client.close());
  const first = await next();
  assert.equal(first.config.onchallenge(null, "ticket"), "t1");
  first.onclose("closed", { reason: "wamp.error.authentication_failed", message: "token signature does not verify" }); // ABORT, never joined
  assert.equal(errors.length, 1);
  assert.equal(errors[0].uri, "wamp.error.authentication_failed");
  assert.equal(errors[0].message, "wamp.error.authentication_failed: token signature does not verify");
  assert.equal(client.state, "reconnecting");
  const second = await next(); // after the backoff delay (1 ms here)
  assert.equal(second.config.onchallenge(null, "ticket"), "t2");
  assert.throws(() => second.config.onchallenge(null, "wampcra"), /cannot answer a wampcra challenge/);
  second.join(new FakeSession());
  assert.deepEqual(states, ["reconnecting", "connected"]);
  assert.equal(errors.length, 1);
});

test("a getToken that fails is an error event, and the next attempt asks again", async (t) => {
  let calls = 0;
  const { client, errors, next } = harness({
    getToken: async () => {
      calls += 1;
      if (calls === 1) throw new Error("token request failed: HTTP 503");
      return "t2";
    },
  });
  t.after(() => client.close());
  const conn = await next();
  assert.equal(calls, 2);
  assert.deepEqual(
    errors.map((e) => e.message),
    ["token request failed: HTTP 503"],
  );
  assert.equal(conn.config.onchallenge(null, "ticket"), "t2");
  conn.join(new FakeSession());
  assert.equal(client.state, "connected");
});

test("a token about to expire is refreshed while connected: a planned close, then a session with the fresh token", { timeout: 5000 }, async (t) => {
  const soon = jwt(Math.floor(Date.now() / 1000) + 1); // refreshed at half its remaining life, within 0.5 s
  const fresh = jwt(Math.floor(Date.now() / 1000) + 3600);
  const tokens = [soon, fresh];
  const { client, states, errors, next } = harness({ getToken: async () => tokens.shift(), backoff: { base: 600000, cap: 600000 } });
  t.after(() => client.close());
  const seen = [];
  client.subscribe("public.t", (data, meta) => seen.push([data, Boolean(meta.recovered)]), { recover: true, from: { epoch: E, cursor: 7 } });
  const first = await next();
  assert.equal(first.config.onchallenge(null, "ticket"), soon);
  first.join(new FakeSession([page([])]));
  await settle();
  while (first.closed.length === 0) await new Promise((resolve) => setTimeout(resolve, 10));
  assert.deepEqual(first.closed, [["wamp.close.normal", "token refresh"]]);
  assert.equal(client.state, "reconnecting");
  first.onclose("closed", { reason: "wamp.close.normal" }); // autobahn reports the close the client asked for
  const second = await next(); // at once: a 10-minute backoff would time the test out
  assert.equal(second.config.onchallenge(null, "ticket"), fresh);
  const s2 = second.join(new FakeSession([page([8])]));
  await settle();
  assert.deepEqual(s2.calls[0][2], { match: "exact", epoch: E, after: 7 }); // the new session recovers the gap
  assert.deepEqual(seen, [["c8", true]]);
  assert.deepEqual(states, ["connected", "reconnecting", "connected"]);
  assert.deepEqual(errors, []);
});
