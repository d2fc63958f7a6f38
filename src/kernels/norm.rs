//! Row RMSNorm (`shaders/rmsnorm.wgsl`), alone or fused with residual adds: one workgroup per row
//! of `dim` f32s, `weight` of `dim` entries shared by all rows. The workgroup size follows
//! the row length (32..256 invocations), so per-head q/k norms (rows = tokens × heads, dim = head
//! size) do not leave most invocations idle.

use super::{count, distinct, words};
use crate::gpu::{grid, Recorder, Shader};
use crate::Result;

static RMSNORM: Shader = crate::include_shader!("rmsnorm");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    dim: u32,
    eps: f32,
    _pad: u32,
}

/// Invocations per workgroup for rows of `dim`: the next power of two, within 32..=256.
pub(crate) fn workgroup_for(dim: u32) -> u32 {
    dim.min(256).next_power_of_two().clamp(32, 256)
}

fn dispatch(
    rec: &mut Recorder<'_>,
    entry: &str,
    rows: u32,
    dim: u32,
    eps: f32,
    bufs: &[crate::gpu::Arg<'_>],
) {
    let params = Params {
        rows,
        dim,
        eps,
        _pad: 0,
    };
    let wg = workgroup_for(dim);
    let wgs = grid(rows, rec.gpu().caps().max_workgroups_per_dim);
    rec.dispatch(&RMSNORM, entry, &[("WG", wg as f64)], &params, bufs, wgs);
}

/// `out[r] = x[r] / sqrt(mean(x[r]²) + eps) * weight` for each of `rows` rows of `dim`.
pub fn rmsnorm(
    rec: &mut Recorder<'_>,
    x: &wgpu::Buffer,
    weight: &wgpu::Buffer,
    out: &wgpu::Buffer,
    rows: u32,
    dim: u32,
    eps: f32,
) -> Result<()> {
    distinct("rmsnorm", out, &[x, weight])?;
    let n = count("rmsnorm", &[rows, dim])?;
    if n == 0 {
        return Ok(());
    }
    let bufs = [
        words(rec, x, n, "rmsnorm x")?,
        words(rec, weight, dim as u64, "rmsnorm weight")?,
        words(rec, out, n, "rmsnorm out")?,
    ];
    dispatch(rec, "rmsnorm", rows, dim, eps, &bufs);
    Ok(())
}

/// `residual[r] += delta[r]`, then `out[r] = rmsnorm(residual[r]) * weight`: a residual add fused
/// with the next pre-norm (one dispatch instead of two).
#[allow(clippy::too_many_arguments)]
pub fn add_rmsnorm(
    rec: &mut Recorder<'_>,
    residual: &wgpu::Buffer,
    delta: &wgpu::Buffer,
    weight: &wgpu::Buffer,
    out: &wgpu::Buffer,
    rows: u32,
    dim: u32,
    eps: f32,
) -> Result<()> {
    distinct("add_rmsnorm", residual, &[delta, weight, out])?;
    distinct("add_rmsnorm", out, &[delta, weight])?;
    let n = count("add_rmsnorm", &[rows, dim])?;
    if n == 0 {
        return Ok(());
    }
    let bufs = [
        words(rec, residual, n, "add_rmsnorm residual")?,
        words(rec, delta, n, "add_rmsnorm delta")?,
        words(rec, weight, dim as u64, "add_rmsnorm weight")?,
        words(rec, out, n, "add_rmsnorm out")?,
    ];
    dispatch(rec, "add_rmsnorm", rows, dim, eps, &bufs);
    Ok(())
}

/// `residual[r] += rmsnorm(x[r]) * weight`, then `out[r] = rmsnorm(residual[r]) * next_weight`:
/// Gemma's post-norm and residual add fused with the following pre-norm (one dispatch).
#[allow(clippy::too_many_arguments)]
pub fn rmsnorm_add_rmsnorm(
    rec: &mut Recorder<'_>,
    x: &wgpu::Buffer,
    weight: &wgpu::Buffer,
    residual: &wgpu::Buffer,
    next_weight: &wgpu::Buffer,
    out: &wgpu::Buffer,
    rows: u32,
    dim: u32,
    eps: f32,
) -> Result<()> {
    distinct(
        "rmsnorm_add_rmsnorm",
        residual,
        &[x, weight, next_weight, out],
    )?;
    distinct("rmsnorm_add_rmsnorm", out, &[x, weight, next_weight])?;
    let n = count("rmsnorm_add_rmsnorm", &[rows, dim])?;
    if n == 0 {
        return Ok(());
    }
    let bufs = [
        words(rec, x, n, "rmsnorm_add_rmsnorm x")?,
        words(rec, weight, dim as u64, "rmsnorm_add_rmsnorm weight")?,
        words(rec, residual, n, "rmsnorm_add_rmsnorm residual")?,
        words(
            rec,
            next_weight,
            dim as u64,
            "rmsnorm_add_rmsnorm next_weight",
        )?,
        words(rec, out, n, "rmsnorm_add_rmsnorm out")?,
    ];
    dispatch(rec, "rmsnorm_add_rmsnorm", rows, dim, eps, &bufs);
    Ok(())
}
