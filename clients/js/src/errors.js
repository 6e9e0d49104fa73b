// The WAMP error URIs the browser client and the dashboard react to, in one
// table, so a reason is compared by name rather than by a string literal
// repeated across modules. The broker.error.* ones are the wamp_uri of the
// Python node's broker/errors.py (test/errors.test.mjs checks they exist
// there); the wamp.error.* ones are crossbar's authentication refusals.
// `describe` turns what autobahn rejects with into an Error carrying its URI.

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

/**
 * An Error for anything a promise rejected with: an autobahn.Error
 * ({error, args, kwargs}) becomes an Error whose `uri` names the WAMP error
 * (BrokerError in broker.d.ts).
 */
export function describe(err) {
  if (err instanceof Error) return err;
  if (err && typeof err === "object" && typeof err.error === "string") {
    // autobahn.Error: {error, args, kwargs}
    const e = new Error(`${err.error}${err.args && err.args.length ? `: ${err.args[0]}` : ""}`);
    e.uri = err.error;
    e.args = err.args;
    e.kwargs = err.kwargs;
    return e;
  }
  return new Error(String(err));
}
