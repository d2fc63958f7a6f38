// The chat page: draws state and forwards user actions to attend-llm. Model output is only ever
// inserted as text (textContent), never as HTML.
import { Engine, listCachedModels } from "./attend-llm/index.js";
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
  setStatus($("gpu"), `GPU: ${info.vendor || "?"} ${info.architecture || info.description || ""} · shader-f16 ${f16 ? "available" : "not available (f16 read as packed u32)"}`);
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

function source() {
  const kind = document.querySelector('input[name="src"]:checked').value;
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
  setBusy(true);
  $("progress").hidden = false;
  loadAbort = new AbortController();
  $("cancel-load").hidden = false;
  const t0 = performance.now();
  try {
    engine = await Engine.load(src, {
      signal: loadAbort.signal,
      onProgress: (p) => {
        const secs = (performance.now() - t0) / 1000;
        $("bar").value = p.total ? p.loaded / p.total : 0;
        const speed = secs > 0 ? ` · ${fmtMB(p.loaded / secs)}/s` : "";
        $("progress-text").textContent = `${p.phase}${p.cached ? " (from cache)" : ""}: ${fmtMB(p.loaded)} / ${fmtMB(p.total)}${speed}`;
      },
    });
    const info = await engine.info();
    setStatus(
      $("model-info"),
      `${info.model} · ${info.architecture} · context ${info.context_length} · GPU memory ${fmtMB(info.gpu_bytes)} · wasm heap ${fmtMB(info.wasm_heap_bytes)} · adapter ${info.adapter} · f16 ${info.shader_f16 ? "used" : "not used (f16 weights and KV cache are read as packed u32)"}`,
    );
    $("prompt").disabled = false;
    $("send").disabled = false;
    $("prompt").focus();
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

async function send(ev) {
  ev.preventDefault();
  const text = $("prompt").value.trim();
  if (!text || !engine || answering) return;
  $("prompt").value = "";
  history.push({ role: "user", content: text });
  bubble("user", text);
  const out = bubble("assistant");
  out.classList.add("streaming");
  answering = new AbortController();
  $("send").disabled = true;
  $("stop").disabled = false;
  let content = "";
  try {
    const stream = await engine.chat.completions.create({ messages: history, stream: true, stream_options: { include_usage: true }, max_tokens: MAX_TOKENS, temperature: 0, signal: answering.signal });
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta?.content ?? "";
      if (delta) {
        content += delta;
        out.textContent = content;
        out.scrollIntoView({ block: "end" });
      }
      if (chunk.usage) {
        const u = chunk.usage;
        $("stats").textContent = `${u.completion_tokens} tokens · ${u.decode_tokens_per_second.toFixed(1)} tok/s (prompt ${u.prompt_tokens} tokens at ${u.prefill_tokens_per_second.toFixed(1)} tok/s) · ${chunk.choices[0].finish_reason}`;
      }
    }
    history.push({ role: "assistant", content });
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
  }
}

$("load").addEventListener("click", load);
$("cancel-load").addEventListener("click", () => loadAbort?.abort());
$("composer").addEventListener("submit", send);
$("stop").addEventListener("click", () => answering?.abort());
$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey) send(e);
});

if (await checkWebGPU()) {
  await pickDefault();
} else {
  $("load").disabled = true;
}
