//! The gated activations of GLU feed-forwards on f32 vectors (`shaders/elementwise.wgsl`): SwiGLU
//! and GeGLU (GELU's tanh approximation), on separate gate and up buffers or on the `[gate | up]`
//! rows a fused matmul writes; and soft-capping in place (Gemma 2's final logits). They use vec4 loads when the element count is a multiple of 4 and a
//! scalar variant otherwise; any `n` works and large grids fold into two dimensions.
//!
//! Outputs must be distinct buffers from inputs (WebGPU forbids aliasing a writable binding).

use super::{distinct, words};
use crate::gpu::{grid, Arg, Recorder, Shader};
use crate::Result;

pub(crate) static SHADER: Shader = crate::include_shader!("elementwise");
const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    cols: u32,
    cap: f32,
    _pad: u32,
}

/// Record `entry` over `n` elements: the vec4 variant (`entry4`) when `vec4` allows it.
fn run(rec: &mut Recorder<'_>, entry: &str, vec4: bool, n: u64, cols: u64, bufs: &[Arg<'_>]) {
    run_capped(rec, entry, vec4, n, cols, 0.0, bufs)
}

fn run_capped(
    rec: &mut Recorder<'_>,
    entry: &str,
    vec4: bool,
    n: u64,
    cols: u64,
    cap: f32,
    bufs: &[Arg<'_>],
) {
    let (name, unit) = if vec4 {
        (format!("{entry}4"), 4)
    } else {
        (entry.to_string(), 1)
    };
    let items = (n / unit) as u32;
    let params = Params {
        n: items,
        cols: (cols / unit) as u32,
        cap,
        _pad: 0,
    };
    let wgs = grid(items.div_ceil(WG), rec.gpu().caps().max_workgroups_per_dim);
    rec.dispatch(&SHADER, &name, &[], &params, bufs, wgs);
}

/// `out = a op b` for the binary entry points.
fn binary(
    rec: &mut Recorder<'_>,
    entry: &str,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    out: &wgpu::Buffer,
    n: u32,
) -> Result<()> {
    distinct(entry, out, &[a, b])?;
    let n = n as u64;
    if n == 0 {
        return Ok(());
    }
    let bufs = [
        words(rec, a, n, entry)?,
        words(rec, b, n, entry)?,
        words(rec, out, n, entry)?,
    ];
    run(rec, entry, n.is_multiple_of(4), n, 0, &bufs);
    Ok(())
}

/// `out[i] = silu(gate[i]) * up[i]` (SwiGLU feed-forward gate).
pub fn swiglu(
    rec: &mut Recorder<'_>,
    gate: &wgpu::Buffer,
    up: &wgpu::Buffer,
    out: &wgpu::Buffer,
    n: u32,
) -> Result<()> {
    binary(rec, "swiglu", gate, up, out, n)
}

/// `out[i] = gelu_tanh(gate[i]) * up[i]` (GeGLU feed-forward gate, Gemma).
pub fn geglu(
    rec: &mut Recorder<'_>,
    gate: &wgpu::Buffer,
    up: &wgpu::Buffer,
    out: &wgpu::Buffer,
    n: u32,
) -> Result<()> {
    binary(rec, "geglu", gate, up, out, n)
}

/// `x[i] = cap · tanh(x[i] / cap)` over the first `n` values, in place (final logit soft-capping,
/// Gemma 2); `cap > 0`.
pub fn softcap(rec: &mut Recorder<'_>, x: &wgpu::Buffer, n: u32, cap: f32) -> Result<()> {
    if cap.is_nan() || cap <= 0.0 {
        return Err(crate::Error::Invalid(format!(
            "softcap: the cap must be positive, got {cap}"
        )));
    }
    let n = n as u64;
    if n == 0 {
        return Ok(());
    }
    let bufs = [words(rec, x, n, "softcap")?];
    run_capped(rec, "softcap", n.is_multiple_of(4), n, 0, cap, &bufs);
    Ok(())
}

/// The gate activation of a GLU feed-forward.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Glu {
    /// SwiGLU (Llama, Qwen): silu(gate) * up.
    Silu,
    /// GeGLU (Gemma): gelu_tanh(gate) * up.
    Gelu,
}

/// `out[t, j] = act(y[t, j]) * y[t, f + j]` over `m` rows `[gate | up]` of `2f` values (what a
/// matmul with a fused `[gate; up]` weight writes); `f` a multiple of 4.
pub fn glu_rows(
    rec: &mut Recorder<'_>,
    glu: Glu,
    y: &wgpu::Buffer,
    out: &wgpu::Buffer,
    m: u32,
    f: u32,
) -> Result<()> {
    let entry = match glu {
        Glu::Silu => "swiglu_rows",
        Glu::Gelu => "geglu_rows",
    };
    distinct(entry, out, &[y])?;
    if !f.is_multiple_of(4) {
        return Err(crate::Error::Invalid(format!(
            "{entry}: f = {f} is not a multiple of 4"
        )));
    }
    let n = m as u64 * f as u64;
    if n == 0 {
        return Ok(());
    }
    let bufs = [words(rec, y, 2 * n, entry)?, words(rec, out, n, entry)?];
    run(rec, entry, true, n, f as u64, &bufs);
    Ok(())
}
