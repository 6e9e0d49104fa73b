// The dashboard's numbers: events/s over the last 10 s and the chart's
// per-second buckets. Pure (no DOM, no clock of its own: every call takes the
// time), so node --test covers it (test/dashboard-rates.test.mjs).
//
// Two rules make the numbers honest from the first second on:
// - a rate divides by the time it really counted: the last WINDOW seconds,
//   or since counting began when that is shorter (at least MIN_SPAN_S), so
//   20 events in the first 2 s read 10/s, not 2/s;
// - the chart draws only complete seconds, from the first whole second after
//   counting began: the current second (still filling) is not drawn, so the
//   line does not drop at its end, and nothing is drawn for the time before
//   the page counted (no zeros for seconds it did not see).

/** Seconds behind each rate. */
export const WINDOW = 10;
/** The shortest time a rate divides by, so the first event does not read as a burst. */
export const MIN_SPAN_S = 1;
/** Seconds of complete buckets the chart keeps. */
export const HISTORY = 300;
/** Seconds the chart's time axis spans at least (the time before counting began stays empty). */
export const INITIAL = 60;

/** Seconds a rate at `nowMs` divides by, counting since `sinceMs` (both ms since the epoch). */
export function rateSpan(nowMs, sinceMs) {
  const sec = Math.floor(nowMs / 1000);
  const start = Math.max(sinceMs, (sec - WINDOW + 1) * 1000);
  return Math.max(MIN_SPAN_S, (nowMs - start) / 1000);
}

/** Counts per second in a ring of WINDOW slots; `rate(now, since)` is events/s over the last WINDOW s. */
export class RateWindow {
  constructor() {
    this.slots = new Uint32Array(WINDOW);
    this.sec = 0;
  }
  advance(sec) {
    if (sec - this.sec >= WINDOW) this.slots.fill(0);
    else for (let s = this.sec + 1; s <= sec; s++) this.slots[s % WINDOW] = 0;
    if (sec > this.sec) this.sec = sec;
  }
  /** One event at `ms`. */
  add(ms) {
    const sec = Math.floor(ms / 1000);
    this.advance(sec);
    this.slots[sec % WINDOW]++;
  }
  /** Events in the seconds the window covers at `nowMs`. */
  count(nowMs) {
    this.advance(Math.floor(nowMs / 1000));
    let sum = 0;
    for (const n of this.slots) sum += n;
    return sum;
  }
  /** Events/s at `nowMs`, counting since `sinceMs` (see rateSpan). */
  rate(nowMs, sinceMs) {
    return this.count(nowMs) / rateSpan(nowMs, sinceMs);
  }
}

/**
 * The chart's data: one bucket per complete second from the first whole
 * second at or after `sinceMs`, the newest `history` of them.
 */
export class Buckets {
  constructor(sinceMs, history = HISTORY) {
    this.first = Math.ceil(sinceMs / 1000);
    this.next = this.first; // the first second not in xs yet
    this.history = history;
    this.xs = [];
    this.ys = [];
    this.pending = new Map(); // second -> count, for seconds not complete yet
  }
  /** One event at `ms`; a second already drawn, or before the first, is not counted. */
  add(ms) {
    const sec = Math.floor(ms / 1000);
    if (sec < this.next) return;
    this.pending.set(sec, (this.pending.get(sec) || 0) + 1);
  }
  /** Move every second completed by `nowMs` into xs/ys; whether any was. */
  advance(nowMs) {
    const done = Math.floor(nowMs / 1000); // seconds below this one are complete
    if (done <= this.next) return false;
    // after a long pause (a sleeping laptop) only the newest `history` seconds matter
    for (let s = this.next; s < done - this.history; s++) this.pending.delete(s);
    for (let s = Math.max(this.next, done - this.history); s < done; s++) {
      this.xs.push(s);
      this.ys.push(this.pending.get(s) || 0);
      this.pending.delete(s);
    }
    this.next = done;
    const extra = this.xs.length - this.history;
    if (extra > 0) {
      this.xs.splice(0, extra);
      this.ys.splice(0, extra);
    }
    return true;
  }
  /** The time axis at `nowMs`: [first, last] second shown, at least INITIAL s wide, ending at the last complete second. */
  range(nowMs) {
    const last = Math.floor(nowMs / 1000) - 1;
    const span = Math.min(this.history, Math.max(INITIAL, last - this.first + 1));
    return [last - span + 1, last];
  }
}
