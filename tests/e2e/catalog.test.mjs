// End-to-end: the model catalog on the chat page in headless Chromium (WebGPU on SwiftShader). The
// picker lists every entry of the package's `models()` with its quant, size and license; choosing
// SmolLM2-135M shows the verdict from this adapter's limits before anything downloads (fits, at the
// page's default context of 4096); loading it sends the entry's Hugging Face URL through the
// ordinary URL path at that context (Hugging Face is unreachable here: the load then fails with a
// message on the page, as any unreachable URL does). The package's `checkFit` refuses a model over
// `maxGpuBytes`, with the reason.
// Run by ./build.sh test (needs the wasm build in www/attend-llm/wasm).
import { test } from "node:test";
import assert from "node:assert/strict";
import { models, serve, launch, openPage } from "./harness.mjs";

const PORT = 21000 + Math.floor(Math.random() * 1000);

test("the catalog picker lists models with sizes, shows the fit and loads the entry's URL", { timeout: 20 * 60_000 }, async () => {
  const server = await serve(PORT, { MODELS_DIR: models });
  const browser = await launch("catalog");
  try {
    const { page, errors: pageErrors } = await openPage(browser);
    // What the page asks the engine's worker to load, and with which options.
    await page.addInitScript(() => {
      window.__loads = [];
      const post = Worker.prototype.postMessage;
      Worker.prototype.postMessage = function (msg, transfer) {
        if (msg?.type === "load") window.__loads.push({ source: msg.source, options: msg.options });
        return post.call(this, msg, transfer);
      };
    });
    await page.goto(`http://127.0.0.1:${PORT}/`);
    await page.waitForFunction(() => document.querySelectorAll("#catalog option").length > 1, null, { timeout: 120_000 });

    // The picker: every catalog entry, with quant, size and license.
    const entries = await page.evaluate(async () => (await import("/attend-llm/index.js")).models());
    const options = await page.$$eval("#catalog option", (os) => os.map((o) => ({ value: o.value, text: o.textContent })));
    assert.equal(options.length, entries.length + 1, JSON.stringify(options));
    for (const m of entries) {
      const o = options.find((o) => o.value === m.name);
      assert.ok(o, `${m.name} is not in the picker`);
      for (const part of [m.quant, `${(m.file_bytes / 1048576).toFixed(1)} MB`, m.license]) assert.ok(o.text.includes(part), `${o.text} lacks ${part}`);
    }
    // The default stays the local SmolLM2 file, served with the page.
    assert.ok(await page.isChecked('input[name="src"][value="default"]'));

    // Choosing an entry shows the verdict before any download.
    await page.selectOption("#catalog", "SmolLM2-135M-Instruct");
    await page.waitForFunction(() => document.querySelector("#fit").dataset.verdict, null, { timeout: 120_000 });
    const verdict = await page.textContent("#fit");
    console.log(`verdict: ${verdict}`);
    assert.match(verdict, /^fits with context 4096, about \d+\.\d MB of GPU memory$/);
    assert.ok(await page.isChecked('input[name="src"][value="catalog"]'));

    // Loading it goes through the URL path with the entry's URL, at the context of the verdict.
    const smol = entries.find((m) => m.name === "SmolLM2-135M-Instruct");
    await page.click("#load");
    await page.waitForFunction(() => !document.querySelector("#send").disabled || document.querySelector("#model-info.error"), null, { timeout: 10 * 60_000 });
    const info = await page.textContent("#model-info");
    console.log(`model info: ${info}`);
    const loads = await page.evaluate(() => window.__loads);
    assert.deepEqual(loads.map((l) => [l.source, l.options.contextLength]), [[smol.urls[0], 4096]]);
    assert.match(info, /^Could not load the model: /);

    // The package's check refuses what is over a memory budget, and says why.
    const refused = await page.evaluate(async () => (await import("/attend-llm/index.js")).checkFit("TinyLlama-1.1B-Chat-v1.0", { maxGpuBytes: 100e6 }));
    assert.equal(refused.fits, false, JSON.stringify(refused));
    assert.match(refused.reason, /over the limit of 100000000/);
    assert.deepEqual(pageErrors, []);
  } finally {
    server.kill();
    await browser.close().catch(() => {});
  }
});
