//! Phi-3 / Phi-3.5 / Phi-4-mini: the llama block (see `llama.rs`) with its projections stacked in
//! the file — Q, K and V in one `attn_qkv` tensor, gate and up in one `ffn_up` tensor (gate rows
//! first) — and NeoX RoPE, partial in Phi-4-mini:
//!
//!   h = x + Wo · attn(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x)),  [Wq; Wk; Wv] = W_qkv
//!   x = h + Wdown · (silu(Wgate·norm(h)) ⊙ Wup·norm(h)),                [Wgate; Wup] = W_up
//!
//! LongRoPE (Phi-3.5, Phi-4-mini) is data, not code here: the `rope_factors_long/short` tensors
//! and `rope.scaling.attn_factor` (see `RopeFactors` and `Config::rope_mscale`). Like llama.cpp,
//! attend ignores `attention.sliding_window` for phi3 (its converter writes the trained window of
//! Phi-3-mini, which llama.cpp disables too).

use super::config::{Config, Keys};
use super::llama::Block;
use super::parts::{
    Architecture, Dim, Layer, LayerTensors, Tensor, ATTN_NORM, ATTN_OUTPUT, FFN_DOWN, FFN_NORM,
};
use crate::Result;

pub struct Phi3;

const ATTN_QKV: Tensor = Tensor::Matrix {
    name: "attn_qkv.weight",
    cols: Dim::Model,
    rows: Dim::QkvRows,
};
const FFN_GATE_UP: Tensor = Tensor::Matrix {
    name: "ffn_up.weight",
    cols: Dim::Model,
    rows: Dim::GateUpRows,
};

impl Architecture for Phi3 {
    fn names(&self) -> &'static [&'static str] {
        &["phi3"]
    }
    fn config(&self, _keys: &Keys, cfg: &mut Config) -> Result<()> {
        cfg.rope_neox = true;
        Ok(())
    }
    fn tensors(&self) -> &'static [Tensor] {
        &[ATTN_NORM, ATTN_QKV, ATTN_OUTPUT, FFN_NORM, FFN_GATE_UP, FFN_DOWN]
    }
    fn layer(&self, t: &mut LayerTensors) -> Result<Box<dyn Layer>> {
        Ok(Box::new(Block::stacked(t, ATTN_QKV, FFN_GATE_UP)?))
    }
}
