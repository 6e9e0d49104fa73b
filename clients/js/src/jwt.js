// Reading a JWT's expiry without verifying it (the router verifies; the
// client only needs to know when to fetch a fresh token). Pure.

function base64urlDecode(text) {
  let b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  while (b64.length % 4) b64 += "=";
  const binary = atob(b64);
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/** The JWT's payload as an object, or null if `token` is not a JWT. */
export function jwtPayload(token) {
  if (typeof token !== "string") return null;
  const parts = token.split(".");
  if (parts.length !== 3 || !parts[1]) return null;
  try {
    const payload = JSON.parse(base64urlDecode(parts[1]));
    return payload !== null && typeof payload === "object" && !Array.isArray(payload) ? payload : null;
  } catch {
    return null;
  }
}

/** The `exp` claim in milliseconds since the epoch, or null (not a JWT, no numeric exp). */
export function tokenExpiry(token) {
  const payload = jwtPayload(token);
  const exp = payload && payload.exp;
  return typeof exp === "number" && Number.isFinite(exp) ? exp * 1000 : null;
}

/** True if the token expires within `marginMs` of `nowMs` (or already has). */
export function expiresSoon(token, nowMs = Date.now(), marginMs = 30000) {
  const expiry = tokenExpiry(token);
  return expiry !== null && expiry - nowMs <= marginMs;
}

/**
 * Milliseconds from `nowMs` until the token should be refreshed: `marginMs`
 * before it expires, but no sooner than half its remaining lifetime (so a
 * token that lives less than the margin does not cause a reconnect loop);
 * null if it has no expiry.
 */
export function refreshDelay(token, nowMs = Date.now(), marginMs = 30000) {
  const expiry = tokenExpiry(token);
  if (expiry === null) return null;
  const remaining = expiry - nowMs;
  return Math.max(0, remaining - marginMs, Math.floor(remaining / 2));
}
