// attend-llm worker: owns the WebAssembly engine and its GPU device. It only routes messages to
// the wasm exports and posts results back; streaming chunks are built in Rust.
import init, { WasmEngine, CancelToken, cacheList, cacheDelete } from "./wasm/attend.js";

const ready = init();
let engine = null;
const cancels = new Map(); // call id -> CancelToken of a running load or chat

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
          const value = await (type === "chat" ? engine.chat(msg.request, onChunk, token) : engine.completion(msg.request, onChunk, token));
          return reply(id, "result", { value });
        } finally {
          cancels.delete(id);
        }
      }
      case "tokenize":
        return reply(id, "result", { value: Array.from(engine.tokenize(msg.text, msg.parseSpecial !== false)) });
      case "bench":
        return reply(id, "result", { value: await engine.bench(msg.options ?? {}) });
      case "lens":
        return reply(id, "result", { value: await engine.lens(msg.layer ?? undefined) });
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
      default:
        throw new Error(`unknown request '${type}'`);
    }
  } catch (e) {
    fail(id, e);
  }
};
