// The WAMP error URIs the browser client and the dashboard react to, in one
// table, so a reason is compared by name rather than by a string literal
// repeated across modules. The broker.error.* ones are the wamp_uri of the
// Python node's broker/errors.py (test/errors.test.mjs checks they exist
// there); the wamp.error.* ones are crossbar's authentication refusals.

/** Error URIs by name; frozen. */
export const ERRORS = Object.freeze({
  /** ABORT: the realm refused the authid/role, or a call/subscribe was refused */
  NOT_AUTHORIZED: "wamp.error.not_authorized",
  /** ABORT: the ticket or WAMP-CRA signature did not verify */
  AUTHENTICATION_FAILED: "wamp.error.authentication_failed",
  /** ABORT: the session presented no credentials the realm accepts */
  NOT_AUTHENTICATED: "wamp.error.not_authenticated",
  /** GOODBYE: the node ended the session because its token expired (exp + leeway) */
  TOKEN_EXPIRED: "broker.error.token_expired",
});
