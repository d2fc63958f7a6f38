// End-to-end: the few-shot sentiment preset of the chat page in headless Chromium (WebGPU on
// SwiftShader). It must run as a plain completion: the page sends one `completion` request (not
// `chat`) whose prompt is the Input/Sentiment lines with no chat-template markers, the answer
// streams as text_completion chunks, equals native `attend generate` (raw prompt, greedy, stop at a
// newline), and the model's context (the lens's token strip) holds no template either. After the
// answer, the reading-vs-writing line shows a positive prefill and decode speed and the lens's cost.
// Run by ./build.sh test (needs the wasm build in www/attend-llm/wasm and ATTEND_BIN).
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { models, SMOLLM2 as MODEL, serve, launch, openPage, attend } from "./harness.mjs";

const PORT = 20000 + Math.floor(Math.random() * 1000);
const TEMPLATE = /<\|im_start\|>|<\|im_end\|>/;

// Native greedy continuation of the raw prompt (no --chat), stopped like the page's request.
function native(prompt, maxTokens, stop) {
  const out = attend(["generate", "--model", path.join(models, MODEL), "--prompt", prompt, "--temperature", "0",
    "--max-tokens", String(maxTokens), ...stop.flatMap((s) => ["--stop", s]), "--output", "jsonl"]);
  return out.trim().split("\n").map((l) => JSON.parse(l)).filter((l) => !l.done).map((l) => l.text).join("");
}

test("the few-shot preset streams a plain completion; reading vs writing shows both speeds", { timeout: 20 * 60_000 }, async () => {
  const server = await serve(PORT, { MODELS_DIR: models });
  const browser = await launch("presets");
  try {
    // An uncaught error in the page fails the test (it is also logged).
    const { page, errors: pageErrors } = await openPage(browser);
    // Record what the page sends to the engine's worker and every chunk that streams back.
    await page.addInitScript(() => {
      window.__sent = [];
      window.__chunks = [];
      const post = Worker.prototype.postMessage;
      Worker.prototype.postMessage = function (msg, transfer) {
        if (msg?.type === "chat" || msg?.type === "completion") window.__sent.push({ type: msg.type, request: msg.request });
        return post.call(this, msg, transfer);
      };
      const Base = window.Worker;
      window.Worker = class extends Base {
        constructor(...args) {
          super(...args);
          this.addEventListener("message", (e) => e.data?.type === "chunk" && window.__chunks.push(e.data.chunk));
        }
      };
    });
    await page.goto(`http://127.0.0.1:${PORT}/`);
    await page.waitForFunction(() => document.querySelector("#default-note").textContent.includes("served with this page"));
    await page.click("#load");
    await page.waitForFunction(() => !document.querySelector("#send").disabled || document.querySelector("#model-info.error"), null, { timeout: 15 * 60_000 });
    assert.equal(await page.$("#model-info.error"), null, await page.textContent("#model-info"));

    const t0 = Date.now();
    await page.click('[data-task="sentiment"]');
    await page.waitForSelector(".msg.assistant[data-done]", { timeout: 10 * 60_000 });
    console.log(`few-shot answer in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    // One plain completion was sent: the few-shot lines as they are, stopped at a newline.
    const sent = await page.evaluate(() => window.__sent);
    assert.equal(sent.length, 1, JSON.stringify(sent));
    assert.equal(sent[0].type, "completion", "the few-shot preset must call completions.create, not chat");
    const prompt = sent[0].request.prompt;
    assert.equal(typeof prompt, "string");
    assert.match(prompt, /^Input: .*\nSentiment: Positive\n(.*\n)+Sentiment:$/);
    assert.doesNotMatch(prompt, TEMPLATE);
    assert.equal(sent[0].request.messages, undefined);
    assert.equal(sent[0].request.stream, true);
    assert.deepEqual(sent[0].request.stop, ["\n"]);
    const maxTokens = sent[0].request.max_tokens;

    // It streamed as text_completion chunks into the answer, which equals native greedy output.
    const chunks = await page.evaluate(() => window.__chunks);
    assert.ok(chunks.length >= 2, `expected text and a final usage chunk, got ${chunks.length}`);
    assert.ok(chunks.every((c) => c.object === "text_completion"), JSON.stringify(chunks.map((c) => c.object)));
    const streamed = chunks.map((c) => c.choices[0].text).join("");
    const answer = await page.textContent(".msg.assistant[data-done]");
    const api = await page.getAttribute(".msg.assistant[data-done]", "data-api");
    assert.equal(api, "completions.create");
    assert.equal(answer, streamed);
    const expected = native(prompt, maxTokens, ["\n"]);
    console.log(`few-shot label: page ${JSON.stringify(answer)}, native ${JSON.stringify(expected)}`);
    assert.equal(answer, expected, "the page's completion differs from native attend generate");
    assert.match(answer, /^\s*(Positive|Negative)\s*$/, "a single sentiment label");
    assert.doesNotMatch(answer, TEMPLATE);

    // Reading vs writing: both speeds from the answer's usage, positive.
    const usage = chunks.at(-1).usage;
    assert.ok(usage && usage.completion_tokens >= 2, `usage ${JSON.stringify(usage)}`);
    const prefill = Number(await page.getAttribute("#rw-prefill", "data-value"));
    const decode = Number(await page.getAttribute("#rw-decode", "data-value"));
    assert.ok(!(await page.isHidden("#rw")), "the reading-vs-writing line is hidden");
    assert.ok(prefill > 0 && decode > 0, `prefill ${prefill} tok/s, decode ${decode} tok/s`);
    assert.ok(Math.abs(prefill - usage.prefill_tokens_per_second) < 1e-3 && Math.abs(decode - usage.decode_tokens_per_second) < 1e-3);
    console.log(`reading vs writing: ${await page.textContent("#rw p")}`);

    // The lens opens on the context after the answer: exactly the prompt and answer, no template.
    await page.waitForFunction(() => document.querySelector("#lens-query").textContent.startsWith("Token"), null, { timeout: 10 * 60_000 });
    const context = (await page.$$eval("#lens-tokens span", (s) => s.map((e) => e.textContent))).join("").replace(/↵/g, "");
    assert.ok(context.startsWith(prompt + answer), `context: ${JSON.stringify(context)}`);
    assert.doesNotMatch(context, TEMPLATE);
    const lensMs = Number(await page.getAttribute("#rw-lens", "data-value"));
    assert.ok(lensMs > 0, `lens cost ${lensMs} ms`);
    assert.match(await page.textContent("#rw-lens"), /^lens: \d+ ms$/);
    console.log(`lens: ${lensMs.toFixed(0)} ms`);
    assert.deepEqual(pageErrors, [], "uncaught errors in the page");
  } finally {
    await browser.close();
    server.kill();
  }
});
