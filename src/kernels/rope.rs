//! Rotary position embedding (`shaders/rope.wgsl`), in llama.cpp's "normal" (adjacent pairs) and
//! NeoX (half split) layouts, with linear position scaling and partial rotation, fused with the KV
//! cache write: q is rotated in place, the rotated k and the v go straight into the layer's cache
//! (`rope_kv`; `rmsnorm_rope_kv` normalizes each q/k head first).
//! Frequencies are computed here in f64 and handed to the shader split into exact high and low
//! parts, so angles stay accurate at positions of 100k+ (see the shader's header).

use super::{count, distinct, words};
use crate::gpu::{grid, Recorder, Shader};
use crate::{Error, Result};

static SHADER: Shader = crate::include_shader!("rope");
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
    _pad: [u32; 2],
    freq: [[f32; 4]; MAX_PAIRS / 2],
}

/// Check the shape and build the parameters (with the frequency table) for `heads` heads.
#[allow(clippy::too_many_arguments)]
fn params(
    what: &str,
    rows: u32,
    heads: u32,
    head_dim: u32,
    rot_dims: u32,
    pos0: u32,
    base: f32,
    scale: f32,
    neox: bool,
) -> Result<Params> {
    if !rot_dims.is_multiple_of(2) || rot_dims > head_dim || rot_dims as usize > 2 * MAX_PAIRS {
        return Err(Error::Invalid(format!(
            "{what}: rot_dims {rot_dims} must be even, ≤ head_dim {head_dim} and ≤ {}",
            2 * MAX_PAIRS
        )));
    }
    if !(base > 0.0 && base.is_finite() && scale > 0.0 && scale.is_finite()) {
        return Err(Error::Invalid(format!(
            "{what}: base {base} and scale {scale} must be positive and finite"
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
    for j in 0..(rot_dims / 2) as usize {
        let exponent = -2.0 * j as f64 / rot_dims as f64;
        let turns = (base as f64).powf(exponent) / scale as f64 / std::f64::consts::TAU;
        // hi keeps 12 significant bits so that hi × (12-bit position part) is exact in f32.
        let hi = f32::from_bits((turns as f32).to_bits() & !0xFFF);
        let lo = (turns - hi as f64) as f32;
        freq[j / 2][2 * (j % 2)] = hi;
        freq[j / 2][2 * (j % 2) + 1] = lo;
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
        _pad: [0; 2],
        freq,
    })
}

/// RoPE of `q` [rows, q_heads, head_dim] in place, and `k` (rotated) and `v` [rows, kv heads,
/// head_dim] stored (as f16, or f32 in an f32 cache) in `kv` at positions `pos0..pos0 + rows`, in
/// one dispatch; `k` and `v` are left unchanged (the rotated k never makes a round trip).
///
/// Pair `j < rot_dims / 2` turns by `theta = pos / scale * base^(-2j / rot_dims)` (`scale` is
/// llama.cpp's `rope.scaling.factor` for linear scaling; 1 for none). `neox = false` rotates dims
/// (2j, 2j+1) (llama.cpp's normal mode, e.g. llama); `neox = true` rotates (j, j + rot_dims/2)
/// (e.g. qwen2, gemma3). Dims from `rot_dims` to `head_dim` are left as they are.
#[allow(clippy::too_many_arguments)]
pub fn rope_kv(
    rec: &mut Recorder<'_>,
    q: &wgpu::Buffer,
    k: &wgpu::Buffer,
    v: &wgpu::Buffer,
    kv: &super::attention::LayerKv,
    rows: u32,
    q_heads: u32,
    rot_dims: u32,
    pos0: u32,
    base: f32,
    scale: f32,
    neox: bool,
) -> Result<()> {
    let what = "rope_kv";
    let (head_dim, k_heads) = (kv.head_dim, kv.n_kv_heads);
    distinct(what, q, &[k, v])?;
    if pos0 as u64 + rows as u64 > kv.capacity as u64 {
        return Err(Error::Invalid(format!(
            "{what}: positions {pos0}..{} exceed the cache's {}",
            pos0 as u64 + rows as u64,
            kv.capacity
        )));
    }
    let mut p = params(
        what, rows, q_heads, head_dim, rot_dims, pos0, base, scale, neox,
    )?;
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
    let n = rows as u64 * k_heads as u64 * head_dim as u64;
    let bufs = [
        words(
            rec,
            q,
            rows as u64 * q_heads as u64 * head_dim as u64,
            "rope_kv q",
        )?,
        words(rec, k, n, "rope_kv k")?,
        words(rec, v, n, "rope_kv v")?,
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

/// Per-head RMSNorm then RoPE (as in [`rope_kv`]) of `q` [rows, q_heads, head_dim] and `k` [rows,
/// kv heads, head_dim], in place (Gemma 3 / Qwen 3 q/k norms): each head row becomes
/// `rope(row / sqrt(mean(row²) + eps) * weight)`, with `q_weight` / `k_weight` of `head_dim`
/// entries; then the normalized, rotated `k` and `v` stored (f16, or f32 in an f32 cache) in `kv`
/// at positions `pos0..pos0 + rows`. One dispatch for two norms, RoPE and the cache write.
#[allow(clippy::too_many_arguments)]
pub fn rmsnorm_rope_kv(
    rec: &mut Recorder<'_>,
    q: &wgpu::Buffer,
    k: &wgpu::Buffer,
    v: &wgpu::Buffer,
    kv: &super::attention::LayerKv,
    q_weight: &wgpu::Buffer,
    k_weight: &wgpu::Buffer,
    rows: u32,
    q_heads: u32,
    rot_dims: u32,
    pos0: u32,
    base: f32,
    scale: f32,
    neox: bool,
    eps: f32,
) -> Result<()> {
    let what = "rmsnorm_rope_kv";
    if pos0 as u64 + rows as u64 > kv.capacity as u64 {
        return Err(Error::Invalid(format!(
            "{what}: positions {pos0}..{} exceed the cache's {}",
            pos0 as u64 + rows as u64,
            kv.capacity
        )));
    }
    let (k_heads, head_dim) = (kv.n_kv_heads, kv.head_dim);
    distinct(what, v, &[q, k])?;
    distinct(what, k, &[q, q_weight, k_weight])?;
    distinct(what, q, &[q_weight, k_weight])?;
    let mut p = params(
        what, rows, q_heads, head_dim, rot_dims, pos0, base, scale, neox,
    )?;
    let q_rows = count(what, &[rows, q_heads])?;
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
    // The shader counts head rows here, not pairs.
    p.total = q_rows as u32;
    p.total2 = k_rows as u32;
    p.heads2 = k_heads;
    p.eps = eps;
    p.capacity = kv.capacity;
    let wg = super::norm::workgroup_for(head_dim / 2);
    let bufs = [
        words(rec, q, q_rows * head_dim as u64, "rmsnorm_rope_kv q")?,
        words(rec, k, k_rows * head_dim as u64, "rmsnorm_rope_kv k")?,
        words(rec, q_weight, head_dim as u64, "rmsnorm_rope_kv q_weight")?,
        words(rec, k_weight, head_dim as u64, "rmsnorm_rope_kv k_weight")?,
        words(rec, v, k_rows * head_dim as u64, "rmsnorm_rope_kv v")?,
        crate::gpu::Arg::from(&kv.k),
        crate::gpu::Arg::from(&kv.v),
    ];
    let consts = kv.constants(&[("WG", wg as f64)]);
    let wgs = grid(all as u32, rec.gpu().caps().max_workgroups_per_dim);
    rec.dispatch(&SHADER, what, &consts, &p, &bufs, wgs);
    rec.mark_position(std::mem::offset_of!(Params, pos0));
    Ok(())
}
