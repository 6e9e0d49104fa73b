import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { test } from "node:test";
import { ERRORS, describe } from "../src/errors.js";

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

test("describe: an autobahn.Error becomes an Error naming its URI; an Error stays itself", () => {
  const e = describe({ error: "wamp.error.not_authorized", args: ["no grant for public.t"], kwargs: { x: 1 } });
  assert.ok(e instanceof Error);
  assert.equal(e.message, "wamp.error.not_authorized: no grant for public.t");
  assert.equal(e.uri, "wamp.error.not_authorized");
  assert.deepEqual([e.args, e.kwargs], [["no grant for public.t"], { x: 1 }]);
  assert.equal(describe({ error: "wamp.error.canceled", args: [] }).message, "wamp.error.canceled");
  const own = new TypeError("bad");
  assert.equal(describe(own), own);
  assert.equal(describe("gone").message, "gone");
});

test("no module in src/ spells an error URI itself: each comes from the table", () => {
  const src = new URL("../src/", import.meta.url);
  const files = readdirSync(src, { recursive: true }).filter((f) => f.endsWith(".js") && f !== "errors.js");
  assert.ok(files.includes("client.js") && files.some((f) => f.startsWith("dashboard")), files.join(", "));
  for (const file of files) {
    const text = readFileSync(new URL(file, src), "utf8");
    const spelled = [...text.matchAll(/["'`]((?:wamp|broker)\.error\.[a-z_.]+)/g)].map((m) => m[1]);
    assert.deepEqual(spelled, [], `${file} spells ${spelled.join(", ")}: add it to ERRORS in src/errors.js`);
  }
});
