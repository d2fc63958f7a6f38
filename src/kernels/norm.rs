//! Row RMSNorm (`shaders/rmsnorm.wgsl`), alone or fused with residual adds: one workgroup per row
//! of `dim` f32s, `weight` of `dim` entries shared by all rows. The workgroup size follows
//! the row length (32..256 invocations), so per-head q/k norms (rows = tokens × heads, dim = head
//! size) do not leave most invocations idle.

use super::matvec_i8::xq_bytes;
use super::{distinct, words, Act};
use crate::gpu::{grid, Arg, Recorder, Shader};
use crate::weights::UNIT;
use crate::{Error, Result};

pub(crate) static RMSNORM: Shader = crate::include_shader!("rmsnorm": "quant_x8", "rmsnorm");

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

/// One RMSNorm: its weight (f32 `[dim]`, shared by every row) and epsilon.
#[derive(Clone, Copy, Debug)]
pub struct Norm<'a> {
    pub weight: &'a wgpu::Buffer,
    pub eps: f32,
}

impl<'a> Norm<'a> {
    pub fn new(weight: &'a wgpu::Buffer, eps: f32) -> Norm<'a> {
        Norm { weight, eps }
    }

    /// Bind the weight after checking it holds `dim` f32s.
    pub(crate) fn bind(&self, rec: &Recorder<'_>, dim: u32, what: &str) -> Result<Arg<'a>> {
        words(rec, self.weight, dim as u64, what)
    }
}

/// Error unless two norms fused in one dispatch share their epsilon (the shader takes one).
pub(crate) fn same_eps(what: &str, a: Norm<'_>, b: Norm<'_>) -> Result<()> {
    if a.eps.to_bits() != b.eps.to_bits() {
        return Err(Error::Invalid(format!(
            "{what}: the fused norms must share eps (got {} and {})",
            a.eps, b.eps
        )));
    }
    Ok(())
}

/// Invocations a row's workgroup runs with, for rows whose sums are taken `vw` wide: all of them on
/// GPUs; 16 on CPU adapters (lavapipe, SwiftShader), where each barrier switches between all of a
/// workgroup's SIMD fibres: the fused norms of a SmolLM2 prefill took 23–40 ms there instead of
/// 56–77 ms at 256, with the same bits (the shader reduces as a `vw`-wide workgroup would).
fn workgroup(rec: &Recorder<'_>, vw: u32) -> u32 {
    if rec.gpu().adapter.device_type == "Cpu" {
        vw.min(16)
    } else {
        vw
    }
}

/// Invocations for rows whose sums are taken `vw` wide (shaders/rope.wgsl's per-head norms take
/// them `head_dim / 2` wide): `wg`, or the adapter's choice; an error unless it is a power of two
/// within `vw / 32 ..= vw`.
pub(crate) fn invocations(rec: &Recorder<'_>, what: &str, vw: u32, wg: Option<u32>) -> Result<u32> {
    let wg = wg.unwrap_or_else(|| workgroup(rec, vw));
    if !wg.is_power_of_two() || wg > vw || wg < vw / 32 {
        return Err(Error::Invalid(format!(
            "{what}: {wg} invocations cannot take sums {vw} wide (a power of two in {}..={vw})",
            vw / 32
        )));
    }
    Ok(wg)
}

/// One workgroup per row of `x`, of `wg` invocations (None: the adapter's choice); `eps` of the
/// first norm (fused kernels share it). With `int8` (the output buffer, then where its int8 form
/// goes), the `_q8` entry writes the output quantized too, as `matvec_i8::quantize` would.
fn dispatch(
    rec: &mut Recorder<'_>,
    what: &str,
    x: Act<'_>,
    eps: f32,
    bufs: &[Arg<'_>],
    wg: Option<u32>,
    int8: Option<(&wgpu::Buffer, &wgpu::Buffer)>,
) -> Result<()> {
    let vw = workgroup_for(x.cols);
    let wg = invocations(rec, what, vw, wg)?;
    // The plain norm binds `bufs` as they are; only the `_q8` entry builds a longer list.
    let (q8_entry, mut q8_bufs);
    let (entry, bufs) = match int8 {
        None => (what, bufs),
        Some((_, xq)) => {
            q8_bufs = bufs.to_vec();
            q8_bufs.push(int8_arg(what, x, xq, bufs)?);
            q8_entry = format!("{what}_q8");
            (q8_entry.as_str(), q8_bufs.as_slice())
        }
    };
    let params = Params {
        rows: x.rows,
        dim: x.cols,
        eps,
        _pad: 0,
    };
    let wgs = grid(x.rows, rec.gpu().caps().max_workgroups_per_dim);
    let consts = [("WG", wg as f64), ("VW", vw as f64)];
    rec.dispatch(&RMSNORM, entry, &consts, &params, bufs, wgs);
    if let Some((out, xq)) = int8 {
        rec.set_quantized(out, x.rows as u64 * x.cols as u64, xq);
    }
    Ok(())
}

/// The binding of a norm's int8 output `xq` (`matvec_i8::xq_bytes` of x's values), after checking
/// that x's rows are whole units and `xq` aliases none of the norm's other buffers.
fn int8_arg<'a>(what: &str, x: Act<'_>, xq: &'a wgpu::Buffer, bufs: &[Arg<'_>]) -> Result<Arg<'a>> {
    let inputs: Vec<&wgpu::Buffer> = bufs.iter().map(|b| b.buffer()).collect();
    distinct(what, xq, &inputs)?;
    if !(x.cols as usize).is_multiple_of(UNIT) {
        return Err(Error::Invalid(format!(
            "{what}: rows of {} values cannot be quantized in units of {UNIT}",
            x.cols
        )));
    }
    let bytes = xq_bytes(x.elems(what)? as usize);
    if xq.size() < bytes {
        return Err(Error::Invalid(format!(
            "{what}: the int8 buffer has {} bytes, {bytes} needed",
            xq.size()
        )));
    }
    Ok(Arg::Range(xq, 0, bytes))
}

/// `out[r] = x[r] / sqrt(mean(x[r]²) + eps) * weight` for each row of `x` (`out` is shaped like
/// `x`). With `int8`, `out` also goes there quantized for the int8 matvecs, as
/// `matvec_i8::quantize` would write it (which then records nothing): a decode step's pre-norm
/// saves the quantize dispatch of the matvec after it. The same holds for the fused norms below.
pub fn rmsnorm(
    rec: &mut Recorder<'_>,
    x: Act<'_>,
    norm: Norm<'_>,
    out: &wgpu::Buffer,
    int8: Option<&wgpu::Buffer>,
) -> Result<()> {
    rmsnorm_with(rec, x, norm, out, int8, None)
}

/// [`rmsnorm`] run by workgroups of `wg` invocations (None: the adapter's choice); the bits do
/// not depend on it (tests check that).
#[doc(hidden)]
pub fn rmsnorm_with(
    rec: &mut Recorder<'_>,
    x: Act<'_>,
    norm: Norm<'_>,
    out: &wgpu::Buffer,
    int8: Option<&wgpu::Buffer>,
    wg: Option<u32>,
) -> Result<()> {
    let what = "rmsnorm";
    distinct(what, out, &[x.buf, norm.weight])?;
    if x.elems(what)? == 0 {
        return Ok(());
    }
    let bufs = [
        x.bind(rec, "rmsnorm x")?,
        norm.bind(rec, x.cols, "rmsnorm weight")?,
        x.like(out).bind(rec, "rmsnorm out")?,
    ];
    dispatch(rec, what, x, norm.eps, &bufs, wg, int8.map(|q| (out, q)))
}

/// The first half of a norm folded into the next matvec (`kernels::matvec::Fold::NormIn`, which
/// applies `1 / rms` and the epsilon): `out = weight ⊙ x` for one row of `x`, and after it, at
/// float [`NORM_SSQ`](super::matvec::NORM_SSQ) of `out`, x's partial sums of squares per 4 values.
pub fn rmsnorm_fold(
    rec: &mut Recorder<'_>,
    x: &wgpu::Buffer,
    dim: u32,
    weight: &wgpu::Buffer,
    out: &wgpu::Buffer,
) -> Result<()> {
    use super::matvec::{fold_fits, NORM_SSQ};
    let what = "rmsnorm_fold";
    distinct(what, out, &[x, weight])?;
    if !fold_fits(dim) {
        return Err(Error::Invalid(format!(
            "{what}: rows of {dim} cannot carry a folded norm"
        )));
    }
    let bufs = [
        words(rec, x, dim as u64, "rmsnorm_fold x")?,
        words(rec, weight, dim as u64, "rmsnorm_fold weight")?,
        words(
            rec,
            out,
            NORM_SSQ as u64 + dim as u64 / 4,
            "rmsnorm_fold out",
        )?,
    ];
    let params = Params {
        rows: 1,
        dim,
        eps: 0.0,
        _pad: 0,
    };
    let wg = 64;
    let consts = [("WG", wg as f64), ("NORM_SSQ", NORM_SSQ as f64)];
    let groups = grid(
        (dim / 4).div_ceil(wg),
        rec.gpu().caps().max_workgroups_per_dim,
    );
    rec.dispatch(&RMSNORM, what, &consts, &params, &bufs, groups);
    Ok(())
}

/// `residual[r] += delta[r]`, then `out[r] = rmsnorm(residual[r]) * weight`: a residual add fused
/// with the next pre-norm (one dispatch instead of two). `delta` and `out` are shaped like
/// `residual`.
pub fn add_rmsnorm(
    rec: &mut Recorder<'_>,
    residual: Act<'_>,
    delta: &wgpu::Buffer,
    norm: Norm<'_>,
    out: &wgpu::Buffer,
    int8: Option<&wgpu::Buffer>,
) -> Result<()> {
    add_rmsnorm_with(rec, residual, delta, norm, out, int8, None)
}

/// [`add_rmsnorm`] with workgroups of `wg` invocations (see [`rmsnorm_with`]).
#[doc(hidden)]
pub fn add_rmsnorm_with(
    rec: &mut Recorder<'_>,
    residual: Act<'_>,
    delta: &wgpu::Buffer,
    norm: Norm<'_>,
    out: &wgpu::Buffer,
    int8: Option<&wgpu::Buffer>,
    wg: Option<u32>,
) -> Result<()> {
    let what = "add_rmsnorm";
    distinct(what, residual.buf, &[delta, norm.weight, out])?;
    distinct(what, out, &[delta, norm.weight])?;
    if residual.elems(what)? == 0 {
        return Ok(());
    }
    let bufs = [
        residual.bind(rec, "add_rmsnorm residual")?,
        residual.like(delta).bind(rec, "add_rmsnorm delta")?,
        norm.bind(rec, residual.cols, "add_rmsnorm weight")?,
        residual.like(out).bind(rec, "add_rmsnorm out")?,
    ];
    dispatch(
        rec,
        what,
        residual,
        norm.eps,
        &bufs,
        wg,
        int8.map(|q| (out, q)),
    )
}

/// `residual[r] += rmsnorm(x[r]) * post.weight`, then `out[r] = rmsnorm(residual[r]) *
/// next.weight`: Gemma's post-norm and residual add fused with the following pre-norm (one
/// dispatch). `residual` and `out` are shaped like `x`; the two norms share one eps.
pub fn rmsnorm_add_rmsnorm(
    rec: &mut Recorder<'_>,
    x: Act<'_>,
    post: Norm<'_>,
    residual: &wgpu::Buffer,
    next: Norm<'_>,
    out: &wgpu::Buffer,
    int8: Option<&wgpu::Buffer>,
) -> Result<()> {
    rmsnorm_add_rmsnorm_with(rec, x, post, residual, next, out, int8, None)
}

/// [`rmsnorm_add_rmsnorm`] with workgroups of `wg` invocations (see [`rmsnorm_with`]).
#[doc(hidden)]
#[allow(clippy::too_many_arguments)]
pub fn rmsnorm_add_rmsnorm_with(
    rec: &mut Recorder<'_>,
    x: Act<'_>,
    post: Norm<'_>,
    residual: &wgpu::Buffer,
    next: Norm<'_>,
    out: &wgpu::Buffer,
    int8: Option<&wgpu::Buffer>,
    wg: Option<u32>,
) -> Result<()> {
    let what = "rmsnorm_add_rmsnorm";
    distinct(what, residual, &[x.buf, post.weight, next.weight, out])?;
    distinct(what, out, &[x.buf, post.weight, next.weight])?;
    same_eps(what, post, next)?;
    if x.elems(what)? == 0 {
        return Ok(());
    }
    let bufs = [
        x.bind(rec, "rmsnorm_add_rmsnorm x")?,
        post.bind(rec, x.cols, "rmsnorm_add_rmsnorm weight")?,
        x.like(residual).bind(rec, "rmsnorm_add_rmsnorm residual")?,
        next.bind(rec, x.cols, "rmsnorm_add_rmsnorm next_weight")?,
        x.like(out).bind(rec, "rmsnorm_add_rmsnorm out")?,
    ];
    dispatch(rec, what, x, post.eps, &bufs, wg, int8.map(|q| (out, q)))
}
