// Cancelling Engine.load and a full storage quota, through the attend-llm package in headless
// Chromium (issue #8). A load cancelled while its download waits on a stalled server, while cached
// bytes stream to the GPU, or while the pipelines compile, rejects promptly with an AbortError,
// frees every GPU buffer it made (counted inside the worker: `debug.gpu`), leaves the worker able
// to load again, and a retry resumes the download from the cached part with a Range request; an
// unload leaves no buffer either. A QuotaExceededError from the cache write (the OPFS write
// stubbed to throw it) is reported as a full storage quota with both ways out, and `cache: false`
// then loads. SmolLM2 (98 MB, loaded once in full) and the tiny Qwen2 fixture.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { models, fixtures, serve, launch, openPage } from "./harness.mjs";

const PORT = 19000 + Math.floor(Math.random() * 1000);
const BASE = `http://127.0.0.1:${PORT}`;
const MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf";
const STALL = 40 << 20; // the server sends this much of the model, then nothing (connection open)
const URL_ = `${BASE}/models/${MODEL}?stall=${STALL}`;

let server, browser, page;

before(async () => {
  server = await serve(PORT, { MODELS_DIR: models, FIXTURES_DIR: fixtures });
  browser = await launch("cancel");
  ({ page } = await openPage(browser, { logConsole: false }));
  // A page without the chat page's CSP, so that a test worker can be built from a blob: URL.
  await page.goto(`${BASE}/manifest.json`);
  await page.evaluate(() => {
    // A request to the worker in its own protocol, beside the package's (negative ids).
    let next = -1;
    const ask = (worker, type) => new Promise((resolve) => {
      const id = next--;
      const on = (e) => {
        if (e.data.id !== id) return;
        worker.removeEventListener("message", on);
        resolve(e.data.value);
      };
      worker.addEventListener("message", on);
      worker.postMessage({ id, type });
    });
    // The GPU buffers still alive in a worker, from every load it ran.
    globalThis.gpuOf = (worker) => ask(worker, "debug.gpu");
    // What an unload leaves behind (Engine.unload would end the worker before we could ask).
    globalThis.unloadOf = async (worker) => {
      await ask(worker, "unload");
      const left = await gpuOf(worker);
      worker.terminate();
      return left;
    };
    globalThis.sleep = (ms) => new Promise((r) => setTimeout(r, ms));
    globalThis.outcome = (p) => p.then(() => "loaded", (e) => ({ name: e.name, message: e.message }));
  });
});

after(async () => {
  await browser?.close();
  server?.kill();
});

const NONE = { buffers: 0, bytes: 0, devices: 0 };
const HI = { messages: [{ role: "user", content: "Hi" }], max_tokens: 2, temperature: 0 };

test("cancel while the download stalls and while cached bytes go to the GPU; the retry resumes", { timeout: 10 * 60_000 }, async () => {
  const r = await page.evaluate(async ([url, STALL, HI]) => {
    const { Engine, listCachedModels } = await import("/attend-llm/index.js");
    const worker = new Worker("/attend-llm/worker.js", { type: "module" });
    // 1. Mid-download: the server has sent STALL bytes and stalls; the read waiting on it is aborted.
    let ctl = new AbortController();
    let last = null;
    const loading = outcome(Engine.load(url, { worker, signal: ctl.signal, onProgress: (p) => (last = p) }));
    while (!(last?.loaded > STALL - (1 << 20))) await sleep(50);
    await sleep(500); // the rest of the STALL bytes arrive; then the server sends nothing more
    const download = { during: await gpuOf(worker) };
    const t = performance.now();
    ctl.abort();
    // Without the abort reaching the pending read, this would wait forever.
    download.error = await Promise.race([loading, sleep(10_000).then(() => "still pending 10 s after the abort")]);
    download.rejectMs = performance.now() - t;
    download.after = await gpuOf(worker);
    download.cached = (await listCachedModels()).find((m) => m.url === url);
    // 2. Mid-upload: the same worker loads again; the cached part streams from the cache to the
    // GPU and is cancelled a third of the way in.
    ctl = new AbortController();
    const upload = {};
    let asked = null;
    const onProgress = (p) => {
      upload.last = p.loaded;
      if (asked || !(p.cached && p.loaded >= 8 << 20)) return;
      upload.seen = p;
      asked = gpuOf(worker); // answered before the abort, which the worker reads next
      ctl.abort();
    };
    upload.error = await outcome(Engine.load(url, { worker, signal: ctl.signal, onProgress }));
    upload.during = await asked;
    upload.after = await gpuOf(worker);
    // 3. And again: the cached part, then a Range request for the rest; the model answers.
    let fromCache = 0;
    const engine = await Engine.load(url, { worker, onProgress: (p) => { if (p.cached) fromCache = Math.max(fromCache, p.loaded); } });
    const answer = (await engine.chat.completions.create(HI)).choices[0].message.content;
    const loaded = await gpuOf(worker);
    const info = await engine.info();
    const complete = (await listCachedModels()).find((m) => m.url === url)?.complete;
    const unloaded = await unloadOf(worker);
    return { download, upload, fromCache, answer, loaded, gpuBytes: info.gpu_bytes, complete, unloaded };
  }, [URL_, STALL, HI]);
  console.log(JSON.stringify(r));
  const { download: d, upload: u } = r;
  assert.equal(d.error.name, "AbortError");
  assert.match(d.error.message, /^loading .*SmolLM2.* was cancelled$/);
  assert.ok(d.rejectMs < 5000, `the stalled download was cancelled after ${d.rejectMs} ms`);
  // Every weight buffer is allocated from the header, so a cancelled download had them all.
  assert.ok(d.during.buffers > 100 && d.during.bytes > 90e6 && d.during.devices === 1, JSON.stringify(d.during));
  assert.deepEqual(d.after, NONE, "GPU buffers left by the cancelled download");
  assert.ok(d.cached && !d.cached.complete && d.cached.bytes === STALL, JSON.stringify(d.cached));

  assert.equal(u.error.name, "AbortError");
  assert.match(u.error.message, /^loading .*SmolLM2.* was cancelled$/);
  assert.ok(u.seen.cached && u.seen.loaded < STALL, JSON.stringify(u.seen));
  // The cancel stopped the replay before the end of the cached part, not after it. (How many 4 MiB
  // pieces go by first depends on how fast the page answers the worker's progress message: the
  // worker checks for a cancel before every piece, but keeps replaying while the page reacts;
  // 1-3 pieces were seen on this 2-core machine, so a bound of one piece made the test flaky.)
  assert.ok(u.seen.loaded < STALL - (8 << 20) && u.last < STALL, JSON.stringify(u));
  assert.ok(u.during.buffers > 100 && u.during.devices === 1, JSON.stringify(u.during));
  assert.deepEqual(u.after, NONE, "GPU buffers left by the load cancelled while uploading");

  // Both retries asked only for the bytes after the cached part, with If-Range.
  const ranges = (await (await fetch(`${BASE}/__ranges`)).json()).filter((x) => x.path === `/models/${MODEL}`);
  assert.equal(ranges.length, 2, JSON.stringify(ranges));
  assert.ok(ranges.every((x) => x.range === `bytes=${STALL}-` && x.ifRange), JSON.stringify(ranges));
  assert.equal(r.fromCache, STALL, "the last load replayed the cached part");
  assert.equal(r.complete, true);
  assert.ok(r.answer.length > 0);
  assert.ok(r.loaded.buffers > 100 && r.loaded.devices === 1 && r.loaded.bytes === r.gpuBytes, JSON.stringify(r));
  assert.deepEqual(r.unloaded, NONE, "GPU buffers left by an unload");
});

test("a full storage quota is reported as such; a load cancelled while compiling frees its buffers", { timeout: 5 * 60_000 }, async () => {
  const q = await page.evaluate(async ([url, HI]) => {
    const { Engine } = await import("/attend-llm/index.js");
    // The worker with the OPFS write replaced by one that fails as a full disk does.
    const stub = `FileSystemSyncAccessHandle.prototype.write = function () {
      throw new DOMException("The operation failed because it would cause the application to exceed its storage quota.", "QuotaExceededError");
    };`;
    const blob = (text) => URL.createObjectURL(new Blob([text], { type: "text/javascript" }));
    const worker = new Worker(blob(`import "${blob(stub)}"; import "${location.origin}/attend-llm/worker.js";`), { type: "module" });
    const error = await outcome(Engine.load(url, { worker }));
    const after = await gpuOf(worker);
    // Without the cache; cancelled once every byte is on the GPU (phase "upload", then the
    // pipelines compile), then loaded for good.
    const ctl = new AbortController();
    let asked = null;
    const onProgress = (p) => {
      if (asked || p.phase !== "upload") return;
      asked = gpuOf(worker);
      ctl.abort();
    };
    const compile = { error: await outcome(Engine.load(url, { worker, cache: false, signal: ctl.signal, onProgress })) };
    compile.during = await asked;
    compile.after = await gpuOf(worker);
    const engine = await Engine.load(url, { worker, cache: false });
    const answer = (await engine.chat.completions.create(HI)).choices[0].message.content;
    return { error, after, compile, answer, unloaded: await unloadOf(worker) };
  }, [`${BASE}/fixtures/tiny-qwen2.gguf`, HI]);
  console.log(JSON.stringify(q));
  assert.equal(q.error.name, "QuotaExceededError");
  assert.match(q.error.message, /storage quota is full/);
  assert.match(q.error.message, /free some space/);
  assert.match(q.error.message, /cache: false/);
  assert.doesNotMatch(q.error.message, /interrupted|network error/);
  assert.deepEqual(q.after, NONE);
  assert.equal(q.compile.error.name, "AbortError");
  assert.match(q.compile.error.message, /^loading tiny-qwen2.gguf was cancelled$/);
  assert.ok(q.compile.during.buffers > 10 && q.compile.during.devices === 1, JSON.stringify(q.compile.during));
  assert.deepEqual(q.compile.after, NONE, "GPU buffers left by the load cancelled while compiling");
  assert.ok(q.answer.length > 0);
  assert.deepEqual(q.unloaded, NONE);
});
