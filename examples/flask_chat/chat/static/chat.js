// The room page: the room's recent messages from Broker's history, then live ones, and a form
// that posts through fetch (the same form works without JavaScript).
//
// The JS client comes from the node itself (`<BROKER_PUBLIC_URL>/dist/broker.js`, which the node
// serves with CORS for the origins its WebSocket accepts), so the page and the node never disagree
// on versions. Messages are shown with `textContent` only: whatever a user typed stays text.
const body = document.body.dataset;
const brokerUrl = body.brokerUrl;
const topic = body.topic;
const historyLimit = Number(body.historyLimit);
const list = document.querySelector("#messages");
const stateEl = document.querySelector("#state");
const noticeEl = document.querySelector("#notice");
const errorEl = document.querySelector("#error");
const form = document.querySelector("#send");
const textInput = document.querySelector("#text");

/** Most broker.recover calls one history load makes, and how long each may take. */
const MAX_CALLS = 40;
const CALL_TIMEOUT_MS = 10000;

const setState = (state) => {
  stateEl.textContent = state;
  stateEl.dataset.state = state;
};
const notice = (text) => {
  noticeEl.textContent = text;
  noticeEl.hidden = false;
};
const why = (err) => err?.message || err?.error || String(err);

/** One message's row; `history`: published before this page opened. */
function row(data, meta, history) {
  const li = document.createElement("li");
  const user = Object.assign(document.createElement("b"), { className: "user" });
  const text = Object.assign(document.createElement("span"), { className: "text" });
  const time = document.createElement("time");
  user.textContent = typeof data?.user === "string" ? data.user : "?";
  text.textContent = typeof data?.text === "string" ? data.text : JSON.stringify(data);
  if (typeof data?.at === "string") {
    time.dateTime = data.at;
    time.textContent = new Date(data.at).toLocaleTimeString();
  }
  li.append(time, user, text);
  li.dataset.cursor = meta.position?.cursor ?? "";
  if (history) li.dataset.history = "";
  return li;
}

function showLive(data, meta) {
  const stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  list.append(row(data, meta, false));
  if (stick) list.scrollTop = list.scrollHeight;
}

/**
 * The newest `limit` events of the room with a cursor at most `top`, oldest first.
 *
 * Cursors count events across every topic of the node, so the room's newest messages lie in
 * some window (lo, top] of unknown width: read windows widening eightfold until one holds
 * `limit` messages or reaches cursor 0. A window the node answers `unrecoverable` reaches into
 * the part of the room's history already trimmed: find the oldest cursor still readable by
 * bisection and read from there. `complete` is false when fewer were found than may exist.
 */
async function recentHistory(call, epoch, top, limit) {
  let calls = 0;
  const ask = (after) => {
    if (++calls > MAX_CALLS) throw new Error("the history took too many calls to read");
    return call(epoch, after);
  };
  /** The events in (lo, top], or null if some of them were trimmed. */
  async function read(lo) {
    const out = [];
    for (let after = lo; ; ) {
      const answer = await ask(after);
      if (answer.unrecoverable) return null;
      for (const event of answer.events) {
        if (event.position.cursor > top) return out;
        out.push(event);
      }
      if (!answer.more || answer.events.length === 0) return out;
      after = answer.events[answer.events.length - 1].position.cursor;
      if (out.length > limit) out.splice(0, out.length - limit);
    }
  }
  for (let span = limit * 4; ; span *= 8) {
    const lo = Math.max(0, top - span);
    const found = await read(lo);
    if (found === null) {
      let bad = lo;
      let good = top; // reading after `top` is always possible: nothing is missed there
      while (good - bad > 1) {
        const mid = Math.floor((bad + good) / 2);
        if ((await ask(mid)).unrecoverable) bad = mid;
        else good = mid;
      }
      const rest = (await read(good)) ?? [];
      return { events: rest.slice(-limit), complete: false };
    }
    if (found.length >= limit || lo === 0) return { events: found.slice(-limit), complete: true };
  }
}

/** A broker.recover answer: autobahn hands over a plain object, or a Result with args/kwargs. */
function normalize(result) {
  let answer = result;
  if (answer && typeof answer === "object" && !("unrecoverable" in answer)) {
    answer = answer.kwargs && "unrecoverable" in answer.kwargs ? answer.kwargs : answer.args?.[0];
  }
  if (typeof answer?.unrecoverable !== "boolean" || (!answer.unrecoverable && !Array.isArray(answer.events))) {
    throw new TypeError("broker.recover returned an unexpected answer");
  }
  return answer;
}

function withTimeout(promise, ms) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Go live from where the room is now, then list the messages published before. */
async function start(client) {
  const call = (epoch, after) => {
    const answer = client.session.call("broker.recover", [topic], { match: "exact", epoch, after });
    return withTimeout(answer, CALL_TIMEOUT_MS).then(normalize);
  };
  const live = (from) =>
    client.subscribe(topic, showLive, {
      recover: true,
      from,
      onUnrecoverable: (info) => notice(`Some messages could not be recovered (${info.reason}); continuing live.`),
      onError: (err) => notice(`The room refused this page: ${why(err)}`),
    });
  let here;
  try {
    here = await call("", 0); // the probe: answers the current epoch and cursor
  } catch (err) {
    notice(`Earlier messages are unavailable (${why(err)}); showing new ones.`);
    live(null);
    return "unavailable";
  }
  live({ epoch: here.epoch, cursor: here.cursor }); // everything after `here` arrives live, once
  if (historyLimit <= 0 || here.cursor === 0) return "loaded";
  try {
    const { events, complete } = await recentHistory(call, here.epoch, here.cursor, historyLimit);
    list.prepend(...events.map((e) => row(e.args?.[0], { position: e.position }, true)));
    list.scrollTop = list.scrollHeight;
    return complete ? "loaded" : "partial";
  } catch (err) {
    notice(`Earlier messages are unavailable (${why(err)}).`);
    return "unavailable";
  }
}

// Posting: the same form, sent with fetch; the message shows up through the subscription.
let posts = 0;
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = form.querySelector("button");
  button.disabled = true;
  let error = "";
  try {
    const response = await fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    const answer = await response.json().catch(() => null);
    if (response.ok && answer?.sent) textInput.value = "";
    else error = answer?.error || `The chat app answered HTTP ${response.status}; your message was not sent.`;
  } catch (err) {
    error = `Could not reach the chat app (${why(err)}); your message was not sent.`;
  } finally {
    button.disabled = false;
  }
  errorEl.textContent = error;
  errorEl.hidden = !error;
  textInput.focus();
  document.body.dataset.posts = String(++posts);
});

let broker;
try {
  broker = await import(`${brokerUrl}/dist/broker.js`);
} catch (err) {
  setState("unavailable");
  notice(`Live updates are unavailable: the JS client did not load from ${brokerUrl} (${why(err)}).`);
  document.body.dataset.history = "unavailable";
}
if (broker) {
  const client = broker.connect({ url: `${brokerUrl.replace(/^http/, "ws")}/ws`, realm: "app" });
  client.on("error", (err) => notice(`Broker: ${why(err)}`));
  const first = client.on("state", (state) => {
    if (state !== "connected") return;
    first();
    start(client).then((outcome) => {
      document.body.dataset.history = outcome;
    });
  });
  client.on("state", setState);
}
