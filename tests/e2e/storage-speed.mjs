// Measures OPFS vs Cache API write/read speed in headless Chromium (the reason attend caches
// models in OPFS). Not a test: prints one JSON line. Usage: node tests/e2e/storage-speed.mjs
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const cache = process.env.ATTEND_CACHE ?? path.join(os.homedir(), ".cache/attend");
const { chromium } = createRequire(path.join(cache, "npm/"))("playwright-core");
const here = import.meta.dirname;
const port = 19000 + Math.floor(Math.random() * 1000);
const server = spawn(process.execPath, [path.join(here, "serve.mjs"), path.join(here, "storage"), String(port)], { stdio: ["ignore", "pipe", "inherit"] });
await new Promise((r) => server.stdout.once("data", r));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "attend-storage-"));
const browser = await chromium.launchPersistentContext(dir, {
  executablePath: "/usr/lib/chromium/chromium", headless: true,
  args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  const page = browser.pages()[0] ?? (await browser.newPage());
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.waitForFunction(() => window.result, null, { timeout: 300_000 });
  console.log(JSON.stringify(await page.evaluate(() => window.result)));
} finally {
  await browser.close();
  server.kill();
}
