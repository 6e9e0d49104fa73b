// Type declarations for the Broker browser client (dist/broker.js).

export type State = "connecting" | "connected" | "reconnecting" | "closed";
export type Match = "exact" | "prefix" | "wildcard";

/** An event's place in the history: `seq` is gapless per topic, `cursor` increases across the store. */
export interface Position {
  epoch: string;
  seq: number;
  cursor: number;
}

/** Where a subscription resumes: the last cursor it delivered, in its epoch. */
export interface ResumePosition {
  epoch: string;
  cursor: number;
}

export interface EventMeta {
  /** the concrete topic (also for prefix and wildcard subscriptions) */
  topic: string;
  /** null for events without a position (reserved namespaces, topics that keep no history) */
  position: Position | null;
  /** true for events delivered by `broker.recover` after a reconnect */
  recovered?: boolean;
}

export interface UnrecoverableInfo {
  topic: string;
  match: Match;
  /**
   * e.g. "some missed events are no longer in history", "epoch changed: the history was reset",
   * or "recovery failed: …" when broker.recover answered an error, no answer came within
   * `recoverTimeout`, or the answer was malformed
   */
  reason: string;
  /** live delivery continues from here (after a failed recovery: the last position delivered) */
  epoch: string;
  cursor: number;
}

export interface ConnectOptions {
  /** WebSocket URL, e.g. "ws://127.0.0.1:8080/ws" */
  url: string;
  /** default "app" */
  realm?: string;
  /** a ticket (JWT) for WAMP ticket auth; without token/tokenUrl/getToken the session is anonymous */
  token?: string;
  /** GET (with credentials) answering {"token": "..."}; fetched when needed and before the token expires */
  tokenUrl?: string;
  /** alternative to tokenUrl: any async source of fresh tokens */
  getToken?: () => string | Promise<string>;
  /** HELLO authid for ticket auth (Broker takes the token's `sub` regardless) */
  authid?: string;
  /** WAMP long-poll URL; default: url with ws→http and /ws→/lp. false: WebSocket only */
  lpUrl?: string | false;
  /** reconnect delays: full jitter in [0, min(cap, base·2^n)) ms; default {base: 1000, cap: 30000} */
  backoff?: { base?: number; cap?: number };
}

export interface SubscribeOptions {
  /** default "exact" */
  match?: Match;
  /** after every reconnect, deliver what was missed (broker.recover), each event once and in order */
  recover?: boolean;
  /** resume from a position stored earlier (e.g. `sub.position` saved in localStorage); implies nothing without recover */
  from?: ResumePosition;
  /**
   * the missed events could not all be recovered, or the recovery failed for any reason: reload
   * state; live events continue. Without it, the gap is reported as an error (`err.unrecoverable`
   * holds the info) through onError or the client's "error" event
   */
  onUnrecoverable?: (info: UnrecoverableInfo) => void;
  /** milliseconds one broker.recover call may take before the gap counts as unrecoverable; default 10000 */
  recoverTimeout?: number;
  /** the subscription or a recovery was refused (e.g. wamp.error.not_authorized); default: the client's "error" event */
  onError?: (error: BrokerError) => void;
}

export interface BrokerError extends Error {
  /** the WAMP error URI, when the router sent one */
  uri?: string;
  topic?: string;
  args?: unknown[];
  kwargs?: Record<string, unknown>;
}

export type EventHandler<T = unknown> = (data: T, meta: EventMeta) => void;

export interface Subscription {
  readonly topic: string;
  readonly match: Match;
  readonly recover: boolean;
  /** false after unsubscribe() */
  readonly active: boolean;
  /** the position to resume from, null until one is known */
  readonly position: ResumePosition | null;
  unsubscribe(): void;
}

export interface BrokerClient {
  readonly state: State;
  /** "websocket" | "longpoll" while connected, else null */
  readonly transport: "websocket" | "longpoll" | null;
  /** the open AutobahnJS session (an escape hatch), or null */
  readonly session: unknown;
  readonly url: string;
  readonly realm: string;
  on(event: "state", listener: (state: State) => void): () => void;
  on(event: "error", listener: (error: BrokerError) => void): () => void;
  off(event: "state" | "error", listener: (...args: any[]) => void): void;
  /**
   * active across reconnects: resubscribed (and recovered) on every new session. Throws a
   * TypeError for an unknown `match`, or a prefix/wildcard pattern with `*` or a lone `+`
   * component (WAMP wildcards are empty components: `public..x`).
   */
  subscribe<T = unknown>(topic: string, handler: EventHandler<T>, options?: SubscribeOptions): Subscription;
  /** leave the session and stop reconnecting; final */
  close(): void;
}

/** Starts connecting (after the current task, so listeners and subscriptions can be added first). */
export function connect(options: ConnectOptions): BrokerClient;

// the pure building blocks, exported for tests and advanced use
export function backoffCeiling(attempt: number, options?: { base?: number; cap?: number }): number;
export function backoffDelay(attempt: number, options?: { base?: number; cap?: number; random?: () => number }): number;
export function jwtPayload(token: string): Record<string, unknown> | null;
export function tokenExpiry(token: string): number | null;
export function expiresSoon(token: string, nowMs?: number, marginMs?: number): boolean;
export function refreshDelay(token: string, nowMs?: number, marginMs?: number): number | null;
export function nextState(state: State, event: "joined" | "lost" | "refresh" | "close"): State;
export function defaultLongPollUrl(url: string): string;
