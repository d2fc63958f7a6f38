// Side-by-side bench in one browser page: attend (npm package attend-llm, WebGPU) and wllama
// (@wllama/wllama, llama.cpp compiled to wasm, run on the CPU) on the same GGUF, prompt and number
// of generated tokens. Query: ?model=NAME&n=32&gen=16&repeat=1&threads=1&peers=attend,wllama&tune=auto
// (&profile=1: attend's report also holds GPU time per kernel, from timestamp queries)
// Writes one JSON line per peer to the console ("BENCH {...}") and sets document.title to "done".
import { Engine } from "/attend-llm/index.js";
import { Wllama } from "/wllama/index.js";

const q = new URLSearchParams(location.search);
const model = q.get("model");
const n = Number(q.get("n") ?? 32);
const gen = Number(q.get("gen") ?? 16);
const repeat = Number(q.get("repeat") ?? 1);
const threads = Number(q.get("threads") ?? 1);
const peers = (q.get("peers") ?? "attend,wllama").split(",");
const tune = q.get("tune") ?? "auto";
const profile = q.get("profile") === "1";
const url = `/models/${model}`;
const SENTENCE = "The quick brown fox jumps over the lazy dog while the attentive model reads every word at once. ";
const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const log = (s) => {
  document.querySelector("#log").textContent += s + "\n";
  console.log(s);
};
const emit = (o) => log("BENCH " + JSON.stringify(o));

// wllama gets the prompt as text (its llama.cpp server rejects a token-id array in this build):
// the longest prefix of the repeated bench sentence that attend's tokenizer (the same GGUF
// vocabulary) turns into exactly n tokens, not counting a BOS.
let promptText = null;

async function textOfTokens(engine, count) {
  const specials = (await engine.tokenize("")).length;
  const words = SENTENCE.repeat(Math.ceil(count / 10) + 2).split(" ");
  let best = "";
  for (let w = 1; w <= words.length; w++) {
    const text = words.slice(0, w).join(" ");
    const len = (await engine.tokenize(text)).length - specials;
    if (len > count) break;
    best = text;
    if (len === count) break;
  }
  return best;
}

async function benchAttend() {
  // Loaded twice, as a visitor's first and second visit: the first forgets any kernel shapes an
  // earlier run measured (and, with tune "measure", measures them: every candidate compiled), the
  // second reads the model and the shapes from the cache. The bench runs on the second.
  const first = { t0: performance.now() };
  let engine = await Engine.load(url, { contextLength: 512, cache: true, retune: true, tune });
  first.load_s = (performance.now() - first.t0) / 1e3;
  first.info = await engine.info();
  await engine.unload();
  const t0 = performance.now();
  engine = await Engine.load(url, { contextLength: 512, cache: true, tune });
  const load_s = (performance.now() - t0) / 1e3;
  const info = await engine.info();
  promptText = await textOfTokens(engine, n);
  const r = await engine.bench({ promptTokens: n, genTokens: gen, repeat, profile });
  await engine.unload();
  emit({
    peer: "attend", model, adapter: info.adapter, tune, ...r, load_s, pipelines: info.pipelines,
    first_load_s: first.load_s, first_compile_s: first.info.compile_s, first_pipelines: first.info.pipelines,
  });
}

async function benchWllama() {
  const wllama = new Wllama({ default: "/wllama/wasm/wllama.wasm" }, { suppressNativeLog: true });
  const t0 = performance.now();
  const blob = await (await fetch(url)).blob();
  // n_gpu_layers 0: no WebGPU (SwiftShader lacks shader-f16, which wllama's WebGPU path needs).
  await wllama.loadModel([blob], { n_ctx: 512, n_threads: threads, n_gpu_layers: 0, n_parallel: 1 });
  const load_s = (performance.now() - t0) / 1e3;
  // Without attend (peers=wllama) the prompt is only about n tokens long.
  const prompt = promptText ?? SENTENCE.repeat(Math.ceil(n / 20));
  const pre = [], dec = [], preWall = [], decWall = [];
  let pn = n;
  for (let r = 0; r <= repeat; r++) { // run 0 warms up
    let first = 0;
    const s = performance.now();
    let timings = null;
    await wllama.createCompletion({
      prompt, max_tokens: gen, n_predict: gen, temperature: 0, temp: 0, top_k: 1, ignore_eos: true,
      cache_prompt: false, stream: true,
      onData: (c) => {
        if (!first) first = performance.now();
        if (c.timings) timings = c.timings;
      },
    });
    const e = performance.now();
    if (r === 0) continue;
    if (!timings) throw new Error("wllama returned no timings");
    if (timings.prompt_n !== n || timings.predicted_n !== gen) {
      pn = timings.prompt_n;
      log(`wllama: prompt_n ${timings.prompt_n} predicted_n ${timings.predicted_n} (asked ${n}, ${gen})`);
    }
    pre.push(timings.prompt_per_second);
    dec.push(timings.predicted_per_second);
    preWall.push(timings.prompt_n / ((first - s) / 1e3));
    decWall.push((gen - 1) / ((e - first) / 1e3));
  }
  const threadsUsed = wllama.getNumThreads();
  const mt = wllama.isMultithread();
  await wllama.exit();
  emit({
    peer: "wllama", model, load_s, prompt_tokens: pn, gen_tokens: gen, repeat,
    threads: mt ? threadsUsed : 1, multithread: mt, cross_origin_isolated: self.crossOriginIsolated,
    prefill_tok_s: median(pre), decode_tok_s: median(dec),
    prefill_wall_tok_s: median(preWall), decode_wall_tok_s: median(decWall),
  });
}

try {
  if (peers.includes("attend")) await benchAttend();
  if (peers.includes("wllama")) await benchWllama();
  document.title = "done";
} catch (e) {
  log("BENCH_ERROR " + (e?.stack ?? e));
  document.title = "failed";
}
