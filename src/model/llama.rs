//! The llama block (Llama 2/3, SmolLM2, Mistral, and Qwen2 with its Q/K/V biases):
//!
//!   h = x + Wo · attn(rope(Wq·norm(x) + bq), rope(Wk·norm(x) + bk), Wv·norm(x) + bv)
//!   x = h + Wdown · (silu(Wgate·norm(h)) ⊙ Wup·norm(h))

use super::{Block, Model};
use crate::gpu::Recorder;
use crate::kernels::attention::{self, AttnParams};
use crate::kernels::{elementwise, matmul::linear, norm, rope};

pub(super) fn block(model: &Model, rec: &mut Recorder, l: usize, b: &Block, m: u32, pos0: u32) {
    let (c, s, kv) = (&model.cfg, &model.scratch, &model.kv[l]);
    let rope_at = |rec: &mut Recorder, x: &wgpu::Buffer, heads: u32| {
        rope::rope(rec, x, m, heads, c.head_dim, c.rope_dims, pos0, c.rope_base, c.rope_scale, c.rope_neox)
    };

    // Attention.
    norm::rmsnorm(rec, &s.x, &b.attn_norm, &s.h, m, c.d_model, c.norm_eps);
    linear(rec, &b.wq, &s.h, &s.q, m, b.bq.as_deref());
    linear(rec, &b.wk, &s.h, &s.k, m, b.bk.as_deref());
    linear(rec, &b.wv, &s.h, &s.v, m, b.bv.as_deref());
    rope_at(rec, &s.q, c.n_heads);
    rope_at(rec, &s.k, c.n_kv_heads);
    attention::kv_store(rec, kv, &s.k, &s.v, pos0, m);
    let p = AttnParams { m, pos0, n_heads: c.n_heads, scale: c.attn_scale, window: 0 };
    attention::attention(rec, &s.q, kv, &s.attn, &p);
    linear(rec, &b.wo, &s.attn, &s.o, m, None);
    elementwise::add_assign(rec, &s.x, &s.o, m * c.d_model);

    // Feed-forward (SwiGLU).
    norm::rmsnorm(rec, &s.x, &b.ffn_norm, &s.h, m, c.d_model, c.norm_eps);
    linear(rec, &b.w_gate, &s.h, &s.gate, m, None);
    linear(rec, &b.w_up, &s.h, &s.up, m, None);
    elementwise::swiglu(rec, &s.gate, &s.up, &s.act, m * c.ffn_dim);
    linear(rec, &b.w_down, &s.act, &s.o, m, None);
    elementwise::add_assign(rec, &s.x, &s.o, m * c.d_model);
}
