// End-to-end: the built chat page in headless Chromium (WebGPU on SwiftShader) loads SmolLM2 from
// the local server, streams an answer equal to the native CLI's greedy output, stops a second
// answer, then chats again after a reload with the server gone (service worker + OPFS cache).
// Run by ./build.sh test (needs the wasm build in www/attend-llm/wasm and ATTEND_BIN).
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { repo, models, SMOLLM2 as MODEL, serve, launch, openPage, attend } from "./harness.mjs";

const MAX_TOKENS = 12;
const PROMPT = "Translate 'Hello' into French.";
const PORT = 18000 + Math.floor(Math.random() * 1000);
const artifacts = path.join(repo, "target/e2e");

function nativeAnswer() {
  const out = attend(["generate", "--model", path.join(models, MODEL), "--chat", "--prompt", PROMPT,
    "--temperature", "0", "--max-tokens", String(MAX_TOKENS), "--output", "jsonl"]);
  return out.trim().split("\n").map((l) => JSON.parse(l)).filter((l) => !l.done).map((l) => l.text).join("");
}

async function ask(page, text) {
  await page.fill("#prompt", text);
  await page.click("#send");
}

test("chat page streams, stops and works offline", { timeout: 25 * 60_000 }, async () => {
  fs.mkdirSync(artifacts, { recursive: true });
  const expected = nativeAnswer();
  assert.ok(expected.length > 0, "the native CLI produced no text");
  let server = await serve(PORT, { MODELS_DIR: models });
  const browser = await launch("e2e");
  try {
    // An uncaught error in the page fails the test (it is also logged).
    const { page, errors: pageErrors } = await openPage(browser);
    await page.goto(`http://127.0.0.1:${PORT}/?max_tokens=${MAX_TOKENS}`);
    await page.waitForFunction(() => document.querySelector("#default-note").textContent.includes("served with this page"));

    // Load with progress events.
    const progress = new Set();
    await page.exposeFunction("__progress", (t) => progress.add(t));
    await page.evaluate(() => new MutationObserver(() => window.__progress(document.querySelector("#progress-text").textContent))
      .observe(document.querySelector("#progress-text"), { childList: true, characterData: true, subtree: true }));
    await page.click("#load");
    await page.waitForFunction(() => !document.querySelector("#send").disabled || document.querySelector("#model-info.error"), null, { timeout: 15 * 60_000 });
    assert.equal(await page.$("#model-info.error"), null, await page.textContent("#model-info"));
    assert.ok(progress.size >= 3, `expected several progress updates, saw ${[...progress].join(" | ")}`);
    // The 94 MB model streamed through the worker: the wasm heap must stay far below its size.
    const heap = Number(/wasm heap ([\d.]+) MB/.exec(await page.textContent("#model-info"))?.[1]);
    assert.ok(heap > 0 && heap < 64, `wasm heap ${heap} MB after loading a 94 MB model`);
    const pipelines = async () => Number(/kernels [\d.]+ s, (\d+) pipelines/.exec(await page.textContent("#model-info"))?.[1]);
    const firstPipelines = await pipelines();

    // Streaming: record every distinct partial text of the assistant's bubble.
    await page.exposeFunction("__partial", (t) => partials.push(t));
    const partials = [];
    await page.evaluate(() => new MutationObserver(() => {
      const last = [...document.querySelectorAll(".msg.assistant")].pop();
      if (last) window.__partial(last.textContent + (last.dataset.done ? "\u0000done" : ""));
    }).observe(document.querySelector("#chat"), { childList: true, characterData: true, subtree: true }));
    await ask(page, PROMPT);
    await page.waitForSelector(".msg.assistant[data-done]", { timeout: 10 * 60_000 });
    const answer = await page.textContent(".msg.assistant[data-done]");
    const before = partials.filter((p) => !p.endsWith("\u0000done") && p.length > 0);
    const distinct = [...new Set(before)];
    assert.ok(distinct.length >= 3, `expected ≥ 3 partial updates before completion, saw ${distinct.length}: ${JSON.stringify(distinct)}`);
    assert.equal(answer, expected, "browser greedy answer differs from the native CLI");
    const stats = await page.textContent("#stats");
    assert.match(stats, /tok\/s/);
    // The attention lens shows every token of the conversation, shaded by attention.
    await page.waitForSelector("#lens:not([hidden]) #lens-tokens span");
    const shaded = await page.$$eval("#lens-tokens span", (s) => s.map((e) => e.style.background));
    assert.ok(shaded.length > 30 && shaded.some((b) => b.includes("rgba")), `lens: ${shaded.length} tokens`);

    // Stop during a second answer.
    await ask(page, "Count from one to fifty, in words.");
    await page.waitForFunction(() => [...document.querySelectorAll(".msg.assistant")].length === 2 &&
      [...document.querySelectorAll(".msg.assistant")].pop().textContent.length > 0, null, { timeout: 10 * 60_000 });
    await page.click("#stop");
    await page.waitForFunction(() => [...document.querySelectorAll(".msg.assistant")].pop().dataset.done, null, { timeout: 5 * 60_000 });
    assert.ok(!(await page.isDisabled("#send")), "the page must accept a new prompt after Stop");
    // Stopped, not finished: the answer ends as a stop, shorter than max_tokens would allow.
    const stopped = await page.evaluate(() => ({ ...[...document.querySelectorAll(".msg.assistant")].pop().dataset }));
    assert.equal(stopped.finish, "stop", `after Stop: ${JSON.stringify(stopped)}`);
    assert.ok(Number(stopped.tokens) >= 1 && Number(stopped.tokens) < MAX_TOKENS, `after Stop: ${JSON.stringify(stopped)}`);
    await page.screenshot({ path: path.join(artifacts, "chat.png"), fullPage: true });

    // Offline: the server goes away, the page reloads from the service worker, the model from OPFS.
    server.kill();
    server = null;
    await page.reload();
    await page.waitForSelector("#load:not([disabled])");
    await page.click("#load");
    await page.waitForFunction(() => !document.querySelector("#send").disabled || document.querySelector("#model-info.error"), null, { timeout: 15 * 60_000 });
    assert.equal(await page.$("#model-info.error"), null, await page.textContent("#model-info"));
    // On SwiftShader (a CPU adapter) the page's loads measure no kernel shapes (tune "auto"):
    // the first visit already compiles only the built-in kernels, the same ones as the reload.
    // (Measured shapes kept in the cache are checked in loading.test.mjs.)
    const reloadPipelines = await pipelines();
    assert.ok(firstPipelines > 0 && reloadPipelines === firstPipelines, `pipelines: ${firstPipelines} first, ${reloadPipelines} on reload`);
    await ask(page, PROMPT);
    await page.waitForSelector(".msg.assistant[data-done]", { timeout: 10 * 60_000 });
    assert.equal(await page.textContent(".msg.assistant[data-done]"), expected, "offline answer differs");
    await page.screenshot({ path: path.join(artifacts, "chat-offline.png"), fullPage: true });
    assert.deepEqual(pageErrors, [], "uncaught errors in the page");
  } finally {
    await browser.close();
    server?.kill();
  }
});
