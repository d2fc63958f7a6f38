//! Rotary position embedding (`shaders/rope.wgsl`), in llama.cpp's "normal" (adjacent pairs) and
//! NeoX (half split) layouts, with linear position scaling and partial rotation, fused with the KV
//! cache write: q is rotated in place, the rotated k and the v go straight into the layer's cache
//! (`rope_kv`; `rmsnorm_rope_kv` normalizes each q/k head first).
//! Frequencies are computed here in f64 and handed to the shader split into exact high and low
//! parts, so angles stay accurate at positions of 100k+ (see the shader's header).

use super::attention::LayerKv;
use super::matvec::RopeStore;
use super::norm::{same_eps, Norm};
use super::{count, distinct, Act};
use crate::gpu::{grid, Recorder, Shader};
use crate::{Error, Result};

pub(crate) static SHADER: Shader = crate::include_shader!("rope": "rope", "rope_angle");
const WG: u32 = 256;
/// Pairs the uniform frequency table holds (rot_dims up to 512).
const MAX_PAIRS: usize = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    total: u32,
    heads: u32,
    head_dim: u32,
    rot_dims: u32,
    pos0: u32,
    neox: u32,
    total2: u32,
    heads2: u32,
    eps: f32,
    capacity: u32,
    mscale: f32,
    _pad: u32,
    freq: [[f32; 4]; MAX_PAIRS / 2],
}

/// The q, k and v activations of `rows` tokens that RoPE and the cache write read: `q` f32
/// `[rows, q_heads, head_dim]`, `k` and `v` f32 `[rows, kv heads, head_dim]`.
#[derive(Clone, Copy, Debug)]
pub struct QkvActs<'a> {
    pub q: &'a wgpu::Buffer,
    pub k: &'a wgpu::Buffer,
    pub v: &'a wgpu::Buffer,
    pub rows: u32,
}

/// The rotation of one RoPE call: `n_heads` query heads (the cache gives kv heads and head size),
/// the first `rope_dims` dims of each head rotated, token `i` at position `pos0 + i`.
///
/// Pair `j < rope_dims / 2` turns by `theta = pos / scale * base^(-2j / rope_dims)` (`scale` is
/// llama.cpp's `rope.scaling.factor` for linear scaling; 1 for none). `neox = false` rotates dims
/// (2j, 2j+1) (llama.cpp's normal mode, e.g. llama); `neox = true` rotates (j, j + rope_dims/2)
/// (e.g. qwen2, gemma3). Dims from `rope_dims` to `head_dim` are left as they are.
///
/// `factors` (empty for none, else one per pair) divide each pair's frequency further: the
/// `rope_freqs.weight` tensor of Llama 3.1+ files ("llama3" scaling, computed by the converter),
/// as llama.cpp's `freq_factors`: `theta_j = pos / scale * base^(-2j / rope_dims) / factors[j]`.
#[derive(Clone, Copy, Debug)]
pub struct RopeParams<'a> {
    pub n_heads: u32,
    pub rope_dims: u32,
    pub pos0: u32,
    pub base: f32,
    pub scale: f32,
    pub neox: bool,
    pub factors: &'a [f32],
    /// Multiplies the rotated dims (cos and sin): LongRoPE's attention factor
    /// (`rope.scaling.attn_factor`); 1 for none.
    pub mscale: f32,
}

impl RopeParams<'_> {
    /// Each rotated pair's frequency in turns per position, as `[hi, lo]` (hi with 12
    /// significant bits, so that hi × a 12-bit position part is exact in f32), pair after pair.
    pub fn turns(&self) -> Vec<f32> {
        let rot_dims = self.rope_dims;
        let mut t = Vec::with_capacity(rot_dims as usize);
        for j in 0..(rot_dims / 2) as usize {
            let exponent = -2.0 * j as f64 / rot_dims as f64;
            let factor = self.factors.get(j).map_or(1.0, |&f| f as f64);
            let turns = (self.base as f64).powf(exponent)
                / self.scale as f64
                / factor
                / std::f64::consts::TAU;
            let hi = f32::from_bits((turns as f32).to_bits() & !0xFFF);
            t.extend([hi, (turns - hi as f64) as f32]);
        }
        t
    }

    /// Whether a stacked Q/K/V matvec can rotate in its store ([`RopeStore`]): llama's adjacent
    /// pairs, heads of whole groups of 4 dims, and `check`'s limits for one token.
    pub fn storable(&self, kv: &LayerKv) -> bool {
        !self.neox && kv.head_dim.is_multiple_of(4) && self.check("rope", 1, kv).is_ok()
    }

    /// The store of a stacked Q/K/V matvec that rotates into `kv` at this position, with the
    /// frequency table `table` ([`turns`](Self::turns)).
    pub fn store<'a>(&self, table: &'a wgpu::Buffer, kv: &'a LayerKv) -> RopeStore<'a> {
        RopeStore {
            table,
            kv,
            pos: self.pos0,
            rot_dims: self.rope_dims,
            mscale: self.mscale,
        }
    }

    /// Check the parameters against `rows` tokens and the cache `kv`, and build the shader's
    /// parameters (with the frequency table).
    fn check(&self, what: &str, rows: u32, kv: &LayerKv) -> Result<Params> {
        let RopeParams {
            n_heads: heads,
            rope_dims: rot_dims,
            pos0,
            base,
            scale,
            neox,
            factors,
            mscale,
        } = *self;
        let head_dim = kv.head_dim;
        if pos0 as u64 + rows as u64 > kv.capacity as u64 {
            return Err(Error::Invalid(format!(
                "{what}: positions {pos0}..{} exceed the cache's {}",
                pos0 as u64 + rows as u64,
                kv.capacity
            )));
        }
        if !rot_dims.is_multiple_of(2) || rot_dims > head_dim || rot_dims as usize > 2 * MAX_PAIRS {
            return Err(Error::Invalid(format!(
                "{what}: rot_dims {rot_dims} must be even, ≤ head_dim {head_dim} and ≤ {}",
                2 * MAX_PAIRS
            )));
        }
        if ![base, scale, mscale]
            .iter()
            .all(|v| *v > 0.0 && v.is_finite())
        {
            return Err(Error::Invalid(format!(
                "{what}: base {base}, scale {scale} and mscale {mscale} must be positive and finite"
            )));
        }
        if !factors.is_empty()
            && (factors.len() != (rot_dims / 2) as usize
                || !factors.iter().all(|f| *f > 0.0 && f.is_finite()))
        {
            return Err(Error::Invalid(format!(
                "{what}: {} frequency factors for {} rotated pairs (they must match, each \
                 positive and finite)",
                factors.len(),
                rot_dims / 2
            )));
        }
        let last = pos0 as u64 + rows.saturating_sub(1) as u64;
        if last >= 1 << 24 {
            return Err(Error::Unsupported(format!(
                "{what}: position {last} is beyond the 2^24 positions kept exact"
            )));
        }
        count(what, &[rows, heads, head_dim])?;
        let total = count(what, &[rows, heads, rot_dims / 2])? as u32;

        let mut freq = [[0f32; 4]; MAX_PAIRS / 2];
        for (j, hl) in self.turns().chunks(2).enumerate() {
            freq[j / 2][2 * (j % 2)] = hl[0];
            freq[j / 2][2 * (j % 2) + 1] = hl[1];
        }
        Ok(Params {
            total,
            heads,
            head_dim,
            rot_dims,
            pos0,
            neox: neox as u32,
            total2: 0,
            heads2: 0,
            eps: 0.0,
            capacity: 0,
            mscale,
            _pad: 0,
            freq,
        })
    }
}

/// RoPE (see [`RopeParams`]) of `q` in place, and `k` (rotated) and `v` stored (as f16, or f32 in
/// an f32 cache) in `kv` at positions `pos0..pos0 + rows`, in one dispatch; `k` and `v` are left
/// unchanged (the rotated k never makes a round trip).
pub fn rope_kv(
    rec: &mut Recorder<'_>,
    acts: QkvActs<'_>,
    kv: &LayerKv,
    rope: &RopeParams,
) -> Result<()> {
    let what = "rope_kv";
    let QkvActs { q, k, v, rows } = acts;
    let (head_dim, k_heads) = (kv.head_dim, kv.n_kv_heads);
    distinct(what, q, &[k, v])?;
    let mut p = rope.check(what, rows, kv)?;
    let words_kv = count(what, &[rows, k_heads, head_dim / 2])?;
    let all = p.total as u64 + 2 * words_kv;
    if all > u32::MAX as u64 || rows == 0 {
        return Err(Error::Invalid(format!(
            "{what}: {rows} rows make {all} invocations"
        )));
    }
    p.total2 = words_kv as u32;
    p.heads2 = k_heads;
    p.capacity = kv.capacity;
    // Head rows: counts checked by `check` (q) and above (k, v).
    let (q_rows, k_rows) = (rows * rope.n_heads, rows * k_heads);
    let bufs = [
        Act::new(q, q_rows, head_dim).bind(rec, "rope_kv q")?,
        Act::new(k, k_rows, head_dim).bind(rec, "rope_kv k")?,
        Act::new(v, k_rows, head_dim).bind(rec, "rope_kv v")?,
        crate::gpu::Arg::from(&kv.k),
        crate::gpu::Arg::from(&kv.v),
    ];
    let wgs = grid(
        (all as u32).div_ceil(WG),
        rec.gpu().caps().max_workgroups_per_dim,
    );
    rec.dispatch(&SHADER, "rope_kv", &kv.constants(&[]), &p, &bufs, wgs);
    rec.mark_position(std::mem::offset_of!(Params, pos0));
    Ok(())
}

/// Per-head RMSNorm then RoPE (as in [`rope_kv`]) of `q` and `k`, in place (Gemma 3 / Qwen 3 q/k
/// norms): each head row becomes `rope(row / sqrt(mean(row²) + eps) * weight)`, with the weights
/// of `q_norm` / `k_norm` of `head_dim` entries (the two norms share one eps); then the
/// normalized, rotated `k` and `v` stored (f16, or f32 in an f32 cache) in `kv` at positions
/// `pos0..pos0 + rows`. One dispatch for two norms, RoPE and the cache write.
pub fn rmsnorm_rope_kv(
    rec: &mut Recorder<'_>,
    acts: QkvActs<'_>,
    kv: &LayerKv,
    q_norm: Norm<'_>,
    k_norm: Norm<'_>,
    rope: &RopeParams,
) -> Result<()> {
    rmsnorm_rope_kv_with(rec, acts, kv, (q_norm, k_norm), rope, None)
}

/// [`rmsnorm_rope_kv`] run by workgroups of `wg` invocations (None: the adapter's choice, as for
/// the row norms); the bits do not depend on it (tests check that).
#[doc(hidden)]
pub fn rmsnorm_rope_kv_with(
    rec: &mut Recorder<'_>,
    acts: QkvActs<'_>,
    kv: &LayerKv,
    (q_norm, k_norm): (Norm<'_>, Norm<'_>),
    rope: &RopeParams,
    wg: Option<u32>,
) -> Result<()> {
    let what = "rmsnorm_rope_kv";
    let QkvActs { q, k, v, rows } = acts;
    let (q_weight, k_weight) = (q_norm.weight, k_norm.weight);
    let mut p = rope.check(what, rows, kv)?;
    let (k_heads, head_dim) = (kv.n_kv_heads, kv.head_dim);
    distinct(what, v, &[q, k])?;
    distinct(what, k, &[q, q_weight, k_weight])?;
    distinct(what, q, &[q_weight, k_weight])?;
    same_eps(what, q_norm, k_norm)?;
    let q_rows = count(what, &[rows, rope.n_heads])?;
    let k_rows = count(what, &[rows, k_heads])?;
    count(what, &[rows, k_heads, head_dim])?;
    let all = q_rows + k_rows;
    if all > u32::MAX as u64 {
        return Err(Error::Invalid(format!(
            "{what}: {all} head rows exceed u32 indexing"
        )));
    }
    if all == 0 {
        return Ok(());
    }
    let (q_rows, k_rows) = (q_rows as u32, k_rows as u32);
    // The shader counts head rows here, not pairs.
    p.total = q_rows;
    p.total2 = k_rows;
    p.heads2 = k_heads;
    p.eps = q_norm.eps;
    p.capacity = kv.capacity;
    let vw = super::norm::workgroup_for(head_dim / 2);
    let wg = super::norm::invocations(rec, what, vw, wg)?;
    let bufs = [
        Act::new(q, q_rows, head_dim).bind(rec, "rmsnorm_rope_kv q")?,
        Act::new(k, k_rows, head_dim).bind(rec, "rmsnorm_rope_kv k")?,
        q_norm.bind(rec, head_dim, "rmsnorm_rope_kv q_weight")?,
        k_norm.bind(rec, head_dim, "rmsnorm_rope_kv k_weight")?,
        Act::new(v, k_rows, head_dim).bind(rec, "rmsnorm_rope_kv v")?,
        crate::gpu::Arg::from(&kv.k),
        crate::gpu::Arg::from(&kv.v),
    ];
    let consts = kv.constants(&[("WG", wg as f64), ("VW", vw as f64)]);
    let wgs = grid(all as u32, rec.gpu().caps().max_workgroups_per_dim);
    rec.dispatch(&SHADER, what, &consts, &p, &bufs, wgs);
    rec.mark_position(std::mem::offset_of!(Params, pos0));
    Ok(())
}
