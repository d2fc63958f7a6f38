//! Transformer models over the kernel library. `config.rs` reads the hyperparameters, `loader.rs`
//! streams the weights to the GPU, and each architecture's forward pass lives in its own file
//! (`llama.rs` for llama/qwen2, `gemma3.rs`) so that it reads like the block it implements.

pub mod budget;
pub mod config;
mod gemma3;
mod llama;
pub mod loader;

pub use config::{Arch, Config};
pub use loader::{Loader, Shape};

mod scratch;
use crate::gguf::Gguf;
use crate::gpu::{Buffer, Gpu, Plan, Recorder};
use crate::kernels::attention::{KvPrecision, LayerKv};
use crate::kernels::{argmax, elementwise, embedding, matmul, norm, topk};
use crate::weights::QMatrix;
use crate::{Error, Result};
pub use scratch::Scratch;

/// The weights of one transformer block. Optional parts exist only in some architectures.
pub struct Block {
    pub attn_norm: Buffer,
    pub qkv: Qkv,
    pub wo: QMatrix,
    pub bq: Option<Buffer>,
    pub bk: Option<Buffer>,
    pub bv: Option<Buffer>,
    pub q_norm: Option<Buffer>,
    pub k_norm: Option<Buffer>,
    pub post_attn_norm: Option<Buffer>,
    pub ffn_norm: Buffer,
    pub gate_up: GateUp,
    pub w_down: QMatrix,
    pub post_ffn_norm: Option<Buffer>,
}

/// What one block call of a pass works on: `m` tokens from position `pos0`, and whether the
/// attention lens keeps this layer's weights.
#[derive(Clone, Copy)]
pub(super) struct Step {
    pub m: u32,
    pub pos0: u32,
    pub lens: bool,
}

/// The Q, K and V projections: one stacked `[wq; wk; wv]` matrix (one pass over the weights and
/// one dispatch when decoding) where the file allows (Q5_0 or Q4_0 q/k beside a Q8_0 v are
/// re-encoded losslessly as Q8_0 for it: `quant::widen`); else `[wq; wk]` stacked and V apart
/// (files that quantize V differently, e.g. Q6_K beside Q4_K); else three. (One per layer,
/// built once: boxing the larger variants would buy nothing.)
#[allow(clippy::large_enum_variant)]
pub enum Qkv {
    Fused(QMatrix),
    QkFused { qk: QMatrix, v: QMatrix },
    Split { q: QMatrix, k: QMatrix, v: QMatrix },
}

impl Qkv {
    fn matrices(&self) -> Vec<&QMatrix> {
        match self {
            Qkv::Fused(m) => vec![m],
            Qkv::QkFused { qk, v } => vec![qk, v],
            Qkv::Split { q, k, v } => vec![q, k, v],
        }
    }
}

/// The gate and up projections of a GLU feed-forward: one stacked `[gate; up]` matrix (decoded
/// in one dispatch with the activation) where the file allows, else two.
#[allow(clippy::large_enum_variant)]
pub enum GateUp {
    Fused(QMatrix),
    Split { gate: QMatrix, up: QMatrix },
}

impl GateUp {
    fn matrices(&self) -> Vec<&QMatrix> {
        match self {
            GateUp::Fused(m) => vec![m],
            GateUp::Split { gate, up } => vec![gate, up],
        }
    }
}

impl Block {
    /// Every weight matrix of the block.
    pub fn matrices(&self) -> Vec<&QMatrix> {
        let mut v = self.qkv.matrices();
        v.extend([&self.wo, &self.w_down]);
        v.extend(self.gate_up.matrices());
        v
    }
}

pub struct Weights {
    pub token_embd: QMatrix,
    pub blocks: Vec<Block>,
    pub output_norm: Buffer,
    /// `None` when the output projection is tied to the token embedding.
    pub output: Option<QMatrix>,
}

impl Weights {
    /// Every tensor the architecture reads, with the shape its metadata implies.
    pub fn plan(cfg: &Config) -> Vec<(String, Shape)> {
        let (d, q, kv, f) = (cfg.d_model, cfg.q_dim(), cfg.kv_dim(), cfg.ffn_dim);
        let gemma = cfg.arch == Arch::Gemma3;
        let qwen = cfg.arch == Arch::Qwen2;
        let mut t: Vec<(String, Shape)> = vec![
            ("token_embd.weight".into(), Shape::mat(d, cfg.vocab)),
            ("output_norm.weight".into(), Shape::vec(d)),
            ("output.weight".into(), Shape::mat(d, cfg.vocab).optional()),
        ];
        for l in 0..cfg.n_layers {
            let mut add = |name: &str, s: Shape| t.push((format!("blk.{l}.{name}.weight"), s));
            add("attn_norm", Shape::vec(d));
            add("attn_q", Shape::mat(d, q));
            add("attn_k", Shape::mat(d, kv));
            add("attn_v", Shape::mat(d, kv));
            add("attn_output", Shape::mat(q, d));
            add("ffn_norm", Shape::vec(d));
            add("ffn_gate", Shape::mat(d, f));
            add("ffn_up", Shape::mat(d, f));
            add("ffn_down", Shape::mat(f, d));
            if gemma {
                add("attn_q_norm", Shape::vec(cfg.head_dim));
                add("attn_k_norm", Shape::vec(cfg.head_dim));
                add("post_attention_norm", Shape::vec(d));
                add("post_ffw_norm", Shape::vec(d));
            }
            if qwen {
                for (name, n) in [("attn_q", q), ("attn_k", kv), ("attn_v", kv)] {
                    t.push((format!("blk.{l}.{name}.bias"), Shape::vec(n)));
                }
            }
        }
        t
    }

    /// Tensors stacked into one matrix when their types and shapes allow (see `Loader::new`).
    pub fn fusions(cfg: &Config) -> Vec<(String, Vec<String>)> {
        let mut f = Vec::new();
        for l in 0..cfg.n_layers {
            let n = |s: &str| format!("blk.{l}.{s}.weight");
            // Qwen2's q/k/v biases would need stacking too: its projections stay separate.
            if cfg.arch != Arch::Qwen2 {
                f.push((n("attn_qkv"), vec![n("attn_q"), n("attn_k"), n("attn_v")]));
                f.push((n("attn_qk"), vec![n("attn_q"), n("attn_k")]));
            }
            f.push((n("ffn_gate_up"), vec![n("ffn_gate"), n("ffn_up")]));
        }
        f
    }

    /// Collect the uploaded tensors once the loader has received every byte.
    pub fn assemble(gpu: &Gpu, cfg: &Config, ld: &mut Loader) -> Result<Weights> {
        let mut blocks = Vec::with_capacity(cfg.n_layers as usize);
        for l in 0..cfg.n_layers {
            let n = |s: &str| format!("blk.{l}.{s}");
            blocks.push(Block {
                attn_norm: ld.vector(gpu, &n("attn_norm.weight"))?,
                qkv: match (
                    ld.fused(&n("attn_qkv.weight"))?,
                    ld.fused(&n("attn_qk.weight"))?,
                ) {
                    (Some(m), _) => Qkv::Fused(m),
                    (None, Some(qk)) => Qkv::QkFused {
                        qk,
                        v: ld.matrix(gpu, &n("attn_v.weight"))?,
                    },
                    (None, None) => Qkv::Split {
                        q: ld.matrix(gpu, &n("attn_q.weight"))?,
                        k: ld.matrix(gpu, &n("attn_k.weight"))?,
                        v: ld.matrix(gpu, &n("attn_v.weight"))?,
                    },
                },
                wo: ld.matrix(gpu, &n("attn_output.weight"))?,
                bq: ld.opt_vector(gpu, &n("attn_q.bias"))?,
                bk: ld.opt_vector(gpu, &n("attn_k.bias"))?,
                bv: ld.opt_vector(gpu, &n("attn_v.bias"))?,
                q_norm: ld.opt_vector(gpu, &n("attn_q_norm.weight"))?,
                k_norm: ld.opt_vector(gpu, &n("attn_k_norm.weight"))?,
                post_attn_norm: ld.opt_vector(gpu, &n("post_attention_norm.weight"))?,
                ffn_norm: ld.vector(gpu, &n("ffn_norm.weight"))?,
                gate_up: match ld.fused(&n("ffn_gate_up.weight"))? {
                    Some(m) if crate::kernels::matvec::glu_fits(&m) => GateUp::Fused(m),
                    Some(m) => {
                        return Err(Error::Model(format!("fused matrix of {} rows", m.rows)))
                    }
                    None => GateUp::Split {
                        gate: ld.matrix(gpu, &n("ffn_gate.weight"))?,
                        up: ld.matrix(gpu, &n("ffn_up.weight"))?,
                    },
                },
                w_down: ld.matrix(gpu, &n("ffn_down.weight"))?,
                post_ffn_norm: ld.opt_vector(gpu, &n("post_ffw_norm.weight"))?,
            });
        }
        Ok(Weights {
            token_embd: ld.matrix(gpu, "token_embd.weight")?,
            output_norm: ld.vector(gpu, "output_norm.weight")?,
            output: ld.opt_matrix(gpu, "output.weight")?,
            blocks,
        })
    }

    pub fn bytes(&self) -> u64 {
        let mats = |b: &Block| b.matrices().iter().map(|m| m.bytes()).sum::<u64>();
        let vecs = |b: &Block| {
            [
                &b.bq,
                &b.bk,
                &b.bv,
                &b.q_norm,
                &b.k_norm,
                &b.post_attn_norm,
                &b.post_ffn_norm,
            ]
            .iter()
            .filter_map(|v| v.as_ref().map(|v| v.size()))
            .sum::<u64>()
                + b.attn_norm.size()
                + b.ffn_norm.size()
        };
        self.token_embd.bytes()
            + self.output.as_ref().map_or(0, |m| m.bytes())
            + self.output_norm.size()
            + self.blocks.iter().map(|b| mats(b) + vecs(b)).sum::<u64>()
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
        Ok(Model {
            cfg,
            weights,
            kv,
            scratch,
            context,
        })
    }

    /// Plan the upload of every tensor the architecture needs (allocates the weight buffers).
    /// `cfg` comes from [`Config::from_gguf`], whose checks bound the per-layer plan.
    pub fn plan(gpu: &Gpu, g: &Gguf, cfg: &Config) -> Result<Loader> {
        Loader::new(gpu, g, cfg, &Weights::plan(cfg), &Weights::fusions(cfg))
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
        let first_norm = w.blocks.first().map_or(&w.output_norm, |b| &b.attn_norm);
        norm::rmsnorm(rec, &s.x, first_norm, &s.h, m, d, cfg.norm_eps)?;
        for (l, block) in w.blocks.iter().enumerate() {
            let next_norm = w.blocks.get(l + 1).map_or(&w.output_norm, |b| &b.attn_norm);
            let on = lens
                .as_ref()
                .is_some_and(|r| r.layers.contains(&(l as u32)));
            let step = Step { m, pos0, lens: on };
            match cfg.arch {
                Arch::Llama | Arch::Qwen2 => llama::block(self, rec, l, block, step, next_norm)?,
                Arch::Gemma3 => gemma3::block(self, rec, l, block, step, next_norm)?,
            }
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
        // `s.h` now holds output_norm(x) for every token.
        let output = w.output.as_ref().unwrap_or(&w.token_embd);
        match logits {
            Logits::None => Ok(()),
            Logits::All => matmul::linear(rec, output, &s.h, &s.logits, m, None),
            Logits::Last => {
                rec.copy(&s.h, ((m - 1) * d * 4) as u64, &s.last, 0, (d * 4) as u64);
                matmul::linear(rec, output, &s.last, &s.logits, 1, None)
            }
        }
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
        let output = self
            .weights
            .output
            .as_ref()
            .unwrap_or(&self.weights.token_embd);
        matmul::linear(rec, output, &s.x, &s.logits, rows, None)
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
                let (y, usage) = match (&b.qkv, &b.gate_up) {
                    (Qkv::Fused(f) | Qkv::QkFused { qk: f, .. }, _) if std::ptr::eq(f, m) => {
                        let split = Split {
                            y2: &s.k,
                            y3: &s.v,
                            n1: c.q_dim(),
                            n2: c.kv_dim(),
                        };
                        (&s.q, MatvecUse::Split(split))
                    }
                    (_, GateUp::Fused(f)) if std::ptr::eq(f, m) => {
                        let glu = match c.arch {
                            Arch::Gemma3 => elementwise::Glu::Gelu,
                            _ => elementwise::Glu::Silu,
                        };
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
        if tokens > crate::kernels::matmul::MATVEC_MAX_M {
            for m in w.blocks.iter().flat_map(Block::matrices) {
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

    /// `s.q`, `s.k`, `s.v` = the Q, K and V projections of `s.h` (plus biases) for `m` tokens.
    pub(crate) fn qkv(
        &self,
        rec: &mut Recorder,
        qkv: &Qkv,
        bias: [Option<&wgpu::Buffer>; 3],
        m: u32,
    ) -> Result<()> {
        let (c, s) = (&self.cfg, &self.scratch);
        match qkv {
            Qkv::Fused(w) => {
                // Stacked weights come without biases (see `Weights::fusions`).
                let rows = [c.q_dim(), c.kv_dim(), c.kv_dim()];
                matmul::linear_split(rec, w, &s.h, [&s.q, &s.k, &s.v], rows, m, None)
            }
            Qkv::QkFused { qk, v } => {
                let rows = [c.q_dim(), c.kv_dim(), 0];
                matmul::linear_split(rec, qk, &s.h, [&s.q, &s.k, &s.v], rows, m, None)?;
                matmul::linear(rec, v, &s.h, &s.v, m, bias[2])
            }
            Qkv::Split { q, k, v } => {
                matmul::linear(rec, q, &s.h, &s.q, m, bias[0])?;
                matmul::linear(rec, k, &s.h, &s.k, m, bias[1])?;
                matmul::linear(rec, v, &s.h, &s.v, m, bias[2])
            }
        }
    }

    /// `s.act = act(gate · s.h) ⊙ (up · s.h)` for `m` tokens (the GLU half of a feed-forward).
    pub(crate) fn glu(
        &self,
        rec: &mut Recorder,
        gate_up: &GateUp,
        glu: elementwise::Glu,
        m: u32,
    ) -> Result<()> {
        let s = &self.scratch;
        match gate_up {
            GateUp::Fused(w) => matmul::linear_glu(rec, w, glu, &s.h, &s.gate, &s.act, m),
            GateUp::Split { gate, up } => {
                matmul::linear(rec, gate, &s.h, &s.gate, m, None)?;
                matmul::linear(rec, up, &s.h, &s.up, m, None)?;
                let n = m * self.cfg.ffn_dim;
                match glu {
                    elementwise::Glu::Silu => elementwise::swiglu(rec, &s.gate, &s.up, &s.act, n),
                    elementwise::Glu::Gelu => elementwise::geglu(rec, &s.gate, &s.up, &s.act, n),
                }
            }
        }
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
