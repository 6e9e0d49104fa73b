// The dashboard served at `/` (index.html): connection badge, per-topic live
// stream with events/s over the last 10 s, and a uPlot chart of total events/s.
// Bundled by build.mjs into dist/dashboard.js (+ dist/dashboard.css for uPlot).
// It takes the client from dist/broker.js, so autobahn is not bundled twice.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { EVENTS_CAP, capNote, matchesFilter, trimOldest } from "./dashboard-events.js";

const WINDOW = 10; // seconds behind each per-topic rate
const HISTORY = 300; // seconds the chart keeps
const INITIAL = 60; // seconds the chart shows at first (it grows to HISTORY)

/** Counts per second in a ring of `WINDOW` slots; `rate(now)` is events/s over the last WINDOW s. */
class RateWindow {
  constructor() {
    this.slots = new Uint32Array(WINDOW);
    this.sec = 0;
  }
  advance(sec) {
    if (sec - this.sec >= WINDOW) this.slots.fill(0);
    else for (let s = this.sec + 1; s <= sec; s++) this.slots[s % WINDOW] = 0;
    if (sec > this.sec) this.sec = sec;
  }
  add(sec) {
    this.advance(sec);
    this.slots[sec % WINDOW]++;
  }
  rate(sec) {
    this.advance(sec);
    let sum = 0;
    for (const n of this.slots) sum += n;
    return sum / WINDOW;
  }
}

const nowSec = () => Math.floor(Date.now() / 1000);
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

/** The total-events/s chart: one point per second, the last HISTORY seconds. */
function makeChart(container) {
  const xs = [];
  const ys = [];
  const start = nowSec();
  for (let s = start - INITIAL + 1; s <= start; s++) {
    xs.push(s);
    ys.push(0);
  }
  let plot = null;
  const size = () => ({ width: Math.max(200, container.clientWidth), height: Math.max(160, container.clientHeight) });

  function create() {
    const fg = cssVar("--muted", "#888");
    const grid = cssVar("--grid", "rgba(128,128,128,.15)");
    const accent = cssVar("--accent", "#6366f1");
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 }, font: "11px system-ui, sans-serif" };
    plot?.destroy();
    plot = new uPlot(
      {
        ...size(),
        legend: { show: false },
        cursor: { drag: { x: false, y: false }, points: { size: 6 } },
        scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(1, max * 1.15)] } },
        axes: [axis, { ...axis, size: 44, values: (u, splits) => splits.map((v) => (v % 1 ? v.toFixed(1) : v)) }],
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
      },
      [xs, ys],
      container,
    );
  }
  create();
  new ResizeObserver(() => plot?.setSize(size())).observe(container);
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", create);

  return {
    /** Set each second's count ({sec: count}), extending the time axis to the latest second. */
    update(counts) {
      const latest = Math.max(nowSec(), ...counts.keys());
      while (xs[xs.length - 1] < latest) {
        xs.push(xs[xs.length - 1] + 1);
        ys.push(0);
      }
      while (xs.length > HISTORY) {
        xs.shift();
        ys.shift();
      }
      for (const [sec, n] of counts) {
        const i = sec - xs[0];
        if (i >= 0 && i < xs.length) ys[i] = n;
      }
      plot.setData([xs, ys]);
    },
  };
}

/**
 * Mounts the dashboard on the page's existing elements (see index.html) and
 * subscribes to `prefix` with recovery. `#events` gets one
 * `<li data-topic data-seq data-cursor data-data>` per event, newest first
 * (tests/test_browser.py reads them), and keeps the newest `maxEvents`:
 * older rows are removed and `#events-note` says so.
 */
export function startDashboard({ connect, url, realm = "app", prefix = "public.", maxEvents = EVENTS_CAP }) {
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
  const chart = makeChart($("chart"));

  const total = new RateWindow();
  const topics = new Map(); // topic -> {rate, count, seq, last, row, cells}
  let totalCount = 0;
  let lastEventAt = 0;
  const perSecond = new Map(); // the last few seconds' totals, for the chart
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

  function onEvent(data, meta) {
    const position = meta.position || {};
    const json = JSON.stringify(data ?? null);
    const now = Date.now();
    const sec = Math.floor(now / 1000);

    const li = el(
      "li",
      {},
      el("time", { className: "time", textContent: new Date(now).toLocaleTimeString() }),
      el("span", { className: "topic", textContent: meta.topic, title: meta.topic }),
      el("span", { className: "seq", textContent: position.seq != null ? `#${position.seq}` : "" }),
      el("code", { className: "data", textContent: json }),
    );
    li.dataset.topic = meta.topic;
    li.dataset.seq = position.seq ?? "";
    li.dataset.cursor = position.cursor ?? "";
    li.dataset.data = json;
    if (meta.recovered) {
      li.classList.add("recovered");
      li.title = "recovered after a reconnect";
    }
    li.hidden = !matchesFilter(meta.topic, filter);
    events.prepend(li); // newest first; only the newest maxEvents stay listed
    const removed = trimOldest(events, maxEvents);
    if (removed) {
      dropped += removed;
      eventsNote.textContent = capNote(dropped, maxEvents);
      eventsNote.hidden = false;
    }

    const t = topicRow(meta.topic);
    t.rate.add(sec);
    t.count++;
    t.seq = position.seq ?? t.seq;
    t.last = now;
    t.row.classList.remove("flash");
    void t.row.offsetWidth; // restart the highlight animation
    t.row.classList.add("flash");
    total.add(sec);
    totalCount++;
    lastEventAt = now;
    perSecond.set(sec, (perSecond.get(sec) || 0) + 1);
    render();
  }

  let scheduled = false;
  function render() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => {
      scheduled = false;
      const sec = nowSec();
      const now = Date.now();
      let max = 0;
      const rates = new Map();
      for (const [topic, t] of topics) {
        const r = t.rate.rate(sec);
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
        t.cells.age.textContent = fmtAge(now - t.last);
        t.row.classList.toggle("idle", r === 0);
      }
      // busiest topics first
      const order = [...topics.values()].sort((a, b) => rates.get(b.row.dataset.topic) - rates.get(a.row.dataset.topic) || b.last - a.last);
      order.forEach((t, i) => {
        if (topicsBody.children[i] !== t.row) topicsBody.insertBefore(t.row, topicsBody.children[i] || null);
      });
      $("stat-rate").textContent = fmtRate(total.rate(sec));
      $("stat-total").textContent = totalCount.toLocaleString();
      $("stat-topics").textContent = topics.size.toLocaleString();
      $("stat-last").textContent = lastEventAt ? fmtAge(now - lastEventAt) : "—";
    });
  }

  // once a second: update the chart's last points and refresh rates and ages
  setInterval(() => {
    const sec = nowSec();
    chart.update(perSecond);
    for (const s of perSecond.keys()) if (s < sec - 2) perSecond.delete(s);
    render();
  }, 1000);
  render();

  client.subscribe(prefix, onEvent, {
    match: "prefix",
    recover: true,
    onUnrecoverable: (info) => notice(`some events could not be recovered (${info.reason}); continuing live`),
    onError: (err) => notice(`subscription refused: ${err.message}`),
  });
  return client;
}
