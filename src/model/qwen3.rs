//! The Qwen3 block: llama's, without Q/K/V biases, with a per-head RMSNorm of q and k before
//! (NeoX) RoPE:
//!
//!   h = x + Wo · attn(rope(qnorm(Wq·norm(x))), rope(knorm(Wk·norm(x))), Wv·norm(x))
//!   x = h + Wdown · (silu(Wgate·norm(h)) ⊙ Wup·norm(h))
//!
//! The q/k norm weights (head_dim each, shared by the heads) multiply as stored (no `1 + w`).
//!
//! On entry `s.h` already holds norm(x); on exit it holds `next_norm`(x). With `lens`, the last
//! token's attention weights are kept for the attention lens.

use super::config::{Config, Keys};
use super::parts::{
    Architecture, GateUp, Layer, LayerTensors, Qkv, Tensor, ATTN_NORM, ATTN_OUTPUT, FFN_DOWN,
    FFN_NORM, GATE_UP, K_NORM, QKV, Q_NORM,
};
use super::parts::block_matrices;
use super::{Model, Step};
use crate::gpu::{Buffer, Recorder};
use crate::kernels::elementwise::Glu;
use crate::kernels::rope;
use crate::weights::QMatrix;
use crate::Result;

pub struct Qwen3;


impl Architecture for Qwen3 {
    fn names(&self) -> &'static [&'static str] {
        &["qwen3"]
    }
    fn config(&self, _keys: &Keys, cfg: &mut Config) -> Result<()> {
        cfg.rope_neox = true;
        Ok(())
    }
    fn tensors(&self) -> &'static [Tensor] {
        &[
            ATTN_NORM,
            QKV,
            Q_NORM,
            K_NORM,
            ATTN_OUTPUT,
            FFN_NORM,
            GATE_UP,
            FFN_DOWN,
        ]
    }
    fn layer(&self, t: &mut LayerTensors) -> Result<Box<dyn Layer>> {
        Ok(Box::new(Block {
            attn_norm: t.vector(ATTN_NORM)?,
            qkv: t.qkv(QKV)?,
            q_norm: t.vector(Q_NORM)?,
            k_norm: t.vector(K_NORM)?,
            wo: t.matrix(ATTN_OUTPUT)?,
            ffn_norm: t.vector(FFN_NORM)?,
            gate_up: t.gate_up(GATE_UP)?,
            w_down: t.matrix(FFN_DOWN)?,
        }))
    }
}

struct Block {
    attn_norm: Buffer,
    qkv: Qkv,
    q_norm: Buffer,
    k_norm: Buffer,
    wo: QMatrix,
    ffn_norm: Buffer,
    gate_up: GateUp,
    w_down: QMatrix,
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

        // Attention: q and k normed per head and rotated (q in place, k into the cache), v cached;
        // x += Wo · attn, s.h = ffn_norm(x).
        model.qkv(rec, &self.qkv, [None; 3], step)?;
        let (qn, kn) = (c.norm(&self.q_norm), c.norm(&self.k_norm));
        rope::rmsnorm_rope_kv(rec, s.qkv(m), kv, qn, kn, &model.rope(l as u32, pos0))?;
        model.attention(rec, l, &c.attn(l as u32, m, pos0), step)?;
        model.residual_norm(rec, &self.wo, &s.attn, c.norm(&self.ffn_norm), step)?;

        // Feed-forward (SwiGLU): x += Wdown · (silu(gate) ⊙ up), s.h = next_norm(x).
        model.ffn_residual(rec, &self.gate_up, Glu::Silu, &self.w_down, c.norm(next_norm), step)
    }

    fn folds_norms(&self) -> bool {
        true
    }

    fn attn_norm(&self) -> &Buffer {
        &self.attn_norm
    }
    fn qkv(&self) -> &Qkv {
        &self.qkv
    }
    fn ffn(&self) -> (&GateUp, Glu) {
        (&self.gate_up, Glu::Silu)
    }
    fn ffn_down(&self) -> &QMatrix {
        &self.w_down
    }
    fn matrices(&self) -> Vec<&QMatrix> {
        block_matrices(&self.qkv, &self.wo, &self.gate_up, &self.w_down)
    }
    fn vectors(&self) -> Vec<&Buffer> {
        let norms = [&self.attn_norm, &self.ffn_norm, &self.q_norm, &self.k_norm];
        norms.to_vec()
    }
}
