// Files past 2 GiB in headless Chromium (issue #9 item 6): the file tests/large_file.rs writes
// (the tiny random llama behind a 2.25 GiB tensor it does not read, so every tensor it reads
// starts past byte 2^31) loads through the attend-llm package
// from a URL, from a File (a Blob backed by the file on disk) and from its split URLs, and each
// answers exactly as the small file does, with the wasm heap staying small (the bytes stream
// through it, the unread tensor is skipped). ~2 minutes, so not part of ./build.sh test: run by
// ./build.sh large (after the native half, which writes the files).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { cache, fixtures, serve, launch, openPage, freePort } from "./harness.mjs";

const large = path.join(cache, "large");
const BIG = "tiny-llama-past-2gib.gguf";
const HEAP_LIMIT = 256 << 20;

test("a model past 2 GiB loads from a URL, a File and split URLs", { timeout: 20 * 60_000 }, async () => {
  const big = path.join(large, BIG);
  assert.ok(fs.existsSync(big), `${big} is missing: run cargo test --test large_file first`);
  assert.ok(fs.statSync(big).size > 2 ** 31);
  const shards = fs.readdirSync(large).filter((f) => f.includes("-of-")).sort();
  assert.equal(shards.length, 3, shards.join(", "));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const server = await serve(port, { FIXTURES_DIR: fixtures, SPLIT_DIR: large });
  const browser = await launch("large");
  try {
    const { page, errors } = await openPage(browser, { logConsole: false });
    await page.goto(`${base}/`);
    // The page's file input holds the big file as a File (Chromium reads it from disk).
    await page.setInputFiles("#file", big);
    const answer = (source) => page.evaluate(async (source) => {
      const { Engine } = await import("/attend-llm/index.js");
      const src = source === "file" ? document.querySelector("#file").files[0] : source;
      const t0 = performance.now();
      const engine = await Engine.load(src, { cache: false });
      const s = ((performance.now() - t0) / 1000).toFixed(1);
      const res = await engine.completions.create({ prompt: "The capital of France", max_tokens: 6, temperature: 0 });
      const info = await engine.info();
      await engine.unload();
      return { text: res.choices[0].text, heap: info.wasm_heap_bytes, s };
    }, source);
    const want = await answer(`${base}/fixtures/tiny-llama-spm.gguf`);
    assert.ok(want.text.length > 0, JSON.stringify(want));
    for (const source of [`${base}/split/${BIG}`, "file", shards.map((f) => `${base}/split/${f}`)]) {
      const got = await answer(source);
      console.log(`${JSON.stringify(source).slice(0, 80)}: loaded in ${got.s} s, wasm heap ${got.heap} bytes`);
      assert.equal(got.text, want.text, `answer from ${source}`);
      assert.ok(got.heap < HEAP_LIMIT, `wasm heap ${got.heap} bytes after loading ${source}`);
    }
    assert.deepEqual(errors, [], "uncaught errors in the page");
  } finally {
    await browser.close();
    server.kill();
  }
});
