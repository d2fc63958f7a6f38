//! Decode matvec with 8-bit activations (`shaders/matvec_q8.wgsl`): x is quantized to blocks of
//! 32 int8 with an f32 scale ([`quantize`], a small dispatch), then a packed Q4_0/Q4_1/Q5_0/Q8_0
//! or Q4_K matrix dots its 32-element units with it in integers (Q8_0 by WGSL's `dot4I8Packed`,
//! the 4- and 5-bit formats two nibble products per 32-bit multiply, see the shader). One token only. Chosen per
//! matrix by [`MatvecShape::q8`]: the default on a browser's CPU adapter, where it measured
//! 1.4–2.4× faster than the f32-activation matvec before the two-products-per-multiply form took
//! another 28% off; never a tune candidate (it changes results); never where the
//! adapter lacks `packed_4x8_integer_dot_product` ([`usable`]). Results differ from the f32 path
//! by the activations' rounding (≈ 1e-3 of Σ|w·x|), as llama.cpp's CPU kernels do.

use super::elementwise::Glu;
use super::matvec::{weight_args, Io, MatvecShape, X_UNIFORM_BYTES};
use crate::gpu::{grid, Arg, Gpu, Recorder, Shader};
use crate::quant::GgmlType;
use crate::weights::{Layout, QMatrix, QPart, UNIT};

pub(crate) static SHADER: Shader =
    crate::include_shader!("matvec_q8": "packed_index", "quant_x8", "matvec_q8");

/// Bytes of the quantized form of `k` activations: per 32, 32 int8, a 16-byte scale word and
/// 64 bytes of the int8 in 16-bit pairs (the 4- and 5-bit formats' SWAR products).
pub fn xq_bytes(k: usize) -> u64 {
    (k / UNIT) as u64 * 112
}

/// Whether [`matvec_q8`] can read `w` on `gpu`: a packed 32-element block format or Q4_K, rows
/// whose quantized x fits the 64 KiB scratch, a model that allows it
/// ([`Architecture::int8_activations`](crate::model::parts::Architecture::int8_activations)),
/// and an adapter with `dot4I8Packed`.
pub fn usable(gpu: &Gpu, w: &QMatrix) -> bool {
    gpu.packed_dot
        && w.int8_activations()
        && w.layout == Layout::Packed
        && matches!(
            w.ty,
            GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q5_0 | GgmlType::Q8_0 | GgmlType::Q4K
        )
        && xq_bytes(w.cols) <= X_UNIFORM_BYTES
}

/// Forced on (2) or off (1) for every matvec that [`usable`] allows, or as the shape says (0).
static FORCE: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);

/// Force int8 activations on (`Some(true)`) or off for every one-token matvec where [`usable`],
/// whatever the tune picked, or leave it to the shapes (`None`, the default). Natively the
/// environment variable `ATTEND_MATVEC_Q8=1` (or `0`) does the same for a whole process (how the
/// model tests run with it forced).
pub fn force(on: Option<bool>) {
    let v = match on {
        None => 0,
        Some(false) => 1,
        Some(true) => 2,
    };
    FORCE.store(v, std::sync::atomic::Ordering::Relaxed);
}

fn forced() -> Option<bool> {
    match FORCE.load(std::sync::atomic::Ordering::Relaxed) {
        1 => return Some(false),
        2 => return Some(true),
        _ => {}
    }
    static ENV: std::sync::OnceLock<Option<bool>> = std::sync::OnceLock::new();
    *ENV.get_or_init(|| crate::env_switch("ATTEND_MATVEC_Q8"))
}

/// Prefill through int8 activations ([`matmul`]) wherever decode takes them: off unless asked
/// for (`prefill(true)`; natively also `ATTEND_PREFILL_Q8=1`). It prefills 1.6× faster on
/// SwiftShader, but with it on in the page and natively (`ATTEND_PREFILL_Q8=1`) the chat page's
/// greedy answer to tests/e2e/chat's prompt left the native CLI's at its 5th token, where natively
/// the two candidates lie 0.2 nats apart (the lens then matched within 1.1e-7), so it is not
/// the default yet: what moves that token in the page was not found.
static PREFILL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turn int8 prefill on or off for this process (see `PREFILL`).
pub fn prefill(on: bool) {
    PREFILL.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether prefill takes int8 activations where decode does.
pub(crate) fn prefill_on() -> bool {
    if PREFILL.load(std::sync::atomic::Ordering::Relaxed) {
        return true;
    }
    static ENV: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENV.get_or_init(|| crate::env_switch("ATTEND_PREFILL_Q8") == Some(true))
}

/// Whether a one-token matvec of `w` with `shape` takes the int8 path.
pub(crate) fn chosen(gpu: &Gpu, w: &QMatrix, shape: MatvecShape) -> bool {
    usable(gpu, w) && forced().unwrap_or(shape.q8)
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct QxParams {
    blocks: u32,
    _pad: [u32; 3],
}

/// Quantize `k` activations (f32 in `x`; one token's, or several tokens' one after another) into
/// `xq` ([`xq_bytes`] of `k`). Nothing is recorded when `xq` already holds them: the decode
/// norms write their output in this form too (`kernels::norm`, the `int8` argument), and the
/// recorder knows when nothing has touched it since ([`Recorder::quantized`]).
pub fn quantize(rec: &mut Recorder, x: &wgpu::Buffer, k: usize, xq: &wgpu::Buffer) {
    if rec.quantized(x, k as u64, xq) {
        return;
    }
    let blocks = (k / UNIT) as u32;
    let params = QxParams {
        blocks,
        _pad: [0; 3],
    };
    let max_dim = rec.gpu().caps().max_workgroups_per_dim;
    rec.dispatch(
        &SHADER,
        "quantize_x8",
        &[],
        &params,
        &[
            Arg::Range(x, 0, k as u64 * 4),
            Arg::Range(xq, 0, xq_bytes(k)),
        ],
        grid(blocks.div_ceil(64), max_dim),
    );
    rec.set_quantized(x, k as u64, xq);
}

/// One token of [`matvec`](super::matvec::matvec) (and its GLU and split forms) through int8
/// activations: `io.x` quantized into the adapter's scratch buffer, then `matvec_q8` on it.
/// The caller checks [`usable`].
pub(crate) fn dispatch(
    rec: &mut Recorder,
    w: &QMatrix,
    io: Io<'_>,
    shape: MatvecShape,
    glu: Option<Glu>,
) {
    let xq = rec.gpu().xq_scratch().clone();
    quantize(rec, io.x, w.cols, &xq);
    matvec_q8(rec, w, &xq, io, shape, glu);
}

/// `y = W · x` for one token from the quantized `xq` (see [`quantize`]); `shape` as for
/// [`matvec`](super::matvec::matvec) (wg, tpr, groups; `x_uniform` reads `xq` through a 64 KiB
/// uniform view), with the same GLU and split epilogues. `io.x` is not read.
pub fn matvec_q8(
    rec: &mut Recorder,
    w: &QMatrix,
    xq: &wgpu::Buffer,
    io: Io<'_>,
    shape: MatvecShape,
    glu: Option<Glu>,
) {
    let wg = shape.wg.clamp(1, 64).next_power_of_two();
    let tpr = shape.tpr.clamp(1, wg).next_power_of_two();
    let mv_g = if shape.groups == 2 { 2 } else { 1 };
    let uniform = shape.x_uniform
        && xq.usage().contains(wgpu::BufferUsages::UNIFORM)
        && xq.size() >= X_UNIFORM_BYTES;
    let glu_id = match glu {
        None => 0,
        Some(Glu::Silu) => 1,
        Some(Glu::Gelu) => 2,
    };
    let x_arg = if uniform {
        Arg::Range(xq, 0, X_UNIFORM_BYTES)
    } else {
        Arg::Range(xq, 0, xq_bytes(w.cols))
    };
    let entry = if uniform { "matvec_q8_xu" } else { "matvec_q8" };
    let max_dim = rec.gpu().caps().max_workgroups_per_dim;
    for part in w.parts() {
        let out_rows = if glu.is_some() {
            part.rows / 2
        } else {
            part.rows
        };
        let groups = (out_rows as u32).div_ceil(4 * wg / tpr * mv_g);
        let params = params(w, part, 1, &io);
        rec.dispatch_reading_quantized(
            &SHADER,
            entry,
            &[
                ("TYPE", w.ty.id() as f64),
                ("TPR", tpr as f64),
                ("WG", wg as f64),
                ("HAS_BIAS", io.bias.is_some() as u32 as f64),
                ("GLU", glu_id as f64),
                ("MV_G", mv_g as f64),
            ],
            &params,
            &weight_args(rec.gpu(), &SHADER, part.buf.raw(), x_arg, &io),
            grid(groups, max_dim),
        );
    }
}

/// The shader's `MatvecParams` for `m` tokens of one part: rows, k, row_bytes, n, y_row0, m,
/// n1, n2.
fn params(w: &QMatrix, part: &QPart, m: u32, io: &Io<'_>) -> [u32; 8] {
    [
        part.rows as u32,
        w.cols as u32,
        w.row_bytes() as u32,
        w.rows as u32,
        part.row0 as u32,
        m,
        io.split.map_or(0, |s| s.n1),
        io.split.map_or(0, |s| s.n2),
    ]
}

/// Row groups of 4 per invocation of `matmul_q8` (each x load serves 4 × this many rows): on
/// SwiftShader (SmolLM2, 32-token prefill) 4 groups took 1,266 ms, 2 groups 1,436-1,459 and 1
/// group 1,841; workgroups of 16 instead of 8 made no difference.
const MATMUL_QG: u32 = 4;
/// Invocations per workgroup of `matmul_q8`.
const MATMUL_WG: u32 = 8;

/// The prefill form of [`dispatch`] (`io.m` tokens, no fold or RoPE store): every token's `io.x`
/// quantized into a buffer of the pass, then [`matmul_q8`]. Used for the matrices whose
/// one-token matvec takes int8, so a prompt's tokens see the same arithmetic as decoded ones.
pub(crate) fn matmul(rec: &mut Recorder, w: &QMatrix, io: Io<'_>) {
    let tokens = io.m as usize;
    let xq = rec.temp(
        xq_bytes(w.cols * tokens),
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
    );
    quantize(rec, io.x, w.cols * tokens, &xq);
    matmul_q8(rec, w, &xq, io);
}

/// `y[t] = W · x[t] (+ bias)` for the `io.m` tokens quantized in `xq` (see [`quantize`], which
/// takes them all at once: a token's units follow the previous token's), with the split output
/// of [`matvec_q8`]; the bits of each token are those [`matvec_q8`] gives it with one thread per
/// row. `io.x` is not read.
pub fn matmul_q8(rec: &mut Recorder, w: &QMatrix, xq: &wgpu::Buffer, io: Io<'_>) {
    let x_arg = Arg::Range(xq, 0, xq_bytes(w.cols * io.m as usize));
    let max_dim = rec.gpu().caps().max_workgroups_per_dim;
    for part in w.parts() {
        let blocks = (part.rows as u32).div_ceil(4).div_ceil(MATMUL_QG);
        let params = params(w, part, io.m, &io);
        rec.dispatch_reading_quantized(
            &SHADER,
            "matmul_q8",
            &[
                ("TYPE", w.ty.id() as f64),
                ("WG", MATMUL_WG as f64),
                ("QG", MATMUL_QG as f64),
                ("HAS_BIAS", io.bias.is_some() as u32 as f64),
            ],
            &params,
            &weight_args(rec.gpu(), &SHADER, part.buf.raw(), x_arg, &io),
            grid((blocks * io.m.div_ceil(8)).div_ceil(MATMUL_WG), max_dim),
        );
    }
}
