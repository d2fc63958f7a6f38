//! Quantized matrix × many vectors (prefill): `y[m, n] = x[m, k] · Wᵀ (+ bias)`, tiled 32 tokens ×
//! 32 rows through workgroup memory, each weight unit dequantized once per tile
//! (`shaders/matmul.wgsl`), or register-tiled on CPU adapters. [`linear`](super::linear::linear)
//! picks matvec or matmul from the token count.

use super::matvec::{sg_shader, weight_args, Io, Split, SHADER, X_UNIFORM_BYTES};
use crate::gpu::{grid, Arg, Recorder};
use crate::weights::{Layout, QMatrix};

/// Output tile edge (tokens and rows) of the matmul shader.
const TILE: u32 = 32;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    k: u32,
    row_bytes: u32,
    n: u32,
    y_row0: u32,
    m: u32,
    tiles_n: u32,
    tiles: u32,
    n1: u32,
    n2: u32,
    _pad: [u32; 2],
}

/// `y[t, r] = Σ_j W[r, j] · x[t, j] (+ bias[r])` for `m` tokens (any m, n, k), one dispatch per
/// part of `W`. `x` is f32 `[m, k]`, `y` f32 `[m, n]`, `bias` f32 `[n]`.
pub fn matmul(
    rec: &mut Recorder,
    w: &QMatrix,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    m: u32,
    bias: Option<&wgpu::Buffer>,
) {
    matmul_split(rec, w, x, y, m, bias, None)
}

/// [`matmul`] of a stacked weight whose rows go to three outputs (see [`Split`]).
pub fn matmul_split(
    rec: &mut Recorder,
    w: &QMatrix,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    m: u32,
    bias: Option<&wgpu::Buffer>,
    split: Option<Split<'_>>,
) {
    let shape = w.matmul_shape().unwrap_or_else(|| default_shape(rec.gpu()));
    let io = Io {
        bias,
        split,
        ..Io::new(x, y, m)
    };
    if m > 0 && int8_prefill(rec, w) {
        return super::matvec_i8::matmul(rec, w, io);
    }
    matmul_io(rec, w, io, shape)
}

/// With int8 prefill on (`matvec_i8::prefill`), a matrix whose decode matvec reads int8
/// activations prefills with them too where its architecture allows (`QMatrix::int8_prefill`,
/// `Int8::All`): 2 products a multiply where f32 costs a multiply and an
/// add each on SwiftShader, and the same arithmetic per token as decode.
pub(super) fn int8_prefill(rec: &Recorder, w: &QMatrix) -> bool {
    super::matvec_i8::prefill_on() && w.int8_prefill() && super::matvec::takes_int8(rec.gpu(), w)
}

/// Which prefill kernel runs a matrix: the workgroup-tiled one (GPUs: shared tiles, coalesced
/// loads) or the register-tiled one (CPU adapters) with its tokens per invocation, workgroup size
/// and whether x may come through the uniform view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MatmulShape {
    Tiled,
    Rt {
        tokens: u32,
        rows: u32,
        wg: u32,
        x_uniform: bool,
    },
}

/// The prefill kernel used unless a measured one is known (for a model, [`default_shape_for`]
/// its weight formats).
pub fn default_shape(gpu: &crate::gpu::Gpu) -> MatmulShape {
    default_shape_for(gpu, 1)
}

/// The prefill kernel used unless a measured one is known, for a model whose block matrices come
/// in `formats` weight formats (one prefill pipeline each). In a browser, where a CPU adapter's
/// load does not measure (`Tune::Auto`), 16 rows per invocation: SwiftShader's tune picked it on
/// every SmolLM2 matrix (0-12% faster than 8 rows). But the page creates its pipelines one after
/// another and SwiftShader compiles a 16-row block 2-3x slower than an 8-row one (3.3-4.9 s
/// against 1.4-1.9 s for Gemma 3's four formats), so a model with more than two formats takes 8
/// rows: Gemma 3's first load 27-32 s -> 19-20 s, its prefill 3% slower.
pub fn default_shape_for(gpu: &crate::gpu::Gpu, formats: usize) -> MatmulShape {
    if gpu.adapter.device_type == "Cpu" {
        MatmulShape::Rt {
            tokens: 8,
            rows: if cfg!(target_arch = "wasm32") && formats <= 2 {
                16
            } else {
                8
            },
            wg: 8,
            x_uniform: true,
        }
    } else {
        MatmulShape::Tiled
    }
}

/// [`matmul`] with an explicit kernel choice (tests cover every choice on any adapter).
pub fn matmul_with_shape(
    rec: &mut Recorder,
    w: &QMatrix,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    m: u32,
    bias: Option<&wgpu::Buffer>,
    shape: MatmulShape,
) {
    let split = None;
    let io = Io {
        bias,
        split,
        ..Io::new(x, y, m)
    };
    matmul_io(rec, w, io, shape)
}

/// [`matmul_split`] with an explicit kernel choice.
fn matmul_io(rec: &mut Recorder, w: &QMatrix, io: Io<'_>, shape: MatmulShape) {
    let Io {
        x, m, bias, split, ..
    } = io;
    if m == 0 {
        return;
    }
    if let MatmulShape::Rt {
        tokens,
        rows,
        wg,
        x_uniform,
    } = shape
    {
        let rt = RtShape {
            tokens,
            rows,
            wg,
            x_uniform,
        };
        return matmul_rt(rec, w, io, rt);
    }
    let max_dim = rec.gpu().caps().max_workgroups_per_dim;
    for part in w.parts() {
        let tiles_n = (part.rows as u32).div_ceil(TILE);
        let tiles = tiles_n * m.div_ceil(TILE);
        let params = Params {
            rows: part.rows as u32,
            k: w.cols as u32,
            row_bytes: w.row_bytes() as u32,
            n: w.rows as u32,
            y_row0: part.row0 as u32,
            m,
            tiles_n,
            tiles,
            n1: split.map_or(0, |s| s.n1),
            n2: split.map_or(0, |s| s.n2),
            _pad: [0; 2],
        };
        rec.dispatch(
            &SHADER,
            "matmul",
            &[
                ("TYPE", w.ty.id() as f64),
                ("PACKED", (w.layout == Layout::Packed) as u32 as f64),
                ("HAS_BIAS", bias.is_some() as u32 as f64),
            ],
            &params,
            &weight_args(rec.gpu(), &SHADER, part.buf.raw(), Arg::from(x), &io),
            grid(tiles, max_dim),
        );
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct RtParams {
    rows: u32,
    k: u32,
    row_bytes: u32,
    n: u32,
    y_row0: u32,
    m: u32,
    tok0: u32,
    groups: u32,
    n1: u32,
    n2: u32,
    x0: u32,
    _pad: u32,
}

#[derive(Clone, Copy)]
struct RtShape {
    tokens: u32,
    rows: u32,
    wg: u32,
    x_uniform: bool,
}

/// The register-tiled kernel for CPU adapters (`matmul_rt` in the shader: 4 rows x `tokens` (4
/// or 8) tokens per invocation, no workgroup memory). With `x_uniform`, activations come through
/// the uniform view in chunks of tokens that fit in it when `x` allows; else from storage in one
/// dispatch.
fn matmul_rt(rec: &mut Recorder, w: &QMatrix, io: Io<'_>, shape: RtShape) {
    let Io {
        x, m, bias, split, ..
    } = io;
    let k = w.cols as u64;
    let rt = if shape.tokens == 8 { 8 } else { 4 };
    let rows_per = match shape.rows {
        16 => 16,
        8 => 8,
        _ => 4,
    };
    let (wg, x_uniform) = (shape.wg.clamp(1, 64), shape.x_uniform);
    let align = rec.gpu().caps().uniform_align.max(16) as u64;
    // Tokens per uniform view: a multiple of the block's tokens whose start offsets stay aligned.
    let per_view = (X_UNIFORM_BYTES / (4 * k)) as u32 / rt * rt;
    let uniform = x_uniform
        && per_view > 0
        && x.usage().contains(wgpu::BufferUsages::UNIFORM)
        && (0..m).step_by(per_view as usize).all(|t| {
            (t as u64 * 4 * k).is_multiple_of(align)
                && t as u64 * 4 * k + X_UNIFORM_BYTES <= x.size()
        });
    let chunk = if uniform { per_view } else { m };
    let max_dim = rec.gpu().caps().max_workgroups_per_dim;
    for part in w.parts() {
        let groups = (part.rows as u32).div_ceil(4);
        let mut tok0 = 0;
        while tok0 < m {
            let tm = chunk.min(m - tok0);
            let (x_arg, x0) = if uniform {
                let off = tok0 as u64 * 4 * k;
                (Arg::Range(x, off, X_UNIFORM_BYTES), 0)
            } else {
                (Arg::from(x), tok0 * (k as u32 / 4))
            };
            let params = RtParams {
                rows: part.rows as u32,
                k: k as u32,
                row_bytes: w.row_bytes() as u32,
                n: w.rows as u32,
                y_row0: part.row0 as u32,
                m: tm,
                tok0,
                groups,
                n1: split.map_or(0, |s| s.n1),
                n2: split.map_or(0, |s| s.n2),
                x0,
                _pad: 0,
            };
            let blocks = groups.div_ceil(rows_per / 4);
            // With subgroup loads a workgroup's invocations share their tokens (grid y).
            let sg_dims = [blocks.div_ceil(wg), tm.div_ceil(rt), 1];
            let sg = uniform && rec.gpu().subgroup_loads() && sg_dims[0] <= max_dim;
            let flat = grid((blocks * tm.div_ceil(rt)).div_ceil(wg), max_dim);
            let (shader, entry, dims) = match (sg, uniform) {
                (true, _) => (sg_shader(rec.gpu()), "matmul_rt_sg", sg_dims),
                (false, true) => (&SHADER, "matmul_rt_xu", flat),
                (false, false) => (&SHADER, "matmul_rt", flat),
            };
            rec.dispatch(
                shader,
                entry,
                &[
                    ("TYPE", w.ty.id() as f64),
                    ("PACKED", (w.layout == Layout::Packed) as u32 as f64),
                    ("WG", wg as f64),
                    ("RT_T", rt as f64),
                    ("RT_R", rows_per as f64),
                    ("HAS_BIAS", bias.is_some() as u32 as f64),
                ],
                &params,
                &weight_args(rec.gpu(), shader, part.buf.raw(), x_arg, &io),
                dims,
            );
            tok0 += tm;
        }
    }
}

/// Candidate prefill kernels for the load-time tune (on CPU adapters the workgroup-tiled kernel
/// measured 5-10x slower than every register-tiled one and is left out to keep loading short).
fn candidates(gpu: &crate::gpu::Gpu) -> Vec<MatmulShape> {
    let rt = |tokens, rows, wg, x_uniform| MatmulShape::Rt {
        tokens,
        rows,
        wg,
        x_uniform,
    };
    if gpu.adapter.device_type == "Cpu" {
        // Each candidate is a pipeline to compile (slow on these adapters): few, well spread.
        // (4 tokens × 8 rows, workgroup 16 never won on lavapipe or SwiftShader: dropped.)
        vec![rt(8, 8, 8, true), rt(8, 16, 8, true)]
    } else {
        vec![MatmulShape::Tiled, rt(4, 4, 64, false), rt(8, 8, 64, false)]
    }
}

/// Pick the fastest prefill kernel for `m`-token chunks of `w` by timing each candidate and
/// remember it in `w`. `x` holds at least `m × cols` f32 (an activation buffer, so the uniform view
/// can be tried) and `y` at least `m × rows`. Results never change beyond summation order.
/// Without `measure`, only a remembered shape is taken (`None`: `w` keeps [`default_shape`]).
pub async fn tune(
    gpu: &crate::gpu::Gpu,
    w: &QMatrix,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    m: u32,
    measure: bool,
) -> crate::Result<Option<MatmulShape>> {
    let candidates = candidates(gpu);
    let class = super::tuned::class("matmul", w, &format!("m={m}"));
    let best = super::tuned::pick(gpu, &class, candidates, measure, y, |rec, shape| {
        matmul_with_shape(rec, w, x, y, m, None, shape)
    })
    .await?;
    if let Some(s) = best {
        w.set_matmul_shape(s);
    }
    Ok(best)
}
