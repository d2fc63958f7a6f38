//! Reference quantizers, bit-exact with ggml's `quantize_row_*_ref` (ggml-quants.c) when run on the
//! same f32 input: same arithmetic in the same order, f32 throughout, f16 stores rounded to nearest
//! even. Rust never fuses multiply-adds, matching a C build without FP contraction.

use super::{bf16_bits, f16_bits, kquants, GgmlType};
use crate::{Error, Result};

/// Quantize `values` (a whole number of blocks of `ty`) into ggml's block layout.
pub fn quantize(ty: GgmlType, values: &[f32]) -> Result<Vec<u8>> {
    let bl = ty.block_len();
    if !values.len().is_multiple_of(bl) {
        return Err(Error::Invalid(format!(
            "quantize {}: {} values is not a multiple of the block length {bl}",
            ty.name(),
            values.len()
        )));
    }
    let mut out = Vec::with_capacity(ty.row_bytes(values.len()));
    use GgmlType::*;
    match ty {
        F32 => values
            .iter()
            .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
        F16 => values
            .iter()
            .for_each(|&v| out.extend_from_slice(&f16_bits(v).to_le_bytes())),
        BF16 => values
            .iter()
            .for_each(|&v| out.extend_from_slice(&bf16_bits(v).to_le_bytes())),
        Q8_0 => blocks(values, &mut out, q8_0),
        Q8_1 => blocks(values, &mut out, q8_1),
        Q4_0 => blocks(values, &mut out, q4_0),
        Q4_1 => blocks(values, &mut out, q4_1),
        Q5_0 => blocks(values, &mut out, q5_0),
        Q5_1 => blocks(values, &mut out, q5_1),
        Q2K => blocks(values, &mut out, kquants::quantize_q2_k),
        Q3K => blocks(values, &mut out, kquants::quantize_q3_k),
        Q4K => blocks(values, &mut out, kquants::quantize_q4_k),
        Q5K => blocks(values, &mut out, kquants::quantize_q5_k),
        Q6K => blocks(values, &mut out, kquants::quantize_q6_k),
        Q8K => blocks(values, &mut out, kquants::quantize_q8_k),
        IQ4NL | IQ4XS => {
            return Err(Error::Unsupported(format!(
                "quantize {}: attend only reads this type",
                ty.name()
            )))
        }
    }
    debug_assert_eq!(out.len(), ty.row_bytes(values.len()));
    Ok(out)
}

/// Run a one-block quantizer over every block (the block length is the slice length it is given).
fn blocks<const N: usize>(values: &[f32], out: &mut Vec<u8>, f: fn(&[f32; N], &mut Vec<u8>)) {
    for chunk in values.chunks_exact(N) {
        f(chunk.try_into().expect("chunks_exact gives N"), out);
    }
}

/// `id = d ? 1/d : 0`, as ggml writes it.
fn inverse(d: f32) -> f32 {
    if d != 0.0 {
        1.0 / d
    } else {
        0.0
    }
}

/// The value of largest magnitude (the first one on ties), with its sign.
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

/// C's `(int8_t)(float)` truncation for the in-range values the reference produces; out-of-range
/// input (only reachable from non-finite data) saturates instead of being undefined.
fn trunc_i32(v: f32) -> i32 {
    v as i32
}

/// Q8_0: d = amax/127 (f16), qs[j] = roundf(x*id) (half away from zero).
fn q8_0(x: &[f32; 32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = inverse(d);
    out.extend_from_slice(&f16_bits(d).to_le_bytes());
    out.extend(x.iter().map(|&v| (v * id).round() as i8 as u8));
}

/// Q8_1: like Q8_0 plus s = f16(sum(qs) * d).
fn q8_1(x: &[f32; 32], out: &mut Vec<u8>) {
    let amax = x.iter().fold(0.0f32, |a, v| a.max(v.abs()));
    let d = amax / 127.0;
    let id = inverse(d);
    let qs: Vec<i8> = x.iter().map(|&v| (v * id).round() as i8).collect();
    let sum: i32 = qs.iter().map(|&q| q as i32).sum();
    out.extend_from_slice(&f16_bits(d).to_le_bytes());
    out.extend_from_slice(&f16_bits(sum as f32 * d).to_le_bytes());
    out.extend(qs.iter().map(|&q| q as u8));
}

/// Q4_0: d = max/-8 where max is the signed absmax; q = min(15, trunc(x*id + 8.5)).
fn q4_0(x: &[f32; 32], out: &mut Vec<u8>) {
    let d = signed_absmax(x) / -8.0;
    let id = inverse(d);
    out.extend_from_slice(&f16_bits(d).to_le_bytes());
    let q = |v: f32| trunc_i32(v * id + 8.5).clamp(0, 15) as u8;
    out.extend((0..16).map(|j| q(x[j]) | q(x[j + 16]) << 4));
}

/// Q4_1: d = (max-min)/15, m = min; q = min(15, trunc((x-min)*id + 0.5)).
fn q4_1(x: &[f32; 32], out: &mut Vec<u8>) {
    let (min, max) = min_max(x);
    let d = (max - min) / 15.0;
    let id = inverse(d);
    out.extend_from_slice(&f16_bits(d).to_le_bytes());
    out.extend_from_slice(&f16_bits(min).to_le_bytes());
    let q = |v: f32| trunc_i32((v - min) * id + 0.5).clamp(0, 15) as u8;
    out.extend((0..16).map(|j| q(x[j]) | q(x[j + 16]) << 4));
}

/// Q5_0: d = max/-16; q = min(31, trunc(x*id + 16.5)); low nibbles in qs, 5th bits in qh.
fn q5_0(x: &[f32; 32], out: &mut Vec<u8>) {
    let d = signed_absmax(x) / -16.0;
    let id = inverse(d);
    let q: Vec<u8> = x
        .iter()
        .map(|&v| trunc_i32(v * id + 16.5).clamp(0, 31) as u8)
        .collect();
    out.extend_from_slice(&f16_bits(d).to_le_bytes());
    push_q5(&q, out);
}

/// Q5_1: d = (max-min)/31, m = min; q = trunc((x-min)*id + 0.5).
fn q5_1(x: &[f32; 32], out: &mut Vec<u8>) {
    let (min, max) = min_max(x);
    let d = (max - min) / 31.0;
    let id = inverse(d);
    let q: Vec<u8> = x
        .iter()
        .map(|&v| trunc_i32((v - min) * id + 0.5).clamp(0, 31) as u8)
        .collect();
    out.extend_from_slice(&f16_bits(d).to_le_bytes());
    out.extend_from_slice(&f16_bits(min).to_le_bytes());
    push_q5(&q, out);
}

/// qh (u32 LE: bit j = 5th bit of q[j]) then qs (q[j] low nibble | q[j+16] low nibble << 4).
fn push_q5(q: &[u8], out: &mut Vec<u8>) {
    let qh = q
        .iter()
        .enumerate()
        .fold(0u32, |h, (j, &v)| h | (((v as u32) >> 4) & 1) << j);
    out.extend_from_slice(&qh.to_le_bytes());
    out.extend((0..16).map(|j| (q[j] & 0x0f) | (q[j + 16] & 0x0f) << 4));
}
