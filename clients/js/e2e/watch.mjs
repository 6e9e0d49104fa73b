// Drives a page in real headless Chromium (Debian's, via playwright-core) for tests/test_browser.py.
//
// Env: PAGE_URL (the page to open), NO_WEBSOCKET=1 (remove window.WebSocket before any script runs),
// IGNORE_HTTPS_ERRORS=1 (trust a test's self-signed certificate).
// Protocol on stdin/stdout, one JSON object per line:
//   -> {"ready": true, "state": "..."}        once the page reports "connected"
//   <- {"expect": N, "prefix": "public.x."}    wait until N events with that topic prefix are listed
//   -> {"events": [{"topic", "seq", "cursor", "data"}...], "state": "..."}
//   <- {"error": "text"}                       wait until an #errors item contains the text
//   -> {"errors": ["..."]}
//   <- {"state": "connected"}                  wait until #state shows that text
//   -> {"state": "..."}
//   <- {"quit": true}
import { createInterface } from "node:readline";
import { TIMEOUT, openPage, out } from "./browser.mjs";

const { browser, page, logs } = await openPage({ ignoreHTTPSErrors: process.env.IGNORE_HTTPS_ERRORS === "1" });
if (process.env.NO_WEBSOCKET === "1") {
  await page.addInitScript(() => {
    delete window.WebSocket;
  });
}

const state = () => page.locator("#state").innerText();

try {
  await page.goto(process.env.PAGE_URL);
  await page.waitForFunction(() => document.querySelector("#state")?.textContent?.includes("connected"), null, {
    timeout: TIMEOUT,
  });
  out({ ready: true, state: await state() });
  for await (const line of createInterface({ input: process.stdin })) {
    const cmd = JSON.parse(line);
    if (cmd.quit) break;
    if (cmd.error) {
      await page.waitForFunction(
        (t) => [...document.querySelectorAll("#errors li")].some((li) => li.textContent.includes(t)),
        cmd.error,
        { timeout: TIMEOUT },
      );
      out({ errors: await page.$$eval("#errors li", (items) => items.map((li) => li.textContent)) });
    } else if (cmd.state) {
      await page.waitForFunction((s) => document.querySelector("#state")?.textContent?.trim() === s, cmd.state, {
        timeout: TIMEOUT,
      });
      out({ state: await state() });
    } else if (cmd.expect !== undefined) {
      const selector = `#events li[data-topic^="${cmd.prefix}"]`;
      await page.waitForFunction(
        ([sel, n]) => document.querySelectorAll(sel).length >= n,
        [selector, cmd.expect],
        { timeout: TIMEOUT },
      );
      const events = await page.$$eval(selector, (items) =>
        items.map((li) => ({
          topic: li.dataset.topic,
          seq: Number(li.dataset.seq),
          cursor: Number(li.dataset.cursor),
          data: li.dataset.data === undefined ? null : JSON.parse(li.dataset.data),
        })),
      );
      out({ events, state: await state() });
    }
  }
} catch (err) {
  out({ error: String(err), logs });
  process.exitCode = 1;
} finally {
  await browser.close();
  process.exit(process.exitCode ?? 0); // stdin may still be open: don't wait for it
}
