// The chat page: draws state and forwards user actions to attend-llm. Model output is only ever
// inserted as text (textContent), never as HTML.
import { Engine, listCachedModels, models, checkFit } from "./attend-llm/index.js";
import { setupLens, lensConversation } from "./lens.js";

const LOCAL_MODEL = new URL("models/SmolLM2-135M-Instruct.Q4_1.gguf", location.href).href;
const PUBLIC_MODEL =
  "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct-GGUF/resolve/main/smollm2-135m-instruct-q8_0.gguf";
const $ = (id) => document.getElementById(id);
const MAX_TOKENS = Number(new URLSearchParams(location.search).get("max_tokens")) || 512;

let engine = null;
let history = [];
let answering = null; // AbortController of the running answer
let loadAbort = null;
let defaultModel = LOCAL_MODEL;

if ("serviceWorker" in navigator) navigator.serviceWorker.register("sw.js").catch(() => {});

function setStatus(el, text, isError = false) {
  el.textContent = text;
  el.classList.toggle("error", isError);
}

async function checkWebGPU() {
  if (!("gpu" in navigator)) {
    setStatus($("gpu"), "This browser has no WebGPU. Use a recent Chrome, Edge or Safari (or Firefox with WebGPU enabled).", true);
    return false;
  }
  const adapter = await navigator.gpu.requestAdapter().catch(() => null);
  if (!adapter) {
    setStatus($("gpu"), "WebGPU is present but no GPU adapter is available (it may be disabled or blocklisted).", true);
    return false;
  }
  const info = adapter.info ?? {};
  const f16 = adapter.features.has("shader-f16");
  setStatus($("gpu"), `GPU: ${info.vendor || "?"} ${info.architecture || info.description || ""} · shader-f16 ${f16 ? "available" : "not available"} (not needed: f16 is read as packed u32)`);
  return true;
}

async function pickDefault() {
  // The model served beside the page, if there is one (or it is in the offline cache).
  const local =
    (await fetch(LOCAL_MODEL, { method: "HEAD" }).then((r) => r.ok).catch(() => false)) ||
    (await listCachedModels().then((l) => l.some((m) => m.url === LOCAL_MODEL && m.complete)).catch(() => false));
  defaultModel = local ? LOCAL_MODEL : PUBLIC_MODEL;
  $("default-name").textContent = "SmolLM2-135M-Instruct";
  $("default-note").textContent = local ? `(served with this page: ${LOCAL_MODEL})` : `(from ${PUBLIC_MODEL}, the Q8_0 GGUF of the same model)`;
}

// The model catalog (listed and checked in Rust): a picker with sizes, and a verdict from the
// adapter's limits before anything is downloaded. `catalogFit` is the chosen entry's verdict.
let catalog = [];
let catalogFit = null;

async function fillCatalog() {
  try {
    catalog = await models();
  } catch (e) {
    $("catalog").replaceChildren(new Option(`(no catalog: ${e.message})`, ""));
    return;
  }
  $("catalog").replaceChildren(
    new Option("Choose a model…", ""),
    ...catalog.map((m) => new Option(`${m.name} · ${m.quant} · ${fmtMB(m.file_bytes)} · ${m.license}`, m.name)),
  );
}

async function showFit() {
  const name = $("catalog").value;
  catalogFit = null;
  $("fit").dataset.verdict = "";
  if (!name) return setStatus($("fit"), "");
  document.querySelector('input[name="src"][value="catalog"]').checked = true;
  setStatus($("fit"), "checking this GPU's limits…");
  try {
    const fit = await checkFit(name);
    if ($("catalog").value !== name) return; // another entry was chosen meanwhile
    catalogFit = fit;
    $("fit").dataset.verdict = fit.fits ? "fits" : "no";
    const memory = `about ${fmtMB(fit.gpu_bytes)} of GPU memory`;
    setStatus($("fit"), !fit.fits
      ? `does not fit: ${fit.reason}`
      : fit.context < fit.requested_context
        ? `fits with context ${fit.context} (not ${fit.requested_context}: ${fit.reason}), ${memory}`
        : `fits with context ${fit.context}, ${memory}`, !fit.fits);
  } catch (e) {
    setStatus($("fit"), `could not check: ${e.message}`, true);
  }
}

// Load options of the chosen source: a catalog model loads with the context its verdict found.
function loadOptions() {
  const kind = document.querySelector('input[name="src"]:checked').value;
  return kind === "catalog" && catalogFit?.fits ? { contextLength: catalogFit.context } : {};
}

function source() {
  const kind = document.querySelector('input[name="src"]:checked').value;
  if (kind === "catalog") {
    const m = catalog.find((m) => m.name === $("catalog").value);
    if (!m) throw new Error("Choose a model from the catalog first.");
    if (catalogFit && !catalogFit.fits) throw new Error(`${m.name} does not fit this GPU: ${catalogFit.reason}`);
    return m.urls.length === 1 ? m.urls[0] : m.urls;
  }
  if (kind === "url") {
    const urls = $("url").value.trim().split(/\s+/).filter(Boolean);
    if (!urls.length) throw new Error("Enter a model URL first.");
    return urls.length === 1 ? urls[0] : urls;
  }
  if (kind === "file") {
    const files = [...$("file").files];
    if (!files.length) throw new Error("Choose a .gguf file first.");
    return files.length === 1 ? files[0] : files;
  }
  return defaultModel;
}

const fmtMB = (b) => `${(b / 1048576).toFixed(1)} MB`;

async function load() {
  let src;
  try {
    src = source();
  } catch (e) {
    return setStatus($("model-info"), e.message, true);
  }
  await engine?.unload();
  engine = null;
  history = [];
  $("chat").replaceChildren();
  $("rw").hidden = true;
  setBusy(true);
  $("progress").hidden = false;
  loadAbort = new AbortController();
  $("cancel-load").hidden = false;
  const t0 = performance.now();
  try {
    engine = await Engine.load(src, {
      ...loadOptions(),
      signal: loadAbort.signal,
      onProgress: (p) => {
        const secs = (performance.now() - t0) / 1000;
        $("bar").value = p.total ? p.loaded / p.total : 0;
        const speed = secs > 0 ? ` · ${fmtMB(p.loaded / secs)}/s` : "";
        $("progress-text").textContent = p.phase === "compile"
          ? "compile: measuring and compiling the GPU kernels (a reload reuses the measurement)…"
          : `${p.phase}${p.cached ? " (from cache)" : ""}: ${fmtMB(p.loaded)} / ${fmtMB(p.total)}${speed}`;
      },
    });
    const info = await engine.info();
    setStatus(
      $("model-info"),
      `${info.model} · ${info.architecture} · context ${info.context_length} · GPU memory ${fmtMB(info.gpu_bytes)} · wasm heap ${fmtMB(info.wasm_heap_bytes)} · ready in ${((performance.now() - t0) / 1000).toFixed(1)} s (kernels ${info.compile_s.toFixed(1)} s, ${info.pipelines} pipelines) · adapter ${info.adapter}`,
    );
    $("prompt").disabled = false;
    $("send").disabled = false;
    $("prompt").focus();
    $("tasks").hidden = false;
    setupLens(engine, info);
  } catch (e) {
    setStatus($("model-info"), `Could not load the model: ${e.message}`, true);
  } finally {
    $("cancel-load").hidden = true;
    setBusy(false);
  }
}

function setBusy(busy) {
  $("load").disabled = busy;
}

function bubble(role, text = "") {
  const div = document.createElement("div");
  div.className = `msg ${role}`;
  div.textContent = text;
  $("chat").append(div);
  div.scrollIntoView({ block: "end" });
  return div;
}

// One model, many tasks: each button fills in and runs a prompt. Few-shot and zero-shot prompts
// run as plain completions (engine.completions.create: the text is continued as it is, no chat
// template); the others are chat turns (engine.chat.completions.create).
const TASKS = {
  sentiment: {
    api: "completions",
    prompt:
      "Input: I loved this movie, the acting was wonderful.\nSentiment: Positive\n" +
      "Input: The food was cold and the waiter was rude.\nSentiment: Negative\n" +
      "Input: What a fantastic day at the beach!\nSentiment:",
    stop: ["\n"], // one label, not the next example
    max_tokens: 4,
  },
  // No examples, only the instruction; the opening quote asks for one word and the closing one ends it.
  translate: { api: "completions", prompt: "Translate 'Hello' into French: '", stop: ["'", "\n"], max_tokens: 8 },
  summarize: {
    api: "chat",
    prompt:
      "Summarize this email in bullet points: Hi team, the launch moves from Monday to Wednesday because the " +
      "payment provider needs two more days of testing. Please update your calendars, send me any blockers by " +
      "Tuesday noon, and keep the demo environment frozen until then. Thanks, Dana",
    max_tokens: 96,
  },
  "code-complete": { api: "completions", prompt: "def add(a, b):\n    ", stop: ["\n"], max_tokens: 16 },
  "code-write": { api: "chat", prompt: "Write a function to subtract two numbers.", max_tokens: 128 },
};

async function send(ev) {
  ev.preventDefault();
  const text = $("prompt").value.trim();
  if (!text || !engine || answering) return;
  $("prompt").value = "";
  history.push({ role: "user", content: text });
  bubble("user", text);
  await answer({ api: "chat", max_tokens: MAX_TOKENS });
}

// A task preset starts a fresh conversation (or, for a completion, plain text with no history).
async function runTask(name) {
  const t = TASKS[name];
  if (!engine || answering) return;
  $("chat").replaceChildren();
  history = t.api === "chat" ? [{ role: "user", content: t.prompt }] : [];
  const u = bubble("user", t.prompt);
  if (t.api === "completions") u.classList.add("raw");
  await answer({ ...t, max_tokens: Math.min(t.max_tokens, MAX_TOKENS) });
}

// Stream one answer from either API into a new bubble; the last chunk carries usage.
async function answer({ api, prompt, stop, max_tokens }) {
  const out = bubble("assistant");
  out.classList.add("streaming");
  out.dataset.api = api === "chat" ? "chat.completions.create" : "completions.create";
  if (api !== "chat") out.classList.add("raw");
  answering = new AbortController();
  $("send").disabled = true;
  $("stop").disabled = false;
  for (const b of document.querySelectorAll("[data-task]")) b.disabled = true;
  let content = "";
  let chunks = 0;
  try {
    const request = { stream: true, stream_options: { include_usage: true }, max_tokens, temperature: 0, stop, signal: answering.signal };
    const stream = api === "chat"
      ? await engine.chat.completions.create({ messages: history, ...request })
      : await engine.completions.create({ prompt, ...request });
    for await (const chunk of stream) {
      out.dataset.chunks = String(++chunks);
      const c = chunk.choices[0];
      const delta = (api === "chat" ? c?.delta?.content : c?.text) ?? "";
      if (delta) {
        content += delta;
        out.textContent = content;
        out.scrollIntoView({ block: "end" });
      }
      if (c?.finish_reason) out.dataset.finish = c.finish_reason;
      if (chunk.usage) {
        const u = chunk.usage;
        out.dataset.tokens = String(u.completion_tokens);
        $("stats").textContent = `${u.completion_tokens} tokens · ${u.decode_tokens_per_second.toFixed(1)} tok/s (prompt ${u.prompt_tokens} tokens at ${u.prefill_tokens_per_second.toFixed(1)} tok/s) · ${c.finish_reason}`;
        readingWriting(u);
      }
    }
    if (api === "chat") history.push({ role: "assistant", content });
    lensConversation();
  } catch (e) {
    out.textContent = content;
    bubble("assistant", `Error: ${e.message}`).classList.add("error");
  } finally {
    out.classList.remove("streaming");
    out.dataset.done = "1";
    answering = null;
    $("send").disabled = false;
    $("stop").disabled = true;
    for (const b of document.querySelectorAll("[data-task]")) b.disabled = false;
  }
}

// Reading vs writing: both speeds come from the answer's usage (measured in Rust). The first new
// token comes out of the prefill, so an answer of one token has no decode speed to show.
function readingWriting(u) {
  const read = u.prompt_tokens - (u.prompt_tokens_details?.cached_tokens ?? 0);
  const steps = u.completion_tokens - 1;
  const show = (id, rate, text) => {
    $(id).dataset.value = String(rate);
    $(id).textContent = text;
  };
  show("rw-prefill", u.prefill_tokens_per_second, `${u.prefill_tokens_per_second.toFixed(1)} tok/s (${read < u.prompt_tokens ? `${read} new of ${u.prompt_tokens}` : read} prompt tokens at once)`);
  show("rw-decode", steps > 0 ? u.decode_tokens_per_second : 0,
    steps > 0 ? `${u.decode_tokens_per_second.toFixed(1)} tok/s (${steps} token${steps === 1 ? "" : "s"}, one at a time)` : "— (one token: nothing decoded)");
  $("rw").hidden = false;
}

$("load").addEventListener("click", load);
$("cancel-load").addEventListener("click", () => loadAbort?.abort());
$("composer").addEventListener("submit", send);
$("stop").addEventListener("click", () => answering?.abort());
for (const b of document.querySelectorAll("[data-task]")) b.addEventListener("click", () => runTask(b.dataset.task));
$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) send(e);
});

$("catalog").addEventListener("change", showFit);

if (await checkWebGPU()) {
  await pickDefault();
  await fillCatalog();
} else {
  $("load").disabled = true;
}
