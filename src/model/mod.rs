//! Transformer models over the kernel library. `config.rs` reads the shared hyperparameters,
//! `loader.rs` streams the weights to the GPU, `parts.rs` holds what architectures are made of,
//! and each architecture lives in its own file (declared tensors, weights, own hyperparameters,
//! and a block that reads like the equations it implements), registered below by one line.

pub mod budget;
pub mod config;
pub mod loader;
pub mod parts;

pub use config::{Arch, Config};
pub use loader::{Loader, Shape};
pub use parts::{Architecture, GateUp, Layer, Qkv};

/// The registry: one line per architecture file, `module::{Architecture, ...}` (the module is
/// declared here too), looked up by GGUF `general.architecture` name ([`Arch::from_name`]).
macro_rules! registry {
    ($($m:ident::{$($a:ident),+ $(,)?}),* $(,)?) => {
        $(mod $m;)*
        /// Every architecture attend runs.
        pub const ARCHS: &[&dyn Architecture] = &[$($(&$m::$a),+),*];
    };
}

registry! {
    llama::{Llama, Qwen2, SmolLm3},
    gemma2::{Gemma2},
    gemma3::{Gemma3},
    qwen3::{Qwen3},
    phi3::{Phi3},
}

mod fold;
mod scratch;
mod sublayers;
use crate::gguf::Gguf;
use crate::gpu::{Buffer, Gpu, Plan, Recorder};
use crate::kernels::attention::{self, AttnKernels, KvPrecision, LayerKv};
use crate::kernels::matvec::Fold;
use crate::kernels::rope::RopeParams;
use crate::kernels::{argmax, elementwise, embedding, linear, norm, topk, Act};
use crate::weights::QMatrix;
use crate::{Error, Result};
pub use scratch::Scratch;

/// What one block call of a pass works on: `m` tokens from position `pos0`, and whether the
/// attention lens keeps this layer's weights.
#[derive(Clone, Copy)]
pub struct Step {
    pub m: u32,
    pub pos0: u32,
    pub lens: bool,
    /// The norms between the block's matvecs are folded into them (see `fold.rs`).
    pub fold: bool,
    /// The pre-norms write their output in int8 too, for the int8 matvecs after them (see
    /// `Model::int8_out`).
    pub int8: bool,
}

pub struct Weights {
    pub token_embd: QMatrix,
    pub blocks: Vec<Box<dyn Layer>>,
    pub output_norm: Buffer,
    /// `None` when the output projection is tied to the token embedding.
    pub output: Option<QMatrix>,
    /// RoPE frequency factors of the global layers, one per rotated pair (empty: none).
    pub rope: RopeFactors,
}

/// RoPE frequency divisors a file may carry (host-side: they go into the frequency table).
#[derive(Default)]
pub struct RopeFactors {
    /// `rope_freqs.weight`: Llama 3.1+ "llama3" scaling, for every context.
    pub freqs: Vec<f32>,
    /// `rope_factors_long.weight` / `_short`: LongRoPE (Phi-3.5, Phi-4-mini), long past the
    /// original context.
    pub long: Vec<f32>,
    pub short: Vec<f32>,
}

impl RopeFactors {
    const NAMES: [&str; 3] = [
        "rope_freqs.weight",
        "rope_factors_long.weight",
        "rope_factors_short.weight",
    ];

    fn take(ld: &mut Loader) -> Result<RopeFactors> {
        let [freqs, long, short] = Self::NAMES.map(|name| -> Result<Vec<f32>> {
            let f = ld.opt_values(name)?.unwrap_or_default();
            match f.iter().find(|f| !(**f > 0.0 && f.is_finite())) {
                Some(bad) => Err(Error::Model(format!(
                    "tensor '{name}' holds {bad}; RoPE frequency factors must be positive and \
                     finite"
                ))),
                None => Ok(f),
            }
        });
        Ok(RopeFactors {
            freqs: freqs?,
            long: long?,
            short: short?,
        })
    }

    /// The factors for a context of `context` positions, and their name for `Engine::info`
    /// (llama.cpp's choice: `rope_freqs` when present, else LongRoPE's long factors past
    /// `orig_ctx` and its short ones up to it).
    pub fn for_context(&self, context: u32, orig_ctx: u32) -> (&'static str, &[f32]) {
        if !self.freqs.is_empty() {
            ("llama3", &self.freqs)
        } else if self.long.is_empty() && self.short.is_empty() {
            ("none", &[])
        } else if context > orig_ctx {
            ("longrope-long", &self.long)
        } else {
            ("longrope-short", &self.short)
        }
    }
}

impl Weights {
    /// Every tensor the architecture reads, with the shape its metadata implies.
    pub fn plan(cfg: &Config) -> Vec<(String, Shape)> {
        let (d, v) = (cfg.d_model, cfg.vocab);
        let mut t: Vec<(String, Shape)> = vec![
            ("token_embd.weight".into(), Shape::mat(d, v)),
            ("output_norm.weight".into(), Shape::vec(d)),
            ("output.weight".into(), Shape::mat(d, v).optional()),
        ];
        t.extend(
            RopeFactors::NAMES.map(|n| (n.to_string(), Shape::vec(cfg.rope_dims / 2).optional())),
        );
        for l in 0..cfg.n_layers {
            for tensor in cfg.arch.0.tensors() {
                t.extend(tensor.plan(cfg, l));
            }
        }
        t
    }

    /// Tensors stacked into one matrix when their types and shapes allow (see `Loader::new`).
    pub fn fusions(cfg: &Config) -> Vec<(String, Vec<String>)> {
        let tensors = cfg.arch.0.tensors();
        (0..cfg.n_layers)
            .flat_map(|l| tensors.iter().flat_map(move |t| t.fusions(l)))
            .collect()
    }

    /// Collect the uploaded tensors once the loader has received every byte.
    pub fn assemble(gpu: &Gpu, cfg: &Config, ld: &mut Loader) -> Result<Weights> {
        let mut blocks = Vec::with_capacity(cfg.n_layers as usize);
        for l in 0..cfg.n_layers {
            blocks.push(cfg.arch.0.layer(&mut parts::LayerTensors { gpu, ld, l })?);
        }
        let w = Weights {
            token_embd: ld.matrix(gpu, "token_embd.weight")?,
            output_norm: ld.vector(gpu, "output_norm.weight")?,
            output: ld.opt_matrix(gpu, "output.weight")?,
            rope: RopeFactors::take(ld)?,
            blocks,
        };
        let int8 = cfg.arch.0.int8_activations();
        for b in &w.blocks {
            let down = b.ffn_down();
            for m in b.matrices() {
                m.set_int8_activations(match int8 {
                    parts::Int8::All => true,
                    parts::Int8::Decode => !std::ptr::eq(m, down),
                    parts::Int8::Head => false,
                });
                m.set_int8_prefill(int8 == parts::Int8::All);
            }
        }
        Ok(w)
    }

    pub fn bytes(&self) -> u64 {
        self.token_embd.bytes()
            + self.output.as_ref().map_or(0, |m| m.bytes())
            + self.output_norm.size()
            + self.blocks.iter().map(|b| b.bytes()).sum::<u64>()
    }
}

/// What a forward pass records for the attention lens (see [`Model::forward_with_lens`]).
#[derive(Clone, Debug)]
pub struct LensRequest<'a> {
    /// Layers whose attention weights are recorded.
    pub layers: std::ops::Range<u32>,
    /// Where each recorded layer's weights are copied (f32 `[layers.len(), n_heads, keys]`);
    /// `None` leaves the (last) recorded layer in `scratch.lens`.
    pub out: Option<&'a Buffer>,
}

impl LensRequest<'_> {
    fn check(&self, model: &Model, keys: u32) -> Result<()> {
        let n = model.cfg.n_layers;
        if self.layers.is_empty() || self.layers.end > n {
            return Err(Error::Invalid(format!(
                "lens layers {:?} are not within the model's {n} layers",
                self.layers
            )));
        }
        if let Some(out) = self.out {
            let need = self.layers.len() as u64 * model.cfg.n_heads as u64 * keys as u64 * 4;
            if out.size() < need {
                return Err(Error::Invalid(format!(
                    "lens output of {} bytes is smaller than the {need} needed",
                    out.size()
                )));
            }
        }
        Ok(())
    }
}

/// Which logits a forward pass computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Logits {
    /// None (a prefill chunk that is not the last one).
    None,
    /// Only the last token's (generation).
    Last,
    /// Every token's (teacher forcing, scoring); needs `logit_rows ≥ m`.
    All,
}

pub struct Model {
    pub cfg: Config,
    pub weights: Weights,
    pub kv: Vec<LayerKv>,
    pub scratch: Scratch,
    /// Positions the KV cache holds.
    pub context: u32,
    /// Which attention kernels run ([`kernels_by_default`]: the register ones on CPU adapters,
    /// where the cache allows; tests switch it to run each). With the register kernels the decode
    /// pass has the same shape at every position. Clear the engine's plans after changing it.
    ///
    /// [`kernels_by_default`]: crate::kernels::attention::kernels_by_default
    pub attention_kernels: AttnKernels,
    /// Whether one-token passes fold the norms into the matvecs where the model allows
    /// ([`Model::folds`]); on by default (natively `ATTEND_FOLD_NORMS=0` turns it off). Clear the
    /// engine's plans after changing it.
    pub fold_norms: bool,
    /// Per layer, the RoPE frequency table a Q/K/V matvec rotating in its store reads (built at
    /// load for llama's adjacent-pair RoPE; layers with the same rotation share one).
    rope_tables: fold::RopeTables,
}

impl Model {
    /// Allocate the KV cache and activations for `context` positions and `batch`-token chunks.
    pub fn new(
        gpu: &Gpu,
        cfg: Config,
        weights: Weights,
        context: u32,
        batch: u32,
        logit_rows: u32,
        kv_precision: KvPrecision,
    ) -> Result<Model> {
        if context == 0 || batch == 0 {
            return Err(Error::Invalid(
                "context and batch must be at least 1".into(),
            ));
        }
        let kv = (0..cfg.n_layers)
            .map(|_| {
                LayerKv::with_precision(gpu, context, cfg.n_kv_heads, cfg.head_dim, kv_precision)
            })
            .collect::<Result<Vec<_>>>()?;
        let scratch = Scratch::new(gpu, &cfg, batch, logit_rows.max(1), context)?;
        // Every layer's cache has the same shape, so the first one decides for all.
        let attention_kernels = kv.first().map_or(AttnKernels::Workgroup, |kv| {
            attention::kernels_by_default(gpu, kv)
        });
        let mut model = Model {
            cfg,
            weights,
            kv,
            scratch,
            context,
            attention_kernels,
            fold_norms: fold::by_default(),
            rope_tables: Default::default(),
        };
        model.rope_tables = model.rope_tables(gpu)?;
        Ok(model)
    }

    /// Plan the upload of every tensor the architecture needs (allocates the weight buffers).
    /// `cfg` comes from [`Config::from_gguf`], whose checks bound the per-layer plan.
    pub fn plan(gpu: &Gpu, g: &Gguf, cfg: &Config) -> Result<Loader> {
        Loader::new(gpu, g, cfg, &Weights::plan(cfg), &Weights::fusions(cfg))
    }

    /// The RoPE of layer `l` for tokens from position `pos0` ([`Config::rope`]), with the file's
    /// frequency factors on global layers (local layers turn at their own base, unscaled).
    pub fn rope(&self, l: u32, pos0: u32) -> RopeParams<'_> {
        let mut r = self.cfg.rope(l, pos0);
        if !self.cfg.is_local(l) && r.rope_dims > 0 {
            r.factors = self
                .weights
                .rope
                .for_context(self.context, self.cfg.rope_orig_ctx)
                .1;
        }
        r
    }

    /// How the KV cache stores keys and values.
    pub fn kv_precision(&self) -> KvPrecision {
        self.kv.first().map_or(KvPrecision::F16, |kv| kv.precision)
    }

    pub fn kv_bytes(&self) -> u64 {
        self.kv.iter().map(|k| k.bytes()).sum()
    }
    pub fn scratch_bytes(&self) -> u64 {
        self.scratch.bytes()
    }

    /// Record one forward pass over `m` tokens (already in `scratch.ids`) at positions
    /// `pos0..pos0+m`, leaving logits in `scratch.logits`.
    pub fn forward(&self, rec: &mut Recorder, m: u32, pos0: u32, logits: Logits) -> Result<()> {
        self.forward_with_lens(rec, m, pos0, logits, None)
    }

    /// [`forward`](Self::forward), also recording the last token's attention weights (the
    /// attention lens) at the layers `lens` asks for: each such layer's `[n_heads, pos0 + m]`
    /// f32 weights go to `scratch.lens` and then, when `lens.out` is set, to the `k`-th slab of
    /// `out` (`k` counting from `lens.layers.start`).
    pub fn forward_with_lens(
        &self,
        rec: &mut Recorder,
        m: u32,
        pos0: u32,
        logits: Logits,
        lens: Option<LensRequest>,
    ) -> Result<()> {
        let (cfg, w, s) = (&self.cfg, &self.weights, &self.scratch);
        if m == 0 || m > s.batch {
            return Err(Error::Invalid(format!(
                "a forward pass takes 1..={} tokens, got {m}",
                s.batch
            )));
        }
        if pos0 + m > self.context {
            return Err(Error::Invalid(format!(
                "positions {pos0}..{} exceed the context of {} tokens",
                pos0 + m,
                self.context
            )));
        }
        if logits == Logits::All && m > s.logit_rows {
            return Err(Error::Invalid(format!(
                "all-logits pass of {m} tokens needs logit_rows ≥ {m}"
            )));
        }
        if let Some(r) = &lens {
            r.check(self, pos0 + m)?;
        }
        embedding::embedding(rec, &w.token_embd, &s.ids, &s.x, m, cfg.embed_scale)?;
        let d = cfg.d_model;
        let first_norm = w.blocks.first().map_or(&w.output_norm, |b| b.attn_norm());
        let fold = self.folds(rec.gpu(), m, logits);
        let int8 = self.norms_to_int8(rec.gpu(), m);
        if fold {
            norm::rmsnorm_fold(rec, &s.x, d, first_norm, &s.h)?;
        } else {
            let xq = int8.then(|| rec.gpu().xq_scratch());
            norm::rmsnorm(rec, Act::new(&s.x, m, d), cfg.norm(first_norm), &s.h, xq)?;
        }
        for (l, block) in w.blocks.iter().enumerate() {
            let next_norm = w
                .blocks
                .get(l + 1)
                .map_or(&w.output_norm, |b| b.attn_norm());
            let on = lens
                .as_ref()
                .is_some_and(|r| r.layers.contains(&(l as u32)));
            let step = Step {
                m,
                pos0,
                lens: on,
                fold,
                int8,
            };
            block.block(self, rec, l, step, next_norm)?;
            if let Some(LensRequest {
                layers,
                out: Some(out),
            }) = &lens
            {
                if on {
                    let slab = cfg.n_heads as u64 * (pos0 + m) as u64 * 4;
                    let k = (l as u32 - layers.start) as u64;
                    rec.copy(&s.lens, 0, out, k * slab, slab);
                }
            }
        }
        // `s.h` now holds output_norm(x) for every token (folded: its one token's, still to be
        // scaled by the head).
        let fold_in = self.fold_in(fold);
        match logits {
            Logits::None => Ok(()),
            _ if fold => self.head(rec, &s.h, 1, fold_in),
            Logits::All => self.head(rec, &s.h, m, fold_in),
            // One token's norm is its last row already (and may be in int8 too, for the head).
            Logits::Last if m == 1 => self.head(rec, &s.h, 1, fold_in),
            Logits::Last => {
                rec.copy(&s.h, ((m - 1) * d * 4) as u64, &s.last, 0, (d * 4) as u64);
                self.head(rec, &s.last, 1, fold_in)
            }
        }
    }

    /// The output head: `scratch.logits` = the logits of the `rows` final norms in `x`, soft-capped
    /// where the model says so (Gemma 2), so that greedy, sampling candidates and logprobs all read
    /// the capped values.
    fn head(&self, rec: &mut Recorder, x: &wgpu::Buffer, rows: u32, fold: Fold) -> Result<()> {
        let (w, s) = (&self.weights, &self.scratch);
        let output = w.output.as_ref().unwrap_or(&w.token_embd);
        linear::linear_fold(rec, output, x, &s.logits, rows, None, fold)?;
        let cap = self.cfg.final_softcap;
        if cap > 0.0 {
            elementwise::softcap(rec, &s.logits, rows * self.cfg.vocab, cap)?;
        }
        Ok(())
    }

    /// Logits of tokens `first..first + rows` of the last forward pass (whose `s.h` still holds
    /// their final norms) into `scratch.logits`; `rows ≤ logit_rows`. Lets scoring run long
    /// prefill passes (the matmul path) with a small logits buffer.
    pub fn head_rows(&self, rec: &mut Recorder, first: u32, rows: u32) -> Result<()> {
        let s = &self.scratch;
        if rows == 0 || rows > s.logit_rows || first + rows > s.batch {
            return Err(Error::Invalid(format!(
                "logits of rows {first}..{} need 1..={} rows within a batch of {}",
                first + rows,
                s.logit_rows,
                s.batch
            )));
        }
        let d = self.cfg.d_model as u64 * 4;
        rec.copy(&s.h, first as u64 * d, &s.x, 0, rows as u64 * d);
        self.head(rec, &s.x, rows, Fold::None)
    }

    /// Give every block matrix the built-in prefill kernel for this model's weight formats
    /// ([`matmul::default_shape_for`](crate::kernels::matmul::default_shape_for)); a tune then
    /// replaces it where it measures or remembers one.
    pub fn default_matmul_shapes(&self, gpu: &Gpu) {
        let matrices = || self.weights.blocks.iter().flat_map(|b| b.matrices());
        let mut formats = Vec::new();
        for m in matrices() {
            if !formats.contains(&m.ty) {
                formats.push(m.ty);
            }
        }
        let shape = crate::kernels::matmul::default_shape_for(gpu, formats.len());
        for m in matrices() {
            m.set_matmul_shape(shape);
        }
    }

    /// Measure the fastest matvec shape for every weight matrix (matrices of the same format and
    /// size share one measurement) and keep it for decoding. Without `measure`, shapes remembered
    /// from earlier measurements are taken and the other matrices keep the default shapes.
    pub async fn tune(&self, gpu: &Gpu, measure: bool) -> Result<()> {
        let (w, s) = (&self.weights, &self.scratch);
        let head = w.output.as_ref().unwrap_or(&w.token_embd);
        use crate::kernels::matvec::{tune, MatvecUse, Split};
        let c = &self.cfg;
        for b in &w.blocks {
            for m in b.matrices() {
                // Fused matrices are timed with the epilogue they decode with.
                let (y, usage) = match (b.qkv(), b.ffn()) {
                    (Qkv::Fused(f) | Qkv::QkFused { qk: f, .. }, _) if std::ptr::eq(f, m) => {
                        let split = Split {
                            y2: &s.k,
                            y3: &s.v,
                            n1: c.q_dim(),
                            n2: c.kv_dim(),
                        };
                        (&s.q, MatvecUse::Split(split))
                    }
                    (_, (GateUp::Fused(f), glu)) if std::ptr::eq(f, m) => {
                        (&s.act, MatvecUse::Glu(glu))
                    }
                    _ => (&s.logits, MatvecUse::Plain),
                };
                let x = [&s.h, &s.attn, &s.act]
                    .into_iter()
                    .find(|b| b.size() >= m.cols as u64 * 4 && !std::ptr::eq(b.raw(), y.raw()))
                    .unwrap_or(&s.h);
                tune(gpu, m, x, y, usage, measure).await?;
            }
        }
        tune(gpu, head, &s.h, &s.logits, MatvecUse::Plain, measure).await?;
        // Prefill chunks (longer than matvec takes) of the block matrices.
        let tokens = s.batch.min(32);
        if tokens > crate::kernels::linear::MATVEC_MAX_M {
            for m in w.blocks.iter().flat_map(|b| b.matrices()) {
                let fits = |b: &&crate::gpu::Buffer, n: usize| {
                    b.size() >= (tokens as usize * n * 4) as u64
                };
                let x = [&s.h, &s.attn, &s.act]
                    .into_iter()
                    .find(|b| fits(b, m.cols));
                let y = [&s.gate, &s.logits].into_iter().find(|b| fits(b, m.rows));
                if let (Some(x), Some(y)) = (x, y) {
                    crate::kernels::matmul::tune(gpu, m, x, y, tokens, measure).await?;
                }
            }
        }
        Ok(())
    }

    /// Record an argmax over the first logits row into `scratch.next` (greedy decoding on the
    /// GPU), also copied into `scratch.ids` so that the next pass decodes it without the CPU.
    pub fn greedy(&self, rec: &mut Recorder) -> Result<()> {
        let s = &self.scratch;
        argmax::argmax(rec, &s.logits, 1, self.cfg.vocab, &s.next)?;
        rec.copy(&s.next, 0, &s.ids, 0, 4);
        Ok(())
    }

    /// Record the sampling candidates of the first logits row into `scratch.cands` (temperature
    /// and seed from `scratch.sampling`, written before the pass).
    pub fn candidates(&self, rec: &mut Recorder) -> Result<()> {
        let s = &self.scratch;
        topk::topk(
            rec,
            &s.logits,
            self.cfg.vocab,
            &s.sampling,
            &s.cands_part,
            &s.cands,
        )
    }

    /// Record what ends a pass after its logits.
    pub fn tail(&self, rec: &mut Recorder, tail: Tail) -> Result<()> {
        match tail {
            Tail::Logits => Ok(()),
            Tail::Greedy => self.greedy(rec),
            Tail::Candidates => self.candidates(rec),
        }
    }

    /// What the decode pass at `pos` looks like besides the position words: the attention's key
    /// splits for global and for sliding-window layers. Positions with the same shape share a
    /// [`decode_plan`](Self::decode_plan).
    pub fn decode_shape(&self, pos: u32) -> [u32; 2] {
        use crate::kernels::attention::decode_splits;
        if self.attention_kernels.registers() {
            return [1, 1];
        }
        [decode_splits(pos, 0), decode_splits(pos, self.cfg.window)]
    }

    /// The decode pass (one token, read from `scratch.ids`, at `pos`; logits of it, then `tail`)
    /// built once: replay it at any position of the same [`decode_shape`](Self::decode_shape).
    pub fn decode_plan(&self, gpu: &Gpu, pos: u32, tail: Tail) -> Result<Plan> {
        let mut rec = gpu.capture("decode", pos);
        self.forward(&mut rec, 1, pos, Logits::Last)?;
        self.tail(&mut rec, tail)?;
        Ok(rec.into_plan())
    }
}

/// What a pass computes after the logits of its last token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Tail {
    /// Nothing: the logits row is read (penalties, bias) or not needed.
    Logits,
    /// The argmax, fed to the next pass on the GPU.
    Greedy,
    /// Sampling candidates (`kernels::topk`).
    Candidates,
}
