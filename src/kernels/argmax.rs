//! Row argmax (`shaders/argmax.wgsl`): greedy decoding picks the next token on the GPU, so only
//! one u32 per row comes back instead of the whole vocabulary of logits.
//!
//! [`argmax`] runs one workgroup per row, looping over the row with vec4 loads when the row length
//! allows. On lavapipe that is the fastest for a single vocabulary row too (measured, 1 × 262144:
//! ~0.2 ms single-stage vs ~0.3 ms for a two-stage variant, chunks then a merge, since removed:
//! per-dispatch and per-workgroup barrier costs outweigh a second core).

use super::norm::workgroup_for;
use super::{count, distinct, words};
use crate::gpu::{grid, Recorder, Shader};
use crate::Result;

pub(crate) static SHADER: Shader = crate::include_shader!("argmax");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    _pad: [u32; 2],
}

/// `out[r]` (u32) = the index of the largest of `x[r, 0..cols]`, the lowest index on ties.
/// Rows may be of any length (the workgroup loops over the row).
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
    let vec4 = cols.is_multiple_of(4);
    let entry = if vec4 { "argmax4" } else { "argmax" };
    let wg = workgroup_for(if vec4 { cols / 4 } else { cols });
    let wgs = grid(rows, rec.gpu().caps().max_workgroups_per_dim);
    rec.dispatch(&SHADER, entry, &[("WG", wg as f64)], &params, &bufs, wgs);
    Ok(())
}
