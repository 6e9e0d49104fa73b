// Drives the dashboard (index.html) in real headless Chromium for tests/test_dashboard.py.
//
// Env: PAGE_URL (the page to open), WIDTH/HEIGHT (viewport, default 1440x1000).
// Protocol on stdin/stdout, one JSON object per line (like watch.mjs):
//   -> {"ready": true, "state": "...", "history": "loaded" | "partial" | "unavailable"}
//                                                       once #state shows "connected" and the history load is done
//   <- {"chart": true, "points": K}                     once the chart has K complete seconds: its data and its time labels' boxes
//   -> {"xs", "ys", "range", "liveSince", "now", "arrivals": [ms...], "labels": [{"text", "left", "right", "top", "bottom"}...], "box": {"left", "right"}}
//   <- {"rate": true}                                   the events/s shown, as the page computed it
//   -> {"text", "rate", "at", "now", "liveSince", "staleMs", "topics": [{"topic", "rate", "text"}...], "topicsAt"}
//   <- {"history": N, "prefix": "public.x."}            wait for N rows from history under prefix
//   -> {"rows": [{"topic", "seq", "cursor", "data", "history", "time", "at"}...] (page order, all under prefix), "total": N}
//   <- {"expect": N, "prefix": "public.x.", "topics": K} wait for N events and K topic rows under prefix
//   -> {"topics": [{"topic", "rate", "count"}...], "events": N}
//   <- {"stream": true, "prefix": "public.x.", "last": C} wait until the event at cursor C is listed in #events
//   -> {"rows": [{"topic", "seq", "cursor", "data", "hidden"}...] (page order), "total": N, "note": "..." | null}
//   <- {"filter": "text"}                               type into the topic filter
//   -> {"filter": "text"}
//   <- {"inspect": true}
//   -> {"state", "transport", "canvas": {"width", "height"} | null, "errors": [...], "stats": {...}, "rows": N (in #events)}
//   <- {"operator": "secret"}                           sign in on the operator panel (page opened with ?operator)
//   -> {"sessions": "3", "subscriptions": "2", "status": "..."}
//   <- {"presence": "public.room.1", "count": N}        wait until the operator panel's presence row for that topic shows N sessions
//   -> {"count": "N", "users": "alice ×2, bob", "anonymous": "1", "events": ["12:00:01 join public.room.1 alice", ...]}
//   <- {"screenshot": "path.png", "colorScheme": "dark" | "light", "fullPage": false}
//   -> {"screenshot": "path.png"}
//   <- {"quit": true}
import { createInterface } from "node:readline";
import { TIMEOUT, launch, out } from "./browser.mjs";

const browser = await launch();
const page = await browser.newPage({
  viewport: { width: Number(process.env.WIDTH || 1440), height: Number(process.env.HEIGHT || 1000) },
  deviceScaleFactor: 1,
});
const logs = [];
const errors = [];
page.on("console", (msg) => {
  logs.push(`${msg.type()}: ${msg.text()}`);
  if (msg.type() === "error") errors.push(msg.text());
});
page.on("pageerror", (err) => errors.push(`pageerror: ${err.message}`));
page.on("requestfailed", (req) => errors.push(`requestfailed: ${req.url()} ${req.failure()?.errorText}`));
page.on("response", (res) => {
  if (res.status() >= 400) errors.push(`HTTP ${res.status()}: ${res.url()}`);
});

const text = (sel) => page.locator(sel).innerText();

try {
  await page.goto(process.env.PAGE_URL);
  await page.waitForFunction(
    () => document.querySelector("#state")?.textContent?.trim() === "connected" && !!document.body.dataset.history,
    null,
    { timeout: TIMEOUT },
  );
  out({ ready: true, state: await text("#state"), history: await page.evaluate(() => document.body.dataset.history) });
  for await (const line of createInterface({ input: process.stdin })) {
    const cmd = JSON.parse(line);
    if (cmd.quit) break;
    if (cmd.expect !== undefined) {
      await page.waitForFunction(
        ({ prefix, n, k }) =>
          document.querySelectorAll(`#events li[data-topic^="${prefix}"]`).length >= n &&
          document.querySelectorAll(`#topics tr[data-topic^="${prefix}"]`).length >= k,
        { prefix: cmd.prefix, n: cmd.expect, k: cmd.topics ?? 0 },
        { timeout: TIMEOUT },
      );
      await page.waitForTimeout(100); // one animation frame for the rates
      const topics = await page.$$eval(`#topics tr[data-topic^="${cmd.prefix}"]`, (rows) =>
        rows.map((tr) => ({
          topic: tr.dataset.topic,
          rate: Number(tr.dataset.rate),
          count: Number(tr.querySelector(".count").textContent.replace(/\D/g, "")),
        })),
      );
      const events = await page.locator(`#events li[data-topic^="${cmd.prefix}"]`).count();
      out({ topics, events });
    } else if (cmd.stream) {
      await page.waitForSelector(`#events li[data-cursor="${cmd.last}"]`, { state: "attached", timeout: TIMEOUT });
      const rows = await page.$$eval("#events li", (items) =>
        items.map((li) => ({
          topic: li.dataset.topic,
          seq: li.dataset.seq === "" ? null : Number(li.dataset.seq),
          cursor: li.dataset.cursor === "" ? null : Number(li.dataset.cursor),
          data: JSON.parse(li.dataset.data),
          hidden: li.hidden,
        })),
      );
      const note = await page.$eval("#events-note", (p) => (p.hidden ? null : p.textContent));
      out({ rows: rows.filter((r) => r.topic.startsWith(cmd.prefix)), total: rows.length, note });
    } else if (cmd.chart) {
      await page.waitForFunction((k) => window.brokerDashboard.chart().xs.length >= k, cmd.points ?? 0, { timeout: TIMEOUT });
      out(
        await page.evaluate(() => {
          const dash = window.brokerDashboard;
          const box = document.getElementById("chart").getBoundingClientRect();
          const labels = [...document.querySelectorAll("#chart .x-label")].map((l) => {
            const r = l.getBoundingClientRect();
            return { text: l.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom };
          });
          const arrivals = [...document.querySelectorAll("#events li")].map((li) => li.dataset.at).filter(Boolean).map(Number);
          return { ...dash.chart(), liveSince: dash.liveSince, now: Date.now(), arrivals, labels, box: { left: box.left, right: box.right } };
        }),
      );
    } else if (cmd.rate) {
      await page.waitForTimeout(50);
      out(
        await page.evaluate(() => {
          const dash = window.brokerDashboard;
          const stat = document.getElementById("stat-rate");
          const topics = [...document.querySelectorAll("#topics tr")].map((tr) => ({
            topic: tr.dataset.topic,
            rate: Number(tr.dataset.rate),
            text: tr.querySelector(".rate").textContent,
          }));
          return {
            text: stat.textContent,
            rate: Number(stat.dataset.rate),
            at: Number(stat.dataset.at),
            topicsAt: Number(document.getElementById("topics").dataset.at),
            now: Date.now(),
            liveSince: dash.liveSince,
            staleMs: dash.staleMs,
            topics,
          };
        }),
      );
    } else if (cmd.history !== undefined) {
      await page.waitForFunction(
        ({ prefix, n }) => document.querySelectorAll(`#events li.history[data-topic^="${prefix}"]`).length >= n,
        { prefix: cmd.prefix, n: cmd.history },
        { timeout: TIMEOUT },
      );
      const rows = await page.$$eval("#events li", (items) =>
        items.map((li) => ({
          topic: li.dataset.topic,
          seq: li.dataset.seq === "" ? null : Number(li.dataset.seq),
          cursor: li.dataset.cursor === "" ? null : Number(li.dataset.cursor),
          data: JSON.parse(li.dataset.data),
          history: li.classList.contains("history"),
          time: li.querySelector(".time").textContent,
          at: li.dataset.at === "" ? null : Number(li.dataset.at),
        })),
      );
      out({ rows: rows.filter((r) => r.topic.startsWith(cmd.prefix)), total: rows.length });
    } else if (cmd.filter !== undefined) {
      await page.fill("#filter", cmd.filter);
      out({ filter: await page.inputValue("#filter") });
    } else if (cmd.inspect) {
      const canvas = await page.$eval("#chart canvas", (c) => ({ width: c.width, height: c.height })).catch(() => null);
      const stats = {};
      for (const id of ["stat-rate", "stat-total", "stat-topics", "stat-last"]) stats[id] = await text(`#${id}`);
      const rows = await page.locator("#events li").count();
      out({ state: await text("#state"), transport: await text("#transport"), canvas, errors, stats, rows });
    } else if (cmd.operator !== undefined) {
      await page.waitForSelector("#operator:not([hidden]) form", { timeout: TIMEOUT });
      await page.fill("#operator input[name=secret]", cmd.operator);
      await page.click("#operator button[type=submit]");
      await page.waitForFunction(() => document.querySelector("#op-sessions") || document.querySelector(".op-status[data-kind=bad]"), null, { timeout: TIMEOUT });
      const sessions = await page.$eval("#op-sessions", (b) => b.textContent).catch(() => null);
      const subscriptions = await page.$eval("#op-subscriptions", (b) => b.textContent).catch(() => null);
      out({ sessions, subscriptions, status: await text(".op-status") });
    } else if (cmd.presence !== undefined) {
      const row = `#op-presence tr[data-topic="${cmd.presence}"]`;
      await page.waitForFunction(
        ([sel, n]) => document.querySelector(sel)?.children[1]?.textContent === String(n),
        [row, cmd.count],
        { timeout: TIMEOUT },
      );
      const cells = await page.$$eval(`${row} td`, (tds) => tds.map((td) => td.textContent));
      const events = await page.$$eval("#op-presence-events li", (lis) => lis.map((li) => li.textContent));
      out({ count: cells[1], users: cells[2], anonymous: cells[3], events });
    } else if (cmd.screenshot) {
      await page.emulateMedia({ colorScheme: cmd.colorScheme || "dark" });
      await page.waitForTimeout(300); // the chart redraws with the scheme's colours
      await page.screenshot({ path: cmd.screenshot, fullPage: !!cmd.fullPage });
      out({ screenshot: cmd.screenshot });
    }
  }
} catch (err) {
  out({ error: String(err), logs, errors });
  process.exitCode = 1;
} finally {
  await browser.close();
  process.exit(process.exitCode ?? 0); // stdin may still be open: don't wait for it
}
