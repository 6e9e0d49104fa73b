import assert from "node:assert/strict";
import { test } from "node:test";
import { TransportPicker, afterClose, defaultLongPollUrl, nextState } from "../src/state.js";

test("state machine", () => {
  assert.equal(nextState("connecting", "joined"), "connected");
  assert.equal(nextState("connecting", "lost"), "reconnecting");
  assert.equal(nextState("connected", "lost"), "reconnecting");
  assert.equal(nextState("connected", "refresh"), "reconnecting");
  assert.equal(nextState("reconnecting", "lost"), "reconnecting");
  assert.equal(nextState("reconnecting", "joined"), "connected");
  for (const s of ["connecting", "connected", "reconnecting"]) assert.equal(nextState(s, "close"), "closed");
  for (const e of ["joined", "lost", "refresh", "close"]) assert.equal(nextState("closed", e), "closed");
  assert.throws(() => nextState("connected", "bogus"));
});

test("long-poll URL next to the WebSocket URL", () => {
  assert.equal(defaultLongPollUrl("ws://127.0.0.1:8080/ws"), "http://127.0.0.1:8080/lp");
  assert.equal(defaultLongPollUrl("wss://example.org/ws"), "https://example.org/lp");
  assert.equal(defaultLongPollUrl("wss://example.org/broker/ws/"), "https://example.org/broker/lp");
  assert.equal(defaultLongPollUrl("ws://h:1"), "http://h:1/lp");
});

test("WebSocket first; long-poll alternates after two transport failures", () => {
  const p = new TransportPicker();
  const seq = [];
  for (let i = 0; i < 6; i++) {
    seq.push(p.next());
    p.failed();
  }
  assert.deepEqual(seq, ["websocket", "websocket", "longpoll", "websocket", "longpoll", "websocket"]);
  p.succeeded("longpoll");
  assert.equal(p.next(), "longpoll"); // what worked last is tried first
  p.failed();
  p.failed();
  assert.equal(p.next(), "websocket");
  p.succeeded("websocket");
  assert.equal(p.next(), "websocket");
});

test("no WebSocket in this browser: long-poll only; no long-poll URL: WebSocket only", () => {
  const lp = new TransportPicker({ websocket: false });
  lp.failed();
  lp.failed();
  assert.equal(lp.next(), "longpoll");
  const ws = new TransportPicker({ longpoll: false });
  ws.failed();
  ws.failed();
  assert.equal(ws.next(), "websocket");
});

test("after a close: a token-expired GOODBYE fetches a fresh token and reconnects at once", () => {
  assert.deepEqual(afterClose("broker.error.token_expired", { canRefresh: true }), { staleToken: true, now: true, error: false });
  // a fixed token cannot be refreshed: report it, back off
  assert.deepEqual(afterClose("broker.error.token_expired", { canRefresh: false }), { staleToken: true, now: false, error: true });
  assert.deepEqual(afterClose("wamp.error.not_authorized", { canRefresh: true }), { staleToken: true, now: false, error: true });
  assert.deepEqual(afterClose(null, { planned: true, canRefresh: true }), { staleToken: false, now: true, error: false });
  assert.deepEqual(afterClose(null), { staleToken: false, now: false, error: false });
  assert.deepEqual(afterClose("wamp.close.normal", { canRefresh: true }), { staleToken: false, now: false, error: false });
});
