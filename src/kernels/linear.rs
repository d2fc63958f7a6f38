//! Linear layers as the model files call them: [`linear`] and its fused forms (a GLU
//! feed-forward, a stacked Q/K/V weight split three ways, a folded RMSNorm, RoPE with the KV-cache
//! write) check their buffers once, then take the matvec for a few tokens (decode) or the matmul
//! for a prompt chunk (prefill).

use super::matmul::{matmul, matmul_split};
use super::matvec::{fold_fits, Fold, Io, RopeStore, Split, NORM_SSQ};
use super::{count, distinct, words};
use crate::gpu::Recorder;
use crate::weights::QMatrix;
use crate::Result;

/// Up to this many tokens `linear` uses matvec (W streamed once per 4 tokens, no tile waste).
pub const MATVEC_MAX_M: u32 = 8;

/// Whether `m` tokens of `w` take the matvec: up to [`MATVEC_MAX_M`], except that several tokens
/// take the int8 matmul wherever [`int8_prefill`](super::matmul::int8_prefill) holds, so that a prompt gets the same arithmetic
/// whether a chunk brings its tokens 3 or 64 at a time (the page's lens, after a chat turn, and the
/// CLI's `attention`, which prefills up to the query token, then agree).
fn by_matvec(rec: &Recorder, w: &QMatrix, m: u32) -> bool {
    m <= MATVEC_MAX_M && (m == 1 || !super::matmul::int8_prefill(rec, w))
}

/// A linear layer: [`matvec`](super::matvec::matvec) for up to [`MATVEC_MAX_M`] tokens (decode), [`matmul`] otherwise.
/// Checks that `x` holds `m × cols`, `y` holds `m × rows` (and `bias` `rows`) f32s and that `y`
/// is not an input.
pub fn linear(
    rec: &mut Recorder,
    w: &QMatrix,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    m: u32,
    bias: Option<&wgpu::Buffer>,
) -> Result<()> {
    linear_fold(rec, w, x, y, m, bias, Fold::None)
}

/// Check that a folded norm ([`Fold`]) can run: one token, vectors that can carry it, `x` (a
/// `NormIn`) or `y` (a `ResidualNorm`, with its residual and weight) large enough for its partial
/// sums, and no bias or split on a producer.
fn check_fold(
    rec: &Recorder,
    w: &QMatrix,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    m: u32,
    fold: Fold,
    plain: bool,
) -> Result<()> {
    let what = "folded norm";
    let ssq_end = |d: usize| NORM_SSQ as u64 + d as u64 / 4;
    match fold {
        Fold::None => return Ok(()),
        _ if m != 1 => {
            return Err(crate::Error::Invalid(format!("{what}: one token, got {m}")));
        }
        Fold::NormIn { .. } => {
            if !fold_fits(w.cols as u32) {
                return Err(crate::Error::Invalid(format!("{what}: {} columns", w.cols)));
            }
            words(rec, x, ssq_end(w.cols), "folded norm x")?;
        }
        Fold::ResidualNorm { resid, gain } => {
            if !fold_fits(w.rows as u32) || !plain {
                return Err(crate::Error::Invalid(format!(
                    "{what}: a plain product of {} rows",
                    w.rows
                )));
            }
            words(rec, y, ssq_end(w.rows), "folded norm y")?;
            words(rec, resid, w.rows as u64, "folded norm residual")?;
            words(rec, gain, w.rows as u64, "folded norm weight")?;
            distinct(what, y, &[resid, gain, x])?;
            distinct(what, resid, &[gain, x])?;
        }
    }
    Ok(())
}

/// [`linear`] with a norm folded in (one token; see [`Fold`]).
pub fn linear_fold(
    rec: &mut Recorder,
    w: &QMatrix,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    m: u32,
    bias: Option<&wgpu::Buffer>,
    fold: Fold,
) -> Result<()> {
    if m == 0 {
        return Ok(());
    }
    let (rows, cols) = (w.rows as u32, w.cols as u32);
    words(rec, x, count("linear x", &[m, cols])?, "linear x")?;
    words(rec, y, count("linear y", &[m, rows])?, "linear y")?;
    if let Some(b) = bias {
        words(rec, b, rows as u64, "linear bias")?;
        distinct("linear", y, &[x, b])?;
    }
    distinct("linear", y, &[x])?;
    // (A fold is one token, so it always takes the matvec.)
    check_fold(rec, w, x, y, m, fold, bias.is_none())?;
    if by_matvec(rec, w, m) {
        let io = Io {
            bias,
            fold,
            ..Io::new(x, y, m)
        };
        super::matvec::matvec_io(rec, w, io, None);
    } else {
        matmul(rec, w, x, y, m, bias)
    }
    Ok(())
}

/// A fused GLU feed-forward `out[t] = act(gate·x[t]) ⊙ (up·x[t])` with `w` = `[gate; up]` (`2f`
/// rows, [`glu_fits`](super::matvec::glu_fits)): one matvec dispatch per 4 tokens when decoding;
/// for prefill a matmul into `tmp` (`m × 2f`) and one elementwise pass.
pub fn linear_glu(
    rec: &mut Recorder,
    w: &QMatrix,
    glu: super::elementwise::Glu,
    x: &wgpu::Buffer,
    tmp: &wgpu::Buffer,
    out: &wgpu::Buffer,
    m: u32,
) -> Result<()> {
    linear_glu_fold(rec, w, glu, x, tmp, out, m, Fold::None)
}

/// [`linear_glu`] reading a folded norm (`Fold::NormIn`, one token).
#[allow(clippy::too_many_arguments)]
pub fn linear_glu_fold(
    rec: &mut Recorder,
    w: &QMatrix,
    glu: super::elementwise::Glu,
    x: &wgpu::Buffer,
    tmp: &wgpu::Buffer,
    out: &wgpu::Buffer,
    m: u32,
    fold: Fold,
) -> Result<()> {
    if m == 0 {
        return Ok(());
    }
    if !super::matvec::glu_fits(w) {
        return Err(crate::Error::Invalid(format!(
            "linear_glu: a {}-row matrix in {} parts is not a fused [gate; up] weight",
            w.rows,
            w.parts().len()
        )));
    }
    let (rows, cols) = (w.rows as u32, w.cols as u32);
    words(rec, x, count("linear_glu x", &[m, cols])?, "linear_glu x")?;
    words(
        rec,
        out,
        count("linear_glu out", &[m, rows / 2])?,
        "linear_glu out",
    )?;
    distinct("linear_glu", out, &[x])?;
    check_fold(rec, w, x, out, m, fold, false)?;
    if by_matvec(rec, w, m) {
        let io = Io {
            fold,
            ..Io::new(x, out, m)
        };
        super::matvec::matvec_io(rec, w, io, Some(glu));
        Ok(())
    } else {
        linear(rec, w, x, tmp, m, None)?;
        super::elementwise::glu_rows(rec, glu, tmp, out, m, rows / 2)
    }
}

/// Three projections from one stacked weight `[a; b; c]` (Q, K and V): `outs[i]` gets
/// `x · W_iᵀ` (`m × rows[i]`), with `bias` the stacked biases; one weight pass instead of three.
/// `rows[2]` may be 0 for a two-way stack `[a; b]` (`outs[2]` is then never written).
pub fn linear_split(
    rec: &mut Recorder,
    w: &QMatrix,
    x: &wgpu::Buffer,
    outs: [&wgpu::Buffer; 3],
    rows: [u32; 3],
    m: u32,
    bias: Option<&wgpu::Buffer>,
) -> Result<()> {
    linear_split_fold(rec, w, x, outs, rows, m, bias, Fold::None)
}

/// [`linear_split`] reading a folded norm (`Fold::NormIn`, one token).
#[allow(clippy::too_many_arguments)]
pub fn linear_split_fold(
    rec: &mut Recorder,
    w: &QMatrix,
    x: &wgpu::Buffer,
    outs: [&wgpu::Buffer; 3],
    rows: [u32; 3],
    m: u32,
    bias: Option<&wgpu::Buffer>,
    fold: Fold,
) -> Result<()> {
    if m == 0 {
        return Ok(());
    }
    let total = rows.iter().map(|&r| r as usize).sum::<usize>();
    if rows[..2].contains(&0) || total != w.rows {
        return Err(crate::Error::Invalid(format!(
            "linear_split: rows {rows:?} do not stack to the weight's {}",
            w.rows
        )));
    }
    words(
        rec,
        x,
        count("linear_split x", &[m, w.cols as u32])?,
        "linear_split x",
    )?;
    for (o, r) in outs.iter().zip(rows) {
        words(
            rec,
            o,
            count("linear_split out", &[m, r])?,
            "linear_split out",
        )?;
        distinct("linear_split", o, &[x])?;
    }
    if let Some(b) = bias {
        words(rec, b, w.rows as u64, "linear_split bias")?;
        for o in outs {
            distinct("linear_split", o, &[b])?;
        }
    }
    let split = Split {
        y2: outs[1],
        y3: outs[2],
        n1: rows[0],
        n2: rows[1],
    };
    check_fold(rec, w, x, outs[0], m, fold, false)?;
    if by_matvec(rec, w, m) {
        let io = Io {
            bias,
            split: Some(split),
            fold,
            ..Io::new(x, outs[0], m)
        };
        super::matvec::matvec_io(rec, w, io, None);
    } else {
        matmul_split(rec, w, x, outs[0], m, bias, Some(split));
    }
    Ok(())
}

/// The Q, K and V projections of one token from a stacked `[q; k; v]` weight with RoPE and the
/// KV-cache write in the matvec's store ([`RopeStore`]): `q` gets the rotated q (`rows[0]`), the
/// cache the rotated k and the v (`rows[1]` each) at the store's position. One dispatch for what
/// [`linear_split`] and `rope::rope_kv` do in two.
pub fn linear_qkv_rope(
    rec: &mut Recorder,
    w: &QMatrix,
    x: &wgpu::Buffer,
    q: &wgpu::Buffer,
    rows: [u32; 3],
    fold: Fold,
    rope: RopeStore,
) -> Result<()> {
    let what = "linear_qkv_rope";
    let kv = rope.kv;
    let kv_rows = kv.n_kv_heads * kv.head_dim;
    let total = rows.iter().map(|&r| r as usize).sum::<usize>();
    if rows[1] != kv_rows || rows[2] != kv_rows || total != w.rows || !rows[0].is_multiple_of(4) {
        return Err(crate::Error::Invalid(format!(
            "{what}: rows {rows:?} are not [q; k; v] of the weight's {} rows and {kv_rows} kv rows",
            w.rows
        )));
    }
    if rope.pos >= kv.capacity || !kv.head_dim.is_multiple_of(4) || rope.rot_dims > kv.head_dim {
        return Err(crate::Error::Invalid(format!(
            "{what}: position {} of {}, head_dim {}, rot_dims {}",
            rope.pos, kv.capacity, kv.head_dim, rope.rot_dims
        )));
    }
    words(rec, x, w.cols as u64, "linear_qkv_rope x")?;
    words(rec, q, rows[0] as u64, "linear_qkv_rope q")?;
    words(
        rec,
        rope.table,
        rope.rot_dims as u64,
        "linear_qkv_rope table",
    )?;
    distinct(what, q, &[x, rope.table])?;
    check_fold(rec, w, x, q, 1, fold, false)?;
    let split = Split {
        y2: kv.k.raw(),
        y3: kv.v.raw(),
        n1: rows[0],
        n2: rows[1],
    };
    let io = Io {
        split: Some(split),
        fold,
        rope: Some(rope),
        ..Io::new(x, q, 1)
    };
    super::matvec::matvec_io(rec, w, io, None);
    Ok(())
}
