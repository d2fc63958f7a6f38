//! What an architecture is made of: the [`Architecture`] trait (its GGUF names, its own
//! hyperparameters, its per-layer tensor declaration and how a layer is built from it), the
//! [`Layer`] trait its block weights implement, and the shared pieces they are written with: the
//! tensor declaration ([`Tensor`]), the stacked projections ([`Qkv`], [`GateUp`]) and
//! [`LayerTensors`], which hands a layer its uploaded tensors by the same declarations.
//!
//! One declaration drives the loader's plan ([`Tensor::plan`]), the stacking it tries
//! ([`Tensor::fusions`]) and the assembly ([`LayerTensors`]), so a tensor's name is written once.

use super::config::{Config, Keys};
use super::loader::{Loader, Shape};
use super::{Model, Step};
use crate::gpu::{Buffer, Gpu, Recorder};
use crate::kernels::elementwise::Glu;
use crate::weights::QMatrix;
use crate::{Error, Result};

/// The matrices of a block made of the shared projections (for [`Layer::matrices`]), stacked
/// ones once.
pub fn block_matrices<'a>(
    qkv: &'a Qkv,
    wo: &'a QMatrix,
    gate_up: &'a GateUp,
    w_down: &'a QMatrix,
) -> Vec<&'a QMatrix> {
    let mut v = qkv.matrices();
    v.extend([wo, w_down]);
    v.extend(gate_up.matrices());
    v
}

/// One architecture: registered in `model/mod.rs` under the `general.architecture` names it reads.
pub trait Architecture: Sync {
    /// The GGUF `general.architecture` names it runs; the first is the one its `<arch>.*`
    /// metadata keys use.
    fn names(&self) -> &'static [&'static str];
    /// Read the architecture's own hyperparameters into `cfg` (the shared ones are read already;
    /// the others hold llama's defaults: no window, no embedding scale, 1/√head_dim, normal RoPE).
    fn config(&self, _keys: &Keys, _cfg: &mut Config) -> Result<()> {
        Ok(())
    }
    /// RMSNorm epsilon when the file does not give one (None: the file must).
    fn default_norm_eps(&self) -> Option<f32> {
        None
    }
    /// The tensors of one block (`blk.N.*`), in the order they are planned.
    fn tensors(&self) -> &'static [Tensor];
    /// Build one block's weights from its uploaded tensors.
    fn layer(&self, t: &mut LayerTensors) -> Result<Box<dyn Layer>>;
    /// Which matvecs may round activations to int8 per 32 (`kernels::matvec_i8`): only where
    /// tests/models.rs passes with it forced (`ATTEND_MATVEC_Q8=1`, and for prefill
    /// `ATTEND_PREFILL_Q8=1` too).
    fn int8_activations(&self) -> Int8 {
        Int8::All
    }
}

/// Where an architecture lets decoding take int8 activations.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Int8 {
    /// Every matrix int8 can read, in decode and (when int8 prefill is on) in prefill.
    All,
    /// Every matrix but the FFN's down projection in decode; prefill keeps f32 activations in
    /// the blocks. (Gemma 3: with int8 into its Q4_K `ffn_down`, whose input is the GELU gate
    /// times up with its outliers, greedy left HF at a 0.31-nat gap; its attention output, Q4_K
    /// too, keeps the float bounds.)
    Decode,
    /// Only the output head (the blocks keep f32 activations).
    Head,
}

/// The weights of one transformer block, and the block they compute.
pub trait Layer: wgpu::WasmNotSendSync {
    /// Record the block over `step.m` tokens. On entry `s.h` holds `attn_norm`(x) (the previous
    /// block fused it into its last residual add); on exit `s.h` holds `next_norm`(x) for the
    /// next block or the output head.
    fn block(
        &self,
        model: &Model,
        rec: &mut Recorder,
        l: usize,
        step: Step,
        next_norm: &wgpu::Buffer,
    ) -> Result<()>;
    /// The norm before attention (applied by the previous block, or after the embedding).
    fn attn_norm(&self) -> &Buffer;
    /// Whether `block` folds its norms into its matvecs when the step says so (`Step::fold`):
    /// blocks whose norms sit between matvecs and go through `Model::residual_norm`.
    fn folds_norms(&self) -> bool {
        false
    }
    /// The Q, K, V projections (the tuner times a stacked one with its split epilogue).
    fn qkv(&self) -> &Qkv;
    /// The gate and up projections and their activation.
    fn ffn(&self) -> (&GateUp, Glu);
    /// The FFN's down projection.
    fn ffn_down(&self) -> &QMatrix;
    /// Every weight matrix, stacked ones once.
    fn matrices(&self) -> Vec<&QMatrix>;
    /// Every vector (norm weights, biases).
    fn vectors(&self) -> Vec<&Buffer>;
    fn bytes(&self) -> u64 {
        let m: u64 = self.matrices().iter().map(|m| m.bytes()).sum();
        m + self.vectors().iter().map(|v| v.size()).sum::<u64>()
    }
}

/// A size of the model, read from its config.
#[derive(Clone, Copy, Debug)]
pub enum Dim {
    Model,
    /// All query heads (`n_heads · head_dim`).
    Q,
    /// All KV heads.
    Kv,
    Ffn,
    Head,
    /// Q, K and V rows stacked in one tensor (phi3's `attn_qkv`).
    QkvRows,
    /// Gate and up rows stacked in one tensor (phi3's `ffn_up`).
    GateUpRows,
}

impl Dim {
    pub fn of(self, c: &Config) -> u32 {
        match self {
            Dim::Model => c.d_model,
            Dim::Q => c.q_dim(),
            Dim::Kv => c.kv_dim(),
            Dim::Ffn => c.ffn_dim,
            Dim::Head => c.head_dim,
            Dim::QkvRows => c.q_dim() + 2 * c.kv_dim(),
            Dim::GateUpRows => 2 * c.ffn_dim,
        }
    }
}

/// One tensor of a block (`blk.N.<name>`), or a group of them that may be stacked.
#[derive(Clone, Copy, Debug)]
pub enum Tensor {
    /// An f32 vector (norm weight, bias) of `len` values; `name` ends in `.weight` or `.bias`.
    Vector { name: &'static str, len: Dim },
    /// A weight matrix mapping `cols` inputs to `rows` outputs.
    Matrix {
        name: &'static str,
        cols: Dim,
        rows: Dim,
    },
    /// `attn_q`, `attn_k`, `attn_v` (d_model → Q, Kv, Kv): one stacked matrix, or q and k
    /// stacked, where the file allows. With `bias`, also their `.bias` vectors, and never
    /// stacked (stacked matrices are applied without biases, see `Model::qkv`).
    Qkv { bias: bool },
    /// `ffn_gate`, `ffn_up` (d_model → ffn): one stacked matrix where the file allows.
    GateUp,
}

/// The block's pieces every architecture so far shares.
pub const ATTN_NORM: Tensor = Tensor::Vector {
    name: "attn_norm.weight",
    len: Dim::Model,
};
pub const QKV: Tensor = Tensor::Qkv { bias: false };
pub const ATTN_OUTPUT: Tensor = Tensor::Matrix {
    name: "attn_output.weight",
    cols: Dim::Q,
    rows: Dim::Model,
};
pub const FFN_NORM: Tensor = Tensor::Vector {
    name: "ffn_norm.weight",
    len: Dim::Model,
};
pub const GATE_UP: Tensor = Tensor::GateUp;
/// Per-head RMSNorm of q and k (gemma3, qwen3): `head_dim` weights shared by the heads.
pub const Q_NORM: Tensor = Tensor::Vector {
    name: "attn_q_norm.weight",
    len: Dim::Head,
};
pub const K_NORM: Tensor = Tensor::Vector {
    name: "attn_k_norm.weight",
    len: Dim::Head,
};
/// RMSNorm of the attention and FFN outputs before their residual adds (gemma2, gemma3).
pub const POST_ATTN_NORM: Tensor = Tensor::Vector {
    name: "post_attention_norm.weight",
    len: Dim::Model,
};
pub const POST_FFN_NORM: Tensor = Tensor::Vector {
    name: "post_ffw_norm.weight",
    len: Dim::Model,
};
pub const FFN_DOWN: Tensor = Tensor::Matrix {
    name: "ffn_down.weight",
    cols: Dim::Ffn,
    rows: Dim::Model,
};

/// The members of the groups, and the names of their stacks.
const QKV_NAMES: [(&str, Dim); 3] = [("attn_q", Dim::Q), ("attn_k", Dim::Kv), ("attn_v", Dim::Kv)];
const GATE_UP_NAMES: [&str; 2] = ["ffn_gate", "ffn_up"];
const QKV_STACK: &str = "attn_qkv";
const QK_STACK: &str = "attn_qk";
const GATE_UP_STACK: &str = "ffn_gate_up";

impl Tensor {
    /// The GGUF tensors this declares for layer `l`, with the shapes the config implies.
    pub fn plan(self, c: &Config, l: u32) -> Vec<(String, Shape)> {
        let n = |s: &str| format!("blk.{l}.{s}");
        match self {
            Tensor::Vector { name, len } => vec![(n(name), Shape::vec(len.of(c)))],
            Tensor::Matrix { name, cols, rows } => {
                vec![(n(name), Shape::mat(cols.of(c), rows.of(c)))]
            }
            Tensor::Qkv { bias } => {
                let d = c.d_model;
                let mut t: Vec<_> = QKV_NAMES
                    .iter()
                    .map(|(s, r)| (n(&format!("{s}.weight")), Shape::mat(d, r.of(c))))
                    .collect();
                if bias {
                    t.extend(
                        QKV_NAMES
                            .iter()
                            .map(|(s, r)| (n(&format!("{s}.bias")), Shape::vec(r.of(c)))),
                    );
                }
                t
            }
            Tensor::GateUp => GATE_UP_NAMES
                .iter()
                .map(|s| (n(&format!("{s}.weight")), Shape::mat(c.d_model, c.ffn_dim)))
                .collect(),
        }
    }

    /// The stacks this declares for layer `l`: (stacked name, members), first choice first.
    pub fn fusions(self, l: u32) -> Vec<(String, Vec<String>)> {
        let n = |s: &str| format!("blk.{l}.{s}.weight");
        let [q, k, v] = QKV_NAMES.map(|(s, _)| n(s));
        match self {
            Tensor::Qkv { bias: false } => vec![
                (n(QKV_STACK), vec![q.clone(), k.clone(), v]),
                (n(QK_STACK), vec![q, k]),
            ],
            Tensor::GateUp => vec![(n(GATE_UP_STACK), GATE_UP_NAMES.map(n).to_vec())],
            _ => Vec::new(),
        }
    }
}

/// The Q, K and V projections: one stacked `[wq; wk; wv]` matrix (one pass over the weights and
/// one dispatch when decoding) where the file allows (Q5_0 or Q4_0 q/k beside a Q8_0 v are
/// re-encoded losslessly as Q8_0 for it: `quant::widen`); else `[wq; wk]` stacked and V apart
/// (files that quantize V differently, e.g. Q6_K beside Q4_K); else three. (One per layer,
/// built once: boxing the larger variants would buy nothing.)
#[allow(clippy::large_enum_variant)]
pub enum Qkv {
    Fused(QMatrix),
    QkFused { qk: QMatrix, v: QMatrix },
    Split { q: QMatrix, k: QMatrix, v: QMatrix },
}

impl Qkv {
    pub fn matrices(&self) -> Vec<&QMatrix> {
        match self {
            Qkv::Fused(m) => vec![m],
            Qkv::QkFused { qk, v } => vec![qk, v],
            Qkv::Split { q, k, v } => vec![q, k, v],
        }
    }
}

/// The gate and up projections of a GLU feed-forward: one stacked `[gate; up]` matrix (decoded
/// in one dispatch with the activation) where the file allows, else two.
#[allow(clippy::large_enum_variant)]
pub enum GateUp {
    Fused(QMatrix),
    Split { gate: QMatrix, up: QMatrix },
}

impl GateUp {
    pub fn matrices(&self) -> Vec<&QMatrix> {
        match self {
            GateUp::Fused(m) => vec![m],
            GateUp::Split { gate, up } => vec![gate, up],
        }
    }
}

/// Layer `l`'s uploaded tensors, taken by their declarations.
pub struct LayerTensors<'a> {
    pub(super) gpu: &'a Gpu,
    pub(super) ld: &'a mut Loader,
    pub(super) l: u32,
}

impl LayerTensors<'_> {
    fn name(&self, s: &str) -> String {
        format!("blk.{}.{s}", self.l)
    }

    /// A declared vector.
    pub fn vector(&mut self, t: Tensor) -> Result<Buffer> {
        match t {
            Tensor::Vector { name, .. } => self.ld.vector(self.gpu, &self.name(name)),
            _ => Err(Error::Model(format!("{t:?} is not a vector"))),
        }
    }

    /// A declared matrix.
    pub fn matrix(&mut self, t: Tensor) -> Result<QMatrix> {
        match t {
            Tensor::Matrix { name, .. } => self.ld.matrix(self.gpu, &self.name(name)),
            _ => Err(Error::Model(format!("{t:?} is not a matrix"))),
        }
    }

    /// The Q, K, V projections, stacked as the loader managed.
    pub fn qkv(&mut self, t: Tensor) -> Result<Qkv> {
        let Tensor::Qkv { .. } = t else {
            return Err(Error::Model(format!("{t:?} is not the q/k/v projections")));
        };
        let n = |s: &str| format!("blk.{}.{s}.weight", self.l);
        let [q, k, v] = QKV_NAMES.map(|(s, _)| n(s));
        let (gpu, ld) = (self.gpu, &mut *self.ld);
        Ok(match (ld.fused(&n(QKV_STACK))?, ld.fused(&n(QK_STACK))?) {
            (Some(m), _) => Qkv::Fused(m),
            (None, Some(qk)) => Qkv::QkFused {
                qk,
                v: ld.matrix(gpu, &v)?,
            },
            (None, None) => Qkv::Split {
                q: ld.matrix(gpu, &q)?,
                k: ld.matrix(gpu, &k)?,
                v: ld.matrix(gpu, &v)?,
            },
        })
    }

    /// The q, k, v biases of a `Tensor::Qkv { bias: true }`.
    pub fn qkv_bias(&mut self, t: Tensor) -> Result<[Buffer; 3]> {
        let Tensor::Qkv { bias: true } = t else {
            return Err(Error::Model(format!("{t:?} declares no biases")));
        };
        let [q, k, v] = QKV_NAMES.map(|(s, _)| self.name(&format!("{s}.bias")));
        Ok([
            self.ld.vector(self.gpu, &q)?,
            self.ld.vector(self.gpu, &k)?,
            self.ld.vector(self.gpu, &v)?,
        ])
    }

    /// Q, K and V from one matrix the file already stacks (`rows` Q + 2·Kv).
    pub fn fused_qkv(&mut self, t: Tensor) -> Result<Qkv> {
        Ok(Qkv::Fused(self.matrix(t)?))
    }

    /// Gate and up from one matrix the file already stacks (gate rows first).
    pub fn fused_gate_up(&mut self, t: Tensor) -> Result<GateUp> {
        let m = self.matrix(t)?;
        if !crate::kernels::matvec::glu_fits(&m) {
            return Err(Error::Unsupported(format!(
                "layer {}: a stacked gate/up matrix of {} rows that the GLU kernel cannot take",
                self.l, m.rows
            )));
        }
        Ok(GateUp::Fused(m))
    }

    /// The gate and up projections, stacked where the loader managed and the GLU kernel takes it.
    pub fn gate_up(&mut self, t: Tensor) -> Result<GateUp> {
        let Tensor::GateUp = t else {
            return Err(Error::Model(format!(
                "{t:?} is not the gate/up projections"
            )));
        };
        let n = |s: &str| format!("blk.{}.{s}.weight", self.l);
        let [gate, up] = GATE_UP_NAMES.map(n);
        Ok(match self.ld.fused(&n(GATE_UP_STACK))? {
            Some(m) if crate::kernels::matvec::glu_fits(&m) => GateUp::Fused(m),
            Some(m) => return Err(Error::Model(format!("fused matrix of {} rows", m.rows))),
            None => GateUp::Split {
                gate: self.ld.matrix(self.gpu, &gate)?,
                up: self.ld.matrix(self.gpu, &up)?,
            },
        })
    }
}
