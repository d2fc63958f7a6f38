//! Sampling candidates on the GPU (`shaders/topk.wgsl`): the 64 largest logits of a row, sorted,
//! with the log-softmax normaliser, the temperature-scaled mass and a Gumbel-max draw over the
//! whole row. Sampled decoding and logprobs then read back [`OUT_BYTES`] instead of the row (1 MiB
//! for a 262,144-token vocabulary); [`crate::sampler::Candidates`] says what the CPU can decide
//! from them.
//!
//! Two dispatches: one workgroup per chunk of the row (at most [`MAX_CHUNKS`], so enough
//! workgroups for a GPU and few enough to merge in one), then one merging workgroup. Workgroup
//! barriers are few (no sorting network): CPU adapters pay for each one across the whole
//! workgroup (`topk_timing` in tests/kernels: a bitonic-sort version took 19 ms a row on lavapipe).

use super::{count, distinct, words};
use crate::gpu::{Recorder, Shader};
use crate::sampler::Candidates;
use crate::{Error, Result};

pub(crate) static SHADER: Shader = crate::include_shader!("topk");

/// Candidates kept (sorted) per row.
pub const K: usize = 64;
const HEAD: usize = 8;
const STRIDE: u64 = (HEAD + 2 * K) as u64;
/// Words per stage-1 chunk: a header and 4 entries per invocation of 256.
const PART: u64 = (HEAD + 2 * 1024) as u64;
/// Bytes of the result [`topk`] writes.
pub const OUT_BYTES: u64 = STRIDE * 4;
/// Chunks of stage 1: the merging workgroup sorts `MAX_CHUNKS * K` entries in workgroup memory.
pub const MAX_CHUNKS: u32 = 32;
/// Elements per chunk at least (shorter rows use fewer chunks).
const MIN_CHUNK: u32 = 2048;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    vocab: u32,
    chunk: u32,
    chunks: u32,
    _pad: u32,
}

/// The per-pass sampling parameters `topk` reads from a small storage buffer (written before each
/// pass, so that a decode plan keeps its bind groups).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Sampling {
    /// 1 / temperature (scales the mass and the Gumbel draw).
    pub inv_t: f32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    /// What to compute besides the list: [`Sampling::DRAW`], [`Sampling::MASS`], [`Sampling::LSE`].
    pub flags: u32,
}

impl Sampling {
    /// Bytes of the buffer [`topk`] reads.
    pub const BYTES: u64 = std::mem::size_of::<Sampling>() as u64;

    /// A draw from the whole row (Gumbel-max).
    pub const DRAW: u32 = 1;
    /// The mass at the temperature (top-p over the whole row).
    pub const MASS: u32 = 2;
    /// The log-softmax normaliser (logprobs).
    pub const LSE: u32 = 4;

    /// Temperature `t` (> 0; tiny values are clamped so that 1/t stays finite), a draw seed and
    /// what to compute (`flags`).
    pub fn new(t: f32, seed: u64, flags: u32) -> Sampling {
        let inv_t = if t > 0.0 && t.is_finite() {
            (1.0 / t).min(1e30)
        } else {
            1.0
        };
        Sampling {
            inv_t,
            seed_lo: seed as u32,
            seed_hi: (seed >> 32) as u32,
            flags,
        }
    }
}

/// (elements per chunk, chunks) for a row of `vocab` in at most `most` chunks.
fn chunking(vocab: u32, most: u32) -> (u32, u32) {
    let chunks = vocab.div_ceil(MIN_CHUNK).clamp(1, most);
    (vocab.div_ceil(chunks).div_ceil(4) * 4, chunks)
}

/// Bytes of the stage-1 buffer [`topk`] needs for a row of `vocab` (on any adapter).
pub fn partial_bytes(vocab: u32) -> u64 {
    chunking(vocab, MAX_CHUNKS).1 as u64 * PART * 4
}

/// Candidates of `x[0..vocab]` into `out` ([`OUT_BYTES`]), using `partial`
/// ([`partial_bytes`]) between the stages and `sampling` ([`Sampling`]) for temperature and seed.
pub fn topk(
    rec: &mut Recorder<'_>,
    x: &wgpu::Buffer,
    vocab: u32,
    sampling: &wgpu::Buffer,
    partial: &wgpu::Buffer,
    out: &wgpu::Buffer,
) -> Result<()> {
    distinct("topk", out, &[x, sampling, partial])?;
    distinct("topk", partial, &[x, sampling])?;
    count("topk", &[vocab])?;
    if vocab == 0 {
        return Err(Error::Invalid("topk: empty row".into()));
    }
    // CPU adapters run workgroups on a few threads, each paying a fixed cost (its reduction's
    // barriers): 2 chunks there measured 3× faster than 32 (tests/kernels `topk_timing`).
    let most = match rec.gpu().adapter.device_type == "Cpu" {
        true => 2,
        false => MAX_CHUNKS,
    };
    let (chunk, chunks) = chunking(vocab, most);
    let params = Params {
        vocab,
        chunk,
        chunks,
        _pad: 0,
    };
    let xa = words(rec, x, vocab as u64, "topk x")?;
    let sa = words(rec, sampling, Sampling::BYTES / 4, "topk sampling")?;
    let pa = words(rec, partial, chunks as u64 * PART, "topk partial")?;
    let oa = words(rec, out, STRIDE, "topk out")?;
    let entry = if vocab.is_multiple_of(4) {
        "topk_partial4"
    } else {
        "topk_partial"
    };
    rec.dispatch(&SHADER, entry, &[], &params, &[xa, sa, pa], [chunks, 1, 1]);
    let pa = words(rec, partial, chunks as u64 * PART, "topk partial")?;
    rec.dispatch(
        &SHADER,
        "topk_final",
        &[],
        &params,
        &[pa, sa, oa],
        [1, 1, 1],
    );
    Ok(())
}

/// The candidates in the words [`topk`] wrote (`vocab`: the row's length, to reject ids outside it).
pub fn parse(w: &[u32], vocab: u32) -> Result<Candidates> {
    if w.len() < STRIDE as usize {
        return Err(Error::Gpu("topk: short result".into()));
    }
    let f = |i: usize| f32::from_bits(w[i]);
    if w[7] != 0 {
        return Err(Error::Gpu("the model produced non-finite logits".into()));
    }
    let mut top = Vec::with_capacity(K);
    for e in 0..K {
        let (v, id) = (f(HEAD + 2 * e), w[HEAD + 2 * e + 1]);
        if id == u32::MAX {
            break;
        }
        if id >= vocab {
            return Err(Error::Gpu(format!(
                "topk: token {id} outside the vocabulary"
            )));
        }
        top.push((id, v));
    }
    // The shader's "nothing unlisted" is -3.4e38; no real logit is that low.
    let bound = f(3);
    let rest_max = if bound > -1e38 {
        bound
    } else {
        f32::NEG_INFINITY
    };
    let (max, z1, zt) = (f(0), f(1) as f64, f(2) as f64);
    let gumbel = match w[5] {
        u32::MAX => None,
        id if id < vocab => Some((id, f(6))),
        id => {
            return Err(Error::Gpu(format!(
                "topk: drew token {id}, outside the vocabulary"
            )))
        }
    };
    if top.is_empty() && rest_max == f32::NEG_INFINITY {
        return Err(Error::Gpu("topk: no candidate".into()));
    }
    Ok(Candidates {
        top,
        rest_max,
        max,
        lse: max as f64 + z1.ln(),
        mass: zt,
        gumbel,
    })
}
