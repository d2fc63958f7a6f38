//! The Gemma 2 block: Gemma 3's without the per-head q/k norms: RMSNorm before *and after*
//! attention and the FFN, GeGLU, and sliding-window ("local") layers alternating with global ones:
//!
//!   h = x + postnorm(Wo · attn(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x)))
//!   x = h + postnorm(Wdown · (gelu(Wgate·norm(h)) ⊙ Wup·norm(h)))
//!
//! Embeddings are scaled by √d_model; the norm weights are used as the GGUF stores them (llama.cpp's
//! converter folds Gemma's `1 + w` into them). Attention scores are soft-capped
//! (`c · tanh(s / c)`, `attn_logit_softcapping`) before the mask, and so are the final logits
//! (`final_logit_softcapping`, see `Model::head`). As llama.cpp (`llama_model_gemma2`): even layers
//! are local (window `attention.sliding_window`, default 4096), odd ones global, one RoPE base for
//! both (`rope.freq_base_swa` if the file gives one), caps 50 and 30 when the file gives none, and
//! scores scaled by 1/√head_dim, except Gemma 2 27B (46 layers), whose `query_pre_attn_scalar` is
//! d_model / n_heads (the converter writes no key for it).
//!
//! On entry `s.h` already holds norm(x); on exit it holds `next_norm`(x). With `lens`, the last
//! token's attention weights are kept for the attention lens.

use super::config::{Config, Keys};
use super::parts::block_matrices;
use super::parts::{
    Architecture, GateUp, Layer, LayerTensors, Qkv, Tensor, ATTN_NORM, ATTN_OUTPUT, FFN_DOWN,
    FFN_NORM, GATE_UP, POST_ATTN_NORM, POST_FFN_NORM, QKV,
};
use super::{Model, Step};
use crate::gpu::{Buffer, Recorder};
use crate::kernels::elementwise::Glu;
use crate::kernels::{norm, rope, Act};
use crate::weights::QMatrix;
use crate::{Error, Result};

pub struct Gemma2;

impl Architecture for Gemma2 {
    fn names(&self) -> &'static [&'static str] {
        &["gemma2"]
    }
    fn default_norm_eps(&self) -> Option<f32> {
        Some(1e-6)
    }
    fn config(&self, keys: &Keys, c: &mut Config) -> Result<()> {
        c.window = keys.opt_u32("attention.sliding_window")?.unwrap_or(4096);
        // llama.cpp: layer l is local iff l % 2 < 1 (pattern 2): even layers local.
        c.swa_period = 2;
        c.rope_base_local = keys.opt_f32("rope.freq_base_swa")?.unwrap_or(c.rope_base);
        c.embed_scale = (c.d_model as f32).sqrt();
        c.rope_neox = true;
        let cap = |k: &str, default: f32| -> Result<f32> {
            let v = keys.opt_f32(k)?.unwrap_or(default);
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::Model(format!("gemma2.{k} = {v}: must be positive")));
            }
            Ok(v)
        };
        c.attn_softcap = cap("attn_logit_softcapping", 50.0)?;
        c.final_softcap = cap("final_logit_softcapping", 30.0)?;
        if c.n_layers == 46 {
            c.attn_scale = 1.0 / ((c.d_model / c.n_heads) as f32).sqrt();
        }
        Ok(())
    }
    fn tensors(&self) -> &'static [Tensor] {
        &[
            ATTN_NORM,
            QKV,
            ATTN_OUTPUT,
            POST_ATTN_NORM,
            FFN_NORM,
            GATE_UP,
            FFN_DOWN,
            POST_FFN_NORM,
        ]
    }
    fn layer(&self, t: &mut LayerTensors) -> Result<Box<dyn Layer>> {
        Ok(Box::new(Block {
            attn_norm: t.vector(ATTN_NORM)?,
            qkv: t.qkv(QKV)?,
            wo: t.matrix(ATTN_OUTPUT)?,
            post_attn_norm: t.vector(POST_ATTN_NORM)?,
            ffn_norm: t.vector(FFN_NORM)?,
            gate_up: t.gate_up(GATE_UP)?,
            w_down: t.matrix(FFN_DOWN)?,
            post_ffn_norm: t.vector(POST_FFN_NORM)?,
        }))
    }
}

struct Block {
    attn_norm: Buffer,
    qkv: Qkv,
    wo: QMatrix,
    post_attn_norm: Buffer,
    ffn_norm: Buffer,
    gate_up: GateUp,
    w_down: QMatrix,
    post_ffn_norm: Buffer,
}

impl Layer for Block {
    fn block(
        &self,
        model: &Model,
        rec: &mut Recorder,
        l: usize,
        step: Step,
        next_norm: &wgpu::Buffer,
    ) -> Result<()> {
        let Step { m, pos0, .. } = step;
        let (c, s, kv) = (&model.cfg, &model.scratch, &model.kv[l]);
        // Local layers see the sliding window; every layer's scores are soft-capped
        // (`Config::attn`).
        let (rope, p) = (model.rope(l as u32, pos0), c.attn(l as u32, m, pos0));
        let o = Act::new(&s.o, m, c.d_model);

        // Attention: q rotated in place, k rotated into the cache, v cached.
        model.qkv(rec, &self.qkv, [None; 3], step)?;
        rope::rope_kv(rec, s.qkv(m), kv, &rope)?;
        model.attention_out(rec, l, &p, step, &self.wo)?;
        let (post, next) = (c.norm(&self.post_attn_norm), c.norm(&self.ffn_norm));
        let xq = model.int8_out(rec.gpu(), step);
        norm::rmsnorm_add_rmsnorm(rec, o, post, &s.x, next, &s.h, xq)?;

        // Feed-forward (GeGLU).
        model.ffn_out(rec, &self.gate_up, Glu::Gelu, &self.w_down, m)?;
        let (post, next) = (c.norm(&self.post_ffn_norm), c.norm(next_norm));
        norm::rmsnorm_add_rmsnorm(rec, o, post, &s.x, next, &s.h, xq)
    }

    fn attn_norm(&self) -> &Buffer {
        &self.attn_norm
    }
    fn qkv(&self) -> &Qkv {
        &self.qkv
    }
    fn ffn(&self) -> (&GateUp, Glu) {
        (&self.gate_up, Glu::Gelu)
    }
    fn ffn_down(&self) -> &QMatrix {
        &self.w_down
    }
    fn matrices(&self) -> Vec<&QMatrix> {
        block_matrices(&self.qkv, &self.wo, &self.gate_up, &self.w_down)
    }
    fn vectors(&self) -> Vec<&Buffer> {
        vec![
            &self.attn_norm,
            &self.ffn_norm,
            &self.post_attn_norm,
            &self.post_ffn_norm,
        ]
    }
}
