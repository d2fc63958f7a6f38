// Drives tests/perf/browser/ in headless Chromium (WebGPU on SwiftShader): attend's engine.bench()
// and wllama (llama.cpp in wasm, CPU) on the same GGUF and token counts, in one browser session.
// Prints one JSON line per peer on stdout (progress on stderr).
// usage: node tests/perf/browser_bench.mjs MODEL.gguf [PROMPT_TOKENS] [GEN_TOKENS] [REPEAT]
// env: ATTEND_CACHE (models, npm), BROWSER_PEERS (default attend,wllama), WLLAMA_THREADS (default 1; >1 serves the page cross-origin
// isolated so wllama can use its pthread build), BROWSER_TIMEOUT_S (default 1800), ATTEND_TUNE (attend's `tune` load
// option, default auto), PROFILE=1 (attend's BENCH line also holds GPU time per kernel, `profile`).
// Needs www/attend-llm/wasm (./build.sh pkg) and @wllama/wllama + playwright-core in $ATTEND_CACHE/npm.
import http from "node:http";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { createRequire } from "node:module";

const cache = process.env.ATTEND_CACHE ?? path.join(os.homedir(), ".cache/attend");
const npm = path.join(cache, "npm");
const { chromium } = createRequire(npm + "/")("playwright-core");
const repo = path.resolve(import.meta.dirname, "../..");
const modelPath = path.resolve(process.argv[2] ?? path.join(cache, "models/SmolLM2-135M-Instruct.Q4_1.gguf"));
const [n, gen, repeat] = [process.argv[3] ?? 32, process.argv[4] ?? 16, process.argv[5] ?? 1].map(Number);
const threads = Number(process.env.WLLAMA_THREADS ?? 1);
const timeoutMs = Number(process.env.BROWSER_TIMEOUT_S ?? 1800) * 1e3;

const peers = process.env.BROWSER_PEERS ?? "attend,wllama";
const wllamaDir = path.join(npm, "node_modules/@wllama/wllama/esm");
const needs = [["model", modelPath]];
if (peers.includes("attend")) needs.push(["attend-llm wasm (run ./build.sh pkg)", path.join(repo, "www/attend-llm/wasm/attend_bg.wasm")]);
if (peers.includes("wllama")) needs.push(["@wllama/wllama (npm install --prefix $ATTEND_CACHE/npm @wllama/wllama@3.13.0)", path.join(wllamaDir, "wasm/wllama.wasm")]);
for (const [what, p] of needs) {
  if (!fs.existsSync(p)) {
    console.error(`missing ${what}: ${p}`);
    process.exit(2);
  }
}

// A loopback-only static server for four folders; the model is the one file under /models/.
const mounts = [
  ["/attend-llm/", path.join(repo, "www/attend-llm")],
  ["/wllama/", wllamaDir],
  ["/", path.join(repo, "tests/perf/browser")],
];
const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript",
  ".wasm": "application/wasm", ".json": "application/json" };
const modelName = path.basename(modelPath);
const server = http.createServer((req, res) => {
  const headers = {};
  if (threads > 1) {
    headers["Cross-Origin-Opener-Policy"] = "same-origin";
    headers["Cross-Origin-Embedder-Policy"] = "require-corp";
  }
  const pathname = decodeURIComponent(req.url.split("?")[0]);
  let file = null;
  if (pathname === `/models/${modelName}`) file = modelPath;
  else {
    for (const [prefix, dir] of mounts) {
      if (!pathname.startsWith(prefix)) continue;
      const f = path.resolve(dir, "." + pathname.slice(prefix.length - 1));
      if (f.startsWith(dir + path.sep)) file = f.endsWith(path.sep) ? path.join(f, "index.html") : f;
      break;
    }
    if (pathname === "/") file = path.join(repo, "tests/perf/browser/index.html");
  }
  if (!file || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
    res.writeHead(404, headers);
    return res.end("not found\n");
  }
  const size = fs.statSync(file).size;
  res.writeHead(200, { ...headers, "Content-Type": types[path.extname(file)] ?? "application/octet-stream",
    "Content-Length": size, "Cache-Control": "no-store" });
  if (req.method === "HEAD") return res.end();
  fs.createReadStream(file).pipe(res);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const port = server.address().port;

const userDir = fs.mkdtempSync(path.join(os.tmpdir(), "attend-perf-"));
const browser = await chromium.launchPersistentContext(userDir, {
  executablePath: "/usr/lib/chromium/chromium",
  headless: true,
  args: ["--enable-unsafe-webgpu", "--no-sandbox", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
    // Unquantized timestamp queries (Chromium rounds them to 100 µs otherwise), for PROFILE=1 only.
    ...(process.env.PROFILE === "1" ? ["--enable-webgpu-developer-features"] : [])],
});
let failed = false;
try {
  const page = browser.pages()[0] ?? (await browser.newPage());
  page.on("console", (m) => {
    const t = m.text();
    if (t.startsWith("BENCH ")) console.log(t.slice(6));
    else console.error(`[page] ${t}`);
    if (t.startsWith("BENCH_ERROR")) failed = true;
  });
  // The engine runs in a worker: its console (panics, warnings) goes to stderr too.
  page.on("worker", (w) => w.on("console", (m) => console.error(`[worker] ${m.text()}`)));
  page.on("pageerror", (e) => {
    console.error(`[page error] ${e.message}`);
    failed = true;
  });
  const q = new URLSearchParams({
    model: modelName, n, gen, repeat, threads, peers, tune: process.env.ATTEND_TUNE ?? "auto",
    profile: process.env.PROFILE === "1" ? "1" : "0",
  });
  await page.goto(`http://127.0.0.1:${port}/?${q}`);
  await page.waitForFunction(() => document.title === "done" || document.title === "failed", null, { timeout: timeoutMs });
  if ((await page.title()) === "failed") failed = true;
} finally {
  await browser.close();
  server.close();
  fs.rmSync(userDir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
