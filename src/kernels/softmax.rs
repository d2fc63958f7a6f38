//! Row softmax and log-softmax, in place (`shaders/softmax.wgsl`): one workgroup per row, any row
//! length (1 to the whole vocabulary), numerically stable (max-subtracted, online rescaled sum).

use super::norm::workgroup_for;
use super::{count, words};
use crate::gpu::{grid, Recorder, Shader};
use crate::Result;

static SHADER: Shader = crate::include_shader!("softmax");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    _pad: [u32; 2],
}

fn run(rec: &mut Recorder<'_>, entry: &str, x: &wgpu::Buffer, rows: u32, cols: u32) -> Result<()> {
    let n = count(entry, &[rows, cols])?;
    if n == 0 {
        return Ok(());
    }
    let bufs = [words(rec, x, n, entry)?];
    let params = Params {
        rows,
        cols,
        _pad: [0; 2],
    };
    let wg = workgroup_for(cols);
    let wgs = grid(rows, rec.gpu().caps().max_workgroups_per_dim);
    rec.dispatch(&SHADER, entry, &[("WG", wg as f64)], &params, &bufs, wgs);
    Ok(())
}

/// `x[r] = exp(x[r] - max) / sum(exp(x[r] - max))` in place, for `rows` rows of `cols`.
pub fn softmax(rec: &mut Recorder<'_>, x: &wgpu::Buffer, rows: u32, cols: u32) -> Result<()> {
    run(rec, "softmax", x, rows, cols)
}

/// `x[r] = x[r] - max - log(sum(exp(x[r] - max)))` in place (log-probabilities).
pub fn log_softmax(rec: &mut Recorder<'_>, x: &wgpu::Buffer, rows: u32, cols: u32) -> Result<()> {
    run(rec, "log_softmax", x, rows, cols)
}
