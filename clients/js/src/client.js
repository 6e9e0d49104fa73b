// The Broker browser client: one WAMP session at a time over AutobahnJS,
// reconnected forever, resubscribed and recovered on every (re)connect.
//
// Reconnection is driven here, not by autobahn: every attempt is a fresh
// autobahn.Connection with max_retries 0 and retry_if_unreachable false, and
// its onclose returns true ("don't retry"). autobahn's own retry gives up
// after max_retries, stops for good after an ABORT (e.g. an expired ticket),
// keeps the authentication options of the first attempt, uses a Gaussian
// jitter and never resubscribes; a fresh Connection per attempt gets a fresh
// token, a chosen transport and a clean session. Each subscription's
// subscribe-then-recover loop is in subscription.js.

import autobahn from "autobahn";
import { backoffDelay } from "./backoff.js";
import { describe } from "./errors.js";
import { expiresSoon, refreshDelay } from "./jwt.js";
import { checkPattern } from "./patterns.js";
import { TransportPicker, afterClose, defaultLongPollUrl, nextState } from "./state.js";
import { Subscription } from "./subscription.js";

/** the GOODBYE reason of a close the client asks for (a close reason, not an error: see errors.js) */
const CLOSE_NORMAL = "wamp.close.normal";
const REFRESH_MARGIN_MS = 30000;
const MAX_TIMEOUT = 2 ** 31 - 1;

async function fetchToken(tokenUrl) {
  const response = await fetch(tokenUrl, {
    credentials: "include",
    cache: "no-store",
    headers: { Accept: "application/json" },
  });
  if (!response.ok) throw new Error(`token request failed: HTTP ${response.status}`);
  const body = await response.json();
  if (!body || typeof body.token !== "string" || !body.token) throw new Error('token response has no "token"');
  return body.token;
}

export class BrokerClient {
  /**
   * @param options see ConnectOptions in broker.d.ts
   * @param [seams] not public API: `Connection` replaces autobahn.Connection
   *   (test/client.test.mjs drives the client through a fake one)
   */
  constructor(options = {}, { Connection = autobahn.Connection } = {}) {
    if (!options.url || typeof options.url !== "string") throw new TypeError("connect(): options.url is required");
    this.url = options.url;
    this.realm = options.realm || "app";
    this.lpUrl = options.lpUrl === false ? null : options.lpUrl || defaultLongPollUrl(options.url);
    this._token = typeof options.token === "string" && options.token ? options.token : null;
    this._tokenUrl = options.tokenUrl || null;
    this._getToken = typeof options.getToken === "function" ? options.getToken : null;
    this._authid = options.authid;
    this._Connection = Connection;
    this._backoff = { base: 1000, cap: 30000, ...(options.backoff || {}) };
    this._listeners = new Map();
    this._state = "connecting";
    this._subs = new Set();
    this._failures = 0; // consecutive failed attempts (backoff exponent)
    this._conn = null;
    this._session = null;
    this._transport = null;
    this._retryTimer = null;
    this._refreshTimer = null;
    this._refreshFailures = 0;
    this._staleToken = false;
    this._planned = false;
    this._picker = new TransportPicker({
      websocket: typeof WebSocket !== "undefined",
      longpoll: this.lpUrl !== null,
    });
    // first attempt after the caller attached listeners and subscriptions
    this._retryTimer = setTimeout(() => this._open(), 0);
  }

  /** "connecting" | "connected" | "reconnecting" | "closed" */
  get state() {
    return this._state;
  }

  /** The open autobahn session, or null. */
  get session() {
    return this._session;
  }

  /** "websocket" | "longpoll" while connected, else null. */
  get transport() {
    return this._session ? this._transport : null;
  }

  on(event, listener) {
    if (!this._listeners.has(event)) this._listeners.set(event, new Set());
    this._listeners.get(event).add(listener);
    return () => this.off(event, listener);
  }

  off(event, listener) {
    const set = this._listeners.get(event);
    if (set) set.delete(listener);
  }

  _emit(event, ...args) {
    const set = this._listeners.get(event);
    if (!set || set.size === 0) {
      if (event === "error") console.warn("broker:", ...args);
      return;
    }
    for (const listener of [...set]) {
      try {
        listener(...args);
      } catch (err) {
        if (event !== "error") this._emit("error", err);
        else console.error(err);
      }
    }
  }

  _to(event) {
    const state = nextState(this._state, event);
    if (state !== this._state) {
      this._state = state;
      this._emit("state", state);
    }
  }

  subscribe(topic, handler, options = {}) {
    if (typeof topic !== "string") throw new TypeError("subscribe(): topic must be a string");
    if (typeof handler !== "function") throw new TypeError("subscribe(): handler must be a function");
    checkPattern(topic, options.match || "exact");
    const sub = new Subscription(this, topic, handler, options);
    this._subs.add(sub);
    if (this._session) sub._attach(this._session);
    return sub;
  }

  close() {
    if (this._state === "closed") return;
    clearTimeout(this._retryTimer);
    clearTimeout(this._refreshTimer);
    const conn = this._conn;
    this._conn = null;
    this._session = null;
    for (const sub of this._subs) sub._detach();
    this._to("close");
    if (conn) {
      try {
        conn.close(CLOSE_NORMAL);
      } catch {
        // already closing, or a long-poll transport that has not opened yet
      }
    }
  }

  async _token_() {
    const stale = this._staleToken || !this._token || expiresSoon(this._token, Date.now(), REFRESH_MARGIN_MS);
    if (!stale || !(this._tokenUrl || this._getToken)) return this._token;
    const token = this._getToken ? await this._getToken() : await fetchToken(this._tokenUrl);
    if (typeof token !== "string" || !token) throw new Error("getToken() returned no token");
    this._token = token;
    this._staleToken = false;
    return token;
  }

  async _open() {
    this._retryTimer = null;
    if (this._state === "closed") return;
    let token = null;
    if (this._token || this._tokenUrl || this._getToken) {
      try {
        token = await this._token_();
      } catch (err) {
        this._emit("error", describe(err));
        this._retry();
        return;
      }
      if (this._state === "closed") return;
    }

    const first = this._picker.next();
    const transports = [];
    for (const type of first === "longpoll" ? ["longpoll", "websocket"] : ["websocket", "longpoll"]) {
      if (type === "websocket") transports.push({ type, url: this.url });
      else if (this.lpUrl) transports.push({ type, url: this.lpUrl });
    }
    const conn = new this._Connection({
      realm: this.realm,
      transports,
      serializers: [new autobahn.serializer.JSONSerializer()],
      authmethods: token ? ["ticket"] : ["anonymous"],
      authid: token ? this._authid : undefined,
      onchallenge: (session, method) => {
        if (method === "ticket" && token) return token;
        throw new Error(`cannot answer a ${method} challenge`);
      },
      max_retries: 0,
      retry_if_unreachable: false,
      use_es6_promises: true,
    });
    this._conn = conn;
    let joined = false;

    conn.onopen = (session, details) => {
      if (conn !== this._conn) {
        // closed while a long-poll transport was still opening
        try {
          conn.close(CLOSE_NORMAL);
        } catch {
          // already closing
        }
        return;
      }
      joined = true;
      this._session = session;
      this._transport = (details && details.transport && details.transport.type) || first;
      this._picker.succeeded(this._transport);
      this._failures = 0;
      this._to("joined");
      if (token) this._scheduleRefresh(token);
      for (const sub of this._subs) sub._attach(session);
    };

    conn.onclose = (reason, details) => {
      if (conn !== this._conn) return true;
      this._conn = null;
      this._session = null;
      clearTimeout(this._refreshTimer);
      for (const sub of this._subs) sub._detach();
      const abort = (details && details.reason) || null;
      const next = afterClose(abort, { planned: this._planned, canRefresh: Boolean(this._tokenUrl || this._getToken) });
      this._planned = false;
      if (next.staleToken) this._staleToken = true;
      if (next.error) {
        this._emit("error", Object.assign(new Error(`${abort}: ${details.message || "authentication refused"}`), { uri: abort }));
      }
      if (!joined && reason === "unreachable") this._picker.failed();
      if (this._state === "closed") return true;
      if (next.now) {
        this._to("refresh");
        this._retryTimer = setTimeout(() => this._open(), 0);
      } else {
        this._retry();
      }
      return true; // never let autobahn retry
    };

    try {
      conn.open();
    } catch (err) {
      if (conn === this._conn) {
        this._conn = null;
        this._emit("error", describe(err));
        this._retry();
      }
    }
  }

  _retry() {
    if (this._state === "closed") return;
    this._to("lost");
    const delay = backoffDelay(this._failures, this._backoff);
    this._failures += 1;
    clearTimeout(this._retryTimer);
    this._retryTimer = setTimeout(() => this._open(), delay);
  }

  _scheduleRefresh(token) {
    clearTimeout(this._refreshTimer);
    if (!(this._tokenUrl || this._getToken)) return;
    const delay = refreshDelay(token, Date.now(), REFRESH_MARGIN_MS);
    if (delay === null) return;
    this._refreshTimer = setTimeout(() => this._refresh(), Math.min(delay, MAX_TIMEOUT));
  }

  /** Fetch a fresh token while still connected, then reconnect with it (subscriptions recover). */
  async _refresh() {
    const conn = this._conn;
    if (!conn || !this._session) return;
    try {
      this._staleToken = true;
      await this._token_();
      this._refreshFailures = 0;
    } catch (err) {
      this._emit("error", describe(err));
      if (conn === this._conn) {
        this._refreshTimer = setTimeout(() => this._refresh(), backoffDelay(this._refreshFailures++, this._backoff));
      }
      return;
    }
    if (conn !== this._conn || this._state === "closed") return;
    this._planned = true;
    this._to("refresh");
    try {
      conn.close(CLOSE_NORMAL, "token refresh");
    } catch {
      this._planned = false;
    }
  }
}

export function connect(options) {
  return new BrokerClient(options);
}
