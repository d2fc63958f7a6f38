//! The sublayers the blocks are written with: the Q/K/V projections, attention with its output
//! projection, and the GLU feed-forward, over the model's scratch buffers (`s.h` in, as each
//! block's doc says). The residual adds and norms around them are `fold.rs`'s `residual_norm`
//! or the norm kernels the block calls itself.

use super::parts::{GateUp, Qkv};
use super::{Model, Step};
use crate::gpu::Recorder;
use crate::kernels::attention::{self, AttnParams};
use crate::kernels::elementwise;
use crate::kernels::linear;
use crate::kernels::matvec::Fold;
use crate::weights::QMatrix;
use crate::Result;

impl Model {
    /// `s.q`, `s.k`, `s.v` = the Q, K and V projections of `s.h` (plus biases) for the step's
    /// tokens.
    pub(crate) fn qkv(
        &self,
        rec: &mut Recorder,
        qkv: &Qkv,
        bias: [Option<&wgpu::Buffer>; 3],
        step: Step,
    ) -> Result<()> {
        let (c, s, m) = (&self.cfg, &self.scratch, step.m);
        let f = self.fold_in(step.fold);
        let outs = [&*s.q, &*s.k, &*s.v];
        match qkv {
            Qkv::Fused(w) => {
                // Stacked weights come without biases (see `Weights::fusions`).
                let rows = [c.q_dim(), c.kv_dim(), c.kv_dim()];
                linear::linear_split_fold(rec, w, &s.h, outs, rows, m, None, f)
            }
            Qkv::QkFused { qk, v } => {
                let rows = [c.q_dim(), c.kv_dim(), 0];
                linear::linear_split_fold(rec, qk, &s.h, outs, rows, m, None, f)?;
                linear::linear_fold(rec, v, &s.h, &s.v, m, bias[2], f)
            }
            Qkv::Split { q, k, v } => {
                linear::linear_fold(rec, q, &s.h, &s.q, m, bias[0], f)?;
                linear::linear_fold(rec, k, &s.h, &s.k, m, bias[1], f)?;
                linear::linear_fold(rec, v, &s.h, &s.v, m, bias[2], f)
            }
        }
    }

    /// `s.o = Wo · attn(q, cache)` for the `p.m` tokens of layer `l` (q in `s.q`, its keys and
    /// values already in the cache); with `step.lens`, the last token's weights go to `s.lens`.
    pub(crate) fn attention_out(
        &self,
        rec: &mut Recorder,
        l: usize,
        p: &AttnParams,
        step: Step,
        wo: &QMatrix,
    ) -> Result<()> {
        self.attention(rec, l, p, step)?;
        linear::linear(rec, wo, &self.scratch.attn, &self.scratch.o, p.m, None)
    }

    /// `s.attn = attn(q, cache)` for the `p.m` tokens of layer `l` (the first half of
    /// `attention_out`); in a pass of int8 matvecs (`step.int8`), also in int8 where the kernels
    /// can; with `step.lens`, the last token's weights go to `s.lens`.
    pub(crate) fn attention(
        &self,
        rec: &mut Recorder,
        l: usize,
        p: &AttnParams,
        step: Step,
    ) -> Result<()> {
        let (s, kv) = (&self.scratch, &self.kv[l]);
        let k = Some(self.attention_kernels);
        let xq = self.int8_out(rec.gpu(), step);
        attention::attention_to(rec, &s.q, kv, &s.attn, p, k, xq)?;
        if step.lens {
            attention::attention_probs_row(rec, &s.q, kv, &s.lens, p)?;
        }
        Ok(())
    }

    /// `s.o = Wdown · (act(gate · s.h) ⊙ (up · s.h))` for `m` tokens: a GLU feed-forward.
    pub(crate) fn ffn_out(
        &self,
        rec: &mut Recorder,
        gate_up: &GateUp,
        glu: elementwise::Glu,
        w_down: &QMatrix,
        m: u32,
    ) -> Result<()> {
        self.glu(rec, gate_up, glu, m, Fold::None)?;
        let s = &self.scratch;
        linear::linear(rec, w_down, &s.act, &s.o, m, None)
    }

    /// `s.act = act(gate · s.h) ⊙ (up · s.h)` for `m` tokens (the GLU half of a feed-forward),
    /// `s.h` read with the fold `f`.
    pub(crate) fn glu(
        &self,
        rec: &mut Recorder,
        gate_up: &GateUp,
        glu: elementwise::Glu,
        m: u32,
        f: Fold,
    ) -> Result<()> {
        let s = &self.scratch;
        match gate_up {
            GateUp::Fused(w) => linear::linear_glu_fold(rec, w, glu, &s.h, &s.gate, &s.act, m, f),
            GateUp::Split { gate, up } => {
                linear::linear_fold(rec, gate, &s.h, &s.gate, m, None, f)?;
                linear::linear_fold(rec, up, &s.h, &s.up, m, None, f)?;
                let n = m * self.cfg.ffn_dim;
                match glu {
                    elementwise::Glu::Silu => elementwise::swiglu(rec, &s.gate, &s.up, &s.act, n),
                    elementwise::Glu::Gelu => elementwise::geglu(rec, &s.gate, &s.up, &s.act, n),
                }
            }
        }
    }
}
