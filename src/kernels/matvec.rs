//! Quantized matrix × few vectors (decode): `y[m, n] = x[m, k] · Wᵀ (+ bias)` with `W` a
//! [`QMatrix`] read in its GGUF block layout and dequantized in the shader (`shaders/matmul.wgsl`,
//! entry point `matvec`). One pipeline per (format, tokens per
//! dispatch, threads per row, bias) so the shader keeps only the branches it needs.

use crate::gpu::{grid, Arg, Gpu, Recorder, Shader};
use crate::weights::{QMatrix, UNIT};

/// The quantized-matrix family (`shaders/matmul.wgsl`): matvec, matmul and embedding entry points
/// sharing one set of block decoders.
pub(crate) static SHADER: Shader = crate::include_shader!("matmul");

/// Tokens one dispatch handles (the shader keeps one accumulator per token).
pub const MAX_TOKENS: u32 = 4;
/// Invocations per workgroup (fixed in the shader).
const WG: u32 = 64;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    k: u32,
    row_bytes: u32,
    n: u32,
    y_row0: u32,
    tok0: u32,
    _pad: [u32; 2],
}

/// `y[t, r] = Σ_j W[r, j] · x[t, j] (+ bias[r])` for `m` tokens; `x` is f32 `[m, k]`, `y` f32
/// `[m, n]`, `bias` f32 `[n]`. Best for small `m` (each group of 4 tokens streams W once); see
/// [`linear`](super::matmul::linear) for the automatic choice.
pub fn matvec(
    rec: &mut Recorder,
    w: &QMatrix,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    m: u32,
    bias: Option<&wgpu::Buffer>,
) {
    let threads = threads_per_row(rec.gpu(), w);
    matvec_with_threads(rec, w, x, y, m, bias, threads)
}

/// Invocations sharing one row pair. GPUs: about 4 units per invocation, so long rows still get
/// many invocations. CPU adapters (lavapipe, SwiftShader) run invocations as SIMD lanes where
/// every per-lane load is a gather: there 2 per row pair measured ~2x faster than 16 (fewer
/// reduction steps, and neighbouring lanes load the same activations).
pub fn threads_per_row(gpu: &Gpu, w: &QMatrix) -> u32 {
    if gpu.adapter.device_type == "Cpu" {
        return 2;
    }
    let units = (w.cols / UNIT) as u32;
    units.div_ceil(4).next_power_of_two().clamp(4, WG)
}

/// [`matvec`] with an explicit number of invocations per row pair (a power of two, 1 to 64;
/// tests use it to cover the choices other adapters make).
pub fn matvec_with_threads(
    rec: &mut Recorder,
    w: &QMatrix,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    m: u32,
    bias: Option<&wgpu::Buffer>,
    threads: u32,
) {
    let tpr = threads.clamp(1, WG).next_power_of_two();
    let rows_per_group = 2 * WG / tpr; // two rows per invocation
    let max_dim = rec.gpu().caps().max_workgroups_per_dim;
    let bias_buf = bias.unwrap_or(x); // never read when HAS_BIAS is false
    for part in w.parts() {
        let groups = (part.rows as u32).div_ceil(rows_per_group);
        let mut tok0 = 0;
        while tok0 < m {
            let tok = (m - tok0).min(MAX_TOKENS);
            let params = Params {
                rows: part.rows as u32,
                k: w.cols as u32,
                row_bytes: w.row_bytes() as u32,
                n: w.rows as u32,
                y_row0: part.row0 as u32,
                tok0,
                _pad: [0; 2],
            };
            rec.dispatch(
                &SHADER,
                "matvec",
                &[
                    ("TYPE", w.ty.id() as f64),
                    ("TOK", tok as f64),
                    ("TPR", tpr as f64),
                    ("HAS_BIAS", bias.is_some() as u32 as f64),
                ],
                &params,
                &[
                    Arg::from(part.buf.raw()),
                    Arg::from(x),
                    Arg::from(y),
                    Arg::from(bias_buf),
                ],
                grid(groups, max_dim),
            );
            tok0 += tok;
        }
    }
}
