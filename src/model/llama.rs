//! The llama block (Llama 2/3, SmolLM2, TinyLlama, Mistral, SmolLM3 with RoPE skipped in every
//! 4th layer, and Qwen2 with its Q/K/V biases):
//!
//!   h = x + Wo · attn(rope(Wq·norm(x) + bq), rope(Wk·norm(x) + bk), Wv·norm(x) + bv)
//!   x = h + Wdown · (silu(Wgate·norm(h)) ⊙ Wup·norm(h))
//!
//! Qwen2 lives here because its block *is* this one: the biases (zero in llama, absent from its
//! files) and NeoX RoPE (a config flag of the same kernel) are its only differences, so the two
//! share one block and one weight struct, generic over whether the biases exist ([`Bias`]).
//!
//! On entry `s.h` already holds norm(x) (the previous block fused it into its last residual add);
//! on exit `s.h` holds `next_norm`(x) for the next block or the output head. With `lens`, the last
//! token's attention weights are kept for the attention lens.

use super::config::{Config, Keys};
use super::parts::{
    Architecture, GateUp, Layer, LayerTensors, Qkv, Tensor, ATTN_NORM, ATTN_OUTPUT, FFN_DOWN,
    FFN_NORM, GATE_UP, QKV,
};
use super::parts::block_matrices;
use super::{Model, Step};
use crate::gpu::{Buffer, Recorder};
use crate::kernels::elementwise::Glu;
use crate::weights::QMatrix;
use crate::Result;

pub struct Llama;
pub struct Qwen2;
/// SmolLM3: the llama block, with RoPE skipped in every 4th layer ("NoPE" layers; llama.cpp
/// hard-codes the interval, the GGUF has no key for it).
pub struct SmolLm3;

const QKV_BIAS: Tensor = Tensor::Qkv { bias: true };

impl Architecture for Llama {
    fn names(&self) -> &'static [&'static str] {
        &["llama", "mistral"]
    }
    fn tensors(&self) -> &'static [Tensor] {
        &[ATTN_NORM, QKV, ATTN_OUTPUT, FFN_NORM, GATE_UP, FFN_DOWN]
    }
    fn layer(&self, t: &mut LayerTensors) -> Result<Box<dyn Layer>> {
        Ok(Box::new(Block::load(t, QKV, |_| Ok(NoBias))?))
    }
}

impl Architecture for Qwen2 {
    fn names(&self) -> &'static [&'static str] {
        &["qwen2"]
    }
    fn config(&self, _keys: &Keys, cfg: &mut Config) -> Result<()> {
        cfg.rope_neox = true;
        Ok(())
    }
    fn tensors(&self) -> &'static [Tensor] {
        &[ATTN_NORM, QKV_BIAS, ATTN_OUTPUT, FFN_NORM, GATE_UP, FFN_DOWN]
    }
    fn layer(&self, t: &mut LayerTensors) -> Result<Box<dyn Layer>> {
        Ok(Box::new(Block::load(t, QKV_BIAS, |t| t.qkv_bias(QKV_BIAS))?))
    }
}

impl Architecture for SmolLm3 {
    fn names(&self) -> &'static [&'static str] {
        &["smollm3"]
    }
    fn config(&self, _keys: &Keys, cfg: &mut Config) -> Result<()> {
        cfg.no_rope_period = 4;
        Ok(())
    }
    fn tensors(&self) -> &'static [Tensor] {
        Llama.tensors()
    }
    fn layer(&self, t: &mut LayerTensors) -> Result<Box<dyn Layer>> {
        Llama.layer(t)
    }
}

/// The q, k, v biases of a block: none in llama, three vectors in Qwen2.
pub trait Bias: wgpu::WasmNotSendSync {
    fn get(&self) -> [Option<&wgpu::Buffer>; 3];
    fn vectors(&self) -> Vec<&Buffer>;
}

pub struct NoBias;

impl Bias for NoBias {
    fn get(&self) -> [Option<&wgpu::Buffer>; 3] {
        [None; 3]
    }
    fn vectors(&self) -> Vec<&Buffer> {
        Vec::new()
    }
}

impl Bias for [Buffer; 3] {
    fn get(&self) -> [Option<&wgpu::Buffer>; 3] {
        self.each_ref().map(|b| Some(&**b))
    }
    fn vectors(&self) -> Vec<&Buffer> {
        self.iter().collect()
    }
}

pub struct Block<B> {
    attn_norm: Buffer,
    qkv: Qkv,
    bias: B,
    wo: QMatrix,
    ffn_norm: Buffer,
    gate_up: GateUp,
    w_down: QMatrix,
}

impl Block<NoBias> {
    /// The llama block from Q/K/V and gate/up matrices the file already stacks (phi3).
    pub(super) fn stacked(t: &mut LayerTensors, qkv: Tensor, gate_up: Tensor) -> Result<Self> {
        Ok(Block {
            attn_norm: t.vector(ATTN_NORM)?,
            qkv: t.fused_qkv(qkv)?,
            bias: NoBias,
            wo: t.matrix(ATTN_OUTPUT)?,
            ffn_norm: t.vector(FFN_NORM)?,
            gate_up: t.fused_gate_up(gate_up)?,
            w_down: t.matrix(FFN_DOWN)?,
        })
    }
}

impl<B: Bias> Block<B> {
    fn load(
        t: &mut LayerTensors,
        qkv: Tensor,
        bias: impl FnOnce(&mut LayerTensors) -> Result<B>,
    ) -> Result<Block<B>> {
        Ok(Block {
            attn_norm: t.vector(ATTN_NORM)?,
            qkv: t.qkv(qkv)?,
            bias: bias(t)?,
            wo: t.matrix(ATTN_OUTPUT)?,
            ffn_norm: t.vector(FFN_NORM)?,
            gate_up: t.gate_up(GATE_UP)?,
            w_down: t.matrix(FFN_DOWN)?,
        })
    }
}

impl<B: Bias> Layer for Block<B> {
    fn block(
        &self,
        model: &Model,
        rec: &mut Recorder,
        l: usize,
        step: Step,
        next_norm: &wgpu::Buffer,
    ) -> Result<()> {
        let Step { m, pos0, .. } = step;
        let (c, s) = (&model.cfg, &model.scratch);

        // Attention: q rotated, k (rotated) and v straight into the cache; x += Wo · attn,
        // s.h = ffn_norm(x).
        model.qkv_rope(rec, l, &self.qkv, self.bias.get(), step)?;
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
        let mut v = vec![&self.attn_norm, &self.ffn_norm];
        v.extend(self.bias.vectors());
        v
    }
}
