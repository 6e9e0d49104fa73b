// Subscription patterns as the node checks them (broker/core/uris.py): refused here, before any
// subscription is made, so a pattern that could only receive nothing fails at the call.

export const MATCH_POLICIES = ["exact", "prefix", "wildcard"];

/** The hint every refused glob-style pattern carries. */
export const WILDCARD_HINT = "WAMP wildcards are empty components: public..x";

/**
 * Throw a TypeError for an unknown match policy, or a prefix/wildcard pattern using `*` or a
 * lone `+` component: in WAMP `*` is an ordinary URI character, so `public.*` would match
 * only a topic with a literal `*`. Exact topics may contain `*`, as the WAMP spec allows.
 */
export function checkPattern(topic, match) {
  if (!MATCH_POLICIES.includes(match)) {
    throw new TypeError(`subscribe(): unknown match ${JSON.stringify(match)} (expected one of ${MATCH_POLICIES.join(", ")})`);
  }
  if (match === "exact") return;
  const components = topic.split(".");
  if (!topic.includes("*") && !components.includes("+")) return;
  const used = topic.includes("*") ? "'*'" : "'+'";
  const emptied = components.map((c) => (c === "*" || c === "**" || c === "+" ? "" : c)).join(".");
  const clean = !emptied.includes("*") && !emptied.split(".").includes("+");
  throw new TypeError(
    `subscribe(): invalid pattern ${JSON.stringify(topic)} (${match}): ${used} matches only itself; ` +
      `${WILDCARD_HINT}, and a prefix pattern ends in a dot: public.` +
      (clean ? ` (here: ${JSON.stringify(emptied)})` : ""),
  );
}
