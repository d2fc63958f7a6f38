//! Row argmax (`shaders/argmax.wgsl`): greedy decoding picks the next token on the GPU, so only
//! one u32 per row comes back instead of the whole vocabulary of logits.

use super::elementwise::{count, distinct, words};
use super::norm::workgroup_for;
use crate::gpu::{grid, Recorder, Shader};
use crate::Result;

static SHADER: Shader = crate::include_shader!("argmax");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    _pad: [u32; 2],
}

/// `out[r]` (u32) = the index of the largest of `x[r, 0..cols]`, the lowest index on ties.
pub fn argmax(
    rec: &mut Recorder<'_>,
    x: &wgpu::Buffer,
    rows: u32,
    cols: u32,
    out: &wgpu::Buffer,
) -> Result<()> {
    distinct("argmax", out, &[x])?;
    let n = count("argmax", &[rows, cols])?;
    if n == 0 {
        return Ok(());
    }
    let bufs = [
        words(rec, x, n, "argmax x")?,
        words(rec, out, rows as u64, "argmax out")?,
    ];
    let params = Params {
        rows,
        cols,
        _pad: [0; 2],
    };
    let wgs = grid(rows, rec.gpu().caps().max_workgroups_per_dim);
    let wg = workgroup_for(cols);
    rec.dispatch(&SHADER, "argmax", &[("WG", wg as f64)], &params, &bufs, wgs);
    Ok(())
}
