//! Decode's norms folded into its matvecs (`kernels::matvec::Fold`): in a one-token pass of a
//! block whose norms sit between matvecs (llama, Qwen2/3, Phi-3), the attention output and down
//! projections add their rows to the residual stream themselves and leave `g ⊙ x` and x's partial
//! sums of squares for the next matvec, which applies `1 / rms(x)`. Each layer then spends no
//! dispatch on its two norms (on lavapipe a dispatch costs 30–50 µs whatever it does).
//! Where a matrix reads int8 activations (`kernels::matvec_i8`) the pass keeps its norm kernels.

use super::{Logits, Model, Step};
use crate::gpu::{Gpu, Recorder};
use crate::kernels::matvec::{fold_fits, takes_int8, Fold};
use crate::kernels::norm::{self, Norm};
use crate::kernels::{matmul, Act};
use crate::weights::QMatrix;
use crate::Result;

/// Whether models fold their norms unless told otherwise (natively `ATTEND_FOLD_NORMS=0` says no).
pub(super) fn by_default() -> bool {
    #[cfg(not(target_arch = "wasm32"))]
    if std::env::var("ATTEND_FOLD_NORMS").as_deref() == Ok("0") {
        return false;
    }
    true
}

impl Model {
    /// Whether an `m`-token pass folds its norms: one token whose logits it computes (a pass
    /// without them leaves `s.h` normed for [`Model::head_rows`]), [`Model::fold_norms`] on,
    /// blocks that can, vectors that carry the partial sums, and no matrix on the int8 path.
    pub fn folds(&self, gpu: &Gpu, m: u32, logits: Logits) -> bool {
        let w = &self.weights;
        let head = w.output.as_ref().unwrap_or(&w.token_embd);
        m == 1
            && logits != Logits::None
            && self.fold_norms
            && fold_fits(self.cfg.d_model)
            && w.blocks.iter().all(|b| b.folds_norms())
            && !w
                .blocks
                .iter()
                .flat_map(|b| b.matrices())
                .chain([head])
                .any(|m| takes_int8(gpu, m))
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
            return matmul::linear_fold(rec, w, a, &s.h, 1, None, f);
        }
        matmul::linear(rec, w, a, &s.o, step.m, None)?;
        let x = Act::new(&s.x, step.m, self.cfg.d_model);
        norm::add_rmsnorm(rec, x, &s.o, norm, &s.h)
    }
}
