//! Activation buffers shared by every forward pass of a model.

use super::Config;
use crate::gpu::{Buffer, Gpu};
use crate::kernels::rope::QkvActs;
use crate::kernels::topk;
use crate::Result;

/// Activation buffers for up to `batch` tokens, reused by every forward pass.
pub struct Scratch {
    pub batch: u32,
    pub logit_rows: u32,
    pub ids: Buffer,
    pub x: Buffer,
    pub h: Buffer,
    pub q: Buffer,
    pub k: Buffer,
    pub v: Buffer,
    pub attn: Buffer,
    pub o: Buffer,
    pub gate: Buffer,
    pub up: Buffer,
    pub act: Buffer,
    pub last: Buffer,
    pub logits: Buffer,
    pub next: Buffer,
    /// The attention lens: one query's attention weights, f32 `[n_heads, context]`.
    pub lens: Buffer,
    /// Sampling candidates of the first logits row (`kernels::topk`), their stage-1 partials,
    /// and the per-pass temperature and seed they read.
    pub cands: Buffer,
    pub cands_part: Buffer,
    pub sampling: Buffer,
}

impl Scratch {
    pub(super) fn new(
        gpu: &Gpu,
        cfg: &Config,
        batch: u32,
        logit_rows: u32,
        context: u32,
    ) -> Result<Scratch> {
        let f = |n: u32| (n as u64) * 4;
        let b = batch;
        Ok(Scratch {
            batch,
            logit_rows,
            ids: gpu.storage("ids", f(b))?,
            x: gpu.activation("x", f(b * cfg.d_model))?,
            h: gpu.activation("h", f(b * cfg.d_model.max(cfg.q_dim())))?,
            q: gpu.storage("q", f(b * cfg.q_dim()))?,
            k: gpu.storage("k", f(b * cfg.kv_dim()))?,
            v: gpu.storage("v", f(b * cfg.kv_dim()))?,
            attn: gpu.activation("attn", f(b * cfg.q_dim()))?,
            o: gpu.storage("o", f(b * cfg.d_model))?,
            // [gate | up] rows of a fused feed-forward in prefill, or the gate alone.
            gate: gpu.storage("gate", f(b * 2 * cfg.ffn_dim))?,
            up: gpu.storage("up", f(b * cfg.ffn_dim))?,
            act: gpu.activation("act", f(b * cfg.ffn_dim))?,
            last: gpu.activation("last", f(cfg.d_model))?,
            logits: gpu.storage("logits", f(logit_rows * cfg.vocab))?,
            next: gpu.storage("next", 4)?,
            lens: gpu.storage("lens", f(cfg.n_heads * context))?,
            cands: gpu.storage("candidates", topk::OUT_BYTES)?,
            cands_part: gpu.storage("candidate chunks", topk::partial_bytes(cfg.vocab))?,
            sampling: gpu.storage("sampling", topk::Sampling::BYTES)?,
        })
    }

    /// The q, k and v of `m` tokens.
    pub fn qkv(&self, m: u32) -> QkvActs<'_> {
        QkvActs {
            q: &self.q,
            k: &self.k,
            v: &self.v,
            rows: m,
        }
    }

    /// GPU bytes of every buffer [`Scratch::new`] allocated, as allocated (the `activation`
    /// buffers include their uniform-view slack).
    pub(super) fn bytes(&self) -> u64 {
        [
            &self.ids,
            &self.x,
            &self.h,
            &self.q,
            &self.k,
            &self.v,
            &self.attn,
            &self.o,
            &self.gate,
            &self.up,
            &self.act,
            &self.last,
            &self.logits,
            &self.next,
            &self.lens,
            &self.cands,
            &self.cands_part,
            &self.sampling,
        ]
        .iter()
        .map(|b| b.size())
        .sum()
    }
}
