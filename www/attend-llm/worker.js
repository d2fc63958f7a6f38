// attend-llm worker: owns the WebAssembly engine and its GPU device. It only routes messages to
// the wasm exports and posts results back; streaming chunks are built in Rust.
import init, { WasmEngine, CancelToken, cacheList, cacheDelete, gpuMemory, models, checkFit } from "./wasm/attend.js";

const ready = init();
let engine = null;
const cancels = new Map(); // call id -> CancelToken of a running load or chat

// Calls that use the engine run one after another: a lens request sent while an answer streams
// waits for it instead of failing as busy.
let tail = Promise.resolve();
const queued = (f) => {
  const p = tail.then(f);
  tail = p.catch(() => {});
  return p;
};

const reply = (id, type, body = {}) => postMessage({ id, type, ...body });
const fail = (id, e) => reply(id, "error", { message: String(e?.message ?? e), name: e?.name, status: e?.status, param: e?.param });

self.onmessage = async (event) => {
  const msg = event.data;
  const { id, type } = msg;
  if (type === "abort" || type === "stop") {
    cancels.get(msg.target)?.cancel();
    return;
  }
  try {
    await ready;
    switch (type) {
      case "load": {
        const token = new CancelToken();
        cancels.set(id, token);
        try {
          engine = await WasmEngine.load(msg.source, msg.options ?? {}, (p) => reply(id, "progress", { progress: p }), token);
        } finally {
          cancels.delete(id);
        }
        return reply(id, "result", { value: null });
      }
      case "chat":
      case "completion": {
        if (!engine) throw new Error("no model is loaded");
        const token = new CancelToken();
        cancels.set(id, token);
        const stream = !!msg.request?.stream;
        try {
          const onChunk = stream ? (chunk) => reply(id, "chunk", { chunk }) : null;
          const value = await queued(() => (type === "chat" ? engine.chat(msg.request, onChunk, token) : engine.completion(msg.request, onChunk, token)));
          return reply(id, "result", { value });
        } finally {
          cancels.delete(id);
        }
      }
      case "tokenize":
        return reply(id, "result", { value: Array.from(engine.tokenize(msg.text, msg.parseSpecial !== false)) });
      case "bench":
        return reply(id, "result", { value: await queued(() => engine.bench(msg.options ?? {})) });
      case "lens":
        return reply(id, "result", { value: await queued(() => engine.lens(msg.layer ?? undefined)) });
      case "attention":
        if (!engine) throw new Error("no model is loaded");
        return reply(id, "result", { value: await queued(() => engine.attention(msg.request)) });
      case "info":
        return reply(id, "result", { value: engine.info() });
      case "unload":
        engine?.free();
        engine = null;
        return reply(id, "result", { value: null });
      case "cache.list":
        return reply(id, "result", { value: await cacheList() });
      case "cache.delete":
        return reply(id, "result", { value: await cacheDelete(msg.url) });
      case "catalog.models":
        return reply(id, "result", { value: models() });
      case "catalog.fit":
        return reply(id, "result", { value: await checkFit(msg.name, msg.options ?? {}) });
      case "debug.gpu": // GPU buffers alive from every load here, also cancelled or failed ones
        return reply(id, "result", { value: gpuMemory() });
      case "debug.trap": // test hook: a trap inside the engine while it is borrowed, as a bug would
        if (!engine) throw new Error("no model is loaded");
        return reply(id, "result", { value: engine.debugTrap() });
      default:
        throw new Error(`unknown request '${type}'`);
    }
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) {
      // A trap (a Rust panic, an out-of-bounds access, memory exhausted) unwinds nothing: the
      // engine may be left borrowed mid-call, and every later call would fail. This worker is
      // done; the main thread rejects what is pending and the next Engine.load starts a new one.
      const message = `the engine crashed (${e.message}); load the model again`;
      reply(id, "error", { message, name: "EngineCrashed" });
      postMessage({ type: "crashed", message });
      engine = null;
      self.close();
      return;
    }
    fail(id, e);
  }
};
