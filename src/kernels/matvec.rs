//! Quantized matrix × few vectors (decode): `y[m, n] = x[m, k] · Wᵀ (+ bias)` with `W` a
//! [`QMatrix`] read in its GGUF block layout and dequantized in the shader (`shaders/matvec.wgsl`,
//! entry point `matvec`). One pipeline per (format, tokens per
//! dispatch, threads per row, bias) so the shader keeps only the branches it needs.

use super::attention::KvPrecision;
use super::elementwise::Glu;
use crate::gpu::{grid, Arg, Gpu, Recorder, Shader};
use crate::weights::{Layout, QMatrix, UNIT};

/// The quantized-matrix family: matvec, matmul and embedding entry points sharing one set of
/// block decoders, one module from `shaders/quant.wgsl` (decoders), `quant_packed.wgsl` (packed
/// layouts), `quant_load.wgsl` (the weights as vec4<u32>), `matvec.wgsl` and `matmul.wgsl`.
pub(crate) static SHADER: Shader = crate::include_shader!(
    "matmul": "quant", "packed_index", "quant_packed", "quant_load", "matvec", "matmul", "rope_angle"
);
/// The same with the subgroup entry points of `shaders/matmul_sg.wgsl` (`matvec_sg`,
/// `matmul_rt_sg`), for devices where [`Gpu::subgroup_loads`] holds.
pub(crate) static SHADER_SG: Shader = crate::include_shader!(
    "matmul_sg": "quant", "packed_index", "quant_packed", "quant_load", "matvec", "matmul", "matmul_sg", "rope_angle"
);
/// The subgroup module with the weights read as vec4<u64> (`quant_load64.wgsl`), where
/// [`Gpu::wide_loads`] holds.
pub(crate) static SHADER_SG64: Shader = crate::include_shader!(
    "matmul_sg64": "quant", "packed_index", "quant_packed", "quant_load64", "matvec", "matmul", "matmul_sg",
    "rope_angle"
);

/// The module of the subgroup entry points on this device.
pub(crate) fn sg_shader(gpu: &Gpu) -> &'static Shader {
    if gpu.wide_loads() {
        &SHADER_SG64
    } else {
        &SHADER_SG
    }
}

/// Tokens one dispatch handles (the shader keeps one accumulator per token).
pub const MAX_TOKENS: u32 = 4;
/// Invocations per workgroup at most (the shader's reduction space is sized for it).
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
    n1: u32,
    n2: u32,
    eps: f32,
    pos: u32,
    capacity: u32,
    head_dim: u32,
    rot_dims: u32,
    mscale: f32,
    _pad: [u32; 2],
}

/// The outputs of a stacked `[a; b; c]` weight: rows `0..n1` go to the main output, the next `n2`
/// to `y2` and the rest to `y3`, each `[m, rows]` (see `store_y` in the shader).
#[derive(Clone, Copy)]
pub struct Split<'a> {
    pub y2: &'a wgpu::Buffer,
    pub y3: &'a wgpu::Buffer,
    pub n1: u32,
    pub n2: u32,
}

/// An RMSNorm folded into a pair of one-token matvecs (the `NORM_*` constants of
/// `shaders/matvec.wgsl`): decode spends no dispatch on the norms between its projections.
#[derive(Clone, Copy, Default)]
pub enum Fold<'a> {
    #[default]
    None,
    /// `x` holds `g ⊙ v` and, at float [`NORM_SSQ`], `v`'s partial sums of squares (as a
    /// [`ResidualNorm`](Fold::ResidualNorm) producer leaves them): the products are those of
    /// `rmsnorm(v) · g` with this epsilon.
    NormIn { eps: f32 },
    /// The product `o` is added to the residual stream `resid` (f32, the product's rows, updated
    /// in place) and `y` gets `gain ⊙ resid` and its partial sums of squares for a `NormIn`.
    ResidualNorm {
        resid: &'a wgpu::Buffer,
        gain: &'a wgpu::Buffer,
    },
}

/// RoPE and the KV-cache write in the store of a stacked `[q; k; v]` one-token matvec (`ROPE` in
/// `shaders/matvec.wgsl`): q rotated into the main output, k rotated and v stored into the cache
/// at `pos`, llama's adjacent-pair rotation (see `kernels::rope` for the parameters).
#[derive(Clone, Copy)]
pub struct RopeStore<'a> {
    /// Pair j's turns per position as `[hi, lo]` at floats `2j, 2j + 1` (`rope::freq_table`).
    pub table: &'a wgpu::Buffer,
    pub kv: &'a super::attention::LayerKv,
    pub pos: u32,
    pub rot_dims: u32,
    pub mscale: f32,
}

/// Float offset of a folded norm's partial sums of squares (one per 4 values) in its vector's
/// buffer (an activation buffer, whose 64 KiB uniform view holds them).
pub const NORM_SSQ: u32 = 12288;

/// Whether vectors of `d` values can carry a folded norm ([`Fold`]).
pub fn fold_fits(d: u32) -> bool {
    d <= NORM_SSQ && d.is_multiple_of(32)
}

/// The buffers of one quantized-matrix product: `x` f32 `[m, cols]` in, `y` f32 `[m, rows]` out
/// (the first `split.n1` rows with a split), an optional bias f32 `[rows]`.
#[derive(Clone, Copy)]
pub struct Io<'a> {
    pub x: &'a wgpu::Buffer,
    pub y: &'a wgpu::Buffer,
    pub m: u32,
    pub bias: Option<&'a wgpu::Buffer>,
    pub split: Option<Split<'a>>,
    /// A norm folded in (one token, no bias, no split with `ResidualNorm`).
    pub fold: Fold<'a>,
    /// RoPE and the cache write in the store (with a three-way split, one token, no bias).
    pub rope: Option<RopeStore<'a>>,
}

impl<'a> Io<'a> {
    /// `y` from `x` for `m` tokens: no bias, split, folded norm or RoPE (add them with
    /// `Io { bias, ..Io::new(x, y, m) }`).
    pub fn new(x: &'a wgpu::Buffer, y: &'a wgpu::Buffer, m: u32) -> Io<'a> {
        Io {
            x,
            y,
            m,
            bias: None,
            split: None,
            fold: Fold::None,
            rope: None,
        }
    }
}

/// How a matvec spreads over the adapter: invocations per workgroup, invocations per row group
/// of 4 rows, and whether the activations may be read from a uniform buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MatvecShape {
    pub wg: u32,
    pub tpr: u32,
    pub x_uniform: bool,
    /// Row groups of 4 per invocation group for one token (1 or 2: 8 rows share each x load).
    pub groups: u32,
    /// One token reads x quantized to int8 and dots it by `dot4I8Packed` (`super::matvec_i8`),
    /// where [`usable`](super::matvec_i8::usable); else this shape's f32 matvec.
    #[serde(default)]
    pub q8: bool,
}

/// Bytes of the uniform view of x (`xu` in the shader).
pub const X_UNIFORM_BYTES: u64 = 64 * 1024;

/// `y[t, r] = Σ_j W[r, j] · x[t, j] (+ bias[r])` for `m` tokens; `x` is f32 `[m, k]`, `y` f32
/// `[m, n]`, `bias` f32 `[n]`. Best for small `m` (each group of 4 tokens streams W once); see
/// [`linear`](super::linear::linear) for the automatic choice.
pub fn matvec(
    rec: &mut Recorder,
    w: &QMatrix,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    m: u32,
    bias: Option<&wgpu::Buffer>,
) {
    let shape = shape_for(rec.gpu(), w);
    matvec_with_shape(rec, w, x, y, m, bias, shape)
}

/// The shape measured for `w` at load, else the adapter's default.
fn shape_for(gpu: &Gpu, w: &QMatrix) -> MatvecShape {
    w.matvec_shape().unwrap_or_else(|| default_shape(gpu, w))
}

/// The shape used unless a measured one is known. GPUs: 64-invocation workgroups with about 4
/// units of each row per invocation, so long rows still get many invocations, activations in
/// storage. CPU adapters (lavapipe, SwiftShader) run invocations as SIMD lanes of a few threads
/// and make every per-lane storage load a loop: there one invocation owns each row group, small
/// workgroups give every thread work, and x comes from a uniform buffer. In a browser, where a
/// CPU adapter's load does not measure (`Tune::Auto`), the default is the shape SwiftShader's
/// tune picked most (32 invocations: best or within 3% on every SmolLM2 matrix).
pub fn default_shape(gpu: &Gpu, w: &QMatrix) -> MatvecShape {
    if gpu.adapter.device_type == "Cpu" {
        let wasm = cfg!(target_arch = "wasm32");
        let q8 = wasm && super::matvec_i8::usable(gpu, w);
        return MatvecShape {
            // SwiftShader, f32 activations (the K-quants): workgroups of 4 took 12–20% less
            // time than 16 on Gemma 3's 640-row Q4_K / Q6_K matvecs (5 workgroups of 128 rows
            // leave one of its two threads idle at the end; 4: 20 of 32 rows).
            wg: if wasm && !q8 { 4 } else { 16 },
            tpr: 1,
            x_uniform: true,
            // SwiftShader: 8 rows an invocation (each activation load serves twice the rows) in
            // workgroups of 16 decoded SmolLM2 ~5% faster than 4 rows in 32 (alternated, four
            // runs; Gemma 3 unchanged); with one thread per row the sums are the same.
            groups: if wasm { 2 } else { 1 },
            // SwiftShader: int8 activations took 0.4–0.7× the time of f32 on every SmolLM2
            // matrix (tests/kernels/matvec_i8.rs, q8_timing); lavapipe measures.
            q8,
        };
    }
    let units = (w.cols / UNIT) as u32;
    MatvecShape {
        wg: WG,
        tpr: units.div_ceil(4).next_power_of_two().clamp(1, WG),
        x_uniform: false,
        groups: 1,
        q8: false,
    }
}

/// Whether `x` can be read through the uniform view for `m` tokens of `k` columns.
pub fn x_uniform_fits(x: &wgpu::Buffer, m: u32, k: usize) -> bool {
    x.usage().contains(wgpu::BufferUsages::UNIFORM)
        && x.size() >= X_UNIFORM_BYTES
        && m as u64 * k as u64 * 4 <= X_UNIFORM_BYTES
}

/// [`matvec`] with an explicit shape. `x_uniform` is honoured only where [`x_uniform_fits`].
pub fn matvec_with_shape(
    rec: &mut Recorder,
    w: &QMatrix,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    m: u32,
    bias: Option<&wgpu::Buffer>,
    shape: MatvecShape,
) {
    let io = Io {
        bias,
        ..Io::new(x, y, m)
    };
    dispatch(rec, w, io, shape, None)
}

/// [`matvec`] of a stacked weight whose rows go to three outputs (`y` gets the first `split.n1`).
pub fn matvec_split(
    rec: &mut Recorder,
    w: &QMatrix,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    m: u32,
    bias: Option<&wgpu::Buffer>,
    split: Split<'_>,
) {
    let shape = shape_for(rec.gpu(), w);
    let split = Some(split);
    let io = Io {
        bias,
        split,
        ..Io::new(x, y, m)
    };
    dispatch(rec, w, io, shape, None)
}

/// Whether a one-token matvec with `w` reads int8 activations (`super::matvec_i8`).
pub(crate) fn takes_int8(gpu: &Gpu, w: &QMatrix) -> bool {
    super::matvec_i8::chosen(gpu, w, shape_for(gpu, w))
}

/// Any matvec of `io` (with its fold) in the shape measured for `w`; `glu` for a fused
/// `[gate; up]` matrix.
pub(crate) fn matvec_io(rec: &mut Recorder, w: &QMatrix, io: Io<'_>, glu: Option<Glu>) {
    let shape = shape_for(rec.gpu(), w);
    dispatch(rec, w, io, shape, glu)
}

/// A GLU feed-forward in one dispatch per 4 tokens: `w` is a fused `[gate; up]` matrix of `2f`
/// rows in one part (see [`glu_fits`]); `out[t, j] = act(gate·x[t])_j * (up·x[t])_j`, `f` values
/// per token.
pub fn matvec_glu(
    rec: &mut Recorder,
    w: &QMatrix,
    x: &wgpu::Buffer,
    out: &wgpu::Buffer,
    m: u32,
    glu: Glu,
) {
    let shape = shape_for(rec.gpu(), w);
    let io = Io::new(x, out, m);
    dispatch(rec, w, io, shape, Some(glu))
}

/// Whether `w` can serve as a fused `[gate; up]` matrix for [`matvec_glu`]: one part, halves of
/// whole row groups.
pub fn glu_fits(w: &QMatrix) -> bool {
    w.parts().len() == 1 && w.rows.is_multiple_of(8)
}

/// The bindings every quantized-matrix kernel takes, in order: the weight part as u32 and as
/// vec4<u32>, x (whole or a uniform view), y, the bias (`x` when there is none: never read), and
/// the split outputs (spare buffers when unused); `shader`'s 64-bit module adds the weight part
/// once more (its 16-byte view). `x` is `io.x` bound whole or as a view.
pub(crate) fn weight_args<'a>(
    gpu: &'a Gpu,
    shader: &Shader,
    part: &'a wgpu::Buffer,
    x: Arg<'a>,
    io: &Io<'a>,
) -> Vec<Arg<'a>> {
    let bias = io.bias.unwrap_or(io.x); // never read when HAS_BIAS is false
    let y2 = io.split.map_or(&gpu.spare[0], |s| s.y2);
    // A residual-norm producer reads its norm weight where the bias would be and updates the
    // residual stream where the split's second output would be.
    let y3 = io.split.map_or(&gpu.spare[1], |s| s.y3);
    // ...and a RoPE store reads its frequency table there and writes the cache in their place.
    let (bias, y2, y3) = match (io.fold, io.rope) {
        (_, Some(r)) => (r.table, r.kv.k.raw(), r.kv.v.raw()),
        (Fold::ResidualNorm { resid, gain }, _) => (gain, resid, y3),
        _ => (bias, y2, y3),
    };
    let mut args = vec![
        Arg::from(part),
        Arg::from(part),
        x,
        Arg::from(io.y),
        Arg::from(bias),
        Arg::from(y2),
        Arg::from(y3),
    ];
    // The 64-bit loader's 16-byte view of the weights (shaders/quant_load64.wgsl).
    if std::ptr::eq(shader, &SHADER_SG64) {
        args.push(Arg::from(part));
    }
    args
}

fn dispatch(rec: &mut Recorder, w: &QMatrix, io: Io<'_>, shape: MatvecShape, glu: Option<Glu>) {
    let Io {
        x,
        m,
        bias,
        split,
        fold,
        rope,
        ..
    } = io;
    // (A folded norm runs on the f32 path; the model folds only where no matrix takes int8.)
    let folded = !matches!(fold, Fold::None);
    if m == 1 && !folded && super::matvec_i8::chosen(rec.gpu(), w, shape) {
        return super::matvec_i8::dispatch(rec, w, io, shape, glu);
    }
    let wg = shape.wg.clamp(1, WG).next_power_of_two();
    let tpr = shape.tpr.clamp(1, wg).next_power_of_two();
    let uniform = shape.x_uniform && x_uniform_fits(x, m, w.cols);
    let mv_g = if shape.groups == 2 { 2 } else { 1 };
    let glu_id = match glu {
        None => 0,
        Some(Glu::Silu) => 1,
        Some(Glu::Gelu) => 2,
    };
    let max_dim = rec.gpu().caps().max_workgroups_per_dim;
    let x_arg = if uniform {
        Arg::Range(x, 0, X_UNIFORM_BYTES)
    } else {
        Arg::from(x)
    };
    // One token with one invocation per row group: the subgroup can share the loads of x.
    let sg = uniform && m == 1 && tpr == 1 && rec.gpu().subgroup_loads();
    let (shader, entry) = match (sg, uniform) {
        (true, _) => (sg_shader(rec.gpu()), "matvec_sg"),
        (false, true) => (&SHADER, "matvec_xu"),
        (false, false) => (&SHADER, "matvec"),
    };
    for part in w.parts() {
        let out_rows = if glu.is_some() {
            part.rows / 2
        } else {
            part.rows
        };
        let mut tok0 = 0;
        while tok0 < m {
            let tok = (m - tok0).min(MAX_TOKENS);
            // Four rows per invocation group (eight with two groups, one token only).
            let rows_per_wg = 4 * wg / tpr * if tok == 1 { mv_g } else { 1 };
            let groups = (out_rows as u32).div_ceil(rows_per_wg);
            let params = Params {
                rows: part.rows as u32,
                k: w.cols as u32,
                row_bytes: w.row_bytes() as u32,
                n: w.rows as u32,
                y_row0: part.row0 as u32,
                tok0,
                n1: split.map_or(0, |s| s.n1),
                n2: split.map_or(0, |s| s.n2),
                eps: match fold {
                    Fold::NormIn { eps } => eps,
                    _ => 0.0,
                },
                pos: rope.map_or(0, |r| r.pos),
                capacity: rope.map_or(0, |r| r.kv.capacity),
                head_dim: rope.map_or(0, |r| r.kv.head_dim),
                rot_dims: rope.map_or(0, |r| r.rot_dims),
                mscale: rope.map_or(1.0, |r| r.mscale),
                _pad: [0; 2],
            };
            rec.dispatch(
                shader,
                entry,
                &[
                    ("TYPE", w.ty.id() as f64),
                    ("PACKED", (w.layout == Layout::Packed) as u32 as f64),
                    ("TOK", tok as f64),
                    ("TPR", tpr as f64),
                    ("WG", wg as f64),
                    ("HAS_BIAS", bias.is_some() as u32 as f64),
                    ("GLU", glu_id as f64),
                    ("MV_G", mv_g as f64),
                    ("NORM_IN", matches!(fold, Fold::NormIn { .. }) as u32 as f64),
                    (
                        "NORM_OUT",
                        matches!(fold, Fold::ResidualNorm { .. }) as u32 as f64,
                    ),
                    ("ROPE", rope.is_some() as u32 as f64),
                    (
                        "ROPE_KV32",
                        rope.is_some_and(|r| r.kv.precision == KvPrecision::F32) as u32 as f64,
                    ),
                ],
                &params,
                &weight_args(rec.gpu(), shader, part.buf.raw(), x_arg, &io),
                grid(groups, max_dim),
            );
            if rope.is_some() {
                rec.mark_position(std::mem::offset_of!(Params, pos));
            }
            tok0 += tok;
        }
    }
}

/// Candidate shapes for the load-time tune: CPU adapters try workgroup sizes with one invocation
/// per row group, x through the uniform view or storage; GPUs try invocations per row group.
fn candidates(gpu: &Gpu) -> Vec<MatvecShape> {
    let s = |wg, tpr, x_uniform, groups| MatvecShape {
        wg,
        tpr,
        x_uniform,
        groups,
        q8: false,
    };
    // No int8-activation candidate (`MatvecShape::q8`): it rounds x, so letting timings pick it
    // per matrix made greedy text depend on the machine's load (SmolLM2's native chat answer
    // changed when a loaded tune chose it for two matrices a layer). It is chosen by adapter:
    // `default_shape` on a browser's CPU adapter, `ATTEND_MATVEC_Q8=1` natively.
    if gpu.adapter.device_type == "Cpu" {
        // Each candidate is a pipeline to compile (slow on these adapters, and the bulk of a
        // first load in a browser): few, well spread. (32, 1, true, 2) was dropped: in the tune
        // logs of SmolLM2 and Gemma 3 on lavapipe and SwiftShader it never beat the best of these
        // three by more than 5%. Storage x, or more invocations per row group, lost on both.
        vec![s(8, 1, true, 1), s(32, 1, true, 1), s(16, 1, true, 2)]
    } else {
        vec![
            s(64, 4, false, 1),
            s(64, 8, false, 1),
            s(64, 16, false, 1),
            s(64, 32, false, 1),
            s(64, 64, false, 1),
            s(32, 8, true, 1),
            s(64, 8, false, 2),
        ]
    }
}

/// What a matrix is used for when decoding, so the tune times the kernel that will run: each
/// use is its own pipeline (a GLU or split epilogue can change which shape is fastest).
#[derive(Clone, Copy)]
pub enum MatvecUse<'a> {
    Plain,
    Glu(Glu),
    Split(Split<'a>),
}

/// Pick the fastest shape for a one-token matvec with `w` by timing each candidate (a few
/// dispatches each, a few milliseconds in all on small models) and remember it in `w`. `x` and `y`
/// are scratch buffers of at least `w.cols` and `w.rows` f32 (x should be an activation buffer so
/// that the uniform view can be tried). Results never change beyond summation order. Without
/// `measure`, only a shape remembered from an earlier measurement is taken (else `w` keeps
/// [`default_shape`]); the returned shape is then `None`.
pub async fn tune(
    gpu: &Gpu,
    w: &QMatrix,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    usage: MatvecUse<'_>,
    measure: bool,
) -> crate::Result<Option<MatvecShape>> {
    let (glu, split, kind) = match usage {
        MatvecUse::Plain => (None, None, 0),
        MatvecUse::Glu(g) => (Some(g), None, 1 + g as u32),
        MatvecUse::Split(s) => (None, Some(s), 9),
    };
    let candidates: Vec<MatvecShape> = candidates(gpu)
        .into_iter()
        .filter(|s| !s.x_uniform || x_uniform_fits(x, 1, w.cols))
        .collect();
    let class = super::tuned::class("matvec", w, &format!("use {kind}"));
    let best = super::tuned::pick(gpu, &class, candidates, measure, y, |rec, shape| {
        let io = Io {
            split,
            ..Io::new(x, y, 1)
        };
        dispatch(rec, w, io, shape, glu)
    })
    .await?;
    if let Some(s) = best {
        w.set_matvec_shape(s);
    }
    Ok(best)
}
