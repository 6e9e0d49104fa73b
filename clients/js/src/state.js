// The client's connection state machine and transport choice. Pure.

import { ERRORS } from "./errors.js";

/** @typedef {"connecting" | "connected" | "reconnecting" | "closed"} State */

/**
 * The state after `event`:
 *   "joined"  a session joined the realm      → connected
 *   "lost"    an attempt failed / session lost → reconnecting (a retry is scheduled)
 *   "refresh" planned reconnect (fresh token)  → reconnecting
 *   "close"   the application closed the client → closed (final)
 */
export function nextState(state, event) {
  if (state === "closed") return "closed";
  switch (event) {
    case "joined":
      return "connected";
    case "lost":
    case "refresh":
      return "reconnecting";
    case "close":
      return "closed";
    default:
      throw new Error(`unknown event ${event}`);
  }
}

/** ABORT reasons after which the token is fetched again before the next attempt. */
export const AUTH_FAILURES = new Set([ERRORS.NOT_AUTHORIZED, ERRORS.AUTHENTICATION_FAILED, ERRORS.NOT_AUTHENTICATED]);

/**
 * What to do after a session (or an attempt) closed with the WAMP `reason` of
 * its GOODBYE or ABORT (null if none):
 *   staleToken  fetch a fresh token before the next attempt
 *   now         reconnect at once rather than after a backoff delay
 *   error       report it (an "error" event)
 * `planned`: the client closed it to reconnect with a fresh token;
 * `canRefresh`: it has a tokenUrl or getToken. A token-expired close is the
 * node overtaking a refresh that came too late (a throttled background tab, a
 * clock behind the node's): with a source of tokens it is routine, and the
 * client reconnects at once with a fresh one; with a fixed token it is an error.
 */
export function afterClose(reason, { planned = false, canRefresh = false } = {}) {
  if (reason === ERRORS.TOKEN_EXPIRED) return { staleToken: true, now: canRefresh, error: !canRefresh };
  if (AUTH_FAILURES.has(reason)) return { staleToken: true, now: planned, error: true };
  return { staleToken: false, now: planned, error: false };
}

/** The long-poll URL next to a WebSocket URL: ws://h/ws → http://h/lp. */
export function defaultLongPollUrl(url) {
  const u = new URL(url);
  u.protocol = u.protocol === "wss:" ? "https:" : u.protocol === "ws:" ? "http:" : u.protocol;
  u.pathname = u.pathname.replace(/\/ws\/?$/, "/lp");
  if (!u.pathname.endsWith("/lp")) u.pathname = u.pathname.replace(/\/?$/, "/lp");
  u.hash = "";
  return u.toString();
}

/**
 * Which transport to try first. WebSocket when the browser has it; after two
 * consecutive attempts whose transport never opened, alternate with
 * long-poll (a proxy may block WebSockets). The transport that last joined
 * is tried first after that.
 */
export class TransportPicker {
  constructor({ websocket = true, longpoll = true } = {}) {
    this.websocket = websocket;
    this.longpoll = longpoll;
    this.preferred = websocket || !longpoll ? "websocket" : "longpoll";
    this.failures = 0;
  }

  /** "websocket" or "longpoll". */
  next() {
    if (!this.websocket && this.longpoll) return "longpoll";
    if (!this.longpoll) return "websocket";
    const other = this.preferred === "websocket" ? "longpoll" : "websocket";
    return this.failures >= 2 && this.failures % 2 === 0 ? other : this.preferred;
  }

  /** The attempt's transport never opened (unreachable, refused, blocked). */
  failed() {
    this.failures += 1;
  }

  /** A session joined over `type`. */
  succeeded(type) {
    if (type === "websocket" || type === "longpoll") this.preferred = type;
    this.failures = 0;
  }
}
