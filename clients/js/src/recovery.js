// Gapless resumption of one subscription: subscribe first, then recover.
//
// Live events that arrive while `broker.recover` is under way are held back,
// then released after the recovered ones; every event whose cursor was
// already delivered is dropped. The cursor increases across the whole store,
// so "already delivered" is one comparison, for exact topics and for prefix
// and wildcard patterns alike. Positions of different epochs are not
// comparable: an event from a new epoch restarts the comparison.
//
// Pure: no I/O, no autobahn. Mirrors broker/history/resume.py.

/**
 * The probe epoch: "no position yet". `broker.recover` answers it with the current position
 * and no events, never `unrecoverable`, and counts it as outcome "position" in its metrics.
 */
export const PROBE_EPOCH = "";

export class ResumeTracker {
  /** @param {{epoch: string, cursor: number} | null} [from] a position to resume after */
  constructor(from = null) {
    /** epoch of the position to recover from (null: none known yet) */
    this.epoch = null;
    /** cursor to recover after on the next (re)subscribe */
    this.cursor = 0;
    /** last cursor delivered in `epoch` (the duplicate threshold) */
    this.last = 0;
    this.recovering = false;
    this._held = [];
    if (from && typeof from.epoch === "string" && Number.isInteger(from.cursor) && from.cursor >= 0) {
      this.epoch = from.epoch;
      this.cursor = from.cursor;
      this.last = from.cursor;
    }
  }

  /** The position to resume from, or null before any is known. */
  get position() {
    return this.epoch === null ? null : { epoch: this.epoch, cursor: this.cursor };
  }

  /**
   * A (re)subscription starts. With `recover`, live events are held until
   * finish(). Returns the `broker.recover` keyword arguments to ask with
   * (without `match`): the known position, or the probe (epoch "": no position
   * yet) that answers with the current position.
   */
  begin(recover) {
    this._held = [];
    this.recovering = Boolean(recover);
    if (this.epoch === null) return { epoch: PROBE_EPOCH, after: 0, probe: true };
    this.last = this.cursor;
    return { epoch: this.epoch, after: this.cursor, probe: false };
  }

  /** A live event (`position` may be null): the items to deliver now. */
  live(position, item) {
    if (this.recovering) {
      this._held.push([position, item]);
      return [];
    }
    return this._pass([[position, item]]);
  }

  /** A page of recovered events `[position, item]`, in cursor order: the items to deliver now. */
  recovered(events) {
    return this._pass(events);
  }

  /**
   * The answer was unrecoverable (or the probe's answer): continue from its
   * epoch and cursor. Held live events all arrived after the subscription,
   * so finish() releases every one of them.
   */
  reset(answer) {
    this.epoch = typeof answer.epoch === "string" ? answer.epoch : null;
    this.cursor = Number.isInteger(answer.cursor) ? answer.cursor : 0;
    this.last = 0;
  }

  /** Recovery is complete (or gave up): release the held live events, in arrival order. */
  finish() {
    this.recovering = false;
    const held = this._held;
    this._held = [];
    return this._pass(held);
  }

  /** The session went away: drop held events (the next recovery fetches them again). */
  abort() {
    this.recovering = false;
    this._held = [];
  }

  _pass(events) {
    const out = [];
    for (const [position, item] of events) {
      const cursor = position && Number.isInteger(position.cursor) ? position.cursor : null;
      if (cursor === null) {
        out.push(item);
        continue;
      }
      const epoch = typeof position.epoch === "string" ? position.epoch : this.epoch;
      if (epoch !== this.epoch) {
        // a new history (e.g. a memory store after a node restart): cursors restart
        this.epoch = epoch;
        this.last = 0;
        this.cursor = 0;
      }
      if (cursor > this.last) {
        this.last = cursor;
        if (cursor > this.cursor) this.cursor = cursor;
        out.push(item);
      }
    }
    return out;
  }
}

/**
 * `broker.recover` answers a dict (one positional result); autobahn hands it
 * over as-is, or wrapped in a Result if the router sent keyword results.
 */
export function normalizeAnswer(result) {
  let answer = result;
  if (answer && typeof answer === "object" && !("unrecoverable" in answer)) {
    if (answer.kwargs && typeof answer.kwargs === "object" && "unrecoverable" in answer.kwargs) answer = answer.kwargs;
    else if (Array.isArray(answer.args) && answer.args[0] && typeof answer.args[0] === "object") answer = answer.args[0];
  }
  if (!answer || typeof answer !== "object" || typeof answer.unrecoverable !== "boolean") {
    throw new TypeError("broker.recover returned an unexpected answer");
  }
  return answer;
}

/**
 * What is wrong with a normalized `broker.recover` page, or null if it is one:
 * its events must carry a topic and a cursor, and a page that says `more`
 * must hold at least one event (asking again from the same cursor would loop).
 */
export function pageProblem(answer) {
  if (answer.unrecoverable) return null;
  if (!Array.isArray(answer.events) || typeof answer.more !== "boolean") return "the answer has no events or no more";
  for (const event of answer.events) {
    const cursor = event && event.position ? event.position.cursor : undefined;
    if (typeof event.topic !== "string" || !Number.isInteger(cursor)) return "an event in the answer lacks its topic or position";
  }
  if (answer.more && answer.events.length === 0) return "the answer says more but holds no event";
  return null;
}

/** `promise`, or a rejection after `ms` milliseconds (the timer is cleared either way). */
export function withTimeout(promise, ms, what = "the call") {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A recovered event as `[position, {data, meta}]`, shaped like a live one. */
export function recoveredItem(event) {
  const position = event.position || null;
  const args = Array.isArray(event.args) ? event.args : [];
  return [position, { data: args[0], meta: { topic: event.topic, position, recovered: true } }];
}
