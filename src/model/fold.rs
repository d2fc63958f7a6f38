//! Decode's norms folded into its matvecs (`kernels::matvec::Fold`): in a one-token pass of a
//! block whose norms sit between matvecs (llama, Qwen2/3, Phi-3), the attention output and down
//! projections add their rows to the residual stream themselves and leave `g ⊙ x` and x's partial
//! sums of squares for the next matvec, which applies `1 / rms(x)`. Each layer then spends no
//! dispatch on its two norms (on lavapipe a dispatch costs 30–50 µs whatever it does).
//! Where a matrix reads int8 activations (`kernels::matvec_i8`) the pass keeps its norm kernels,
//! and they write their output in int8 too (`Step::int8`), so the matvec needs no quantize step.

use super::{GateUp, Logits, Model, Qkv, Step};
use crate::gpu::{Buffer, Gpu, Recorder};
use crate::kernels::elementwise::Glu;
use crate::kernels::matvec::{fold_fits, takes_int8, Fold};
use crate::kernels::norm::{self, Norm};
use crate::kernels::rope;
use crate::kernels::{linear, Act};
use crate::weights::QMatrix;
use crate::Result;

/// The RoPE frequency tables of a model's layers (layers with the same rotation share one).
#[derive(Default)]
pub(super) struct RopeTables {
    tables: Vec<Buffer>,
    of_layer: Vec<usize>,
}

impl RopeTables {
    fn get(&self, l: usize) -> Option<&Buffer> {
        self.of_layer.get(l).map(|&i| &self.tables[i])
    }
}

/// Whether models fold their norms unless told otherwise (natively `ATTEND_FOLD_NORMS=0` says no).
pub(super) fn by_default() -> bool {
    crate::env_switch("ATTEND_FOLD_NORMS") != Some(false)
}

impl Model {
    /// Whether an `m`-token pass folds its norms: one token whose logits it computes (a pass
    /// without them leaves `s.h` normed for [`Model::head_rows`]), [`Model::fold_norms`] on,
    /// blocks that can, vectors that carry the partial sums, and no matrix on the int8 path.
    pub fn folds(&self, gpu: &Gpu, m: u32, logits: Logits) -> bool {
        let w = &self.weights;
        m == 1
            && logits != Logits::None
            && self.fold_norms
            && fold_fits(self.cfg.d_model)
            && w.blocks.iter().all(|b| b.folds_norms())
            && !self.any_int8(gpu)
    }

    /// Whether any matrix (the head included) reads int8 activations in a one-token pass.
    fn any_int8(&self, gpu: &Gpu) -> bool {
        let w = &self.weights;
        let head = w.output.as_ref().unwrap_or(&w.token_embd);
        w.blocks
            .iter()
            .flat_map(|b| b.matrices())
            .chain([head])
            .any(|m| takes_int8(gpu, m))
    }

    /// Whether an `m`-token pass's pre-norms also write their output in int8 ([`Step::int8`]):
    /// one token, and some matrix reading int8 (those after the pre-norms, Q/K/V, gate/up and
    /// the head, are the ones that can; a norm whose next matvec reads f32 only writes a few
    /// unread words more).
    pub(super) fn norms_to_int8(&self, gpu: &Gpu, m: u32) -> bool {
        m == 1 && self.any_int8(gpu)
    }

    /// Where a pre-norm of `step` writes its int8 form: the scratch that the next int8 matvec
    /// would quantize its input into (`kernels::matvec_i8`), which then records no quantize.
    pub(crate) fn int8_out<'g>(&self, gpu: &'g Gpu, step: Step) -> Option<&'g wgpu::Buffer> {
        step.int8.then(|| gpu.xq_scratch())
    }

    /// The RoPE frequency tables of the layers (see `rope_tables` in [`Model`]): none where the
    /// rotation is NeoX's (its pairs are not rows of one group of 4).
    pub(super) fn rope_tables(&self, gpu: &Gpu) -> Result<RopeTables> {
        let mut out = RopeTables::default();
        if self.cfg.rope_neox {
            return Ok(out);
        }
        let mut seen: Vec<Vec<f32>> = Vec::new();
        for l in 0..self.cfg.n_layers {
            let t = self.rope(l, 0).turns();
            let i = match seen.iter().position(|u| *u == t) {
                Some(i) => i,
                None => {
                    out.tables.push(gpu.upload("rope table", &t)?);
                    seen.push(t);
                    seen.len() - 1
                }
            };
            out.of_layer.push(i);
        }
        Ok(out)
    }

    /// `s.q`, and k and v in layer `l`'s cache, rotated, for the step's tokens: one stacked Q/K/V
    /// matvec rotating in its store where it can (a folded pass, llama's RoPE, one stacked
    /// matrix), else the projections and `rope_kv`.
    pub(crate) fn qkv_rope(
        &self,
        rec: &mut Recorder,
        l: usize,
        qkv: &Qkv,
        bias: [Option<&wgpu::Buffer>; 3],
        step: Step,
    ) -> Result<()> {
        let (c, s, kv) = (&self.cfg, &self.scratch, &self.kv[l]);
        let rope = self.rope(l as u32, step.pos0);
        if let (true, Qkv::Fused(w), Some(table)) = (step.fold, qkv, self.rope_tables.get(l)) {
            if rope.storable(kv) {
                let rows = [c.q_dim(), c.kv_dim(), c.kv_dim()];
                let store = rope.store(table, kv);
                let f = self.fold_in(true);
                return linear::linear_qkv_rope(rec, w, &s.h, &s.q, rows, f, store);
            }
        }
        self.qkv(rec, qkv, bias, step)?;
        rope::rope_kv(rec, s.qkv(step.m), kv, &rope)
    }

    /// `x += Wdown · (act(gate · s.h) ⊙ (up · s.h))`, then `s.h = norm(x)`: a GLU feed-forward
    /// with its residual add and the next norm (folded when the step folds).
    pub(crate) fn ffn_residual(
        &self,
        rec: &mut Recorder,
        gate_up: &GateUp,
        glu: Glu,
        w_down: &QMatrix,
        norm: Norm,
        step: Step,
    ) -> Result<()> {
        self.glu(rec, gate_up, glu, step.m, self.fold_in(step.fold))?;
        self.residual_norm(rec, w_down, &self.scratch.act, norm, step)
    }

    /// How a matvec reads `s.h` in a pass that folds (or not).
    pub(crate) fn fold_in(&self, fold: bool) -> Fold<'static> {
        if fold {
            Fold::NormIn {
                eps: self.cfg.norm_eps,
            }
        } else {
            Fold::None
        }
    }

    /// `x += W · a`, then `s.h = norm(x)` (for the next matvec), for the step's tokens: one
    /// matvec with the residual-norm epilogue when the step folds, else a matvec into `s.o` and
    /// `add_rmsnorm`.
    pub(crate) fn residual_norm(
        &self,
        rec: &mut Recorder,
        w: &QMatrix,
        a: &wgpu::Buffer,
        norm: Norm,
        step: Step,
    ) -> Result<()> {
        let s = &self.scratch;
        if step.fold {
            let f = Fold::ResidualNorm {
                resid: &s.x,
                gain: norm.weight,
            };
            return linear::linear_fold(rec, w, a, &s.h, 1, None, f);
        }
        linear::linear(rec, w, a, &s.o, step.m, None)?;
        let x = Act::new(&s.x, step.m, self.cfg.d_model);
        let xq = self.int8_out(rec.gpu(), step);
        norm::add_rmsnorm(rec, x, &s.o, norm, &s.h, xq)
    }
}
