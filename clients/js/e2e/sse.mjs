// Drives clients/js/e2e/sse.html (a plain EventSource) in real headless Chromium for tests/test_browser_sse.py.
//
// Env: PAGE_URL (the page to open). Protocol on stdin/stdout, one JSON object per line:
//   -> {"ready": true, "state": "..."}        once the page has loaded
//   <- {"state": "open"}                       wait until #state shows that text
//   -> {"state": "...", "notes": [...]}
//   <- {"expect": N, "prefix": "public.x."}    wait until N events with that topic prefix are listed
//   -> {"events": [{"topic", "seq", "cursor", "data", "id"}...], "state": "..."}
//   <- {"quit": true}
import { createInterface } from "node:readline";
import { TIMEOUT, openPage, out } from "./browser.mjs";

const { browser, page, logs } = await openPage();
const state = () => page.locator("#state").innerText();
const notes = () => page.$$eval("#notes li", (items) => items.map((li) => li.textContent));

try {
  await page.goto(process.env.PAGE_URL);
  out({ ready: true, state: await state() });
  for await (const line of createInterface({ input: process.stdin })) {
    const cmd = JSON.parse(line);
    if (cmd.quit) break;
    if (cmd.state) {
      await page.waitForFunction((s) => document.querySelector("#state")?.textContent?.trim() === s, cmd.state, {
        timeout: TIMEOUT,
      });
      out({ state: await state(), notes: await notes() });
    } else if (cmd.expect !== undefined) {
      const selector = `#events li[data-topic^="${cmd.prefix}"]`;
      await page.waitForFunction(([sel, n]) => document.querySelectorAll(sel).length >= n, [selector, cmd.expect], {
        timeout: TIMEOUT,
      });
      const events = await page.$$eval(selector, (items) =>
        items.map((li) => ({
          topic: li.dataset.topic,
          seq: Number(li.dataset.seq),
          cursor: Number(li.dataset.cursor),
          data: JSON.parse(li.dataset.data),
          id: li.dataset.id,
        })),
      );
      out({ events, state: await state(), notes: await notes() });
    }
  }
} catch (err) {
  out({ error: String(err), logs });
  process.exitCode = 1;
} finally {
  await browser.close();
  process.exit(process.exitCode ?? 0); // stdin may still be open: don't wait for it
}
