//! One file per kernel family: each binds and dispatches the matching `shaders/*.wgsl`.
//! Kernels only record into a [`Recorder`]; they never submit or wait.
//!
//! Conventions shared by every kernel: activations are f32, row-major, contiguous; a kernel's
//! uniform parameters sit at `@binding(0)` and its storage buffers at `@binding(1..)` in the order
//! the Rust function takes them; grids larger than 65535 workgroups fold into (x, y) via
//! [`grid`](crate::gpu::grid).

pub mod argmax;
pub mod attention;
pub mod bandwidth;
pub mod elementwise;
pub mod embedding;
pub mod linear;
pub mod matmul;
pub mod matvec;
pub mod matvec_i8;
pub mod norm;
pub mod rope;
pub mod topk;
pub mod tuned;

/// Every shader module of the crate (a device creates those its kernels choose: the int8 module
/// only with `dot4I8Packed`, the subgroup ones only with subgroups). For tests that check
/// something of every module, their layouts for one.
pub fn shaders() -> [&'static crate::gpu::Shader; 12] {
    [
        &argmax::SHADER,
        &attention::SHADER,
        &bandwidth::SHADER,
        &bandwidth::SHADER64,
        &elementwise::SHADER,
        &matvec::SHADER,
        &matvec::SHADER_SG,
        &matvec::SHADER_SG64,
        &matvec_i8::SHADER,
        &norm::RMSNORM,
        &rope::SHADER,
        &topk::SHADER,
    ]
}

// Argument checks shared by the kernels: bad shapes become errors, never GPU validation panics.

/// An f32 activation: `buf` read as `rows × cols`, row-major and contiguous. Kernels check its
/// shape in one place (`Act::elems`, and `Act::bind` that the buffer holds it).
#[derive(Clone, Copy, Debug)]
pub struct Act<'a> {
    pub buf: &'a wgpu::Buffer,
    pub rows: u32,
    pub cols: u32,
}

impl<'a> Act<'a> {
    pub fn new(buf: &'a wgpu::Buffer, rows: u32, cols: u32) -> Act<'a> {
        Act { buf, rows, cols }
    }

    /// Another buffer of the same shape (an output shaped like its input).
    pub fn like<'b>(&self, buf: &'b wgpu::Buffer) -> Act<'b> {
        Act::new(buf, self.rows, self.cols)
    }

    /// `rows × cols`, rejecting shapes that do not fit the shaders' u32 indices.
    pub(crate) fn elems(&self, what: &str) -> Result<u64> {
        count(what, &[self.rows, self.cols])
    }

    /// Bind the activation's `rows × cols` f32s, after checking the shape and that the buffer
    /// holds them (see [`words`]).
    pub(crate) fn bind(&self, rec: &Recorder<'_>, what: &str) -> Result<Arg<'a>> {
        words(rec, self.buf, self.elems(what)?, what)
    }
}

use crate::gpu::{Arg, Recorder};
use crate::{Error, Result};

/// Bind the first `elems` f32s (or u32s) of `buf`, after checking it holds them and that the range
/// fits one storage binding.
pub(crate) fn words<'a>(
    rec: &Recorder<'_>,
    buf: &'a wgpu::Buffer,
    elems: u64,
    what: &str,
) -> Result<Arg<'a>> {
    let bytes = elems * 4;
    if buf.size() < bytes {
        return Err(Error::Invalid(format!(
            "{what}: buffer has {} bytes but {elems} elements need {bytes}",
            buf.size()
        )));
    }
    let max = rec.gpu().caps().max_binding;
    if bytes > max {
        return Err(Error::Unsupported(format!(
            "{what}: {bytes} bytes exceed the largest storage binding ({max} bytes)"
        )));
    }
    Ok(Arg::Range(buf, 0, bytes.max(4)))
}

/// Error unless `out` is a different buffer from every input (writable bindings may not alias).
pub(crate) fn distinct(what: &str, out: &wgpu::Buffer, inputs: &[&wgpu::Buffer]) -> Result<()> {
    if inputs.contains(&out) {
        return Err(Error::Invalid(format!(
            "{what}: the output buffer is also an input (a writable binding may not alias another)"
        )));
    }
    Ok(())
}

/// `rows * cols` as u64, rejecting products that do not fit the u32 indices the shaders use.
pub(crate) fn count(what: &str, dims: &[u32]) -> Result<u64> {
    let n = dims.iter().map(|&d| d as u64).product::<u64>();
    if n > u32::MAX as u64 {
        return Err(Error::Invalid(format!(
            "{what}: {n} elements exceed u32 indexing"
        )));
    }
    Ok(n)
}
