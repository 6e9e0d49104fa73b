import assert from "node:assert/strict";
import { test } from "node:test";
import { expiresSoon, jwtPayload, refreshDelay, tokenExpiry } from "../src/jwt.js";

const b64url = (obj) => Buffer.from(JSON.stringify(obj)).toString("base64url");
const jwt = (payload) => `${b64url({ alg: "HS256", typ: "JWT" })}.${b64url(payload)}.sig`;
const NOW = 1_700_000_000_000;

test("payload and exp of a JWT", () => {
  const token = jwt({ sub: "alice", exp: 1_700_000_100 });
  assert.deepEqual(jwtPayload(token), { sub: "alice", exp: 1_700_000_100 });
  assert.equal(tokenExpiry(token), 1_700_000_100_000);
});

test("base64url characters (- and _) and missing padding decode", () => {
  // "??>" encodes with + and / in base64, - and _ in base64url
  const token = jwt({ n: "??>??>~~~", exp: 1 });
  assert.match(token.split(".")[1], /[-_]/);
  assert.equal(jwtPayload(token).n, "??>??>~~~");
  assert.equal(jwtPayload(jwt({ u: "é€😀", exp: 2 })).u, "é€😀");
});

test("not a JWT, or no numeric exp: no expiry", () => {
  for (const token of [null, undefined, 42, "", "opaque-ticket", "a.b", "a.!!!.c", `x.${b64url([1])}.y`, jwt({ exp: "soon" }), jwt({ sub: "x" })]) {
    assert.equal(tokenExpiry(token), null, String(token));
    assert.equal(expiresSoon(token, NOW), false);
    assert.equal(refreshDelay(token, NOW), null);
  }
});

test("expires within 30 s (or already expired)", () => {
  assert.equal(expiresSoon(jwt({ exp: NOW / 1000 + 31 }), NOW), false);
  assert.equal(expiresSoon(jwt({ exp: NOW / 1000 + 30 }), NOW), true);
  assert.equal(expiresSoon(jwt({ exp: NOW / 1000 + 5 }), NOW), true);
  assert.equal(expiresSoon(jwt({ exp: NOW / 1000 - 5 }), NOW), true);
  assert.equal(expiresSoon(jwt({ exp: NOW / 1000 + 50 }), NOW, 60000), true);
});

test("refresh 30 s before expiry, never sooner than half the remaining lifetime", () => {
  assert.equal(refreshDelay(jwt({ exp: NOW / 1000 + 3600 }), NOW), 3570_000);
  assert.equal(refreshDelay(jwt({ exp: NOW / 1000 + 40 }), NOW), 20_000);
  assert.equal(refreshDelay(jwt({ exp: NOW / 1000 + 10 }), NOW), 5_000);
  assert.equal(refreshDelay(jwt({ exp: NOW / 1000 - 10 }), NOW), 0);
});
