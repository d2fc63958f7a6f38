//! Elementwise kernels on f32 vectors (`shaders/elementwise.wgsl`): add, in-place add, multiply,
//! in-place scale, SiLU, GELU (tanh approximation), SwiGLU, GeGLU and a row-broadcast bias add.
//! Each uses vec4 loads when the element count (or row length) is a multiple of 4 and a scalar
//! variant otherwise; any `n` works and large grids fold into two dimensions.
//!
//! Outputs must be distinct buffers from inputs (WebGPU forbids aliasing a writable binding); the
//! in-place functions (`add_assign`, `scale`, `add_bias`) say so in their names or docs.

use super::{count, distinct, words};
use crate::gpu::{grid, Arg, Recorder, Shader};
use crate::Result;

static SHADER: Shader = crate::include_shader!("elementwise");
const WG: u32 = 256;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    cols: u32,
    s: f32,
    _pad: u32,
}

/// Record `entry` over `n` elements: the vec4 variant (`entry4`) when `vec4` allows it.
fn run(
    rec: &mut Recorder<'_>,
    entry: &str,
    vec4: bool,
    n: u64,
    cols: u64,
    s: f32,
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
        s,
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
    run(rec, entry, n.is_multiple_of(4), n, 0, 0.0, &bufs);
    Ok(())
}

/// `out = f(x)` for the unary entry points.
fn unary(
    rec: &mut Recorder<'_>,
    entry: &str,
    x: &wgpu::Buffer,
    out: &wgpu::Buffer,
    n: u32,
) -> Result<()> {
    distinct(entry, out, &[x])?;
    let n = n as u64;
    if n == 0 {
        return Ok(());
    }
    let bufs = [words(rec, x, n, entry)?, words(rec, out, n, entry)?];
    run(rec, entry, n.is_multiple_of(4), n, 0, 0.0, &bufs);
    Ok(())
}

/// `out[i] = a[i] + b[i]` for `i < n`.
pub fn add(
    rec: &mut Recorder<'_>,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    out: &wgpu::Buffer,
    n: u32,
) -> Result<()> {
    binary(rec, "add", a, b, out, n)
}

/// `out[i] = a[i] * b[i]` for `i < n`.
pub fn mul(
    rec: &mut Recorder<'_>,
    a: &wgpu::Buffer,
    b: &wgpu::Buffer,
    out: &wgpu::Buffer,
    n: u32,
) -> Result<()> {
    binary(rec, "mul", a, b, out, n)
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
    run(rec, entry, true, n, f as u64, 0.0, &bufs);
    Ok(())
}

/// `out[i] = x[i] * sigmoid(x[i])`.
pub fn silu(rec: &mut Recorder<'_>, x: &wgpu::Buffer, out: &wgpu::Buffer, n: u32) -> Result<()> {
    unary(rec, "silu", x, out, n)
}

/// `out[i] = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`, the tanh approximation of GELU.
pub fn gelu(rec: &mut Recorder<'_>, x: &wgpu::Buffer, out: &wgpu::Buffer, n: u32) -> Result<()> {
    unary(rec, "gelu", x, out, n)
}

/// `acc[i] += b[i]` in place (residual connections).
pub fn add_assign(
    rec: &mut Recorder<'_>,
    acc: &wgpu::Buffer,
    b: &wgpu::Buffer,
    n: u32,
) -> Result<()> {
    distinct("add_assign", acc, &[b])?;
    let n = n as u64;
    if n == 0 {
        return Ok(());
    }
    let bufs = [
        words(rec, acc, n, "add_assign")?,
        words(rec, b, n, "add_assign")?,
    ];
    run(rec, "add_assign", n.is_multiple_of(4), n, 0, 0.0, &bufs);
    Ok(())
}

/// `x[i] *= s` in place.
pub fn scale(rec: &mut Recorder<'_>, x: &wgpu::Buffer, s: f32, n: u32) -> Result<()> {
    let n = n as u64;
    if n == 0 {
        return Ok(());
    }
    let bufs = [words(rec, x, n, "scale")?];
    run(rec, "scale", n.is_multiple_of(4), n, 0, s, &bufs);
    Ok(())
}

/// `x[r, c] += bias[c]` in place for a row-major `x` of `rows × cols`.
pub fn add_bias(
    rec: &mut Recorder<'_>,
    x: &wgpu::Buffer,
    bias: &wgpu::Buffer,
    rows: u32,
    cols: u32,
) -> Result<()> {
    distinct("add_bias", x, &[bias])?;
    let n = count("add_bias", &[rows, cols])?;
    if n == 0 {
        return Ok(());
    }
    let bufs = [
        words(rec, x, n, "add_bias")?,
        words(rec, bias, cols as u64, "add_bias")?,
    ];
    run(
        rec,
        "add_bias",
        cols.is_multiple_of(4),
        n,
        cols as u64,
        0.0,
        &bufs,
    );
    Ok(())
}
