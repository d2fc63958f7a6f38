//! Row argmax (`shaders/argmax.wgsl`): greedy decoding picks the next token on the GPU, so only
//! one u32 per row comes back instead of the whole vocabulary of logits.
//!
//! [`argmax`] runs one workgroup per row, looping over the row with vec4 loads when the row length
//! allows. On lavapipe that is the fastest for a single vocabulary row too (measured, 1 × 262144:
//! ~0.2 ms single-stage vs ~0.3 ms two-stage on an idle machine: per-dispatch and per-workgroup
//! barrier costs outweigh a second core). [`argmax_two_stage`] splits long rows into chunks of
//! [`CHUNK`] elements, one workgroup each, then merges per row; it suits GPUs where one workgroup
//! cannot saturate memory bandwidth, and needs a caller-owned scratch buffer.

use super::norm::workgroup_for;
use super::{count, distinct, words};
use crate::gpu::{grid, Recorder, Shader};
use crate::{Error, Result};

static SHADER: Shader = crate::include_shader!("argmax");

/// Elements one stage-1 workgroup of [`argmax_two_stage`] scans (a multiple of 4).
pub const CHUNK: u32 = 8192;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    chunks: u32,
    chunk_len: u32,
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
        chunks: 1,
        chunk_len: cols,
    };
    let vec4 = cols.is_multiple_of(4);
    let entry = if vec4 { "argmax4" } else { "argmax" };
    let wg = workgroup_for(if vec4 { cols / 4 } else { cols });
    let wgs = grid(rows, rec.gpu().caps().max_workgroups_per_dim);
    rec.dispatch(&SHADER, entry, &[("WG", wg as f64)], &params, &bufs, wgs);
    Ok(())
}

/// Bytes of scratch [`argmax_two_stage`] needs for `rows` rows of `cols`.
pub fn two_stage_scratch_bytes(rows: u32, cols: u32) -> u64 {
    8 * rows as u64 * cols.div_ceil(CHUNK) as u64
}

/// Same result as [`argmax`], in two dispatches: one workgroup per [`CHUNK`] of each row, then one
/// per row. `scratch` must hold [`two_stage_scratch_bytes`] and be distinct from `x` and `out`.
pub fn argmax_two_stage(
    rec: &mut Recorder<'_>,
    x: &wgpu::Buffer,
    rows: u32,
    cols: u32,
    out: &wgpu::Buffer,
    scratch: &wgpu::Buffer,
) -> Result<()> {
    distinct("argmax_two_stage", out, &[x, scratch])?;
    distinct("argmax_two_stage", scratch, &[x])?;
    let n = count("argmax_two_stage", &[rows, cols])?;
    if n == 0 {
        return Ok(());
    }
    let chunks = cols.div_ceil(CHUNK);
    let slots = rows as u64 * chunks as u64;
    if 2 * slots > u32::MAX as u64 {
        return Err(Error::Invalid("argmax_two_stage: too many chunks".into()));
    }
    let xa = words(rec, x, n, "argmax x")?;
    let oa = words(rec, out, rows as u64, "argmax out")?;
    let sa = words(rec, scratch, 2 * slots, "argmax scratch")?;
    let params = Params {
        rows,
        cols,
        chunks,
        chunk_len: CHUNK,
    };
    let max_dim = rec.gpu().caps().max_workgroups_per_dim;
    let vec4 = cols.is_multiple_of(4);
    let entry = if vec4 {
        "argmax_partial4"
    } else {
        "argmax_partial"
    };
    let wg = workgroup_for(if vec4 { CHUNK / 4 } else { CHUNK }.min(cols));
    let wgs = grid(slots as u32, max_dim);
    rec.dispatch(
        &SHADER,
        entry,
        &[("WG", wg as f64)],
        &params,
        &[xa, sa],
        wgs,
    );
    let wg = workgroup_for(chunks);
    let wgs = grid(rows, max_dim);
    rec.dispatch(
        &SHADER,
        "argmax_final",
        &[("WG", wg as f64)],
        &params,
        &[sa, oa],
        wgs,
    );
    Ok(())
}
