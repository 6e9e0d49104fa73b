// The dashboard's recent history: a page opened after events were published
// shows the newest of them, read with `broker.recover` like any recovery.
//
// Recovery answers oldest first, from a cursor on, and the history behind a
// pattern can be large (every topic keeps up to its retention), so reading it
// from the start of the epoch to keep the newest N would page through all of
// it. Cursors are global and increase by one per stored event, so the N
// newest events on the pattern lie within the last N cursors at the very
// least: read windows backwards from the current cursor, (cursor - span,
// cursor], widening the span while fewer than N were found, each window paged
// by `more` and cut at the window's top. A window the node answers
// `unrecoverable` (some topic on the pattern has trimmed events in it) is
// narrowed instead, towards the newest: what it holds beyond the trimmed part
// is still shown. The number of calls is bounded; a window cut short by that
// bound is dropped whole, so what is shown is always the newest events with
// no gap among them.
//
// Pure apart from `call`, which the dashboard binds to its session: node
// --test covers it (test/dashboard-history.test.mjs).
import { pageProblem } from "../recovery.js";

/** Most `broker.recover` calls one history load makes. */
export const MAX_CALLS = 24;

/**
 * The newest `limit` events on the pattern `call` asks about, with a cursor at
 * most `cursor` in `epoch`, oldest first (the answer's event objects:
 * `{topic, args, kwargs, position}`).
 *
 * `call(epoch, after)` returns a normalized `broker.recover` answer. Returns
 * `{events, complete}`: `complete` is false when fewer than `limit` were found
 * and older events may exist that this load did not reach (trimmed history,
 * the call bound, another epoch).
 */
export async function recentHistory(call, { epoch, cursor, limit, maxCalls = MAX_CALLS }) {
  let calls = 0;
  let found = []; // every event on the pattern in (upper, cursor], oldest first
  let upper = cursor;
  let span = limit;
  let narrowed = false; // a window was trimmed: stop widening

  /** Events in (lo, hi], or null if unrecoverable, or undefined if the call bound cut it short. */
  async function window(lo, hi) {
    const out = [];
    let after = lo;
    for (;;) {
      if (calls >= maxCalls) return undefined;
      calls++;
      const answer = await call(epoch, after);
      if (answer.unrecoverable) return answer.epoch === epoch ? null : "epoch";
      const problem = pageProblem(answer);
      if (problem) throw new TypeError(problem);
      for (const event of answer.events) {
        if (event.position.cursor > hi) return out;
        out.push(event);
      }
      if (!answer.more) return out;
      after = answer.events[answer.events.length - 1].position.cursor;
      // only the newest `limit` of a window can be shown: keep the memory bounded
      if (out.length > limit) out.splice(0, out.length - limit);
    }
  }

  while (found.length < limit && upper > 0) {
    const lo = Math.max(0, upper - span);
    const got = await window(lo, upper);
    if (got === undefined || got === "epoch") return { events: found, complete: false };
    if (got === null) {
      if (upper - lo <= 1) return { events: found, complete: false };
      span = Math.ceil((upper - lo) / 2);
      narrowed = true;
      continue;
    }
    found = got.concat(found);
    upper = lo;
    if (narrowed) {
      // the window below this one reaches into the trimmed part: narrow again from here
      span = Math.max(1, Math.ceil(span / 2));
    } else {
      // widen: by what the found density says is needed, at least twice, at most 8 times
      const need = limit - found.length;
      const guess = got.length ? Math.ceil((need * span) / got.length) : span * 8;
      span = Math.min(span * 8, Math.max(span * 2, guess));
    }
  }
  if (found.length > limit) found = found.slice(found.length - limit);
  return { events: found, complete: found.length >= limit || upper === 0 };
}
