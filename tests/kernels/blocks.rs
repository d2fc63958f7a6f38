//! Random valid blocks of every GPU format and a CPU decoder for them, written from ggml's block
//! layouts (`dequantize_row_*` in ggml-quants.c) independently of the shader and of attend::quant:
//! random codes, random f16 scales, random packed 4- and 6-bit (K-quant, IQ4_XS) scales and mins,
//! random high bits.

use crate::common::*;
use attend::quant::GgmlType;
use half::{bf16, f16};

/// Every format the GPU kernels read (new ones last: `variant_runs` rotates on this order).
pub const FORMATS: [GgmlType; 14] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q4K,
    GgmlType::Q5K,
    GgmlType::Q6K,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::IQ4NL,
    GgmlType::IQ4XS,
];

/// Three row lengths for `ty`: one block (or 32 floats), then two longer ones.
pub fn ks(ty: GgmlType) -> [usize; 3] {
    if ty.block_len() == 256 {
        [256, 512, 768]
    } else {
        [32, 256, 768]
    }
}

fn f16_bytes(v: f32) -> [u8; 2] {
    f16::from_f32(v).to_le_bytes()
}

/// A random f16 scale of magnitude in [lo, 2·lo).
fn scale(rng: &mut Rng, lo: f32) -> [u8; 2] {
    f16_bytes(lo * (1.0 + rng.f32()))
}

fn rand_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.next_u64() as u8).collect()
}

/// `rows × cols` random weights of type `ty` in GGUF layout.
pub fn random_weights(ty: GgmlType, rows: usize, cols: usize, rng: &mut Rng) -> Vec<u8> {
    use GgmlType::*;
    let n = rows * cols;
    let mut out = Vec::with_capacity(ty.row_bytes(cols) * rows);
    match ty {
        F32 => rng
            .normal(n, 1.0)
            .iter()
            .for_each(|v| out.extend(v.to_le_bytes())),
        F16 => rng
            .normal(n, 1.0)
            .iter()
            .for_each(|v| out.extend(f16_bytes(*v))),
        BF16 => rng
            .normal(n, 1.0)
            .iter()
            .for_each(|v| out.extend(bf16::from_f32(*v).to_le_bytes())),
        _ => {
            for _ in 0..n / ty.block_len() {
                match ty {
                    Q8_0 => {
                        out.extend(scale(rng, 0.01));
                        out.extend(rand_bytes(rng, 32));
                    }
                    Q4_0 => {
                        out.extend(scale(rng, 0.1));
                        out.extend(rand_bytes(rng, 16));
                    }
                    Q4_1 => {
                        out.extend(scale(rng, 0.1));
                        out.extend(f16_bytes(rng.f32() * 2.0 - 1.0));
                        out.extend(rand_bytes(rng, 16));
                    }
                    Q5_0 => {
                        out.extend(scale(rng, 0.05));
                        out.extend(rand_bytes(rng, 20));
                    }
                    Q4K => {
                        out.extend(scale(rng, 0.002));
                        out.extend(scale(rng, 0.002));
                        out.extend(rand_bytes(rng, 12 + 128));
                    }
                    Q5K => {
                        out.extend(scale(rng, 0.001));
                        out.extend(scale(rng, 0.002));
                        out.extend(rand_bytes(rng, 12 + 32 + 128));
                    }
                    Q6K => {
                        out.extend(rand_bytes(rng, 128 + 64 + 16));
                        out.extend(scale(rng, 0.0005));
                    }
                    Q2K => {
                        out.extend(rand_bytes(rng, 16 + 64));
                        out.extend(scale(rng, 0.01));
                        out.extend(scale(rng, 0.01));
                    }
                    Q3K => {
                        out.extend(rand_bytes(rng, 32 + 64 + 12));
                        out.extend(scale(rng, 0.002));
                    }
                    IQ4NL => {
                        out.extend(scale(rng, 0.005));
                        out.extend(rand_bytes(rng, 16));
                    }
                    IQ4XS => {
                        out.extend(scale(rng, 0.0002));
                        out.extend(rand_bytes(rng, 2 + 4 + 128));
                    }
                    _ => unreachable!("{ty:?}"),
                }
            }
        }
    }
    assert_eq!(out.len(), ty.row_bytes(cols) * rows);
    out
}

fn h(b: &[u8], o: usize) -> f32 {
    f16::from_le_bytes([b[o], b[o + 1]]).to_f32()
}

/// ggml's get_scale_min_k4.
fn scale_min_k4(j: usize, q: &[u8]) -> (f32, f32) {
    if j < 4 {
        ((q[j] & 63) as f32, (q[j + 4] & 63) as f32)
    } else {
        let d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        let m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        (d as f32, m as f32)
    }
}

/// CPU dequantization of `n` elements, following ggml's `dequantize_row_*` layouts.
pub fn dequant(ty: GgmlType, b: &[u8], n: usize) -> Vec<f32> {
    use GgmlType::*;
    let mut y = Vec::with_capacity(n);
    let bb = ty.block_bytes();
    for blk in 0..n / ty.block_len() {
        let x = &b[blk * bb..(blk + 1) * bb];
        match ty {
            F32 => y.push(f32::from_le_bytes([x[0], x[1], x[2], x[3]])),
            F16 => y.push(h(x, 0)),
            BF16 => y.push(bf16::from_le_bytes([x[0], x[1]]).to_f32()),
            Q8_0 => {
                let d = h(x, 0);
                y.extend(x[2..34].iter().map(|&q| d * (q as i8) as f32));
            }
            Q4_0 | Q4_1 | Q5_0 => {
                let d = h(x, 0);
                let (m, qh, qs) = match ty {
                    Q4_0 => (0.0, 0, &x[2..18]),
                    Q4_1 => (h(x, 2), 0, &x[4..20]),
                    _ => (0.0, u32::from_le_bytes([x[2], x[3], x[4], x[5]]), &x[6..22]),
                };
                for half in 0..2 {
                    for (j, q) in qs.iter().enumerate() {
                        let nib = (q >> (4 * half)) as u32 & 15;
                        let e = j + 16 * half;
                        y.push(match ty {
                            Q4_0 => (nib as f32 - 8.0) * d,
                            Q4_1 => nib as f32 * d + m,
                            _ => ((nib | (((qh >> e) & 1) << 4)) as f32 - 16.0) * d,
                        });
                    }
                }
            }
            Q4K | Q5K => {
                let (d, dmin) = (h(x, 0), h(x, 2));
                let sc = &x[4..16];
                let (qh, qs) = if ty == Q4K {
                    (&x[0..0], &x[16..144])
                } else {
                    (&x[16..48], &x[48..176])
                };
                for s in 0..8 {
                    let (a, m) = scale_min_k4(s, sc);
                    let (d1, m1) = (d * a, dmin * m);
                    for l in 0..32 {
                        let mut q = (qs[32 * (s / 2) + l] >> (4 * (s % 2))) & 15;
                        if ty == Q5K {
                            q += ((qh[l] >> s) & 1) << 4;
                        }
                        y.push(d1 * q as f32 - m1);
                    }
                }
            }
            Q6K => {
                let d = h(x, 208);
                let mut out = [0f32; 256];
                for half in 0..2 {
                    let ql = &x[64 * half..];
                    let qh = &x[128 + 32 * half..];
                    let sc = &x[192 + 8 * half..];
                    for l in 0..32 {
                        let is = l / 16;
                        let q = |lo: u8, sh: usize| {
                            ((lo | (((qh[l] >> sh) & 3) << 4)) as i32 - 32) as f32
                        };
                        let o = &mut out[128 * half..];
                        o[l] = d * (sc[is] as i8) as f32 * q(ql[l] & 15, 0);
                        o[l + 32] = d * (sc[is + 2] as i8) as f32 * q(ql[l + 32] & 15, 2);
                        o[l + 64] = d * (sc[is + 4] as i8) as f32 * q(ql[l] >> 4, 4);
                        o[l + 96] = d * (sc[is + 6] as i8) as f32 * q(ql[l + 32] >> 4, 6);
                    }
                }
                y.extend(out);
            }
            Q2K | Q3K => y.extend(low_bit_k(ty, x)),
            IQ4NL => y.extend(iq4(&x[2..18], h(x, 0))),
            IQ4XS => {
                let d = h(x, 0);
                let high = u16::from_le_bytes([x[2], x[3]]);
                for s in 0..8 {
                    let ls = ((x[4 + s / 2] >> (4 * (s % 2))) & 15) as i32
                        | (((high >> (2 * s)) & 3) << 4) as i32;
                    y.extend(iq4(&x[8 + 16 * s..24 + 16 * s], d * (ls - 32) as f32));
                }
            }
            _ => unreachable!("{ty:?}"),
        }
    }
    y
}

/// ggml's kvalues_iq4nl.
const IQ4_LEVELS: [f32; 16] = [
    -127.0, -104.0, -83.0, -65.0, -49.0, -35.0, -22.0, -10.0, 1.0, 13.0, 25.0, 38.0, 53.0, 69.0,
    89.0, 113.0,
];

/// 32 IQ4 weights from 16 bytes: low nibbles are elements 0..16, high nibbles 16..32.
fn iq4(qs: &[u8], d: f32) -> Vec<f32> {
    (0..32)
        .map(|e| d * IQ4_LEVELS[((qs[e % 16] >> (4 * (e / 16))) & 15) as usize])
        .collect()
}

/// One Q2_K or Q3_K super-block: element e = 128·half + 32·j + l (l < 32) takes 2 bits at 2j of
/// qs[32·half + l] and the scale of its 16-element group e / 16.
fn low_bit_k(ty: GgmlType, x: &[u8]) -> Vec<f32> {
    (0..256)
        .map(|e| {
            let (half, j, l) = (e / 128, (e / 32) % 4, e % 32);
            let g = e / 16;
            if ty == GgmlType::Q2K {
                let q = (x[16 + 32 * half + l] >> (2 * j)) & 3;
                let (d, dmin) = (h(x, 80), h(x, 82));
                let (sc, m) = (x[g] & 15, x[g] >> 4);
                d * sc as f32 * q as f32 - dmin * m as f32
            } else {
                let q = ((x[32 + 32 * half + l] >> (2 * j)) & 3) as i32;
                let hbit = (x[l] >> (4 * half + j)) & 1; // hmask bit e / 32 of byte l
                let packed = &x[96..108];
                let low = (packed[g % 8] >> (4 * (g / 8))) & 15;
                let top = (packed[8 + g % 4] >> (2 * (g / 4))) & 3;
                let sc = (low | top << 4) as i32 - 32;
                h(x, 108) * sc as f32 * (q - if hbit == 1 { 0 } else { 4 }) as f32
            }
        })
        .collect()
}
