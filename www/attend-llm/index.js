// attend-llm: the main-thread side. The engine (Rust compiled to WebAssembly, WGSL kernels on
// WebGPU) runs in a dedicated worker; this file only moves messages and shapes them as promises
// and async iterators. All logic (templates, sampling, stopping, OpenAI objects) lives in Rust.

let nextId = 1;

class Channel {
  constructor(worker) {
    this.worker = worker;
    this.pending = new Map();
    this.crashed = null; // the Error every call gets once the worker is gone
    worker.onmessage = (e) => this.#receive(e.data);
    worker.onerror = (e) => this.#crash(`attend worker failed: ${e.message ?? e}; load the model again`);
  }
  /** The worker trapped or died: nothing it holds can be trusted. Reject everything, end it. */
  #crash(message) {
    this.crashed ??= Object.assign(new Error(message), { name: "EngineCrashed" });
    this.#failAll(this.crashed);
    this.worker.terminate();
  }
  #receive(msg) {
    if (msg.type === "crashed") return this.#crash(msg.message);
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.type === "progress") p.onProgress?.(msg.progress);
    else if (msg.type === "chunk") p.onChunk?.(msg.chunk);
    else {
      this.pending.delete(msg.id);
      if (msg.type === "error") {
        const extra = msg.status ? { status: msg.status, param: msg.param } : {}; // BadRequestError
        p.reject(Object.assign(new Error(msg.message), { name: msg.name ?? "AttendError" }, extra));
      }
      else p.resolve(msg.value);
    }
  }
  #failAll(err) {
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
  call(type, payload = {}, hooks = {}, transfer = []) {
    const id = nextId++;
    if (this.crashed) return { id, done: Promise.reject(this.crashed) };
    const done = new Promise((resolve, reject) => this.pending.set(id, { resolve, reject, ...hooks }));
    this.worker.postMessage({ id, type, ...payload }, transfer);
    return { id, done };
  }
  post(type, payload = {}) {
    if (this.crashed) return;
    this.worker.postMessage({ type, ...payload });
  }
}

function defaultWorker() {
  return new Worker(new URL("./worker.js", import.meta.url), { type: "module", name: "attend" });
}

/** A loaded model. Create with `Engine.load(...)`. */
export class Engine {
  #ch;
  constructor(channel) {
    this.#ch = channel;
    const ch = channel;
    this.chat = {
      completions: {
        create: (request) => (request?.stream ? streamCompletion(ch, request, "chat") : ch.call("chat", { request: strip(request) }).done),
      },
    };
    this.completions = {
      create: (request) =>
        request?.stream ? streamCompletion(ch, request, "completion") : ch.call("completion", { request: strip(request) }).done,
    };
  }

  /**
   * Load a GGUF model from a URL (or an array of URLs for split files), a File/Blob or an
   * ArrayBuffer. Downloads are cached (a second load works offline) and resume with Range requests.
   */
  static async load(source, options = {}) {
    const { onProgress, signal, worker, ...rest } = options;
    if (signal?.aborted) throw Object.assign(new Error("loading was cancelled"), { name: "AbortError" });
    const ch = new Channel(worker ?? defaultWorker());
    const transfer = source instanceof ArrayBuffer ? [source] : [];
    const call = ch.call("load", { source, options: rest }, { onProgress }, transfer);
    const abort = () => ch.post("abort", { target: call.id });
    signal?.addEventListener("abort", abort, { once: true });
    try {
      await call.done;
    } catch (e) {
      // The worker freed what the failed load allocated. Ours is ended; a worker the caller
      // passed in stays theirs, usable for the next load (unless it crashed).
      if (!worker) ch.worker.terminate();
      throw e;
    } finally {
      signal?.removeEventListener("abort", abort);
    }
    return new Engine(ch);
  }

  /**
   * Token ids of `text` (BOS added when the model's metadata says so; special-token text read as
   * those tokens unless `{ parseSpecial: false }`).
   */
  tokenize(text, { parseSpecial = true } = {}) {
    return this.#ch.call("tokenize", { text, parseSpecial }).done;
  }
  /** Model and adapter facts: architecture, sizes, memory, adapter name and features. */
  info() {
    return this.#ch.call("info").done;
  }
  /**
   * The attention lens: how much the last token of the conversation attends to every earlier
   * token, per head, at `layer` (default: the last). `{ layer, heads, tokens, weights }`.
   */
  lens(layer) {
    return this.#ch.call("lens", { layer }).done;
  }
  /**
   * The attention lens of any token: `{ prompt | messages | ids, token, layer?, head? }` (with
   * none of prompt, messages and ids: the conversation so far). Resolves to
   * `{ tokens, query, layers, heads, weights }`, `weights[layer][head][key]` for keys 0..=token,
   * like `attend attention --json`. Queues behind a streaming answer.
   */
  attention(request) {
    return this.#ch.call("attention", { request }).done;
  }
  /**
   * Benchmark the loaded model in this browser: `{ promptTokens = 128, genTokens = 64, repeat = 3,
   * profile = false }`. Resolves to the same object as `attend bench --json`: prefill_tok_s,
   * decode_tok_s, ttft_s, load_s, compile_s, bytes_per_token, decode_gb_s, copy_gb_s,
   * roofline_fraction, dispatches_per_token, cpu_ms_per_token, gpu_bytes, adapter, … and, with
   * `profile`, GPU time per kernel (`profile`: [{pass, kernel, calls, ms}]).
   */
  bench(options = {}) {
    return this.#ch.call("bench", { options }).done;
  }
  /** Free the GPU memory and stop the worker. */
  async unload() {
    try {
      await this.#ch.call("unload").done;
    } finally {
      this.#ch.worker.terminate();
    }
  }
}

// AbortSignals cannot cross to the worker; everything else in a request is plain data.
function strip(request) {
  const { signal, ...rest } = request ?? {};
  return rest;
}

function streamCompletion(ch, request, type) {
  const queue = [];
  let wake = null;
  let finished = false;
  let failure = null;
  const push = (item) => {
    queue.push(item);
    wake?.();
  };
  const call = ch.call(type, { request: strip(request) }, { onChunk: push });
  call.done.then(
    () => { finished = true; wake?.(); },
    (e) => { failure = e; finished = true; wake?.(); },
  );
  const signal = request.signal;
  const stop = () => ch.post("stop", { target: call.id });
  signal?.addEventListener("abort", stop, { once: true });
  const iterator = {
    async next() {
      for (;;) {
        if (queue.length) return { value: queue.shift(), done: false };
        if (failure) throw failure;
        if (finished) {
          signal?.removeEventListener("abort", stop);
          return { value: undefined, done: true };
        }
        await new Promise((r) => (wake = r));
        wake = null;
      }
    },
    async return() {
      stop();
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
  return Promise.resolve(iterator);
}

/** Models stored by earlier loads: [{ url, bytes, complete }]. */
export async function listCachedModels() {
  const ch = new Channel(defaultWorker());
  try {
    return await ch.call("cache.list").done;
  } finally {
    ch.worker.terminate();
  }
}

/** Remove a stored model (by the URL it was loaded from). */
export async function deleteCachedModel(url) {
  const ch = new Channel(defaultWorker());
  try {
    return await ch.call("cache.delete", { url }).done;
  } finally {
    ch.worker.terminate();
  }
}

// A short-lived worker for a call that needs no loaded model.
async function oneOff(type, payload) {
  const ch = new Channel(defaultWorker());
  try {
    return await ch.call(type, payload).done;
  } finally {
    ch.worker.terminate();
  }
}

/** The model catalog: [{ name, architecture, quant, file_bytes, context, license, urls, ... }]. */
export function models() {
  return oneOff("catalog.models");
}

/**
 * Whether catalog model `name` fits this browser's GPU, and with what context, before any download:
 * `{ fits, context, requested_context, gpu_bytes, ..., reason }`. Options as `Engine.load`'s
 * (`contextLength`, `maxGpuBytes`, `kvPrecision`).
 */
export function checkFit(name, options = {}) {
  return oneOff("catalog.fit", { name, options });
}
