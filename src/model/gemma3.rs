//! The Gemma 3 block: RMSNorm before *and after* attention and the FFN, per-head RMSNorm of q and
//! k, GeGLU, and sliding-window ("local") layers with their own RoPE base between global ones:
//!
//!   h = x + postnorm(Wo · attn(rope(qnorm(Wq·norm(x))), rope(knorm(Wk·norm(x))), Wv·norm(x)))
//!   x = h + postnorm(Wdown · (gelu(Wgate·norm(h)) ⊙ Wup·norm(h)))

use super::{Block, Model};
use crate::gpu::Recorder;
use crate::kernels::attention::{self, AttnParams};
use crate::kernels::{elementwise, matmul::linear, norm, rope};

pub(super) fn block(model: &Model, rec: &mut Recorder, l: usize, b: &Block, m: u32, pos0: u32) {
    let (c, s, kv) = (&model.cfg, &model.scratch, &model.kv[l]);
    let local = c.is_local(l as u32);
    let (base, scale) = if local { (c.rope_base_local, 1.0) } else { (c.rope_base, c.rope_scale) };
    let eps = c.norm_eps;
    let (q_norm, k_norm) = (b.q_norm.as_ref().expect("planned"), b.k_norm.as_ref().expect("planned"));
    let (post_attn, post_ffn) = (
        b.post_attn_norm.as_ref().expect("planned"),
        b.post_ffn_norm.as_ref().expect("planned"),
    );

    // Attention.
    norm::rmsnorm(rec, &s.x, &b.attn_norm, &s.h, m, c.d_model, eps);
    linear(rec, &b.wq, &s.h, &s.attn, m, None);
    linear(rec, &b.wk, &s.h, &s.k_raw, m, None);
    linear(rec, &b.wv, &s.h, &s.v, m, None);
    norm::rmsnorm(rec, &s.attn, q_norm, &s.q, m * c.n_heads, c.head_dim, eps);
    norm::rmsnorm(rec, &s.k_raw, k_norm, &s.k, m * c.n_kv_heads, c.head_dim, eps);
    rope::rope(rec, &s.q, m, c.n_heads, c.head_dim, c.rope_dims, pos0, base, scale, true);
    rope::rope(rec, &s.k, m, c.n_kv_heads, c.head_dim, c.rope_dims, pos0, base, scale, true);
    attention::kv_store(rec, kv, &s.k, &s.v, pos0, m);
    let window = if local { c.window } else { 0 };
    let p = AttnParams { m, pos0, n_heads: c.n_heads, scale: c.attn_scale, window };
    attention::attention(rec, &s.q, kv, &s.attn, &p);
    linear(rec, &b.wo, &s.attn, &s.o, m, None);
    norm::rmsnorm_add(rec, &s.o, post_attn, &s.x, m, c.d_model, eps);

    // Feed-forward (GeGLU).
    norm::rmsnorm(rec, &s.x, &b.ffn_norm, &s.h, m, c.d_model, eps);
    linear(rec, &b.w_gate, &s.h, &s.gate, m, None);
    linear(rec, &b.w_up, &s.h, &s.up, m, None);
    elementwise::geglu(rec, &s.gate, &s.up, &s.act, m * c.ffn_dim);
    linear(rec, &b.w_down, &s.act, &s.o, m, None);
    norm::rmsnorm_add(rec, &s.o, post_ffn, &s.x, m, c.d_model, eps);
}
