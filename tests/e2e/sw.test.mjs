// The service worker (www/sw.js) in a simulated worker scope: it must answer and cache only the
// app-shell files it lists, and leave every other request (models, other same-origin paths,
// other origins) to the network, uncached. Needs only node.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import vm from "node:vm";

const repo = path.resolve(import.meta.dirname, "../..");
const SCOPE = "http://127.0.0.1:8080/";

function loadWorker() {
  const handlers = {};
  const stored = new Map(); // cache name -> Map(url -> response)
  const cache = (name) => {
    if (!stored.has(name)) stored.set(name, new Map());
    const m = stored.get(name);
    const key = (k) => (typeof k === "string" ? new URL(k, SCOPE).href : k.url);
    return {
      put: async (k, r) => void m.set(key(k), r),
      addAll: async (files) => files.forEach((f) => m.set(new URL(f, SCOPE).href, { ok: true })),
      match: async (k) => m.get(key(k)),
    };
  };
  const ctx = {
    URL,
    Promise,
    Set,
    location: new URL(SCOPE),
    Response: { error: () => ({ error: true }) },
    fetch: async (req) => ({ ok: true, type: "basic", url: req.url, clone() { return this; } }),
    caches: {
      open: async (name) => cache(name),
      keys: async () => [...stored.keys()],
      delete: async (name) => stored.delete(name),
      match: async (k) => { for (const n of stored.keys()) { const r = await cache(n).match(k); if (r) return r; } },
    },
  };
  ctx.self = {
    registration: { scope: SCOPE },
    addEventListener: (type, fn) => (handlers[type] = fn),
    skipWaiting: async () => {},
    clients: { claim: async () => {} },
  };
  vm.createContext(ctx);
  vm.runInContext(fs.readFileSync(path.join(repo, "www/sw.js"), "utf8"), ctx);
  const cachedUrls = () => [...stored.values()].flatMap((m) => [...m.keys()]);
  async function request(url, method = "GET") {
    let answered = null;
    handlers.fetch({ request: { url, method }, respondWith: (p) => (answered = p) });
    if (answered) await answered;
    await new Promise((r) => setTimeout(r, 10)); // the cache write is not awaited by the worker
    return answered !== null;
  }
  return { handlers, request, cachedUrls };
}

test("the service worker caches only the app shell", async () => {
  const sw = loadWorker();
  let done;
  sw.handlers.install({ waitUntil: (p) => (done = p) });
  await done;
  const shell = sw.cachedUrls();
  assert.ok(shell.includes(`${SCOPE}app.js`) && shell.includes(`${SCOPE}attend-llm/wasm/attend_bg.wasm`), shell.join());

  for (const u of ["", "?max_tokens=12", "index.html", "app.js", "attend-llm/worker.js"]) {
    assert.ok(await sw.request(SCOPE + u), `${u} (a shell file) is served by the worker`);
  }
  for (const u of [
    `${SCOPE}models/SmolLM2.gguf`,
    `${SCOPE}__ranges`,
    `${SCOPE}fixtures/data.json`,
    `${SCOPE}api/secret?token=1`,
    `${SCOPE}app.js.map`,
    "https://huggingface.co/x/model.bin",
  ]) {
    assert.equal(await sw.request(u), false, `${u} must pass through the worker`);
  }
  assert.equal(await sw.request(`${SCOPE}app.js`, "POST"), false);
  const after = sw.cachedUrls();
  for (const u of after) {
    assert.ok(shell.includes(u), `${u} was cached but is not an app-shell file`);
  }
});
