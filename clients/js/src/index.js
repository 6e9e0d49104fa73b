// Public API: see broker.d.ts.
export { connect } from "./client.js";
export { backoffCeiling, backoffDelay } from "./backoff.js";
export { expiresSoon, jwtPayload, refreshDelay, tokenExpiry } from "./jwt.js";
export { defaultLongPollUrl, nextState } from "./state.js";
