//! The wasm-bindgen API used by `www/attend-llm/worker.js`: load a model from URLs, Blobs or an
//! ArrayBuffer (streamed to the GPU as it arrives, cached in OPFS), chat with OpenAI-shaped
//! requests and streamed chunks, tokenize, describe. All logic is here; the JS only routes.
//!
//! A call holds the engine's `RefCell` borrow across its awaits on purpose: JS is single-threaded,
//! and a second call that arrives meanwhile fails its `try_borrow_mut` with "the engine is busy"
//! instead of interleaving with the first.
#![allow(clippy::await_holding_refcell_ref)]

mod catalog;
mod chat;
mod lens;
mod source;
mod store;

pub use catalog::{check_fit, models};

use crate::engine::{Engine, LoadOptions, Tune};
use crate::gguf::Gguf;
use crate::gpu::Gpu;
use crate::push::{HeaderReader, PushLoader};
use js_sys::{Function, Object, Reflect};
use source::{read_all, Cancel, Flow, Source};
use std::cell::RefCell;
use std::rc::Rc;
use store::Store;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

/// A JS `Error`; a bad request is a `BadRequestError` with `status: 400` and `param` (the
/// field), as the `openai` package reports them.
fn err(e: crate::Error) -> JsValue {
    let v: JsValue = JsError::new(&e.to_string()).into();
    if let crate::Error::BadRequest { param, .. } = &e {
        let _ = Reflect::set(&v, &"name".into(), &"BadRequestError".into());
        let _ = Reflect::set(&v, &"status".into(), &400.into());
        let _ = Reflect::set(&v, &"param".into(), &param.as_str().into());
    }
    v
}

#[wasm_bindgen(start)]
fn start() {
    console_error_panic_hook::set_once();
}

/// Cancels a running load or generation (JS calls `cancel()` while the other call awaits).
#[wasm_bindgen]
#[derive(Clone, Default)]
pub struct CancelToken(Cancel);

#[wasm_bindgen]
impl CancelToken {
    #[wasm_bindgen(constructor)]
    pub fn new() -> CancelToken {
        CancelToken::default()
    }
    pub fn cancel(&self) {
        self.0.cancel();
    }
}

/// Reads one `Gpu`'s live buffers: `(buffers, bytes, whether anything of it is still alive)`.
type GpuProbe = Box<dyn Fn() -> (u64, u64, bool)>;

thread_local! {
    /// The live-buffer counters of every `Gpu` this instance created (one per load, also loads
    /// that failed or were cancelled), for [`gpu_memory`]. A counter is dropped from the list once
    /// its `Gpu` and every buffer it made are gone.
    static GPUS: RefCell<Vec<GpuProbe>> = RefCell::default();
}

fn watch_gpu(gpu: &Gpu) {
    let live = gpu.live_bytes.clone();
    let probe = move || {
        let buffers = live.buffers.load(std::sync::atomic::Ordering::Relaxed);
        let bytes = live.bytes.load(std::sync::atomic::Ordering::Relaxed);
        // The Gpu, its pool and each live buffer hold the counter: only our probe left = all gone.
        (buffers, bytes, std::sync::Arc::strong_count(&live) > 1)
    };
    GPUS.with(|g| g.borrow_mut().push(Box::new(probe)));
}

/// GPU buffers still alive from every load in this worker, finished, failed or cancelled:
/// `{ buffers, bytes, devices }` (`devices`: `Gpu`s not yet dropped). After a cancelled or failed
/// load that left nothing behind, all three are 0 (with an engine loaded: that engine's own).
/// The worker answers it as `{ type: "debug.gpu" }` (`tests/e2e/cancel.test.mjs`).
#[wasm_bindgen(js_name = gpuMemory)]
pub fn gpu_memory() -> Result<JsValue, JsValue> {
    let (mut buffers, mut bytes, mut devices) = (0u64, 0u64, 0u64);
    GPUS.with(|g| {
        g.borrow_mut().retain(|probe| {
            let (n, b, alive) = probe();
            buffers += n;
            bytes += b;
            devices += alive as u64;
            alive || n > 0
        })
    });
    chat::to_js(&serde_json::json!({ "buffers": buffers, "bytes": bytes, "devices": devices }))
}

/// The model cache's file of tuned kernel shapes (see `kernels::tuned`).
const TUNED_SHAPES: &str = "tuned-shapes.txt";

#[wasm_bindgen]
pub struct WasmEngine {
    inner: Rc<RefCell<Engine>>,
    name: String,
    /// Seconds from `load` to the uploaded weights, and to compiled pipelines (for `bench`).
    load_s: f64,
    compile_s: f64,
    /// Pipelines created by the end of the warm-up, and the seconds spent creating them.
    pipelines: (usize, f64),
}

/// Reports `{phase, loaded, total, cached}` to JS at most every 1 MiB of progress.
struct Progress {
    f: Function,
    last: Option<u64>,
}

impl Progress {
    fn report(&mut self, phase: &str, loaded: u64, total: u64, cached: bool, force: bool) {
        if !force && self.last.is_some_and(|last| loaded < last + (1 << 20)) {
            return;
        }
        self.last = Some(loaded);
        let o = Object::new();
        let _ = Reflect::set(&o, &"phase".into(), &phase.into());
        let _ = Reflect::set(&o, &"loaded".into(), &(loaded as f64).into());
        let _ = Reflect::set(&o, &"total".into(), &(total as f64).into());
        let _ = Reflect::set(&o, &"cached".into(), &cached.into());
        let _ = self.f.call1(&JsValue::NULL, &o);
    }
}

/// `options.kvPrecision`: `"f16"` (default) or `"f32"`.
fn kv_precision(options: &JsValue) -> Result<crate::engine::KvPrecision, JsValue> {
    let v = Reflect::get(options, &"kvPrecision".into()).unwrap_or(JsValue::UNDEFINED);
    if v.is_undefined() || v.is_null() {
        return Ok(Default::default());
    }
    v.as_string()
        .and_then(|s| crate::engine::KvPrecision::from_name(&s))
        .ok_or_else(|| {
            JsError::new(&format!(
                "kvPrecision must be \"f16\" or \"f32\", not {v:?}"
            ))
            .into()
        })
}

/// `options.tune`: `"auto"` (default), `"measure"`, `"remembered"` or `"defaults"` (see [`Tune`]).
fn tune_option(options: &JsValue) -> Result<Option<Tune>, JsValue> {
    let v = Reflect::get(options, &"tune".into()).unwrap_or(JsValue::UNDEFINED);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_string() {
        Some(s) => Tune::from_name(&s).map(Some).map_err(err),
        None => Err(JsError::new(&format!("tune must be a string, not {v:?}")).into()),
    }
}

/// `options.contextLength`, or the browser's default load context.
fn context_length(options: &JsValue) -> u32 {
    Reflect::get(options, &"contextLength".into())
        .ok()
        .and_then(|v| v.as_f64())
        .map_or(crate::engine::BROWSER_DEFAULT_CONTEXT, |v| v as u32)
}

/// `options.maxGpuBytes`: a whole number of bytes, or absent (`undefined`/`null`).
fn max_gpu_bytes(options: &JsValue) -> Result<Option<u64>, JsValue> {
    let v = Reflect::get(options, &"maxGpuBytes".into()).unwrap_or(JsValue::UNDEFINED);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n <= u64::MAX as f64 => {
            Ok(Some(n as u64))
        }
        _ => Err(JsError::new(&format!(
            "maxGpuBytes must be a whole number of bytes, not {v:?}"
        ))
        .into()),
    }
}

#[wasm_bindgen]
impl WasmEngine {
    /// `source`: a URL, an array of URLs (split GGUF), a File/Blob (or an array of them), or an
    /// ArrayBuffer. `options`: `{ contextLength?, cache?, maxGpuBytes?, kvPrecision?, tune?, retune? }`.
    pub async fn load(
        source: JsValue,
        options: JsValue,
        on_progress: Function,
        cancel: &CancelToken,
    ) -> Result<WasmEngine, JsValue> {
        let t0 = crate::engine::now_s();
        let sources: Vec<Source> = if js_sys::Array::is_array(&source) {
            js_sys::Array::from(&source)
                .iter()
                .map(|v| Source::from_js(&v))
                .collect::<Result<_, _>>()?
        } else {
            vec![Source::from_js(&source)?]
        };
        let context = Some(context_length(&options));
        let max_gpu_bytes = max_gpu_bytes(&options)?;
        let kv = kv_precision(&options)?;
        let tune = tune_option(&options)?;
        let use_cache = Reflect::get(&options, &"cache".into())
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(true);
        let cancel = cancel.0.clone();
        let what = format!(
            "loading {}",
            sources.first().map_or(String::new(), |s| s.name())
        );
        let store = if use_cache && sources.iter().any(|s| matches!(s, Source::Url(_))) {
            Some(Store::open().await?)
        } else {
            None
        };
        let mut progress = Progress {
            f: on_progress,
            last: None,
        };
        cancel.check(&what)?;
        let gpu = Gpu::new().await.map_err(err)?;
        watch_gpu(&gpu);
        cancel.check(&what)?;
        let opts = LoadOptions {
            context,
            max_gpu_bytes,
            kv,
            ..Default::default()
        };

        // Split models: read every shard's header first, so all buffers are planned up front.
        let mut headers = Vec::new();
        if sources.len() > 1 {
            for s in &sources {
                headers.push(read_header(s, store.as_ref(), &cancel).await?);
            }
        }
        let mut loader = PushLoader::new(gpu, opts, headers).map_err(err)?;
        let mut grand_total = 0u64;
        for s in &sources {
            let done_before = loader.received();
            let shard_total = std::cell::Cell::new(None::<u64>);
            read_all(
                s,
                store.as_ref(),
                &cancel,
                &mut |t| shard_total.set(Some(t)),
                &mut |bytes, cached| {
                    if let Some(t) = shard_total.get() {
                        loader.set_file_size(t).map_err(err)?;
                    }
                    loader.push(bytes).map_err(err)?;
                    grand_total = grand_total.max(done_before + shard_total.get().unwrap_or(0));
                    let loaded = loader.received();
                    progress.report("download", loaded, grand_total.max(loaded), cached, false);
                    Ok(Flow::More)
                },
            )
            .await?;
            loader.end_file().map_err(err)?;
            let done = loader.received();
            progress.report("download", done, grand_total.max(done), false, true);
        }
        let done_before = loader.received();
        progress.report("upload", done_before, done_before, false, true);
        cancel.check(&what)?;
        let mut engine = loader.finish().map_err(err)?;
        engine.name = sources[0].name();
        let load_s = crate::engine::now_s() - t0;
        progress.report("compile", done_before, done_before, false, true);
        // Kernel shapes measured by an earlier load on this browser's adapter: only the winners
        // are compiled. Best effort: without the cache (another tab holds the file, no worker)
        // the kernels are measured afresh.
        let shapes = match (&store, use_cache) {
            (Some(s), _) => Some(s.clone()),
            (None, true) => Store::open().await.ok(),
            (None, false) => None,
        };
        let retune = Reflect::get(&options, &"retune".into())
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false);
        // retune: measure afresh (unless `tune` says otherwise).
        let tune = match tune {
            Some(t) => t,
            None if retune => Tune::Measure,
            None => Tune::Auto,
        };
        if retune {
            crate::kernels::tuned::clear();
        } else if let Some(s) = &shapes {
            if let Ok(Some(text)) = s.read_text(TUNED_SHAPES).await {
                let _ = crate::kernels::tuned::import(&text);
            }
        }
        let warm = match cancel.check(&what) {
            Ok(()) => engine.warmup_with(tune).await.map_err(err),
            Err(e) => Err(e),
        };
        if let (Ok(()), Some(s)) = (&warm, &shapes) {
            let _ = s
                .write_text(TUNED_SHAPES, &crate::kernels::tuned::export())
                .await;
        }
        // A cancel that came while the pipelines compiled: the engine is dropped here, with all
        // its buffers, instead of being handed to a caller that no longer wants it.
        if let Err(e) = warm.and_then(|()| cancel.check(&what)) {
            release(&engine);
            return Err(e);
        }
        let compile_s = crate::engine::now_s() - t0 - load_s;
        // `info()` reports the whole compile phase, the remembered shapes' reading included.
        engine.compile.seconds = compile_s;
        // In a browser pipeline creation returns at once and the GPU process compiles behind it:
        // `pipeline_s` is only the JS-side cost there.
        let pipelines = (
            engine.gpu.pipelines.len(),
            engine.gpu.pipelines.create_seconds(),
        );
        progress.report("ready", done_before, done_before, false, true);
        Ok(WasmEngine {
            inner: Rc::new(RefCell::new(engine)),
            name: sources[0].name(),
            load_s,
            compile_s,
            pipelines,
        })
    }

    /// Test hook: traps while the engine is mutably borrowed, as a bug inside a call would (a
    /// panic aborts in wasm). `tests/e2e/faults.test.mjs` checks that attend-llm reports the crash,
    /// rejects later calls and that a new `Engine.load` works.
    #[wasm_bindgen(js_name = debugTrap)]
    pub fn debug_trap(&self) {
        let _held = self.inner.borrow_mut();
        panic!("debugTrap: a deliberate trap for tests");
    }

    /// Token ids of `text`; special-token text is read as those tokens unless `parse_special`
    /// is `false`.
    pub fn tokenize(&self, text: &str, parse_special: Option<bool>) -> Result<Vec<u32>, JsValue> {
        let e = self
            .inner
            .try_borrow()
            .map_err(|_| JsError::new("the engine is busy generating"))?;
        e.encode_raw(text, parse_special.unwrap_or(true))
            .map_err(err)
    }

    pub fn info(&self) -> Result<JsValue, JsValue> {
        let e = self
            .inner
            .try_borrow()
            .map_err(|_| JsError::new("the engine is busy generating"))?;
        let mut v = serde_json::to_value(e.info()).map_err(|e| JsError::new(&e.to_string()))?;
        // The wasm linear memory: the model streams through it, so it stays small.
        let heap = wasm_bindgen::memory()
            .unchecked_into::<js_sys::WebAssembly::Memory>()
            .buffer()
            .unchecked_into::<js_sys::ArrayBuffer>()
            .byte_length();
        v["wasm_heap_bytes"] = heap.into();
        chat::to_js(&v)
    }

    /// An OpenAI chat-completions request. With `on_chunk`, chunks are streamed to it; the
    /// promise resolves to the complete `chat.completion` object either way.
    pub fn chat(
        &self,
        request: JsValue,
        on_chunk: Option<Function>,
        cancel: &CancelToken,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        let model = self.name.clone();
        let cancel = cancel.0.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut e = inner
                .try_borrow_mut()
                .map_err(|_| JsError::new("the engine is already answering"))?;
            chat::complete(&mut e, &model, request, on_chunk, cancel).await
        })
    }

    /// An OpenAI completions request (`prompt` continued as plain text, no chat template;
    /// special-token text in it is parsed unless `parse_special: false`). Streams like `chat`.
    pub fn completion(
        &self,
        request: JsValue,
        on_chunk: Option<Function>,
        cancel: &CancelToken,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        let model = self.name.clone();
        let cancel = cancel.0.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut e = inner
                .try_borrow_mut()
                .map_err(|_| JsError::new("the engine is already answering"))?;
            chat::complete_text(&mut e, &model, request, on_chunk, cancel).await
        })
    }
}

#[wasm_bindgen]
impl WasmEngine {
    /// `attend bench` in the browser: `options` `{ promptTokens?, genTokens?, repeat?, profile? }`;
    /// resolves to the same object as `attend bench --json` (speeds, bytes per token, roofline
    /// fraction, dispatches and CPU time per token, load and compile times; with `profile`, GPU
    /// time per kernel from timestamp queries). Forgets the conversation.
    pub fn bench(&self, options: JsValue) -> js_sys::Promise {
        let inner = self.inner.clone();
        let (load_s, compile_s, name) = (self.load_s, self.compile_s, self.name.clone());
        let pipelines = self.pipelines;
        wasm_bindgen_futures::future_to_promise(async move {
            let mut e = inner
                .try_borrow_mut()
                .map_err(|_| JsError::new("the engine is busy generating"))?;
            let num = |k: &str| {
                Reflect::get(&options, &k.into())
                    .ok()
                    .and_then(|v| v.as_f64())
            };
            let d = crate::bench::BenchOptions::default();
            let o = crate::bench::BenchOptions {
                prompt_tokens: num("promptTokens").map_or(d.prompt_tokens, |v| v as usize),
                gen_tokens: num("genTokens").map_or(d.gen_tokens, |v| v as u32),
                repeat: num("repeat").map_or(d.repeat, |v| v as usize),
                profile: Reflect::get(&options, &"profile".into())
                    .ok()
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false),
                ..d
            };
            let mut r = crate::bench::run(&mut e, &o).await.map_err(err)?;
            r.load_s = load_s;
            r.compile_s = compile_s;
            (r.pipelines, r.pipeline_s) = pipelines;
            let mut v = serde_json::to_value(&r).map_err(|e| JsError::new(&e.to_string()))?;
            v["model"] = serde_json::json!(name);
            chat::to_js(&v)
        })
    }

    /// The attention lens of the last token in the conversation: `{layer, heads, tokens, weights}`.
    pub fn lens(&self, layer: Option<u32>) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let mut e = inner
                .try_borrow_mut()
                .map_err(|_| JsError::new("the engine is busy generating"))?;
            let lens = e.lens(layer).await.map_err(err)?;
            chat::to_js(&lens)
        })
    }
}

/// Before the last owner drops an engine: its decode plans give their buffers back to the pool and
/// the pool destroys every free buffer. Dropping the engine alone would drop those raw pool
/// buffers without `destroy()` (the browser frees them only when it collects them) and leave them
/// in the live count.
fn release(engine: &Engine) {
    engine.set_plans(true);
    engine.gpu.pool.trim();
}

impl Drop for WasmEngine {
    /// `free()` from JS (the worker's `unload`): every GPU buffer goes now, not at a later GC.
    fn drop(&mut self) {
        if Rc::strong_count(&self.inner) == 1 {
            if let Ok(e) = self.inner.try_borrow() {
                release(&e);
            }
        }
    }
}

/// Read just far enough into a source to parse its header (the bytes are cached on the way).
async fn read_header(s: &Source, store: Option<&Store>, cancel: &Cancel) -> Result<Gguf, JsValue> {
    let mut reader = HeaderReader::new();
    let mut header = None;
    let total = std::cell::Cell::new(None::<u64>);
    read_all(
        s,
        store,
        cancel,
        &mut |t| total.set(Some(t)),
        &mut |bytes, _| {
            if let Some(t) = total.get() {
                reader.set_file_size(t).map_err(err)?;
            }
            header = reader.push(bytes).map_err(err)?;
            Ok(if header.is_some() {
                Flow::Enough
            } else {
                Flow::More
            })
        },
    )
    .await?;
    header.ok_or_else(|| JsError::new(&format!("{}: no complete GGUF header", s.name())).into())
}

#[wasm_bindgen(js_name = cacheList)]
pub async fn cache_list() -> Result<JsValue, JsValue> {
    let store = Store::open().await?;
    Ok(store::entries_to_js(&store.list().await?))
}

#[wasm_bindgen(js_name = cacheDelete)]
pub async fn cache_delete(url: String) -> Result<bool, JsValue> {
    Store::open().await?.delete(&url).await
}
