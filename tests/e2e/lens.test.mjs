// End-to-end: the attention lens on the built chat page in headless Chromium (WebGPU on
// SwiftShader): the pronoun preset opens the lens, clicking "it" shows where it looks, and the
// weights the page shows (per key, for the layer and head it shows) equal the native
// `attend attention --json` output for the same layer and head within 1e-3.
// Run by ./build.sh test (needs the wasm build in www/attend-llm/wasm and ATTEND_BIN).
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { models, SMOLLM2 as MODEL, serve, launch, openPage, attend } from "./harness.mjs";

const PROMPT = "The animal didn't cross the road because it was too tired.";
const PORT = 19000 + Math.floor(Math.random() * 1000);

function native(token, layer, head) {
  const args = ["attention", "--model", path.join(models, MODEL), "--prompt", PROMPT, "--token", String(token),
    "--layer", String(layer), "--json"];
  if (head !== "mean") args.push("--head", head);
  const a = JSON.parse(attend(args));
  const rows = a.weights[0];
  return rows[0].map((_, j) => rows.reduce((s, r) => s + r[j], 0) / rows.length);
}

test("clicking 'it' shows the weights native attend computes", { timeout: 25 * 60_000 }, async () => {
  const server = await serve(PORT, { MODELS_DIR: models });
  const browser = await launch("lens");
  try {
    // An uncaught error in the page fails the test (it is also logged).
    const { page, errors: pageErrors } = await openPage(browser);
    await page.goto(`http://127.0.0.1:${PORT}/`);
    await page.waitForFunction(() => document.querySelector("#default-note").textContent.includes("served with this page"));
    await page.click("#load");
    await page.waitForFunction(() => !document.querySelector("#send").disabled || document.querySelector("#model-info.error"), null, { timeout: 15 * 60_000 });
    assert.equal(await page.$("#model-info.error"), null, await page.textContent("#model-info"));

    // The preset opens the lens on "it".
    await page.click('[data-preset="pronoun"]');
    await page.waitForFunction(() => document.querySelector("#lens-query").textContent.startsWith("Token"), null, { timeout: 10 * 60_000 });
    const opened = await page.textContent("#lens-query");
    assert.match(opened, /"\s?it"/, opened);

    // Click "it" (again, as a visitor would) and wait for the redraw.
    await page.evaluate(() => (document.querySelector("#lens-query").textContent = ""));
    const itIndex = await page.$$eval("#lens-tokens span", (s) => s.findIndex((e) => e.textContent.trim() === "it"));
    assert.ok(itIndex > 0, "no 'it' token on the page");
    await page.click(`#lens-tokens span[data-j="${itIndex}"]`);
    await page.waitForFunction(() => document.querySelector("#lens-query").textContent.startsWith("Token"), null, { timeout: 10 * 60_000 });
    const layer = Number(await page.inputValue("#lens-layer"));
    const head = await page.inputValue("#lens-head");
    const shown = await page.$$eval("#lens-tokens span[data-weight]", (s) => s.map((e) => Number(e.dataset.weight)));
    assert.equal(shown.length, itIndex + 1, "one weight per key 0..=it");
    assert.equal(await page.$$eval("#lens-heads .head-strip", (s) => s.length), 9, "a strip per head of SmolLM2");

    const want = native(itIndex, layer, head);
    const err = Math.max(...shown.map((w, j) => Math.abs(w - want[j])));
    console.log(`lens: "it" = token ${itIndex}, layer ${layer}, head ${head}: max |page - native| = ${err}`);
    assert.ok(err <= 1e-3, `page and native attend differ by ${err}`);
    assert.deepEqual(pageErrors, [], "uncaught errors in the page");
  } finally {
    await browser.close();
    server.kill();
  }
});
