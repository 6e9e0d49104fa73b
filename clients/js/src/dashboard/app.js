// The dashboard served at `/` (index.html): connection badge, per-topic live
// stream with events/s over the last 10 s, and a uPlot chart of total events/s.
// Bundled by build.mjs into dist/dashboard.js (+ dist/dashboard.css for uPlot).
// It takes the client from dist/broker.js, so autobahn is not bundled twice.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { EVENTS_CAP, capNote, matchesFilter, trimOldest } from "./events.js";
import { recentHistory } from "./history.js";
import { Buckets, RateWindow } from "./rates.js";
import { PROBE_EPOCH, normalizeAnswer, recoveredItem, withTimeout } from "../recovery.js";

const el = (tag, props = {}, ...children) => {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
};
const fmtRate = (r) => (r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2));
const fmtAge = (ms) => {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  return `${Math.floor(s / 3600)}h ago`;
};

function cssVar(name, fallback) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
}

/** Steps (seconds) between the time axis's labels; the smallest whose labels fit is used. */
const TICK_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600];
/** Pixels kept free between two labels of the time axis. */
const LABEL_GAP = 14;
const X_AXIS_SIZE = 26;

const clock = (sec, step) =>
  new Date(sec * 1000).toLocaleTimeString([], step < 60 ? { hour: "2-digit", minute: "2-digit", second: "2-digit" } : { hour: "2-digit", minute: "2-digit" });

/**
 * The total-events/s chart: one point per complete second (see Buckets).
 * uPlot draws the grid and the line; the time labels are DOM elements
 * (`#chart .x-label`) placed under its splits, spaced by the widest label so
 * they never overlap, and dropped where they would leave the chart.
 */
function makeChart(container, current) {
  let plot = null;
  let splits = [];
  let labelWidth = 0;
  const labels = el("div", { className: "x-labels" });
  labels.setAttribute("aria-hidden", "true");
  const size = () => ({ width: Math.max(200, container.clientWidth), height: Math.max(160, container.clientHeight) });

  function measure() {
    // the widest label this locale writes (hours and minutes with seconds), in the labels' own font
    const probe = el("span", { className: "x-label", textContent: clock(Math.floor(Date.now() / 1000), 1) });
    probe.style.visibility = "hidden";
    labels.append(probe);
    labelWidth = Math.ceil(probe.getBoundingClientRect().width) || 60;
    probe.remove();
  }

  function place(u) {
    const box = container.getBoundingClientRect();
    const over = u.over.getBoundingClientRect();
    const step = splits.length > 1 ? splits[1] - splits[0] : 1;
    const top = over.bottom - box.top + 6;
    const kept = [];
    for (const x of splits) {
      const center = over.left - box.left + u.valToPos(x, "x");
      if (center - labelWidth / 2 < 0 || center + labelWidth / 2 > box.width) continue; // would be cut off
      const label = el("span", { className: "x-label", textContent: clock(x, step) });
      label.style.cssText = `left:${center}px;top:${top}px`;
      label.dataset.x = String(x);
      kept.push(label);
    }
    labels.replaceChildren(...kept);
  }

  function create() {
    const fg = cssVar("--muted", "#888");
    const grid = cssVar("--grid", "rgba(128,128,128,.15)");
    const accent = cssVar("--accent", "#6366f1");
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, font: "11px system-ui, sans-serif" };
    plot?.destroy();
    measure();
    plot = new uPlot(
      {
        ...size(),
        legend: { show: false },
        cursor: { drag: { x: false, y: false }, points: { size: 6 } },
        scales: {
          x: { time: true, range: () => current().range(Date.now()) },
          y: { range: (u, min, max) => [0, Math.max(1, (max || 0) * 1.15)] },
        },
        axes: [
          {
            ...axis,
            size: X_AXIS_SIZE,
            incrs: TICK_STEPS,
            space: () => labelWidth + LABEL_GAP,
            values: (u, xs) => {
              splits = xs;
              return xs.map(() => "");
            },
          },
          { ...axis, size: 44, values: (u, ys) => ys.map((v) => (v % 1 ? v.toFixed(1) : v)) },
        ],
        series: [
          {},
          {
            label: "events/s",
            stroke: accent,
            width: 2,
            fill: (u) => {
              const g = u.ctx.createLinearGradient(0, u.bbox.top, 0, u.bbox.top + u.bbox.height);
              g.addColorStop(0, accent + "55");
              g.addColorStop(1, accent + "05");
              return g;
            },
            points: { show: false },
          },
        ],
        hooks: { draw: [place] },
      },
      [current().xs, current().ys],
      container,
    );
    container.append(labels);
  }
  create();
  new ResizeObserver(() => plot?.setSize(size())).observe(container);
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", create);

  return {
    /** Redraw with the buckets' data (complete seconds only) and the time axis at now. */
    update() {
      plot.setData([current().xs, current().ys]);
    },
  };
}

/** How often the rates, ages and the chart refresh (ms); a shown rate is never older than STALE_MS. */
export const REFRESH_MS = 1000;
/** The oldest a shown rate can be (ms): one refresh, plus the frame that draws it. */
export const STALE_MS = 2 * REFRESH_MS;
/** ms one `broker.recover` call of the history load may take. */
const HISTORY_TIMEOUT_MS = 10000;

/**
 * Mounts the dashboard on the page's existing elements (see index.html) and
 * subscribes to `prefix` with recovery. `#events` gets one
 * `<li data-topic data-seq data-cursor data-data data-at>` per event, newest
 * first (tests/test_browser.py and tests/test_dashboard.py read them), and
 * keeps the newest `maxEvents`: older rows are removed and `#events-note` says
 * so.
 *
 * Once connected it asks the node where the stream is (the same probe the
 * client makes), subscribes from exactly there (`from`: the client recovers
 * everything after it, then goes live), and fills the list below with the
 * newest `historyLimit` events published before (class `history`, `data-at`
 * empty): see history.js. Live counting (rates, chart, "events
 * received") begins when it subscribes, `liveSince`; history events show in
 * the stream and the topic rows but are not counted as received now. Once the
 * history is listed `body[data-history]` says how it went: `loaded` (every
 * event up to `historyLimit`), `partial` (fewer: older ones trimmed or out of
 * reach) or `unavailable` (the node refused or failed; live events still
 * show).
 *
 * Returns `{client, liveSince, chart(), refreshMs, staleMs}` (index.html puts
 * it on `window.brokerDashboard`; the tests read it).
 */
export function startDashboard({ connect, url, realm = "app", prefix = "public.", maxEvents = EVENTS_CAP, historyLimit = maxEvents }) {
  const $ = (id) => document.getElementById(id);
  const client = connect({ url, realm });
  const stateEl = $("state");
  const transportEl = $("transport");
  const events = $("events");
  const eventsNote = $("events-note");
  let dropped = 0; // rows removed from #events to keep it at maxEvents
  const notices = $("notices");
  const topicsBody = $("topics");
  const filterEl = $("filter");
  let liveSince = null; // ms: when live counting began (the history/live boundary)
  let buckets = new Buckets(Date.now());
  const chart = makeChart($("chart"), () => buckets);

  const total = new RateWindow();
  const topics = new Map(); // topic -> {rate, count, seq, last, row, cells}
  let totalCount = 0;
  let lastEventAt = 0;
  let filter = "";

  function notice(text) {
    notices.prepend(el("li", { textContent: `${new Date().toLocaleTimeString()} — ${text}` }));
    while (notices.children.length > 5) notices.lastChild.remove();
  }

  function showState(state) {
    stateEl.textContent = state;
    stateEl.dataset.state = state;
    document.body.dataset.state = state;
    const transport = client.transport;
    transportEl.textContent = transport || "—";
    transportEl.dataset.transport = transport || "";
  }
  showState(client.state);
  client.on("state", showState);
  client.on("error", (err) => notice(`error: ${err.message}`));

  function applyFilter() {
    for (const li of events.children) li.hidden = !matchesFilter(li.dataset.topic, filter);
    for (const t of topics.values()) t.row.classList.toggle("selected", !!filter && t.row.dataset.topic === filter);
    $("filter-clear").hidden = !filter;
  }
  filterEl.addEventListener("input", () => {
    filter = filterEl.value.trim();
    applyFilter();
  });
  $("filter-clear").addEventListener("click", () => {
    filterEl.value = filter = "";
    applyFilter();
  });

  function topicRow(topic) {
    let t = topics.get(topic);
    if (t) return t;
    const cells = {
      name: el("td", { className: "topic", title: topic, textContent: topic }),
      rate: el("td", { className: "num rate" }),
      bar: el("span", { className: "bar" }),
      count: el("td", { className: "num count" }),
      seq: el("td", { className: "num seq" }),
      age: el("td", { className: "num age" }),
    };
    const row = el(
      "tr",
      { className: "topic-row" },
      cells.name,
      cells.rate,
      el("td", { className: "barcell" }, cells.bar),
      cells.count,
      cells.seq,
      cells.age,
    );
    row.dataset.topic = topic;
    row.addEventListener("click", () => {
      filter = filter === topic ? "" : topic;
      filterEl.value = filter;
      applyFilter();
    });
    t = { rate: new RateWindow(), count: 0, seq: "", last: 0, row, cells };
    topics.set(topic, t);
    topicsBody.append(row);
    $("topics-empty").hidden = true;
    return t;
  }

  /** The stream row of one event; `at` is when it arrived (ms), null for one from history. */
  function eventRow(data, meta, at) {
    const position = meta.position || {};
    const json = JSON.stringify(data ?? null);
    const li = el(
      "li",
      {},
      el("time", { className: "time", textContent: at === null ? "history" : new Date(at).toLocaleTimeString() }),
      el("span", { className: "topic", textContent: meta.topic, title: meta.topic }),
      el("span", { className: "seq", textContent: position.seq != null ? `#${position.seq}` : "" }),
      el("code", { className: "data", textContent: json }),
    );
    li.dataset.topic = meta.topic;
    li.dataset.seq = position.seq ?? "";
    li.dataset.cursor = position.cursor ?? "";
    li.dataset.data = json;
    li.dataset.at = at === null ? "" : String(at);
    if (at === null) {
      li.classList.add("history");
      li.title = "from history: published before this page opened";
    } else if (meta.recovered) {
      li.classList.add("recovered");
      li.title = "recovered: missed while (re)connecting";
    }
    li.hidden = !matchesFilter(meta.topic, filter);
    const t = topicRow(meta.topic);
    t.count++;
    if (position.seq != null && (t.seq === "" || at !== null)) t.seq = position.seq;
    return { li, t };
  }

  function onEvent(data, meta) {
    const now = Date.now();
    const { li, t } = eventRow(data, meta, now);
    events.prepend(li); // newest first; only the newest maxEvents stay listed
    const removed = trimOldest(events, maxEvents);
    if (removed) {
      dropped += removed;
      eventsNote.textContent = capNote(dropped, maxEvents);
      eventsNote.hidden = false;
    }
    t.rate.add(now);
    t.last = now;
    t.row.classList.remove("flash");
    void t.row.offsetWidth; // restart the highlight animation
    t.row.classList.add("flash");
    total.add(now);
    buckets.add(now);
    totalCount++;
    lastEventAt = now;
    render();
  }

  /** Recovered history events (oldest first) go below everything listed, newest of them first. */
  function showHistory(found) {
    const room = Math.max(0, maxEvents - events.children.length);
    for (const event of found.slice(Math.max(0, found.length - room)).reverse()) {
      const [, { data, meta }] = recoveredItem(event);
      events.append(eventRow(data, meta, null).li);
    }
    render();
  }

  let scheduled = false;
  function render() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      const now = Date.now();
      const since = liveSince ?? now;
      let max = 0;
      const rates = new Map();
      for (const [topic, t] of topics) {
        const r = t.rate.rate(now, since);
        rates.set(topic, r);
        if (r > max) max = r;
      }
      for (const [topic, t] of topics) {
        const r = rates.get(topic);
        t.cells.rate.textContent = fmtRate(r);
        t.row.dataset.rate = String(r);
        t.cells.bar.style.width = `${max ? (100 * r) / max : 0}%`;
        t.cells.count.textContent = t.count.toLocaleString();
        t.cells.seq.textContent = t.seq === "" ? "—" : String(t.seq);
        t.cells.age.textContent = t.last ? fmtAge(now - t.last) : "earlier";
        t.row.classList.toggle("idle", r === 0);
      }
      topicsBody.dataset.at = String(now);
      // busiest topics first
      const order = [...topics.values()].sort((a, b) => rates.get(b.row.dataset.topic) - rates.get(a.row.dataset.topic) || b.last - a.last);
      order.forEach((t, i) => {
        if (topicsBody.children[i] !== t.row) topicsBody.insertBefore(t.row, topicsBody.children[i] || null);
      });
      const rate = total.rate(now, since);
      const rateEl = $("stat-rate");
      rateEl.textContent = fmtRate(rate);
      rateEl.dataset.rate = String(rate);
      rateEl.dataset.at = String(now);
      $("stat-total").textContent = totalCount.toLocaleString();
      $("stat-topics").textContent = topics.size.toLocaleString();
      $("stat-last").textContent = lastEventAt ? fmtAge(now - lastEventAt) : "—";
    });
  }

  // once a second: move completed seconds onto the chart, refresh rates and ages
  setInterval(() => {
    if (liveSince !== null) buckets.advance(Date.now());
    chart.update(); // also moves the time axis on
    render();
  }, REFRESH_MS);
  render();

  function goLive(from) {
    liveSince = Date.now();
    buckets = new Buckets(liveSince);
    chart.update();
    client.subscribe(prefix, onEvent, {
      match: "prefix",
      recover: true,
      from,
      onUnrecoverable: (info) => notice(`some events could not be recovered (${info.reason}); continuing live`),
      onError: (err) => notice(`subscription refused: ${err.message}`),
    });
  }

  const why = (err) => err?.message || err?.error || String(err);

  /** Go live from where the stream is, then list the history before it; "loaded" | "partial" | "unavailable". */
  async function loadHistory() {
    const session = client.session;
    const call = (epoch, after) =>
      withTimeout(session.call("broker.recover", [prefix], { match: "prefix", epoch, after }), HISTORY_TIMEOUT_MS, "broker.recover").then(normalizeAnswer);
    let here;
    try {
      here = await call(PROBE_EPOCH, 0); // answers the current epoch and cursor
      if (typeof here.epoch !== "string" || !Number.isInteger(here.cursor)) throw new TypeError("broker.recover gave no position");
    } catch (err) {
      notice(`recent history unavailable (${why(err)}); showing live events`);
      goLive(null);
      return "unavailable";
    }
    const from = { epoch: here.epoch, cursor: here.cursor };
    goLive(from); // everything after `from` comes through the subscription, gaplessly
    if (historyLimit <= 0 || from.cursor === 0) return "loaded";
    try {
      const { events: found, complete } = await recentHistory(call, { ...from, limit: historyLimit });
      showHistory(found);
      return complete ? "loaded" : "partial";
    } catch (err) {
      notice(`recent history unavailable (${why(err)})`);
      return "unavailable";
    }
  }

  const offState = client.on("state", (state) => {
    if (state !== "connected") return;
    offState();
    loadHistory().then((outcome) => {
      document.body.dataset.history = outcome;
    });
  });

  return {
    client,
    /** ms when live counting began (null until the first connection). */
    get liveSince() {
      return liveSince;
    },
    /** The chart's data: complete seconds and their counts, and the time axis shown. */
    chart: () => ({ xs: [...buckets.xs], ys: [...buckets.ys], range: buckets.range(Date.now()) }),
    refreshMs: REFRESH_MS,
    staleMs: STALE_MS,
  };
}
