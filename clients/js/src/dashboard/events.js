// The dashboard's stream list (#events) stays bounded: a page left open for days
// keeps only the newest EVENTS_CAP rows. No DOM globals here, so node --test
// covers it (test/dashboard-events.test.mjs); app.js applies it to the page.

/** Rows the stream keeps; older ones are removed from the DOM. */
export const EVENTS_CAP = 500;

/** Whether a row for `topic` shows under the topic filter (a substring; "" shows all). */
export function matchesFilter(topic, filter) {
  return !filter || topic.includes(filter);
}

/**
 * Removes the oldest rows of a newest-first list (`prepend` adds, the last child
 * is the oldest) until at most `cap` are left; returns how many it removed.
 * `list` is anything with `children.length` and `lastElementChild.remove()`.
 */
export function trimOldest(list, cap = EVENTS_CAP) {
  if (!(cap >= 0)) throw new RangeError(`cap must be a number >= 0, not ${cap}`);
  let removed = 0;
  while (list.children.length > cap) {
    list.lastElementChild.remove();
    removed++;
  }
  return removed;
}

/** The note under the list once rows were removed ("" while everything received is listed). */
export function capNote(dropped, cap = EVENTS_CAP) {
  if (!dropped) return "";
  const n = (x) => x.toLocaleString("en-US");
  return `showing the newest ${n(cap)} events (${n(dropped)} older ${dropped === 1 ? "one" : "ones"} removed)`;
}
