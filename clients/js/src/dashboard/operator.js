// The dashboard's operator panel (index.html loads it only with `?operator`):
// joins as authid `operator` with WAMP-CRA and shows sessions and subscriptions
// from the WAMP meta API, and presence: who is on each subscribed topic
// (`broker.presence`, for the topics the node enables and the operator's
// `presence` grant covers) and the latest joins and leaves (events on
// `broker.presence.<presencePrefix>`, docs/presence.md). Bundled into
// dist/dashboard-operator.js.
//
// The browser bundle replaces crypto-js with a stub (src/shims/unused-auth.cjs),
// so autobahn.auth_cra is unavailable: the CRA signature is computed here with
// WebCrypto (HMAC-SHA256 of the challenge, base64), which browsers offer only in
// secure contexts (https, or http on localhost/127.0.0.1). Salted secrets are
// not supported (Broker's operator secret is unsalted). The secret is never stored.
import autobahn from "autobahn";
import { ERRORS } from "../errors.js";

const enc = new TextEncoder();

async function craSign(secret, challenge) {
  const key = await crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const sig = new Uint8Array(await crypto.subtle.sign("HMAC", key, enc.encode(challenge)));
  return btoa(String.fromCharCode(...sig));
}

const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};

/** Mounts the login form and, once joined, the live tables into `root`. */
export function mountOperator(root, { url, realm = "app", refreshMs = 5000, presencePrefix = "public.room.", maxPresenceEvents = 20 }) {
  const form = root.querySelector("form");
  const status = root.querySelector(".op-status");
  const out = root.querySelector(".op-output");
  const logout = root.querySelector(".op-logout");
  let connection = null;
  let timer = null;
  let presenceEvents = [];

  const say = (text, kind = "") => {
    status.textContent = text;
    status.dataset.kind = kind;
  };

  if (!globalThis.crypto?.subtle) {
    say("This page is not a secure context (https or localhost), so the browser offers no WebCrypto to sign the WAMP-CRA challenge.", "bad");
    form.querySelector("button").disabled = true;
    return;
  }

  async function refresh(session) {
    const [count, sessionIds, subs] = await Promise.all([
      session.call("wamp.session.count"),
      session.call("wamp.session.list"),
      session.call("wamp.subscription.list"),
    ]);
    const sessions = await Promise.all(sessionIds.slice(0, 50).map((id) => session.call("wamp.session.get", [id]).catch(() => null)));
    const subIds = [...(subs.exact || []), ...(subs.prefix || []), ...(subs.wildcard || [])];
    const subscriptions = await Promise.all(
      subIds.slice(0, 100).map(async (id) => {
        const [info, n] = await Promise.all([
          session.call("wamp.subscription.get", [id]).catch(() => null),
          session.call("wamp.subscription.count_subscribers", [id]).catch(() => null),
        ]);
        return info && { ...info, subscribers: n };
      }),
    );

    // who is on each exact application topic someone subscribed to; a topic without presence
    // (not enabled, or outside the operator's presence grant) is refused and left out
    const topics = [...new Set(subscriptions.filter((s) => s && s.match === "exact" && !/^(wamp|broker)\./.test(s.uri)).map((s) => s.uri))];
    const present = (
      await Promise.all(topics.slice(0, 50).map((topic) => session.call("broker.presence", [topic]).catch(() => null)))
    ).filter(Boolean);
    const presenceTable = el(
      "table",
      { className: "op-table", id: "op-presence" },
      el("thead", {}, el("tr", {}, el("th", { textContent: "topic" }), el("th", { className: "num", textContent: "sessions" }), el("th", { textContent: "users" }), el("th", { className: "num", textContent: "anonymous" }))),
      el(
        "tbody",
        {},
        ...present
          .sort((a, b) => a.topic.localeCompare(b.topic))
          .map((p) => {
            const row = el(
              "tr",
              {},
              el("td", { className: "topic", textContent: p.topic }),
              el("td", { className: "num", textContent: String(p.count) }),
              el("td", { className: "users", textContent: p.users.map((u) => (u.sessions > 1 ? `${u.id} ×${u.sessions}` : u.id)).join(", ") }),
              el("td", { className: "num", textContent: String(p.anonymous) }),
            );
            row.dataset.topic = p.topic;
            return row;
          }),
      ),
    );
    const presenceList = el(
      "ol",
      { id: "op-presence-events" },
      ...presenceEvents.map((e) => el("li", { textContent: `${e.time} ${e.presence} ${e.topic} ${e.user ?? "(anonymous)"}` })),
    );
    const byRole = {};
    for (const s of sessions) if (s) byRole[s.authrole] = (byRole[s.authrole] || 0) + 1;
    const sessionTable = el(
      "table",
      { className: "op-table" },
      el("thead", {}, el("tr", {}, el("th", { textContent: "session" }), el("th", { textContent: "authid" }), el("th", { textContent: "role" }), el("th", { textContent: "auth" }))),
      el(
        "tbody",
        {},
        ...sessions.filter(Boolean).map((s) =>
          el(
            "tr",
            {},
            el("td", { className: "mono", textContent: String(s.session) }),
            el("td", { textContent: s.authid ?? "" }),
            el("td", {}, el("span", { className: `role role-${s.authrole}`, textContent: s.authrole ?? "" })),
            el("td", { textContent: [s.authmethod, s.transport?.type].filter(Boolean).join(" · ") }),
          ),
        ),
      ),
    );
    const subTable = el(
      "table",
      { className: "op-table" },
      el("thead", {}, el("tr", {}, el("th", { textContent: "topic" }), el("th", { textContent: "match" }), el("th", { className: "num", textContent: "subscribers" }))),
      el(
        "tbody",
        {},
        ...subscriptions
          .filter(Boolean)
          .sort((a, b) => String(a.uri).localeCompare(String(b.uri)))
          .map((s) =>
            el(
              "tr",
              {},
              el("td", { className: "topic", textContent: s.uri }),
              el("td", { textContent: s.match }),
              el("td", { className: "num", textContent: s.subscribers == null ? "?" : String(s.subscribers) }),
            ),
          ),
      ),
    );
    out.replaceChildren(
      el(
        "div",
        { className: "op-stats" },
        el("div", { className: "op-stat" }, el("b", { id: "op-sessions", textContent: String(count) }), el("span", { textContent: "sessions" })),
        el("div", { className: "op-stat" }, el("b", { id: "op-subscriptions", textContent: String(subIds.length) }), el("span", { textContent: "subscriptions" })),
        ...Object.entries(byRole).map(([role, n]) => el("div", { className: "op-stat" }, el("b", { textContent: String(n) }), el("span", { textContent: role })))
      ),
      el("h3", { textContent: "Sessions" }),
      el("div", { className: "table-x" }, sessionTable),
      el("h3", { textContent: "Subscriptions" }),
      el("div", { className: "table-x" }, subTable),
      el("h3", { textContent: "Presence" }),
      el("div", { className: "table-x" }, presenceTable),
      presenceList,
    );
    say(`signed in as operator · refreshed ${new Date().toLocaleTimeString()}`, "ok");
  }

  function stop() {
    clearInterval(timer);
    timer = null;
    if (connection) {
      const c = connection;
      connection = null;
      try {
        c.close();
      } catch {
        // already closed
      }
    }
    form.hidden = false;
    logout.hidden = true;
    presenceEvents = [];
    out.replaceChildren();
  }

  logout.addEventListener("click", () => {
    stop();
    say("signed out");
  });

  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const authid = form.elements.authid.value.trim() || "operator";
    const secretInput = form.elements.secret;
    const secret = secretInput.value;
    secretInput.value = "";
    stop();
    say("signing in…");
    const c = new autobahn.Connection({
      url,
      realm,
      authmethods: ["wampcra"],
      authid,
      max_retries: 0,
      retry_if_unreachable: false,
      onchallenge: (session, method, extra) => {
        if (method !== "wampcra") throw new Error(`unexpected auth method ${method}`);
        if (extra.salt) throw new Error("salted WAMP-CRA secrets are not supported here");
        return craSign(secret, extra.challenge);
      },
    });
    connection = c;
    c.onopen = (session) => {
      form.hidden = true;
      logout.hidden = false;
      const tick = () => refresh(session).catch((err) => say(`meta API: ${err.error || err.message || err}`, "bad"));
      tick();
      timer = setInterval(tick, refreshMs);
      for (const topic of ["wamp.session.on_join", "wamp.session.on_leave"]) session.subscribe(topic, tick).catch(() => {});
      const onPresence = (args, kwargs) => {
        presenceEvents = [{ ...kwargs, time: new Date().toLocaleTimeString() }, ...presenceEvents].slice(0, maxPresenceEvents);
        tick();
      };
      session.subscribe(`broker.presence.${presencePrefix}`, onPresence, { match: "prefix" }).catch(() => {});
    };
    c.onclose = (reason, details) => {
      if (connection === c) {
        stop();
        const why = details?.reason || reason;
        say(why === ERRORS.NOT_AUTHORIZED || why === ERRORS.AUTHENTICATION_FAILED ? "sign-in refused: wrong authid or secret" : `disconnected (${why})`, "bad");
      }
      return true; // no autobahn retries
    };
    c.open();
  });
}
