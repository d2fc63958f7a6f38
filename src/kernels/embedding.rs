//! Token embedding lookup from a quantized table: `out[i, :] = scale · dequant(table[ids[i], :])`
//! (`shaders/matmul.wgsl`, entry point `embedding`, in the quantized-matrix module of
//! `matvec.rs`). Gemma multiplies embeddings by √d, others pass 1.0.

use super::matvec::SHADER;
use super::{count, distinct, words};
use crate::gpu::{grid, Arg, Recorder};
use crate::weights::{Layout, QMatrix, UNIT};
use crate::Result;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    row0: u32,
    rows: u32,
    total_rows: u32,
    cols: u32,
    row_bytes: u32,
    m: u32,
    first: u32,
    scale: f32,
}

/// Gather rows `ids[0..m]` (u32) of `table` into `out` (f32 `[m, cols]`), times `scale`. Split
/// tables take one dispatch per part; an id past the end of the table yields a zero row.
pub fn embedding(
    rec: &mut Recorder,
    table: &QMatrix,
    ids: &wgpu::Buffer,
    out: &wgpu::Buffer,
    m: u32,
    scale: f32,
) -> Result<()> {
    if m == 0 {
        return Ok(());
    }
    words(rec, ids, m as u64, "embedding ids")?;
    words(
        rec,
        out,
        count("embedding out", &[m, table.cols as u32])?,
        "embedding out",
    )?;
    distinct("embedding", out, &[ids])?;
    let units = (table.cols / UNIT) as u32;
    let groups = (m * units).div_ceil(64);
    let max_dim = rec.gpu().caps().max_workgroups_per_dim;
    for (i, part) in table.parts().iter().enumerate() {
        let params = Params {
            row0: part.row0 as u32,
            rows: part.rows as u32,
            total_rows: table.rows as u32,
            cols: table.cols as u32,
            row_bytes: table.row_bytes() as u32,
            m,
            first: (i == 0) as u32,
            scale,
        };
        rec.dispatch(
            &SHADER,
            "embedding",
            &[
                ("TYPE", table.ty.id() as f64),
                ("PACKED", (table.layout == Layout::Packed) as u32 as f64),
            ],
            &params,
            &[
                Arg::from(part.buf.raw()),
                Arg::from(part.buf.raw()),
                Arg::from(ids),
                Arg::from(out),
            ],
            grid(groups, max_dim),
        );
    }
    Ok(())
}
