// The one way the e2e drivers (chat, dashboard, sse, watch) start a browser: headless Debian
// Chromium at $CHROMIUM with the team's flags (`npx playwright install` cannot work here), and
// the line protocol's writer. openPage() also keeps the page's console and errors in `logs`.
import { chromium } from "playwright-core";

export const TIMEOUT = Number(process.env.WAIT_MS || 30000);
export const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
];

/** One JSON object per line on stdout: the drivers' answers to tests/chromium.py. */
export const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

/** Chromium, started with FLAGS. */
export const launch = () =>
  chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium", args: FLAGS });

/** A browser and one page (`options` as playwright's newPage) whose console and errors go to `logs`. */
export async function openPage(options = {}) {
  const browser = await launch();
  const page = await browser.newPage(options);
  const logs = [];
  page.on("console", (msg) => logs.push(`${msg.type()}: ${msg.text()}`));
  page.on("pageerror", (err) => logs.push(`pageerror: ${err.message}`));
  return { browser, page, logs };
}
