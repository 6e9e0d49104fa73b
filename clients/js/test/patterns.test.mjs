import assert from "node:assert/strict";
import { test } from "node:test";
import { BrokerClient } from "../src/client.js";
import { WILDCARD_HINT, checkPattern } from "../src/patterns.js";

// subscribe() refuses what the node refuses, before any subscription exists

test("a glob-style pattern is refused with the WAMP wildcard hint", () => {
  assert.throws(() => checkPattern("public.*", "wildcard"), {
    name: "TypeError",
    message:
      `subscribe(): invalid pattern "public.*" (wildcard): '*' matches only itself; ${WILDCARD_HINT}, ` +
      `and a prefix pattern ends in a dot: public. (here: "public.")`,
  });
  assert.throws(() => checkPattern("orders.*.created", "wildcard"), /\(here: "orders\.\.created"\)$/);
  assert.throws(() => checkPattern("public.foo*", "prefix"), /'\*' matches only itself; WAMP wildcards are empty components: public\.\.x, and a prefix pattern ends in a dot: public\.$/);
  assert.throws(() => checkPattern("a.+.b", "wildcard"), /'\+' matches only itself/);
});

test("valid patterns, and '*' in an exact topic (a legal URI character), are accepted", () => {
  for (const [topic, match] of [["public..x", "wildcard"], ["public.", "prefix"], ["public.*", "exact"], ["a+b.c", "wildcard"]]) {
    assert.doesNotThrow(() => checkPattern(topic, match));
  }
});

test("an unknown match policy is refused", () => {
  assert.throws(() => checkPattern("public.", "regex"), { name: "TypeError", message: 'subscribe(): unknown match "regex" (expected one of exact, prefix, wildcard)' });
});

test("client.subscribe throws and keeps no subscription; a valid one beside it is kept", () => {
  const client = Object.create(BrokerClient.prototype);
  client._subs = new Set();
  client._session = null;
  assert.throws(() => client.subscribe("public.*", () => {}, { match: "wildcard" }), /WAMP wildcards are empty components/);
  assert.equal(client._subs.size, 0);
  const ok = client.subscribe("public..x", () => {}, { match: "wildcard" });
  assert.equal(client._subs.size, 1);
  assert.equal(ok.match, "wildcard");
});
