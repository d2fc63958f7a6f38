//! The llama block (Llama 2/3, SmolLM2, Mistral, and Qwen2 with its Q/K/V biases):
//!
//!   h = x + Wo · attn(rope(Wq·norm(x) + bq), rope(Wk·norm(x) + bk), Wv·norm(x) + bv)
//!   x = h + Wdown · (silu(Wgate·norm(h)) ⊙ Wup·norm(h))
//!
//! On entry `s.h` already holds norm(x) (the previous block fused it into its last residual add);
//! on exit `s.h` holds `next_norm`(x) for the next block or the output head. With `lens`, the last
//! token's attention weights are kept for the attention lens.

use super::{Block, Model, Step};
use crate::gpu::Recorder;
use crate::kernels::attention::{self, AttnParams};
use crate::kernels::elementwise::Glu;
use crate::kernels::{matmul::linear, norm, rope};
use crate::Result;

pub(super) fn block(
    model: &Model,
    rec: &mut Recorder,
    l: usize,
    b: &Block,
    step: Step,
    next_norm: &wgpu::Buffer,
) -> Result<()> {
    let Step { m, pos0, lens } = step;
    let (c, s, kv) = (&model.cfg, &model.scratch, &model.kv[l]);

    // Attention.
    model.qkv(
        rec,
        &b.qkv,
        [b.bq.as_deref(), b.bk.as_deref(), b.bv.as_deref()],
        m,
    )?;
    // RoPE on q in place; k (rotated) and v straight into the cache.
    rope::rope_kv(
        rec,
        &s.q,
        &s.k,
        &s.v,
        kv,
        m,
        c.n_heads,
        c.rope_dims,
        pos0,
        c.rope_base,
        c.rope_scale,
        c.rope_neox,
    )?;
    let p = AttnParams {
        m,
        pos0,
        n_heads: c.n_heads,
        scale: c.attn_scale,
        window: 0,
    };
    attention::attention(rec, &s.q, kv, &s.attn, &p)?;
    if lens {
        attention::attention_probs_row(
            rec,
            &s.q,
            m - 1,
            kv,
            &s.lens,
            pos0 + m - 1,
            c.n_heads,
            c.attn_scale,
            0,
        )?;
    }
    linear(rec, &b.wo, &s.attn, &s.o, m, None)?;
    norm::add_rmsnorm(rec, &s.x, &s.o, &b.ffn_norm, &s.h, m, c.d_model, c.norm_eps)?;

    // Feed-forward (SwiGLU).
    model.glu(rec, &b.gate_up, Glu::Silu, m)?;
    linear(rec, &b.w_down, &s.act, &s.o, m, None)?;
    norm::add_rmsnorm(rec, &s.x, &s.o, next_norm, &s.h, m, c.d_model, c.norm_eps)
}
