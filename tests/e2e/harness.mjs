// What the end-to-end tests share: the paths, the demo server (tests/e2e/serve.mjs), headless
// Chromium with WebGPU on SwiftShader, a page whose console and uncaught errors are logged, and the
// native CLI whose answers the page must match.
import { spawn, execFileSync } from "node:child_process";
import { createRequire } from "node:module";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export const repo = path.resolve(import.meta.dirname, "../..");
export const cache = process.env.ATTEND_CACHE ?? path.join(os.homedir(), ".cache/attend");
export const models = path.join(cache, "models");
export const fixtures = path.join(repo, "tests/reference");
export const CHROMIUM = "/usr/lib/chromium/chromium";
export const SMOLLM2 = "SmolLM2-135M-Instruct.Q4_1.gguf";

/** A free loopback port: bind port 0, note the port, release it. */
export async function freePort() {
  const s = net.createServer().listen(0, "127.0.0.1");
  await new Promise((r) => s.once("listening", r));
  const { port } = s.address();
  await new Promise((r) => s.close(r));
  return port;
}

/**
 * Starts the demo server on `root` (www/ unless given) at `port` with `env` added (MODELS_DIR,
 * FIXTURES_DIR, SPLIT_DIR: see serve.mjs); resolves with the process once it listens.
 */
export function serve(port, env = {}, root = path.join(repo, "www")) {
  const server = spawn(process.execPath, [path.join(repo, "tests/e2e/serve.mjs"), root, String(port)], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "inherit"],
  });
  return new Promise((resolve, reject) => {
    server.stdout.once("data", () => resolve(server));
    server.once("exit", (code) => reject(new Error(`the server exited with ${code}`)));
  });
}

/**
 * Headless Chromium with WebGPU (SwiftShader) and a fresh profile named after `tag`; a persistent
 * context, so that the service worker, OPFS and the cache survive a reload as in a real browser.
 */
export function launch(tag) {
  // Loaded here, not on import: the tests without a browser need no playwright-core.
  const { chromium } = createRequire(path.join(cache, "npm/"))("playwright-core");
  return chromium.launchPersistentContext(fs.mkdtempSync(path.join(os.tmpdir(), `attend-${tag}-`)), {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--enable-unsafe-webgpu", "--no-sandbox", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--disable-quic"],
  });
}

/**
 * The browser's first page with its uncaught errors (and, with `logConsole`, its console) logged;
 * `errors` collects the uncaught ones so that a test can require none.
 */
export async function openPage(browser, { logConsole = true } = {}) {
  const page = browser.pages()[0] ?? (await browser.newPage());
  if (logConsole) page.on("console", (m) => console.log(`[page] ${m.text()}`));
  const errors = [];
  page.on("pageerror", (e) => { errors.push(e.message); console.log(`[page error] ${e.message}`); });
  return { page, errors };
}

/**
 * Runs the native CLI (ATTEND_BIN, else the debug build) and returns its stdout. The page decodes
 * with 8-bit activations (a browser's CPU adapter defaults to them where the model allows), so the
 * native reference is asked to compute the same way (`ATTEND_MATVEC_Q8=1`) rather than with the
 * f32 activations that lavapipe's defaults would pick.
 */
export function attend(args) {
  const bin = process.env.ATTEND_BIN ?? path.join(repo, "target/debug/attend");
  return execFileSync(bin, args, { encoding: "utf8", env: { ...process.env, ATTEND_MATVEC_Q8: "1" } });
}
