//! The Gemma 3 block: RMSNorm before *and after* attention and the FFN, per-head RMSNorm of q and
//! k, GeGLU, and sliding-window ("local") layers with their own RoPE base between global ones:
//!
//!   h = x + postnorm(Wo · attn(rope(qnorm(Wq·norm(x))), rope(knorm(Wk·norm(x))), Wv·norm(x)))
//!   x = h + postnorm(Wdown · (gelu(Wgate·norm(h)) ⊙ Wup·norm(h)))
//!
//! On entry `s.h` already holds norm(x); on exit it holds `next_norm`(x). With `lens`, the last
//! token's attention weights are kept for the attention lens.

use super::{Block, Model, Step};
use crate::gpu::Recorder;
use crate::kernels::attention::{self, AttnParams};
use crate::kernels::elementwise::Glu;
use crate::kernels::{matmul::linear, norm, rope};
use crate::{Error, Result};

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
    let missing = |what: &str| Error::Model(format!("gemma3 block {l} has no {what}"));
    let q_norm = b.q_norm.as_ref().ok_or_else(|| missing("attn_q_norm"))?;
    let k_norm = b.k_norm.as_ref().ok_or_else(|| missing("attn_k_norm"))?;
    let post_attn = b
        .post_attn_norm
        .as_ref()
        .ok_or_else(|| missing("post_attention_norm"))?;
    let post_ffn = b
        .post_ffn_norm
        .as_ref()
        .ok_or_else(|| missing("post_ffw_norm"))?;
    let local = c.is_local(l as u32);
    let (base, scale) = if local {
        (c.rope_base_local, 1.0)
    } else {
        (c.rope_base, c.rope_scale)
    };
    let eps = c.norm_eps;

    // Attention.
    model.qkv(rec, &b.qkv, [None; 3], m)?;
    #[rustfmt::skip]
    rope::rmsnorm_rope_kv(rec, &s.q, &s.k, &s.v, kv, q_norm, k_norm, m, c.n_heads, c.rope_dims, pos0, base, scale, true, eps)?;
    let window = if local { c.window } else { 0 };
    let p = AttnParams {
        m,
        pos0,
        n_heads: c.n_heads,
        scale: c.attn_scale,
        window,
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
            window,
        )?;
    }
    linear(rec, &b.wo, &s.attn, &s.o, m, None)?;
    norm::rmsnorm_add_rmsnorm(
        rec,
        &s.o,
        post_attn,
        &s.x,
        &b.ffn_norm,
        &s.h,
        m,
        c.d_model,
        eps,
    )?;

    // Feed-forward (GeGLU).
    model.glu(rec, &b.gate_up, Glu::Gelu, m)?;
    linear(rec, &b.w_down, &s.act, &s.o, m, None)?;
    norm::rmsnorm_add_rmsnorm(
        rec, &s.o, post_ffn, &s.x, next_norm, &s.h, m, c.d_model, eps,
    )
}
