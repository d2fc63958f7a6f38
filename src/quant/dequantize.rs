//! Dequantizers for every ggml block type the runtime reads, matching ggml's `dequantize_row_*`
//! (and gguf-py's numpy versions) operation for operation, so results are bit-exact f32.

use super::{bf16_to_f32, f16_to_f32, get_scale_min_k4, GgmlType, KVALUES_IQ4NL};
use crate::{Error, Result};

/// Dequantize `n` values of type `ty` from `bytes` (exactly `ty.row_bytes(n)` bytes).
pub fn dequantize(ty: GgmlType, bytes: &[u8], n: usize) -> Result<Vec<f32>> {
    let bl = ty.block_len();
    if !n.is_multiple_of(bl) {
        return Err(Error::Invalid(format!(
            "dequantize {}: {n} values is not a multiple of the block length {bl}",
            ty.name()
        )));
    }
    if bytes.len() != ty.row_bytes(n) {
        return Err(Error::Invalid(format!(
            "dequantize {}: {n} values need {} bytes, got {}",
            ty.name(),
            ty.row_bytes(n),
            bytes.len()
        )));
    }
    let mut out = Vec::with_capacity(n);
    let bb = ty.block_bytes();
    let each = |out: &mut Vec<f32>, f: fn(&[u8], &mut Vec<f32>)| {
        bytes.chunks_exact(bb).for_each(|b| f(b, out));
    };
    use GgmlType::*;
    match ty {
        F32 => out.extend(
            bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        ),
        F16 => out.extend(bytes.chunks_exact(2).map(|b| f16_to_f32(u16le(b, 0)))),
        BF16 => out.extend(bytes.chunks_exact(2).map(|b| bf16_to_f32(u16le(b, 0)))),
        Q8_0 => each(&mut out, q8_0),
        Q8_1 => each(&mut out, q8_1),
        Q4_0 => each(&mut out, q4_0),
        Q4_1 => each(&mut out, q4_1),
        Q5_0 => each(&mut out, q5_0),
        Q5_1 => each(&mut out, q5_1),
        Q2K => each(&mut out, q2_k),
        Q3K => each(&mut out, q3_k),
        Q4K => each(&mut out, q4_k),
        Q5K => each(&mut out, q5_k),
        Q6K => each(&mut out, q6_k),
        Q8K => each(&mut out, q8_k),
        IQ4NL => each(&mut out, iq4_nl),
        IQ4XS => each(&mut out, iq4_xs),
    }
    debug_assert_eq!(out.len(), n);
    Ok(out)
}

fn u16le(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn f16_at(b: &[u8], at: usize) -> f32 {
    f16_to_f32(u16le(b, at))
}

/// Q8_0: d (f16), 32 × i8. y = q*d.
fn q8_0(b: &[u8], y: &mut Vec<f32>) {
    let d = f16_at(b, 0);
    y.extend(b[2..34].iter().map(|&q| q as i8 as f32 * d));
}

/// Q8_1: d (f16), s (f16, unused here), 32 × i8. y = q*d.
fn q8_1(b: &[u8], y: &mut Vec<f32>) {
    let d = f16_at(b, 0);
    y.extend(b[4..36].iter().map(|&q| q as i8 as f32 * d));
}

/// Q4_0: d (f16), 16 bytes: element j in the low nibble of byte j, j+16 in the high nibble.
fn q4_0(b: &[u8], y: &mut Vec<f32>) {
    let d = f16_at(b, 0);
    let qs = &b[2..18];
    y.extend(qs.iter().map(|&q| ((q & 0x0f) as i32 - 8) as f32 * d));
    y.extend(qs.iter().map(|&q| ((q >> 4) as i32 - 8) as f32 * d));
}

/// Q4_1: d, m (f16), nibbles as Q4_0. y = q*d + m.
fn q4_1(b: &[u8], y: &mut Vec<f32>) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let qs = &b[4..20];
    y.extend(qs.iter().map(|&q| (q & 0x0f) as f32 * d + m));
    y.extend(qs.iter().map(|&q| (q >> 4) as f32 * d + m));
}

/// The 32 five-bit values of a Q5_0/Q5_1 block from qh (u32 LE, bit j = element j) and qs.
fn q5_values(qh: &[u8], qs: &[u8]) -> [u8; 32] {
    let h = u32::from_le_bytes([qh[0], qh[1], qh[2], qh[3]]);
    let mut q = [0u8; 32];
    for j in 0..16 {
        q[j] = (qs[j] & 0x0f) | (((h >> j) & 1) << 4) as u8;
        q[j + 16] = (qs[j] >> 4) | (((h >> (j + 16)) & 1) << 4) as u8;
    }
    q
}

/// Q5_0: d (f16), qh (4 bytes), qs (16 bytes). y = (q - 16)*d.
fn q5_0(b: &[u8], y: &mut Vec<f32>) {
    let d = f16_at(b, 0);
    let q = q5_values(&b[2..6], &b[6..22]);
    y.extend(q.iter().map(|&q| (q as i32 - 16) as f32 * d));
}

/// Q5_1: d, m (f16), qh, qs. y = q*d + m.
fn q5_1(b: &[u8], y: &mut Vec<f32>) {
    let (d, m) = (f16_at(b, 0), f16_at(b, 2));
    let q = q5_values(&b[4..8], &b[8..24]);
    y.extend(q.iter().map(|&q| q as f32 * d + m));
}

/// Q2_K (84 bytes): scales[16] (low nibble scale, high nibble min), qs[64] (2-bit), d, dmin.
fn q2_k(b: &[u8], y: &mut Vec<f32>) {
    let (scales, qs) = (&b[0..16], &b[16..80]);
    let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
    let mut is = 0;
    for half in 0..2 {
        let q = &qs[half * 32..half * 32 + 32];
        for shift in [0, 2, 4, 6] {
            for part in 0..2 {
                let sc = scales[is];
                is += 1;
                let (dl, ml) = (d * (sc & 0x0f) as f32, dmin * (sc >> 4) as f32);
                let q = &q[part * 16..part * 16 + 16];
                y.extend(q.iter().map(|&v| dl * ((v >> shift) & 3) as f32 - ml));
            }
        }
    }
}

/// Q3_K (110 bytes): hmask[32], qs[64] (2-bit), scales[12] (16 × 6-bit, offset 32), d.
fn q3_k(b: &[u8], y: &mut Vec<f32>) {
    let (hmask, qs, packed) = (&b[0..32], &b[32..96], &b[96..108]);
    let d_all = f16_at(b, 108);
    let mut scales = [0i32; 16];
    for (j, s) in scales.iter_mut().enumerate() {
        let low = if j < 8 {
            packed[j] & 0x0f
        } else {
            packed[j - 8] >> 4
        };
        let high = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
        *s = (low | high << 4) as i32 - 32;
    }
    let mut is = 0;
    let mut m = 1u8;
    for half in 0..2 {
        let q = &qs[half * 32..half * 32 + 32];
        for shift in [0, 2, 4, 6] {
            for part in 0..2 {
                let dl = d_all * scales[is] as f32;
                is += 1;
                for l in part * 16..part * 16 + 16 {
                    let v = ((q[l] >> shift) & 3) as i32 - if hmask[l] & m != 0 { 0 } else { 4 };
                    y.push(dl * v as f32);
                }
            }
            m <<= 1;
        }
    }
}

/// Q4_K (144 bytes): d, dmin (f16), scales[12] (8 × 6-bit scale and min), qs[128]: each 32-byte
/// run holds two sub-blocks of 32 (low nibbles first).
fn q4_k(b: &[u8], y: &mut Vec<f32>) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (scales, qs) = (&b[4..16], &b[16..144]);
    for pair in 0..4 {
        let q = &qs[pair * 32..pair * 32 + 32];
        let (sc, m) = get_scale_min_k4(2 * pair, scales);
        let (d1, m1) = (d * sc as f32, dmin * m as f32);
        let (sc, m) = get_scale_min_k4(2 * pair + 1, scales);
        let (d2, m2) = (d * sc as f32, dmin * m as f32);
        y.extend(q.iter().map(|&v| d1 * (v & 0x0f) as f32 - m1));
        y.extend(q.iter().map(|&v| d2 * (v >> 4) as f32 - m2));
    }
}

/// Q5_K (176 bytes): d, dmin, scales[12] as Q4_K, qh[32] (5th bits, two per 64-value run), qs[128].
fn q5_k(b: &[u8], y: &mut Vec<f32>) {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let (scales, qh, qs) = (&b[4..16], &b[16..48], &b[48..176]);
    for pair in 0..4 {
        let ql = &qs[pair * 32..pair * 32 + 32];
        let (u1, u2) = (1u8 << (2 * pair), 2u8 << (2 * pair));
        let (sc, m) = get_scale_min_k4(2 * pair, scales);
        let (d1, m1) = (d * sc as f32, dmin * m as f32);
        let (sc, m) = get_scale_min_k4(2 * pair + 1, scales);
        let (d2, m2) = (d * sc as f32, dmin * m as f32);
        let hi = |h: u8, u: u8| if h & u != 0 { 16 } else { 0 };
        y.extend((0..32).map(|l| d1 * ((ql[l] & 0x0f) + hi(qh[l], u1)) as f32 - m1));
        y.extend((0..32).map(|l| d2 * ((ql[l] >> 4) + hi(qh[l], u2)) as f32 - m2));
    }
}

/// Q6_K (210 bytes): ql[128] (low nibbles), qh[64] (2 high bits), scales[16] (i8), d.
/// y = d * scale * (q - 32), multiplied in that order.
fn q6_k(b: &[u8], y: &mut Vec<f32>) {
    let d = f16_at(b, 208);
    let mut out = [0f32; 256];
    for half in 0..2 {
        let ql = &b[half * 64..half * 64 + 64];
        let qh = &b[128 + half * 32..128 + half * 32 + 32];
        let sc = &b[192 + half * 8..192 + half * 8 + 8];
        let o = &mut out[half * 128..half * 128 + 128];
        for l in 0..32 {
            let is = l / 16;
            let q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) as i32 - 32;
            let q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) as i32 - 32;
            let q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) as i32 - 32;
            let q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) as i32 - 32;
            let s = |k: usize| d * sc[is + k] as i8 as f32;
            o[l] = s(0) * q1 as f32;
            o[l + 32] = s(2) * q2 as f32;
            o[l + 64] = s(4) * q3 as f32;
            o[l + 96] = s(6) * q4 as f32;
        }
    }
    y.extend_from_slice(&out);
}

/// Q8_K (292 bytes): d (f32), qs[256] (i8), bsums[16] (i16, unused here). y = d*q.
fn q8_k(b: &[u8], y: &mut Vec<f32>) {
    let d = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    y.extend(b[4..260].iter().map(|&q| d * q as i8 as f32));
}

/// 32 IQ4_NL levels from 16 bytes (element j in the low nibble of byte j, j+16 in the high one),
/// each times `d`.
fn iq4_values(qs: &[u8], d: f32, y: &mut Vec<f32>) {
    let level = |c: u8| KVALUES_IQ4NL[c as usize] as f32;
    y.extend(qs.iter().map(|&q| d * level(q & 0x0f)));
    y.extend(qs.iter().map(|&q| d * level(q >> 4)));
}

/// IQ4_NL (18 bytes): d (f16), qs[16] as Q4_0 but each code picks a non-uniform level.
fn iq4_nl(b: &[u8], y: &mut Vec<f32>) {
    iq4_values(&b[2..18], f16_at(b, 0), y);
}

/// IQ4_XS (136 bytes): d (f16), scales_h (u16: 2 high bits per sub-block), scales_l[4] (4 low
/// bits per sub-block), qs[128]: 8 sub-blocks of 32 as IQ4_NL, scaled by d * (6-bit scale - 32).
fn iq4_xs(b: &[u8], y: &mut Vec<f32>) {
    let (d, scales_h) = (f16_at(b, 0), u16le(b, 2));
    for ib in 0..8 {
        let low = (b[4 + ib / 2] >> (4 * (ib % 2))) & 0x0f;
        let high = ((scales_h >> (2 * ib)) & 3) as u8;
        let dl = d * ((low | high << 4) as i32 - 32) as f32;
        iq4_values(&b[8 + 16 * ib..24 + 16 * ib], dl, y);
    }
}
