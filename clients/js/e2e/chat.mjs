// Drives one page of examples/flask_chat in real headless Chromium for tests/test_flask_chat.py.
//
// Env: PAGE_URL (a room's page). Protocol on stdin/stdout, one JSON object per line:
//   -> {"ready": true, "state", "history", "notice", "messages": [...]}   once the page loaded its history
//   <- {"send": {"text": "...", "name": "..."}}   fill the form, click Send, wait for the app's answer
//   -> {"refused": "..." | "", "messages": [...]}  (#error's text; "" when the message was taken)
//   <- {"wait": "text"}                          wait until a message with exactly this text is listed
//   -> {"messages": [...]}
//   <- {"state": "reconnecting"}                 wait until #state shows that text
//   -> {"state": "...", "notice": "..."}
//   <- {"inspect": true}                          what the page holds besides the messages' text
//   -> {"messages": [...], "pwned": null | value, "elements": N}   (elements: tags inside message text)
//   <- {"quit": true}
// A message is {"user", "text", "history": bool}. A failure answers {"error": ..., "logs": [...]}.
import { createInterface } from "node:readline";
import { TIMEOUT, openPage, out } from "./browser.mjs";

const { browser, page, logs } = await openPage();

const messages = () =>
  page.$$eval("#messages li", (items) =>
    items.map((li) => ({
      user: li.querySelector(".user").textContent,
      text: li.querySelector(".text").textContent,
      history: li.dataset.history !== undefined,
    })),
  );
const text = (selector) => page.locator(selector).innerText();

try {
  await page.goto(process.env.PAGE_URL);
  await page.waitForFunction(() => document.body.dataset.history !== undefined, null, { timeout: TIMEOUT });
  out({
    ready: true,
    state: await text("#state"),
    history: await page.evaluate(() => document.body.dataset.history),
    notice: await page.evaluate(() => document.querySelector("#notice").textContent), // may be hidden
    messages: await messages(),
  });
  for await (const line of createInterface({ input: process.stdin })) {
    const cmd = JSON.parse(line);
    if (cmd.quit) break;
    if (cmd.send) {
      if (cmd.send.name !== undefined) await page.fill("#name", cmd.send.name);
      await page.fill("#text", cmd.send.text);
      const before = await page.evaluate(() => Number(document.body.dataset.posts || 0));
      await page.click("#send button");
      await page.waitForFunction((n) => Number(document.body.dataset.posts || 0) > n, before, { timeout: TIMEOUT });
      const refused = await page.evaluate(() => {
        const error = document.querySelector("#error");
        return error.hidden ? "" : error.textContent;
      });
      out({ refused, messages: await messages() });
    } else if (cmd.wait !== undefined) {
      await page.waitForFunction(
        (t) => [...document.querySelectorAll("#messages li .text")].some((el) => el.textContent === t),
        cmd.wait,
        { timeout: TIMEOUT },
      );
      out({ messages: await messages() });
    } else if (cmd.state) {
      await page.waitForFunction((s) => document.querySelector("#state").textContent === s, cmd.state, {
        timeout: TIMEOUT,
      });
      out({ state: await text("#state"), notice: await text("#notice") });
    } else if (cmd.inspect) {
      const pwned = await page.evaluate(() => window.pwned ?? null);
      const elements = await page.$$eval("#messages .text *", (found) => found.length);
      out({ messages: await messages(), pwned, elements });
    }
  }
} catch (err) {
  out({ error: String(err), logs });
  process.exitCode = 1;
} finally {
  await browser.close();
  process.exit(process.exitCode ?? 0);
}
