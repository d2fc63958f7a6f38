//! Causal self-attention over a GPU KV cache (`shaders/attention*.wgsl`): flash-attention style
//! (tiles + online softmax; memory never grows with N²), grouped-query heads, optional sliding
//! window, plus the "attention lens" read-out of one query's softmax weights.
//!
//! KV cache (written by [`rope_kv`](super::rope::rope_kv) and
//! [`rmsnorm_rope_kv`](super::rope::rmsnorm_rope_kv)): per layer one K and one V buffer of u32
//! words, each holding two consecutive dims as f16 (`pack2x16float`, low half = even dim): half
//! the memory of f32, no `shader-f16` needed.
//! [`KvPrecision::F32`] keeps one f32 word per dim instead (the shaders' `KV32` override): twice the
//! memory, attention weights at fp32 precision (what the attention lens compares with transformers).
//! K is dims-major `[n_kv_heads][head_dim / 2][capacity]` (invocations that each score one key
//! read consecutive words), V is position-major `[n_kv_heads][capacity][head_dim / 2]`
//! (invocations that each own a dim pair read consecutive words).
//!
//! With a soft-cap `c > 0` (Gemma 2) every scaled score `s` becomes `c · tanh(s / c)` before the
//! mask and softmax, in all three paths and the lens (llama.cpp `attn_soft_cap`, HF
//! `attn_logit_softcapping`).
//!
//! Masking follows llama.cpp (`LLAMA_SWA_TYPE_STANDARD`) and HF (`sliding_window_overlay`): the
//! query at position `qp` sees key `j` iff `j <= qp` and, with a window `W > 0`, `qp - j < W`.
//!
//! Paths (chosen by `m`):
//! - `m == 1`, decode on CPU adapters: `attend_decode_rt`, a workgroup per (kv head, 2 of its
//!   query heads) whose 8 invocations split the visible keys in blocks of 8 (K/V read as
//!   `vec4<u32>`, no barrier until one merge of the 8 partial softmaxes at the end), one dispatch
//!   at any length. On SwiftShader the merge is a second dispatch instead
//!   ([`AttnKernels::RegistersSplit`]): a barrier costs more there than a dispatch.
//! - `m == 1`, decode elsewhere: the visible keys are cut into chunks of 64; a workgroup per (kv head, up to
//!   8 of its query heads) scores a chunk's keys for all those heads at once (one invocation per
//!   key, heads packed in vec4s). Up to 1024 keys it walks every chunk with an online softmax and
//!   writes the output (one dispatch per layer); past that, split-K "flash decoding": one
//!   workgroup per chunk writes partial (max, sum, p·V) and a small reduce dispatch merges them.
//!   Partials come from `gpu.pool`: nothing is allocated per token once the pool is warm.
//! - `m > 1`, prefill: one workgroup per (kv head, tile of 8–32 query rows), where a row is a
//!   (query, head of the kv head's group) pair, so grouped heads share every K/V tile load. K/V
//!   tiles of 8–16 keys stream through workgroup memory (≤ 14.4 KiB in all), online softmax per
//!   row, tiles entirely outside the causal/window range are never visited. On CPU adapters
//!   (lavapipe, SwiftShader) `attend_prefill_rt` instead: no workgroup memory and no barriers;
//!   an invocation owns two rows in private arrays and every K/V word it reads as a `vec4<u32>`
//!   serves both (see the shader). It needs a capacity that is a multiple of 4 and whole vec4s of
//!   V words per key (head size a multiple of 8, or 4 for an f32 cache); other caches take the
//!   tiled kernel.
//!
//! `q` and `out` must be different buffers (a buffer cannot be bound read-only and writable in the
//! same dispatch).

use super::distinct;
use super::matvec_i8::xq_bytes;
use crate::gpu::{Arg, Buffer, Gpu, Recorder, Shader};
use crate::weights::UNIT;
use crate::{Error, Result};
use bytemuck::Zeroable as _;

pub(crate) static SHADER: Shader = crate::include_shader!("attention": "quant_x8", "attention", "attention_decode", "attention_rt");

/// Keys per decode workgroup (`CHUNK` in the shader).
const DECODE_CHUNK: u32 = 64;
/// Visible-key chunks up to which decode runs as one dispatch (a workgroup walks every chunk).
const DIRECT_MAX_CHUNKS: u32 = 16;
/// Query heads per decode workgroup at most (`HG` in the shader; private arrays are sized 8).
const DECODE_MAX_HEADS: u32 = 8;
const PREFILL_WG: u32 = 128;
/// Invocations per workgroup of the register kernels (a SIMD fibre of lavapipe's 8 lanes; the
/// decode kernel's merge holds 8).
const RT_ROWS: u32 = 8;

/// How the KV cache stores keys and values.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvPrecision {
    /// Two dims per u32 word as f16 (the default: half the memory and bandwidth).
    #[default]
    F16,
    /// One f32 word per dim: attention weights as precise as fp32 transformers (the lens).
    F32,
}

impl KvPrecision {
    /// "f16" or "f32" (as the CLI's `--kv` and the package's `kvPrecision` spell it).
    pub fn name(self) -> &'static str {
        match self {
            KvPrecision::F16 => "f16",
            KvPrecision::F32 => "f32",
        }
    }

    /// Parses [`KvPrecision::name`]'s spelling.
    pub fn from_name(s: &str) -> Option<KvPrecision> {
        [KvPrecision::F16, KvPrecision::F32]
            .into_iter()
            .find(|p| p.name() == s)
    }

    /// Bytes per stored dim.
    pub fn bytes(self) -> u64 {
        match self {
            KvPrecision::F16 => 2,
            KvPrecision::F32 => 4,
        }
    }
}

/// One layer's KV cache on the GPU (see the module docs for the layout).
pub struct LayerKv {
    pub k: Buffer,
    pub v: Buffer,
    pub capacity: u32,
    pub n_kv_heads: u32,
    pub head_dim: u32,
    pub precision: KvPrecision,
}

impl LayerKv {
    /// A zeroed f16 cache for `capacity` positions of `n_kv_heads` heads of `head_dim` (even,
    /// ≤ 256).
    pub fn new(gpu: &Gpu, capacity: u32, n_kv_heads: u32, head_dim: u32) -> Result<LayerKv> {
        Self::with_precision(gpu, capacity, n_kv_heads, head_dim, KvPrecision::F16)
    }

    /// [`LayerKv::new`] storing keys and values at `precision`.
    pub fn with_precision(
        gpu: &Gpu,
        capacity: u32,
        n_kv_heads: u32,
        head_dim: u32,
        precision: KvPrecision,
    ) -> Result<LayerKv> {
        if capacity == 0 || n_kv_heads == 0 {
            return Err(Error::Invalid(format!(
                "KV cache needs capacity and kv heads > 0 (got {capacity}, {n_kv_heads})"
            )));
        }
        check_head_dim(head_dim)?;
        let bytes = capacity as u64 * n_kv_heads as u64 * head_dim as u64 * precision.bytes();
        if bytes > gpu.caps().max_binding {
            return Err(Error::Unsupported(format!(
                "KV cache of {capacity} positions x {n_kv_heads} heads x {head_dim} needs {bytes} \
                 bytes per binding; the adapter allows {}",
                gpu.caps().max_binding
            )));
        }
        Ok(LayerKv {
            k: gpu.storage("kv cache K", bytes)?,
            v: gpu.storage("kv cache V", bytes)?,
            capacity,
            n_kv_heads,
            head_dim,
            precision,
        })
    }

    /// Override constants of a kernel that reads or writes this cache: `base`, plus `KV32` for
    /// an f32 cache (f16 pipelines keep their constants, so their keys do not change).
    pub(crate) fn constants<'a>(&self, base: &[(&'a str, f64)]) -> Vec<(&'a str, f64)> {
        let mut c = base.to_vec();
        if self.precision == KvPrecision::F32 {
            c.push(("KV32", 1.0));
        }
        c
    }

    /// GPU bytes held by this layer's cache (K and V).
    pub fn bytes(&self) -> u64 {
        self.k.size() + self.v.size()
    }
}

/// Parameters of one [`attention`] call.
#[derive(Clone, Copy, Debug)]
pub struct AttnParams {
    /// Queries in this call (1 = decode).
    pub m: u32,
    /// Position of query 0; query i sits at `pos0 + i`.
    pub pos0: u32,
    /// Query heads; a multiple of the cache's kv heads.
    pub n_heads: u32,
    /// Multiplies q·k (usually 1/sqrt(head_dim)).
    pub scale: f32,
    /// Sliding window (0 = none): keys j with `qpos - j < window` are visible.
    pub window: u32,
    /// Attention logit soft-cap (Gemma 2; 0 = none): a scaled score `s` becomes
    /// `softcap · tanh(s / softcap)` before the mask and softmax.
    pub softcap: f32,
}

impl AttnParams {
    /// Check the heads and the positions `pos0 .. pos0 + m` (m > 0) against the cache.
    fn check(&self, kv: &LayerKv) -> Result<()> {
        check_heads(self.n_heads, kv)?;
        check_positions(kv, self.pos0, self.m)
    }

    /// Bytes of an f32 `[m, n_heads, head_dim]` batch.
    fn batch_bytes(&self, kv: &LayerKv) -> u64 {
        self.m as u64 * self.n_heads as u64 * kv.head_dim as u64 * 4
    }

    /// The shader's parameters (decode and lens fields zero).
    fn shader(&self, kv: &LayerKv) -> Params {
        Params {
            m: self.m,
            pos0: self.pos0,
            n_heads: self.n_heads,
            n_kv_heads: kv.n_kv_heads,
            capacity: kv.capacity,
            window: self.window,
            scale: self.scale,
            softcap: self.softcap,
            ..Params::zeroed()
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    m: u32,
    pos0: u32,
    n_heads: u32,
    n_kv_heads: u32,
    capacity: u32,
    window: u32,
    scale: f32,
    n_split: u32,
    q_row: u32,
    direct: u32,
    softcap: f32,
    _pad: u32,
}

fn check_head_dim(head_dim: u32) -> Result<()> {
    if head_dim == 0 || !head_dim.is_multiple_of(2) || head_dim > 256 {
        return Err(Error::Unsupported(format!(
            "attention needs an even head_dim of at most 256, got {head_dim}"
        )));
    }
    Ok(())
}

fn check_size(what: &str, buf: &wgpu::Buffer, needed: u64) -> Result<()> {
    if buf.size() < needed {
        return Err(Error::Invalid(format!(
            "{what} buffer has {} bytes but needs {needed}",
            buf.size()
        )));
    }
    Ok(())
}

fn check_heads(n_heads: u32, kv: &LayerKv) -> Result<()> {
    if n_heads == 0 || !n_heads.is_multiple_of(kv.n_kv_heads) {
        return Err(Error::Invalid(format!(
            "{n_heads} query heads is not a multiple of {} kv heads",
            kv.n_kv_heads
        )));
    }
    Ok(())
}

fn check_positions(kv: &LayerKv, pos0: u32, m: u32) -> Result<()> {
    if m == 0 || pos0 as u64 + m as u64 > kv.capacity as u64 {
        return Err(Error::Invalid(format!(
            "positions {pos0}..{} do not fit a KV cache of {} (m must be > 0)",
            pos0 as u64 + m as u64,
            kv.capacity
        )));
    }
    Ok(())
}

fn workgroups(rec: &Recorder, n: u32) -> [u32; 3] {
    crate::gpu::grid(n, rec.gpu().caps().max_workgroups_per_dim)
}

/// Workgroups the split-K decode kernel splits the keys of a query at `qpos` over (1: one
/// dispatch, no reduce). A decode plan's shape depends on the position only through this (the
/// register decode kernel is one dispatch at any position).
pub fn decode_splits(qpos: u32, window: u32) -> u32 {
    let chunks = (qpos + 1 - key_lo(qpos, window)).div_ceil(DECODE_CHUNK);
    if chunks <= DIRECT_MAX_CHUNKS {
        1
    } else {
        chunks
    }
}

/// First key the query at `qpos` sees (mirrors `key_lo` in the shader).
fn key_lo(qpos: u32, window: u32) -> u32 {
    if window == 0 || qpos < window {
        0
    } else {
        qpos + 1 - window
    }
}

/// Prefill tile shape for a head size: (query rows per workgroup, keys per tile). Rows are a
/// multiple of 8 (each P·V invocation owns 8 rows of one dim pair) with the Q tile at ≤ 2048 f32,
/// which also makes (rows / 8) * (head_dim / 2) ≤ 128 invocations; the K/V tile stays ≤ 1024 u32
/// (half the keys for an f32 cache, whose dims take a word each) and the P tile ≤ 512 f32.
fn prefill_tiles(head_dim: u32, precision: KvPrecision) -> (u32, u32) {
    let rows = [32, 16, 8]
        .into_iter()
        .find(|r| r * head_dim <= 2048)
        .unwrap_or(8);
    let keys = if head_dim <= 128 { 16 } else { 8 };
    let keys = match precision {
        KvPrecision::F16 => keys,
        KvPrecision::F32 => keys / 2,
    };
    debug_assert!(rows / 8 * (head_dim / 2) <= PREFILL_WG);
    (rows, keys)
}

/// Whether the register kernels can read this cache: K rows of whole vec4s of keys (a
/// capacity that is a multiple of 4) and V rows of whole vec4s of words (8 f16 or 4 f32 dims).
fn registers_fit(kv: &LayerKv) -> bool {
    kv.capacity.is_multiple_of(4) && kv.head_dim.is_multiple_of(16 / kv.precision.bytes() as u32)
}

/// Which kernels [`attention_with`] runs (the tests run each on every adapter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttnKernels {
    /// Workgroup kernels: tiled prefill; decode in chunks of 64 keys, split-K past 1024 (GPUs).
    Workgroup,
    /// Register kernels (`attend_prefill_rt`, `attend_decode_rt`): decode merges its
    /// invocations' partial softmaxes in the kernel, through workgroup memory (lavapipe).
    Registers,
    /// Register kernels with decode's merge in a second dispatch (`attend_decode_rt_split`,
    /// `attend_reduce_rt`): no barrier in the decode kernel, for SwiftShader, where a workgroup
    /// with a barrier costs ~60 µs (each SIMD fibre a coroutine). Same bits as `Registers`.
    RegistersSplit,
}

impl AttnKernels {
    pub fn registers(self) -> bool {
        self != AttnKernels::Workgroup
    }
}

/// The kernels [`attention`] takes for this cache on `gpu`'s adapter: the register ones on CPU
/// adapters (lavapipe, SwiftShader) where the cache allows, with the split decode on SwiftShader.
pub fn kernels_by_default(gpu: &Gpu, kv: &LayerKv) -> AttnKernels {
    if !registers_fit(kv) || gpu.adapter.device_type != "Cpu" {
        AttnKernels::Workgroup
    } else if cfg!(target_arch = "wasm32") || gpu.adapter.name.contains("SwiftShader") {
        // A browser's CPU adapter is SwiftShader, whose name a page is usually not told.
        AttnKernels::RegistersSplit
    } else {
        AttnKernels::Registers
    }
}

/// Causal (optionally sliding-window) attention of `m` queries (f32 `[m, n_heads, head_dim]`,
/// positions `pos0 ..`) over the cache, which must already hold keys `0 .. pos0 + m`. Writes f32
/// `[m, n_heads, head_dim]` to `out`. Head h uses kv head `h / (n_heads / n_kv_heads)`.
pub fn attention(
    rec: &mut Recorder,
    q: &wgpu::Buffer,
    kv: &LayerKv,
    out: &wgpu::Buffer,
    p: &AttnParams,
) -> Result<()> {
    attention_with(rec, q, kv, out, p, None)
}

/// [`attention`] with the kernels chosen by the caller (`None`: the adapter's choice,
/// [`kernels_by_default`]).
#[doc(hidden)]
pub fn attention_with(
    rec: &mut Recorder,
    q: &wgpu::Buffer,
    kv: &LayerKv,
    out: &wgpu::Buffer,
    p: &AttnParams,
    kernels: Option<AttnKernels>,
) -> Result<()> {
    attention_to(rec, q, kv, out, p, kernels, None)
}

/// [`attention_with`], and with `int8` the one token's output quantized there for the int8
/// matvec after it where the kernels can do it on the way (SwiftShader's split decode, whose
/// merge holds whole units), as `matvec_i8::quantize` would (which then records nothing).
/// Elsewhere `int8` is ignored and the matvec quantizes.
#[doc(hidden)]
pub fn attention_to(
    rec: &mut Recorder,
    q: &wgpu::Buffer,
    kv: &LayerKv,
    out: &wgpu::Buffer,
    p: &AttnParams,
    kernels: Option<AttnKernels>,
    int8: Option<&wgpu::Buffer>,
) -> Result<()> {
    p.check(kv)?;
    let d = kv.head_dim;
    let act = p.batch_bytes(kv);
    check_size("attention q", q, act)?;
    check_size("attention out", out, act)?;
    let params = p.shader(kv);
    let args = [
        Arg::from(q),
        Arg::from(&kv.k),
        Arg::from(&kv.v),
        Arg::from(out),
    ];
    let kernels = match kernels {
        Some(k) if k.registers() && !registers_fit(kv) => {
            return Err(Error::Invalid(format!(
                "the register attention kernels need a capacity that is a multiple of 4 and a head \
                 size that is a multiple of {} (got {} and {})",
                16 / kv.precision.bytes(),
                kv.capacity,
                d
            )))
        }
        Some(k) => k,
        None => kernels_by_default(rec.gpu(), kv),
    };
    if kernels == AttnKernels::RegistersSplit && p.m == 1 {
        return decode_rt_split(rec, q, kv, out, params, int8);
    }
    if kernels.registers() {
        let group = p.n_heads / kv.n_kv_heads;
        // Prefill: 2 rows per invocation, 2 RT_ROWS per workgroup. Decode: 2 heads per
        // workgroup, whose invocations split the keys.
        let (entry, n_wg) = match p.m {
            1 => ("attend_decode_rt", group.div_ceil(2)),
            m => ("attend_prefill_rt", (m * group).div_ceil(2 * RT_ROWS)),
        };
        let consts = kv.constants(&[("D", d as f64), ("RT_WG", RT_ROWS as f64)]);
        let grid = workgroups(rec, n_wg * kv.n_kv_heads);
        rec.dispatch(&SHADER, entry, &consts, &params, &args, grid);
        rec.mark_position(std::mem::offset_of!(Params, pos0));
        Ok(())
    } else if p.m == 1 {
        decode(rec, q, kv, out, params)
    } else {
        let (rows, keys) = prefill_tiles(d, kv.precision);
        let n_rows = p.m * (p.n_heads / kv.n_kv_heads);
        let n_wg = n_rows.div_ceil(rows) * kv.n_kv_heads;
        let consts = kv.constants(&[("D", d as f64), ("BR", rows as f64), ("BC", keys as f64)]);
        rec.dispatch(
            &SHADER,
            "attend_prefill",
            &consts,
            &params,
            &args,
            workgroups(rec, n_wg),
        );
        rec.mark_position(std::mem::offset_of!(Params, pos0));
        Ok(())
    }
}

/// Decode with the register kernel, its invocations' partials merged by a second dispatch
/// ([`AttnKernels::RegistersSplit`]); the partials live in a buffer of the pass.
fn decode_rt_split(
    rec: &mut Recorder,
    q: &wgpu::Buffer,
    kv: &LayerKv,
    out: &wgpu::Buffer,
    params: Params,
    int8: Option<&wgpu::Buffer>,
) -> Result<()> {
    let d = kv.head_dim;
    let group = params.n_heads / kv.n_kv_heads;
    let part_bytes = params.n_heads as u64 * RT_ROWS as u64 * (d as u64 / 4 + 1) * 16;
    let part = rec.temp(
        part_bytes,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    );
    let part_arg = Arg::Range(&part, 0, part_bytes);
    let consts = kv.constants(&[("D", d as f64), ("RT_WG", RT_ROWS as f64)]);
    let grid = workgroups(rec, group.div_ceil(2) * kv.n_kv_heads);
    let args = [Arg::from(q), Arg::from(&kv.k), Arg::from(&kv.v), part_arg];
    rec.dispatch(
        &SHADER,
        "attend_decode_rt_split",
        &consts,
        &params,
        &args,
        grid,
    );
    rec.mark_position(std::mem::offset_of!(Params, pos0));
    let grid = workgroups(rec, (params.n_heads * d / 4).div_ceil(64));
    let k = (params.n_heads * d) as usize;
    // The reduce reads no position: nothing to mark.
    match int8.filter(|xq| k.is_multiple_of(UNIT) && xq.size() >= xq_bytes(k)) {
        None => {
            let args = [part_arg, Arg::from(out)];
            rec.dispatch(&SHADER, "attend_reduce_rt", &consts, &params, &args, grid);
        }
        Some(xq) => {
            distinct("attention int8", xq, &[q, &kv.k, &kv.v, out, &part])?;
            let args = [part_arg, Arg::from(out), Arg::Range(xq, 0, xq_bytes(k))];
            rec.dispatch(
                &SHADER,
                "attend_reduce_rt_q8",
                &consts,
                &params,
                &args,
                grid,
            );
            rec.set_quantized(out, k as u64, xq);
        }
    }
    Ok(())
}

/// Decode: up to `DIRECT_MAX_CHUNKS` × 64 visible keys one dispatch (each workgroup walks every
/// chunk with an online softmax); beyond, split-K with partials in a buffer of the pass
/// ([`Recorder::temp`]) and a reduce dispatch.
fn decode(
    rec: &mut Recorder,
    q: &wgpu::Buffer,
    kv: &LayerKv,
    out: &wgpu::Buffer,
    mut params: Params,
) -> Result<()> {
    let d = kv.head_dim;
    let qpos = params.pos0;
    // Up to DIRECT_MAX_CHUNKS chunks one workgroup per head group walks them all (one dispatch);
    // longer ranges split across workgroups so long contexts fill the GPU, plus a reduce pass.
    let n_split = decode_splits(qpos, params.window);
    params.n_split = n_split;
    let group = params.n_heads / kv.n_kv_heads;
    let heads_per_wg = group.min(DECODE_MAX_HEADS);
    let n_wg = n_split * group.div_ceil(heads_per_wg) * kv.n_kv_heads;
    let consts = kv.constants(&[("D", d as f64), ("HG", heads_per_wg as f64)]);
    let grid = workgroups(rec, n_wg);
    let kv_args = [Arg::from(q), Arg::from(&kv.k), Arg::from(&kv.v)];
    if n_split == 1 {
        // One workgroup per head group sees every key: it normalises and writes `out` itself.
        params.direct = 1;
        let args = [kv_args[0], kv_args[1], kv_args[2], Arg::from(out)];
        rec.dispatch(&SHADER, "attend_decode", &consts, &params, &args, grid);
        rec.mark_position(std::mem::offset_of!(Params, pos0));
        return Ok(());
    }
    let part_bytes = params.n_heads as u64 * n_split as u64 * (d as u64 + 2) * 4;
    let part = rec.temp(
        part_bytes,
        wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
    );
    let part_arg = Arg::Range(&part, 0, part_bytes);
    let args = [kv_args[0], kv_args[1], kv_args[2], part_arg];
    rec.dispatch(&SHADER, "attend_decode", &consts, &params, &args, grid);
    rec.mark_position(std::mem::offset_of!(Params, pos0));
    rec.dispatch(
        &SHADER,
        "attend_reduce",
        &[("D", d as f64)],
        &params,
        &[part_arg, Arg::from(out)],
        workgroups(rec, params.n_heads),
    );
    rec.mark_position(std::mem::offset_of!(Params, pos0));
    Ok(())
}

/// The attention lens: softmax weights (f32 `[n_heads, pos + 1]`) of the last query of the call
/// `p` describes (row `m - 1` of `q`, f32 `[m, n_heads, head_dim]`, at position
/// `pos = pos0 + m - 1`) over keys `0 ..= pos`, masked keys 0. For display: simple, not fast.
pub fn attention_probs_row(
    rec: &mut Recorder,
    q: &wgpu::Buffer,
    kv: &LayerKv,
    out: &wgpu::Buffer,
    p: &AttnParams,
) -> Result<()> {
    p.check(kv)?;
    let (q_row, pos) = (p.m - 1, p.pos0 + p.m - 1);
    let d = kv.head_dim as u64;
    check_size("lens q", q, p.batch_bytes(kv))?;
    check_size("lens out", out, p.n_heads as u64 * (pos as u64 + 1) * 4)?;
    let params = Params {
        m: 1,
        pos0: pos,
        q_row,
        ..p.shader(kv)
    };
    rec.dispatch(
        &SHADER,
        "attend_probs",
        &kv.constants(&[("D", d as f64)]),
        &params,
        &[Arg::from(q), Arg::from(&kv.k), Arg::from(out)],
        workgroups(rec, p.n_heads),
    );
    rec.mark_position(std::mem::offset_of!(Params, pos0));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefill_tiles_fit_workgroup_limits() {
        for (d, precision) in (2..=256)
            .step_by(2)
            .flat_map(|d| [(d, KvPrecision::F16), (d, KvPrecision::F32)])
        {
            let (rows, keys) = prefill_tiles(d, precision);
            let words = precision.bytes() / 2;
            assert!(rows * d <= 2048, "q tile for {d}");
            assert!(
                keys as u64 * d as u64 / 2 * words <= 1024,
                "kv tile for {d}"
            );
            assert!(
                (keys * rows / 4).is_power_of_two() && keys * rows / 4 <= PREFILL_WG,
                "score items for {d}"
            );
            assert!(rows * keys <= 512, "score tile for {d}");
            assert!(
                rows % 8 == 0 && rows / 8 * (d / 2) <= PREFILL_WG,
                "P·V roles for {d}"
            );
        }
    }

    #[test]
    fn window_start_matches_llama_cpp() {
        // llama.cpp masks when qpos - j >= W; so with W = 4 query 10 sees 7..=10.
        assert_eq!(key_lo(10, 4), 7);
        assert_eq!(key_lo(3, 4), 0);
        assert_eq!(key_lo(4, 4), 1);
        assert_eq!(key_lo(10, 0), 0);
    }
}
