import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { ERRORS } from "../src/errors.js";

test("the table is frozen and holds WAMP URIs only", () => {
  assert.ok(Object.isFrozen(ERRORS));
  assert.throws(() => {
    "use strict";
    ERRORS.TOKEN_EXPIRED = "x";
  }, TypeError);
  for (const [name, uri] of Object.entries(ERRORS)) assert.match(uri, /^(wamp|broker)\.error\.[a-z_]+$/, name);
  assert.equal(new Set(Object.values(ERRORS)).size, Object.keys(ERRORS).length);
});

test("every broker.error.* URI is one the node raises (broker/errors.py)", () => {
  const source = readFileSync(new URL("../../../broker/errors.py", import.meta.url), "utf8");
  const raised = new Set([...source.matchAll(/wamp_uri = "([^"]+)"/g)].map((m) => m[1]));
  assert.ok(raised.size > 5, "broker/errors.py declares its URIs as wamp_uri = \"...\"");
  for (const uri of Object.values(ERRORS).filter((u) => u.startsWith("broker."))) assert.ok(raised.has(uri), uri);
});
