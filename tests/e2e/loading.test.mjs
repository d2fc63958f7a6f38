// Model loading paths of the attend-llm package in headless Chromium: a download cut midway
// resumes with an HTTP Range request, the offline cache lists and deletes models, a File loads
// (drag-and-drop / file picker), and a load can be cancelled. Uses the tiny Qwen2 fixture (and
// SmolLM2 for cancellation) through the package API, as an app would.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { models, fixtures, serve, launch, openPage, attend } from "./harness.mjs";

const PORT = 17000 + Math.floor(Math.random() * 1000);
const BASE = `http://127.0.0.1:${PORT}`;

test("resume, cache list/delete, File source, split model, cancellation", { timeout: 15 * 60_000 }, async () => {
  // A split GGUF (three shards), written by `attend split`.
  const splitDir = fs.mkdtempSync(path.join(os.tmpdir(), "attend-split-"));
  const shards = attend(["split", "--model", path.join(fixtures, "tiny-qwen2.gguf"), "--max-tensors", "10", "--out", splitDir])
    .trim().split("\n").map((p) => `${BASE}/split/${path.basename(p)}`);
  assert.equal(shards.length, 3);
  const server = await serve(PORT, { MODELS_DIR: models, FIXTURES_DIR: fixtures, SPLIT_DIR: splitDir });
  const browser = await launch("load");
  try {
    // An uncaught error in the page fails the test (it is also logged).
    const { page, errors: pageErrors } = await openPage(browser, { logConsole: false });
    await page.goto(`${BASE}/`);
    const size = fs.statSync(path.join(fixtures, "tiny-qwen2.gguf")).size;
    const url = `${BASE}/fixtures/tiny-qwen2.gguf?cut=300000`;

    // 1. A cut download fails clearly and leaves its bytes in the cache.
    const first = await page.evaluate(async (url) => {
      const { Engine, listCachedModels } = await import("/attend-llm/index.js");
      let error = null;
      try { await Engine.load(url); } catch (e) { error = e.message; }
      return { error, cached: await listCachedModels() };
    }, url);
    assert.match(first.error ?? "", /interrupted|incomplete|failed/i, `expected a clear error, got ${first.error}`);
    const partial = first.cached.find((m) => m.url === url);
    // The page keeps what it read, which may be fewer than the 300000 bytes sent: Chromium errors
    // a fetch body as soon as the network layer fails, dropping bytes still queued for a slow reader.
    assert.ok(partial && !partial.complete && partial.bytes > 0 && partial.bytes <= 300000, JSON.stringify(first.cached));

    // 2. Loading again asks only for the missing bytes, and the model works.
    const second = await page.evaluate(async (url) => {
      const { Engine, listCachedModels } = await import("/attend-llm/index.js");
      // Measured kernel shapes (on SwiftShader a load takes built-in ones unless asked).
      const engine = await Engine.load(url, { tune: "measure" });
      const res = await engine.chat.completions.create({ messages: [{ role: "user", content: "Hi" }], max_tokens: 3, temperature: 0 });
      const info = await engine.info();
      await engine.unload();
      return { res, info, cached: await listCachedModels() };
    }, url);
    const ranges = await (await fetch(`${BASE}/__ranges`)).json();
    assert.ok(ranges.some((r) => r.path.endsWith("tiny-qwen2.gguf") && r.range === `bytes=${partial.bytes}-`), JSON.stringify(ranges));
    assert.equal(second.info.architecture, "qwen2");
    assert.equal(second.res.object, "chat.completion");
    assert.ok(second.res.usage.completion_tokens >= 1);
    const full = second.cached.find((m) => m.url === url);
    assert.ok(full?.complete && full.bytes === size, JSON.stringify(second.cached));

    // 3. Delete it from the cache.
    const afterDelete = await page.evaluate(async (url) => {
      const { deleteCachedModel, listCachedModels } = await import("/attend-llm/index.js");
      return { deleted: await deleteCachedModel(url), cached: await listCachedModels() };
    }, url);
    assert.equal(afterDelete.deleted, true);
    assert.ok(!afterDelete.cached.some((m) => m.url === url));

    // 3b. The file changes on the server after a cut download: the resumed request carries
    // If-Range, the server answers with the whole new file, and the cache ends up holding exactly
    // the new file (it used to splice the old cached part onto the new file's tail).
    const changing = path.join(splitDir, "changing.gguf");
    const fresh = fs.readFileSync(path.join(fixtures, "tiny-qwen2.gguf"));
    const stale = Buffer.from(fresh);
    for (let i = 100_000; i < 300_000; i++) stale[i] ^= 0x5a; // tensor data (the header is 12 KB)
    fs.writeFileSync(changing, stale);
    const curl = `${BASE}/split/changing.gguf?cut=300000`;
    await page.evaluate(async (url) => {
      const { Engine } = await import("/attend-llm/index.js");
      try { await Engine.load(url); } catch { /* cut midway, as intended */ }
    }, curl);
    fs.writeFileSync(changing, fresh);
    fs.utimesSync(changing, new Date(), new Date(Date.now() + 10_000)); // a new Last-Modified and ETag
    const changed = await page.evaluate(async (url) => {
      const { Engine, listCachedModels } = await import("/attend-llm/index.js");
      const engine = await Engine.load(url);
      const info = await engine.info();
      await engine.unload();
      // The cached bytes, read back from the origin private file system.
      const dir = await (await navigator.storage.getDirectory()).getDirectoryHandle("attend-models");
      let sha = null;
      for await (const [name, handle] of dir.entries()) {
        if (!name.endsWith(".json")) continue;
        const meta = JSON.parse(await (await handle.getFile()).text());
        if (meta.url !== url) continue;
        const data = await (await (await dir.getFileHandle(name.replace(/\.json$/, ".gguf"))).getFile()).arrayBuffer();
        sha = [...new Uint8Array(await crypto.subtle.digest("SHA-256", data))].map((b) => b.toString(16).padStart(2, "0")).join("");
      }
      const shapes = await (await (await dir.getFileHandle("tuned-shapes.txt")).getFile()).text();
      return { sha, info, shapes: JSON.parse(shapes), cached: (await listCachedModels()).find((m) => m.url === url) };
    }, curl);
    // The same model in a new worker, default options: the kernel shapes the earlier load
    // measured were kept in the cache and taken, so only the winning pipelines were compiled.
    const shapes = Object.keys(changed.shapes);
    assert.ok(shapes.some((k) => k.includes("| matvec ")) && shapes.some((k) => k.includes("| matmul ")), shapes.join("\n"));
    assert.ok(second.info.pipelines > 0 && changed.info.pipelines < second.info.pipelines,
      `pipelines: first load ${second.info.pipelines}, with remembered shapes ${changed.info.pipelines}`);
    const { createHash } = await import("node:crypto");
    assert.equal(changed.sha, createHash("sha256").update(fresh).digest("hex"), "the cache holds the new file, not a splice");
    assert.ok(changed.cached?.complete && changed.cached.bytes === fresh.length, JSON.stringify(changed.cached));
    const resumed = (await (await fetch(`${BASE}/__ranges`)).json()).filter((r) => r.path === "/split/changing.gguf");
    assert.ok(resumed.length > 0 && resumed.every((r) => r.ifRange), JSON.stringify(resumed));

    // 4. A local file (the page's file picker) loads without any download.
    await page.setInputFiles("#file", path.join(fixtures, "tiny-qwen2.gguf"));
    const fromFile = await page.evaluate(async () => {
      const { Engine } = await import("/attend-llm/index.js");
      const phases = new Set();
      const engine = await Engine.load(document.querySelector("#file").files[0], { onProgress: (p) => phases.add(p.phase) });
      const ids = await engine.tokenize("hello");
      await engine.unload();
      return { phases: [...phases], ids };
    });
    assert.ok(fromFile.phases.includes("ready") && fromFile.ids.length > 0, JSON.stringify(fromFile));

    // 5. A split model from several URLs loads as one and answers like the single file.
    const answer = async (source) => page.evaluate(async (source) => {
      const { Engine } = await import("/attend-llm/index.js");
      const engine = await Engine.load(source, { cache: false });
      const res = await engine.chat.completions.create({ messages: [{ role: "user", content: "Hello" }], max_tokens: 5, temperature: 0 });
      await engine.unload();
      return res.choices[0].message.content;
    }, source);
    assert.equal(await answer(shards), await answer(`${BASE}/fixtures/tiny-qwen2.gguf`));

    // 6. Cancelling a load (SmolLM2, 94 MB) rejects promptly with a clear error.
    const cancelled = await page.evaluate(async () => {
      const { Engine } = await import("/attend-llm/index.js");
      const ctl = new AbortController();
      try {
        await Engine.load("/models/SmolLM2-135M-Instruct.Q4_1.gguf", { signal: ctl.signal, cache: false, onProgress: () => ctl.abort() });
        return "loaded";
      } catch (e) {
        return e.message;
      }
    });
    assert.match(cancelled, /cancelled/);
    assert.deepEqual(pageErrors, [], "uncaught errors in the page");
  } finally {
    await browser.close();
    server.kill();
  }
});
