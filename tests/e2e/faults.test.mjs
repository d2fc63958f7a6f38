// Faults through the attend-llm package in headless Chromium (issue #8): a 404, a network error
// and a CORS refusal are reported as such (distinct messages), and a trap inside the wasm engine
// rejects the pending call, makes later calls fail with "load the model again" instead of
// "already answering", and a new Engine.load (a new worker) works. Uses the tiny Qwen2 fixture.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fixtures, serve, launch, openPage } from "./harness.mjs";

const PORT = 18000 + Math.floor(Math.random() * 1000);
const BASE = `http://127.0.0.1:${PORT}`;
const OTHER = `http://127.0.0.1:${PORT + 1}`; // another origin, without CORS headers

test("download errors are told apart; a trapped engine is replaced", { timeout: 10 * 60_000 }, async () => {
  const servers = [await serve(PORT, { FIXTURES_DIR: fixtures }), await serve(PORT + 1, { FIXTURES_DIR: fixtures })];
  const browser = await launch("faults");
  try {
    const { page } = await openPage(browser, { logConsole: false });
    // A same-origin document without the chat page's CSP (which would block the cross-origin
    // request before CORS is even asked), so the worker meets CORS as an app on another site would.
    await page.goto(`${BASE}/manifest.json`);
    const errors = await page.evaluate(async ([base, other]) => {
      const { Engine } = await import("/attend-llm/index.js");
      const attempt = async (url) => {
        try {
          await Engine.load(url, { cache: false });
          return "loaded";
        } catch (e) {
          return e.message;
        }
      };
      return {
        missing: await attempt(`${base}/fixtures/no-such-model.gguf`),
        network: await attempt("http://127.0.0.1:1/model.gguf"),
        cors: await attempt(`${other}/fixtures/tiny-qwen2.gguf`),
      };
    }, [BASE, OTHER]);
    console.log(JSON.stringify(errors, null, 1));
    assert.match(errors.missing, /HTTP 404 \(not found: check the URL\)/);
    assert.match(errors.network, /network error/);
    assert.doesNotMatch(errors.network, /CORS/);
    assert.match(errors.cors, /blocked by the browser \(CORS\)/);
    assert.doesNotMatch(errors.cors, /network error/);

    const trap = await page.evaluate(async (base) => {
      const { Engine } = await import("/attend-llm/index.js");
      const url = `${base}/fixtures/tiny-qwen2.gguf`;
      const outcome = (p) => p.then(() => "resolved", (e) => `${e.name}: ${e.message}`);
      const worker = new Worker("/attend-llm/worker.js", { type: "module" });
      const engine = await Engine.load(url, { worker, cache: false });
      const request = { messages: [{ role: "user", content: "Hi" }], max_tokens: 60, temperature: 0 };
      const pending = outcome(engine.chat.completions.create(request));
      worker.postMessage({ id: -1, type: "debug.trap" }); // lands while the chat holds the engine
      const first = await pending;
      const later = await outcome(engine.info());
      const fresh = await Engine.load(url, { cache: false });
      const res = await fresh.chat.completions.create({ ...request, max_tokens: 3 });
      await fresh.unload();
      return { first, later, tokens: res.usage.completion_tokens };
    }, BASE);
    console.log(JSON.stringify(trap));
    assert.match(trap.first, /^EngineCrashed: the engine crashed \(.*\); load the model again$/);
    assert.match(trap.later, /^EngineCrashed: .*load the model again/);
    assert.doesNotMatch(trap.later, /already answering|recursive use/);
    assert.ok(trap.tokens >= 1);
  } finally {
    await browser.close();
    for (const s of servers) s.kill();
  }
});
