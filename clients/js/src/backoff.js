// Reconnect delays: exponential backoff with "full jitter"
// (https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/).
// Pure: no timers, no autobahn.

/** Upper bound of the delay before attempt number `attempt` (0-based), in ms. */
export function backoffCeiling(attempt, { base = 1000, cap = 30000 } = {}) {
  if (!(attempt >= 0)) attempt = 0;
  // 2 ** 1024 is Infinity; Math.min keeps it at cap
  return Math.min(cap, base * 2 ** Math.min(attempt, 1023));
}

/** A random delay in [0, ceiling) before attempt number `attempt`, in ms. */
export function backoffDelay(attempt, { base = 1000, cap = 30000, random = Math.random } = {}) {
  return Math.floor(random() * backoffCeiling(attempt, { base, cap }));
}
