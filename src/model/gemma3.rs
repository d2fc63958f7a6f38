//! The Gemma 3 block: RMSNorm before *and after* attention and the FFN, per-head RMSNorm of q and
//! k, GeGLU, and sliding-window ("local") layers with their own RoPE base between global ones:
//!
//!   h = x + postnorm(Wo · attn(rope(qnorm(Wq·norm(x))), rope(knorm(Wk·norm(x))), Wv·norm(x)))
//!   x = h + postnorm(Wdown · (gelu(Wgate·norm(h)) ⊙ Wup·norm(h)))
//!
//! Embeddings are scaled by √d_model. The norm weights are used as the GGUF stores them
//! (llama.cpp's converter already folds Gemma's `1 + w` into them).
//!
//! On entry `s.h` already holds norm(x); on exit it holds `next_norm`(x). With `lens`, the last
//! token's attention weights are kept for the attention lens.

use super::config::{Config, Keys};
use super::parts::{
    Int8,
    Architecture, GateUp, Layer, LayerTensors, Qkv, Tensor, ATTN_NORM, ATTN_OUTPUT, FFN_DOWN,
    FFN_NORM, GATE_UP, K_NORM, POST_ATTN_NORM, POST_FFN_NORM, QKV, Q_NORM,
};
use super::parts::block_matrices;
use super::{Model, Step};
use crate::gpu::{Buffer, Recorder};
use crate::kernels::elementwise::Glu;
use crate::kernels::{norm, rope, Act};
use crate::weights::QMatrix;
use crate::Result;

pub struct Gemma3;

impl Architecture for Gemma3 {
    fn names(&self) -> &'static [&'static str] {
        &["gemma3"]
    }
    fn default_norm_eps(&self) -> Option<f32> {
        Some(1e-6)
    }
    // Int8 activations in decode pass tests/models.rs unchanged (`ATTEND_MATVEC_Q8=1`: greedy
    // 16/16 on every prompt, top-1 64/64, max logprob error 0.0036, as with f32). In prefill as
    // well (`ATTEND_PREFILL_Q8=1`) the teacher-forced top-1 fell to 60/64, below llama.cpp's
    // 63/64 on the same text, so prefill keeps f32 in the blocks.
    fn int8_activations(&self) -> Int8 {
        Int8::Decode
    }
    fn config(&self, keys: &Keys, c: &mut Config) -> Result<()> {
        c.window = keys.opt_u32("attention.sliding_window")?.unwrap_or(0);
        // llama.cpp: five local layers, then one global (pattern 6).
        c.swa_period = 6;
        c.rope_base_local = 10000.0;
        c.embed_scale = (c.d_model as f32).sqrt();
        c.rope_neox = true;
        Ok(())
    }
    fn tensors(&self) -> &'static [Tensor] {
        &[
            ATTN_NORM,
            QKV,
            ATTN_OUTPUT,
            FFN_NORM,
            GATE_UP,
            FFN_DOWN,
            Q_NORM,
            K_NORM,
            POST_ATTN_NORM,
            POST_FFN_NORM,
        ]
    }
    fn layer(&self, t: &mut LayerTensors) -> Result<Box<dyn Layer>> {
        Ok(Box::new(Block {
            attn_norm: t.vector(ATTN_NORM)?,
            qkv: t.qkv(QKV)?,
            wo: t.matrix(ATTN_OUTPUT)?,
            q_norm: t.vector(Q_NORM)?,
            k_norm: t.vector(K_NORM)?,
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
    q_norm: Buffer,
    k_norm: Buffer,
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
        // Local layers: their own RoPE base, unscaled, and the sliding window (`Config::rope`,
        // `Config::attn`).
        let (rope, p) = (model.rope(l as u32, pos0), c.attn(l as u32, m, pos0));
        let o = Act::new(&s.o, m, c.d_model);

        // Attention.
        model.qkv(rec, &self.qkv, [None; 3], step)?;
        let (qn, kn) = (c.norm(&self.q_norm), c.norm(&self.k_norm));
        rope::rmsnorm_rope_kv(rec, s.qkv(m), kv, qn, kn, &rope)?;
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
            &self.q_norm,
            &self.k_norm,
            &self.post_attn_norm,
            &self.post_ffn_norm,
        ]
    }
}
