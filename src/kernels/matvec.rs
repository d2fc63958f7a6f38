//! Quantized matrix × few vectors (decode): `y[m, n] = x[m, k] · Wᵀ (+ bias)` with `W` a
//! [`QMatrix`] read in its GGUF block layout and dequantized in the shader (`shaders/matvec.wgsl`,
//! with the shared decoders of `shaders/qdecode.wgsl`). One pipeline per (format, tokens per
//! dispatch, threads per row, bias) so the shader keeps only the branches it needs.

use crate::gpu::{grid, Arg, Recorder, Shader};
use crate::weights::{QMatrix, UNIT};

/// `shaders/qdecode.wgsl` followed by `shaders/<name>.wgsl`, joined at compile time.
macro_rules! quant_shader {
    ($name:literal) => {
        $crate::gpu::Shader {
            name: $name,
            source: concat!(
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/qdecode.wgsl")),
                "\n",
                include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders/", $name, ".wgsl"))
            ),
        }
    };
}
pub(crate) use quant_shader;

static SHADER: Shader = quant_shader!("matvec");

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
    let units = (w.cols / UNIT) as u32;
    // About 4 units per invocation; more invocations per row only when rows are long.
    let tpr = units.div_ceil(4).next_power_of_two().clamp(4, WG);
    let rows_per_group = WG / tpr;
    let max_dim = rec.gpu().caps().max_workgroups_per_dim;
    let bias_buf = bias.unwrap_or(x); // never read when HAS_BIAS is false
    for part in w.parts() {
        let groups = (part.rows as u32).div_ceil(2 * rows_per_group); // 2 rows per invocation
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
                "main",
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
