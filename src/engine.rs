//! The engine: a loaded model with its tokenizer and chat template, and what it does — generate
//! (`generate.rs`: chunked prefill, decode, sampling, streaming text, stopping), score, the
//! attention lens — and how it loads (`load_file` here, push-style in `builder.rs`). The CLI and
//! the wasm API are thin layers over this.

use crate::chat::{ChatTemplate, Message};
use crate::constrain::Constraint;
use crate::gguf::{Gguf, TensorInfo};
use crate::gpu::Gpu;
pub use crate::kernels::attention::KvPrecision;
use crate::kernels::topk;
use crate::model::{LensRequest, Logits, Model, Tail, Weights};
use crate::sampler::{Sampler, SamplerConfig};
use crate::stop::StopChecker;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};

mod attention;
mod builder;
mod generate;
mod info;
mod passes;
mod pick;
pub use attention::{Attention, AttentionQuery};
pub use builder::EngineBuilder;
pub use info::{CompileStats, EngineInfo, Parameters, TensorTypes};
use passes::{Fetch, Input, Passes};

/// Seconds since some fixed point (works natively and in the browser).
pub fn now_s() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        // performance.now() (sub-millisecond, in windows and workers); Date.now() if absent.
        use wasm_bindgen::JsCast;
        js_sys::Reflect::get(&js_sys::global(), &"performance".into())
            .ok()
            .and_then(|p| p.dyn_into::<web_sys::Performance>().ok())
            .map_or_else(js_sys::Date::now, |p| p.now())
            / 1000.0
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_secs_f64()
    }
}

/// The limit on raw prompt text (the same as on a whole conversation).
pub fn check_prompt_bytes(text: &str) -> Result<()> {
    let max = crate::chat::MAX_CHAT_INPUT_BYTES;
    if text.len() > max {
        return Err(Error::Invalid(format!(
            "the prompt has {} bytes of text, over the limit of {max}",
            text.len()
        )));
    }
    Ok(())
}

#[derive(Clone, Debug)]
pub struct LoadOptions {
    /// KV-cache positions, at most the model's training context (the default).
    pub context: Option<u32>,
    /// Tokens per prefill chunk.
    pub batch: u32,
    /// Rows of logits one pass can return (1 unless all-position logits are needed).
    pub logit_rows: u32,
    /// Refuse a model whose estimated GPU bytes (weights, KV cache, activations) exceed this.
    pub max_gpu_bytes: Option<u64>,
    /// How the KV cache stores keys and values: f16 (default) or f32 (twice the memory; the
    /// attention lens then matches fp32 transformers within 1e-3).
    pub kv: KvPrecision,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            context: None,
            batch: 64,
            logit_rows: 1,
            max_gpu_bytes: None,
            kv: KvPrecision::F16,
        }
    }
}

/// How [`Engine::warmup_with`] picks the kernels' shapes (workgroup size, rows per invocation,
/// how the activations are bound) for each weight matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tune {
    /// [`Tune::Measure`], except on a CPU adapter in a browser, where it is [`Tune::Remembered`]:
    /// there each candidate is a pipeline that takes seconds to compile, and SwiftShader's
    /// candidates measured within ~10% of each other, so measuring them cost a first visit far
    /// more than it won (the README's speed notes).
    Auto,
    /// Time the candidate shapes of every matrix whose shape is not remembered, and remember them.
    Measure,
    /// Shapes remembered from an earlier measurement, the built-in default shapes for the rest.
    Remembered,
    /// The built-in default shapes only (what a browser's first visit gets with `Auto`).
    Defaults,
}

impl Tune {
    pub fn name(self) -> &'static str {
        match self {
            Tune::Auto => "auto",
            Tune::Measure => "measure",
            Tune::Remembered => "remembered",
            Tune::Defaults => "defaults",
        }
    }

    pub fn from_name(name: &str) -> Result<Tune> {
        [Tune::Auto, Tune::Measure, Tune::Remembered, Tune::Defaults]
            .into_iter()
            .find(|t| t.name() == name)
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "tune must be \"auto\", \"measure\", \"remembered\" or \"defaults\", not {name:?}"
                ))
            })
    }

    /// `Auto` resolved for `gpu`: Measure or Remembered.
    pub fn resolve(self, gpu: &crate::gpu::Gpu) -> Tune {
        match self {
            Tune::Auto if cfg!(target_arch = "wasm32") && gpu.adapter.device_type == "Cpu" => {
                Tune::Remembered
            }
            Tune::Auto => Tune::Measure,
            t => t,
        }
    }
}

/// Default KV-cache length in the browser, where GPU memory is shared with the page.
pub const BROWSER_DEFAULT_CONTEXT: u32 = 4096;

#[derive(Clone, Debug)]
pub struct GenParams {
    pub max_tokens: u32,
    pub sampler: SamplerConfig,
    /// Return this many most likely tokens with their log-probabilities at each step.
    pub top_logprobs: usize,
    /// Return each generated token's log-probability ([`Token::logprob`]; implied by
    /// `top_logprobs > 0`).
    pub logprobs: bool,
    pub stop: Vec<String>,
    /// Keep generating through end-of-generation tokens (benchmarks, reference comparisons).
    pub ignore_eog: bool,
}

impl Default for GenParams {
    fn default() -> Self {
        GenParams {
            max_tokens: 256,
            sampler: SamplerConfig::default(),
            top_logprobs: 0,
            logprobs: false,
            stop: Vec::new(),
            ignore_eog: false,
        }
    }
}

impl GenParams {
    /// Whether each step must read the logits back for log-probabilities.
    pub fn wants_logprobs(&self) -> bool {
        self.logprobs || self.top_logprobs > 0
    }
}

/// One generated token as streamed to the caller.
#[derive(Clone, Debug)]
pub struct Token {
    pub id: u32,
    /// Text that became final with this token (may be empty while a character or a possible
    /// stop string is incomplete).
    pub text: String,
    pub top_logprobs: Vec<(u32, f32)>,
    /// log-softmax of this token under the model's logits (when [`GenParams::wants_logprobs`]).
    pub logprob: Option<f32>,
}

pub use crate::openai::FinishReason;

#[derive(Clone, Debug)]
pub struct GenStats {
    pub prompt_tokens: u32,
    /// Prompt tokens whose KV was reused from the previous call.
    pub reused_tokens: u32,
    pub generated_tokens: u32,
    pub prefill_s: f64,
    pub decode_s: f64,
    pub finish_reason: FinishReason,
    pub text: String,
}

impl GenStats {
    pub fn prefill_tok_s(&self) -> f64 {
        (self.prompt_tokens - self.reused_tokens) as f64 / self.prefill_s.max(1e-9)
    }
    pub fn decode_tok_s(&self) -> f64 {
        // The first token comes from the prefill; the rest are decode steps.
        self.generated_tokens.saturating_sub(1) as f64 / self.decode_s.max(1e-9)
    }
}

/// What the CPU did for forward passes (for `attend bench`).
#[derive(Clone, Copy, Debug, Default)]
pub struct PassStats {
    /// Dispatches recorded in the last pass (the argmax of greedy decoding included).
    pub dispatches: u32,
    /// Single-token (decode) passes run, and the seconds spent recording and submitting them.
    pub decode_passes: u32,
    pub decode_cpu_s: f64,
    /// Sampled steps whose GPU candidates did not decide, so the logits row was read.
    pub row_reads: u32,
}

pub struct Engine {
    pub gpu: Gpu,
    pub model: Model,
    /// Shared, so a token callback can read it while `generate` borrows the engine.
    pub tokenizer: std::sync::Arc<Tokenizer>,
    pub template: ChatTemplate,
    pub header: Gguf,
    /// Tokens whose keys and values are in the cache, in order from position 0.
    cached: Vec<u32>,
    /// Statistics of the forward passes since the last reset (`Cell::take` resets).
    pub pass_stats: std::cell::Cell<PassStats>,
    /// Decode plans and readback buffers.
    passes: Passes,
    /// Greedy decoding submits token t+1's pass before reading token t. On by default where the
    /// GPU runs apart from the CPU; off natively on a CPU adapter (lavapipe), where the early
    /// submit only waits for the pass before it.
    pub pipeline: bool,
    /// Sampled decoding and logprobs read the GPU's candidates (`kernels::topk`) instead of the
    /// logits row (off: always read the row, to compare the two).
    pub gpu_sampling: bool,
    /// What [`Engine::info`] calls the model: the file or URL name, set by whoever loads it
    /// (`general.name` from the metadata until then).
    pub name: String,
    /// The warm-up's seconds and pipelines, for [`Engine::info`].
    pub compile: CompileStats,
}

/// Dropping an engine gives its decode plans' buffers back to the pool and destroys every free
/// pool buffer, so the GPU memory goes now (not at a later collection in a browser) and the live
/// count ([`Gpu::buffers_in_use`]) falls back.
impl Drop for Engine {
    fn drop(&mut self) {
        self.passes.clear(&self.gpu);
        self.gpu.pool.trim();
    }
}

impl Engine {
    /// Build an engine from a parsed header, pulling each tensor's bytes through `read`
    /// (`read(tensor, offset, len)`), in file order and in pieces of at most 16 MiB.
    pub fn load_with(
        gpu: Gpu,
        header: Gguf,
        opts: &LoadOptions,
        mut read: impl FnMut(&TensorInfo, u64, u64) -> Result<Vec<u8>>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<Engine> {
        let mut order: Vec<usize> = (0..header.tensors.len()).collect();
        order.sort_by_key(|&i| (header.tensors[i].shard, header.tensors[i].offset));
        let tensors = header.tensors.clone();
        let mut b = EngineBuilder::new(gpu, header, opts.clone())?;
        const PIECE: u64 = 16 << 20;
        for i in order {
            let t = &tensors[i];
            let size = t.byte_size();
            let mut off = 0;
            while off < size {
                let len = PIECE.min(size - off);
                b.feed(i, off, &read(t, off, len)?)?;
                off += len;
                progress(b.bytes_done(), b.bytes_total());
            }
        }
        b.finish()
    }

    /// Open a GGUF file (split files are found next to it) on the default adapter.
    #[cfg(not(target_arch = "wasm32"))]
    pub async fn load_file(path: &std::path::Path, opts: &LoadOptions) -> Result<Engine> {
        // The file first: a broken one is named before any device is opened.
        let file = crate::gguf::GgufFile::open(path)?;
        Self::load_opened(Gpu::new().await?, file, path, opts)
    }

    /// [`Engine::load_file`] on `gpu` (say, a device of its own: [`Gpu::private`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn load_file_on(gpu: Gpu, path: &std::path::Path, opts: &LoadOptions) -> Result<Engine> {
        Self::load_opened(gpu, crate::gguf::GgufFile::open(path)?, path, opts)
    }

    #[cfg(not(target_arch = "wasm32"))]
    fn load_opened(
        gpu: Gpu,
        file: crate::gguf::GgufFile,
        path: &std::path::Path,
        opts: &LoadOptions,
    ) -> Result<Engine> {
        let header = file.header().clone();
        let mut e = Self::load_with(
            gpu,
            header,
            opts,
            |t, off, len| file.read_range(t, off, len),
            |_, _| {},
        )?;
        if let Some(name) = path.file_name() {
            e.name = name.to_string_lossy().into_owned();
        }
        Ok(e)
    }

    /// Tokenize a raw prompt as the CLI and `tokenize()` do: BOS as the model says, special-token
    /// text (`<|im_start|>`) read as those tokens like transformers and llama.cpp do; text over
    /// [`crate::chat::MAX_CHAT_INPUT_BYTES`] is refused before any work is spent on it.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_raw(text, true)
    }

    /// [`Engine::encode`], choosing whether special-token text is parsed (`false`: it is split
    /// into ordinary pieces).
    pub fn encode_raw(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        check_prompt_bytes(text)?;
        Ok(self.tokenizer.encode(text, true, parse_special))
    }

    /// Render `messages` with the model's chat template and tokenize: control tokens are parsed
    /// where the template writes them, never inside a message (see [`ChatTemplate::tokenize`]);
    /// conversations over [`crate::chat::MAX_CHAT_INPUT_BYTES`] are refused.
    pub fn chat_prompt(&self, messages: &[Message]) -> Result<Vec<u32>> {
        self.template.tokenize(&self.tokenizer, messages, true) // the template writes BOS itself
    }

    /// [`Engine::chat_prompt`] with `tools` handed to the template (OpenAI's tool objects).
    pub fn chat_prompt_with_tools(
        &self,
        messages: &[Message],
        tools: Option<&[serde_json::Value]>,
    ) -> Result<Vec<u32>> {
        (self.template).tokenize_with_tools(&self.tokenizer, messages, tools, true)
    }

    /// The checks `generate` makes on a prompt before touching the cache (callers with a slow
    /// step between tokenizing and generating can fail early with them).
    pub fn check_prompt(&self, prompt: &[u32]) -> Result<()> {
        let ctx = self.model.context;
        if prompt.is_empty() {
            return Err(Error::Invalid("the prompt is empty".into()));
        }
        if let Some(&bad) = prompt.iter().find(|&&t| t >= self.model.cfg.vocab) {
            return Err(Error::Invalid(format!(
                "token id {bad} is outside the vocabulary ({})",
                self.model.cfg.vocab
            )));
        }
        if prompt.len() as u32 >= ctx {
            return Err(Error::Invalid(format!(
                "the prompt has {} tokens but the context holds {ctx}; shorten it or load with a larger context",
                prompt.len()
            )));
        }
        Ok(())
    }

    /// A failed GPU read is reported as the device loss when that is what it was.
    fn lost_or(&self, e: Error) -> Error {
        self.gpu.check_lost().err().unwrap_or(e)
    }

    /// Logits at every position of `ids` (teacher forcing), computed from position 0: forward
    /// passes of `batch` tokens (the prefill kernels), logits read back `logit_rows` at a time.
    pub async fn score(&mut self, ids: &[u32]) -> Result<Vec<Vec<f32>>> {
        self.gpu.check_lost()?;
        let s = &self.model.scratch;
        let (batch, rows) = (s.batch as usize, s.logit_rows.min(s.batch) as usize);
        if ids.len() as u32 > self.model.context {
            return Err(Error::Invalid(format!(
                "{} tokens exceed the context of {}",
                ids.len(),
                self.model.context
            )));
        }
        let vocab = self.model.cfg.vocab as usize;
        let mut out = Vec::with_capacity(ids.len());
        self.cached.clear();
        for (c, chunk) in ids.chunks(batch).enumerate() {
            self.run(
                Input::Ids(chunk),
                (c * batch) as u32,
                Logits::None,
                Tail::Logits,
                Fetch::Nothing,
            )?;
            for first in (0..chunk.len()).step_by(rows) {
                let n = rows.min(chunk.len() - first);
                let mut rec = self.gpu.recorder("logits");
                self.model.head_rows(&mut rec, first as u32, n as u32)?;
                rec.submit();
                let flat = self
                    .gpu
                    .read::<f32>(&self.model.scratch.logits, 0, n * vocab)
                    .await
                    .map_err(|e| self.lost_or(e))?;
                out.extend(flat.chunks(vocab).map(|r| r.to_vec()));
            }
        }
        self.cached.extend_from_slice(ids);
        Ok(out)
    }

    /// Run one decode-sized and one prefill-sized pass so every pipeline is compiled before the
    /// first answer (pipeline creation is slow in browsers and on software adapters), after
    /// picking the kernel shapes as [`Tune::Auto`] does.
    pub async fn warmup(&mut self) -> Result<()> {
        self.warmup_with(Tune::Auto).await
    }

    /// [`Engine::warmup`] with the kernel shapes picked as `tune` says.
    pub async fn warmup_with(&mut self, tune: Tune) -> Result<()> {
        self.gpu.check_lost()?;
        let t0 = now_s();
        self.model.default_matmul_shapes(&self.gpu);
        match tune.resolve(&self.gpu) {
            Tune::Defaults => {}
            t => self.model.tune(&self.gpu, t == Tune::Measure).await?,
        }
        let t_tune = now_s() - t0;
        // Plans captured before the tune would keep the untuned kernel shapes.
        self.passes.clear(&self.gpu);
        let n = self
            .model
            .scratch
            .batch
            .min(32)
            .min(self.model.context - 1)
            .max(1) as usize;
        // Every pipeline of a prefill chunk and of a greedy decode step, created together up
        // front: in parallel natively, where drivers compile at creation, and in a browser with
        // `createComputePipelineAsync`.
        let mut wanted = crate::gpu::Recorder::collect(&self.gpu, "warmup");
        for (m, pos) in [(n as u32, 0), (1, n as u32)] {
            self.model.forward(&mut wanted, m, pos, Logits::Last)?;
        }
        self.model.tail(&mut wanted, Tail::Greedy)?;
        self.gpu
            .pipelines
            .create_all(&self.gpu.device, &wanted.into_wanted())
            .await;
        // Natively the passes compile the pipelines (lavapipe compiles at a pipeline's first
        // dispatch), so the prefill pass is a whole chunk. A browser's GPU process compiles at
        // creation and the passes only wait for it: there the fewest tokens that still take the
        // prefill kernels (a 32-token pass was ~2.5 s of SwiftShader's prefill).
        let run_n = if cfg!(target_arch = "wasm32") {
            n.min(crate::kernels::linear::MATVEC_MAX_M as usize + 1)
        } else {
            n
        };
        self.run(
            Input::Ids(&vec![0; run_n]),
            0,
            Logits::Last,
            Tail::Greedy,
            Fetch::Nothing,
        )?;
        let next = Fetch::Next(0);
        let index = self.run(Input::OnGpu, run_n as u32, Logits::Last, Tail::Greedy, next)?;
        self.read_next(0, index).await?;
        self.cached.clear();
        // The sampling kernels only after the greedy passes, and unwaited: a browser's creation
        // returns at once and its GPU process compiles them in order, so the engine is ready
        // while SwiftShader still compiles them (~2 s, the two GPU top-k kernels), which the chat
        // page's greedy answers never need; a sampled request sent sooner waits for them there.
        let mut sampling = crate::gpu::Recorder::collect(&self.gpu, "warmup");
        self.model.tail(&mut sampling, Tail::Candidates)?;
        self.gpu
            .pipelines
            .create_all_unwaited(&self.gpu.device, &sampling.into_wanted());
        self.compile = CompileStats {
            seconds: now_s() - t0,
            pipelines: self.gpu.pipelines.len(),
        };
        if std::env::var_os("ATTEND_TUNE_LOG").is_some() {
            let passes = now_s() - t0 - t_tune;
            crate::log_line(&format!("warmup: tune {t_tune:.2} s, passes {passes:.2} s"));
        }
        Ok(())
    }

    /// The attention lens: how much the last token in the cache attends to every token before it,
    /// per head, at `layer` (default: the last layer). Recomputes that token's pass (its keys and
    /// values are rewritten unchanged).
    pub async fn lens(&mut self, layer: Option<u32>) -> Result<Lens> {
        self.gpu.check_lost()?;
        let n = self.cached.len();
        let Some(&last) = self.cached.last() else {
            return Err(Error::Invalid(
                "the attention lens needs a conversation first".into(),
            ));
        };
        let cfg = &self.model.cfg;
        let layer = layer.unwrap_or(cfg.n_layers - 1);
        if layer >= cfg.n_layers {
            return Err(Error::Invalid(format!(
                "layer {layer} does not exist (the model has {})",
                cfg.n_layers
            )));
        }
        let heads = cfg.n_heads;
        self.gpu
            .write(&self.model.scratch.ids, 0, bytemuck::bytes_of(&last));
        let mut rec = self.gpu.recorder("lens");
        self.model.forward_with_lens(
            &mut rec,
            1,
            (n - 1) as u32,
            Logits::None,
            Some(LensRequest {
                layers: layer..layer + 1,
                out: None,
            }),
        )?;
        rec.submit();
        let weights = self
            .gpu
            .read::<f32>(&self.model.scratch.lens, 0, heads as usize * n)
            .await
            .map_err(|e| self.lost_or(e))?;
        let tokens = self
            .cached
            .iter()
            .map(|&id| String::from_utf8_lossy(self.tokenizer.token_bytes(id)).into_owned())
            .collect();
        Ok(Lens {
            layer,
            heads,
            tokens,
            weights,
        })
    }

    /// Forget the cached prompt (the next generation starts from position 0).
    pub fn reset(&mut self) {
        self.cached.clear();
    }

    /// GPU bytes of weights, KV cache and activations (and everything else alive on the device).
    pub fn memory(&self) -> Memory {
        Memory {
            weights: self.model.weights.bytes(),
            kv_cache: self.model.kv_bytes(),
            scratch: self.model.scratch_bytes(),
            gpu_total: self.gpu.bytes_in_use(),
        }
    }
}

/// Attention weights of the last cached token: `weights[h * tokens.len() + j]` is how much head
/// `h` attends to token `j` (each head sums to 1).
#[derive(Clone, Debug, serde::Serialize)]
pub struct Lens {
    pub layer: u32,
    pub heads: u32,
    pub tokens: Vec<String>,
    pub weights: Vec<f32>,
}

#[derive(Clone, Copy, Debug)]
pub struct Memory {
    pub weights: u64,
    pub kv_cache: u64,
    pub scratch: u64,
    pub gpu_total: u64,
}
