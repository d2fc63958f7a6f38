// The chat page under the Content-Security-Policy tests/e2e/serve.mjs sends: headless Chromium
// loads it, app.js must run (it replaces "Checking WebGPU…") and the console must report no
// policy violation. A page with an inline script and style is the control: its violations are
// reported. (The full chat flow under the policy is tests/e2e/chat.test.mjs.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { repo, CHROMIUM, freePort, serve } from "./harness.mjs";

/** Serves `root`, loads it in headless Chromium; returns the final DOM and the console log. */
async function load(root) {
  const port = await freePort();
  const server = await serve(port, {}, root);
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "attend-csp-"));
  try {
    return await new Promise((resolve, reject) =>
      execFile(CHROMIUM, ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", `--user-data-dir=${profile}`,
        "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom", `http://127.0.0.1:${port}/`],
      { timeout: 60_000, maxBuffer: 16 << 20 }, (err, dom, log) => (err ? reject(err) : resolve({ dom, log }))));
  } finally {
    server.kill();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

test("the chat page runs under the policy without violations", { timeout: 120_000 }, async () => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing (apt-get install chromium)`);
  const { dom, log } = await load(path.join(repo, "www"));
  const violations = log.split("\n").filter((l) => /Content Security Policy/i.test(l));
  assert.deepEqual(violations, []);
  const gpu = /<p id="gpu"[^>]*>([^<]*)/.exec(dom)?.[1] ?? "";
  assert.ok(gpu && !gpu.startsWith("Checking WebGPU"), `app.js did not run: #gpu says ${JSON.stringify(gpu)}`);

  // Control: the same check catches inline code.
  const bad = fs.mkdtempSync(path.join(os.tmpdir(), "attend-csp-bad-"));
  fs.writeFileSync(path.join(bad, "index.html"), '<!doctype html><p style="color:red">x</p><script>document.title="ran"</script>');
  try {
    const control = await load(bad);
    assert.match(control.log, /Executing inline script violates the following Content Security Policy/);
    assert.match(control.log, /inline style violates the following Content Security Policy/);
  } finally {
    fs.rmSync(bad, { recursive: true, force: true });
  }
});
