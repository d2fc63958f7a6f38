//! K-quant reference quantizers (256-value super-blocks), following ggml's `quantize_row_q*_K_ref`:
//! the same per-sub-block scale searches (`make_qkx2_quants`, `make_qx_quants`, `make_q3_quants`),
//! the same float expression order and `nearest_int` rounding, so the bytes are bit-exact with a
//! ggml build that does not contract multiply-adds into FMAs.

// Index loops mirror ggml's block arithmetic, which keeps the port checkable line by line.
#![allow(clippy::needless_range_loop)]

use super::{f16_bits, f16_to_f32, get_scale_min_k4, QK_K};

/// Magnitude below which ggml treats a group as all zeros (`GROUP_MAX_EPS`).
const GROUP_MAX_EPS: f32 = 1e-15;

/// ggml's `nearest_int`: round half to even via the 1.5·2²³ trick. Only meaningful for
/// |v| < 2²²; larger or non-finite input gives garbage but never panics.
fn nearest_int(v: f32) -> i32 {
    let t = v + 12_582_912.0;
    (t.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Weighted fit of `x ≈ scale·L - the_min` with L in 0..=nmax and min ≤ 0, trying `nstep + 1`
/// candidate inverse scales around nmax/(max-min). Returns (scale, the_min) and fills `l_out`.
#[allow(clippy::too_many_arguments)]
fn make_qkx2_quants(
    nmax: i32,
    x: &[f32],
    weights: &[f32],
    l_out: &mut [u8],
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    use_mad: bool,
) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for i in 1..n {
        if x[i] < min {
            min = x[i];
        }
        if x[i] > max {
            max = x[i];
        }
        let w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l_out[..n].fill(0);
        return (0.0, -min);
    }
    let err = |diff: f32| if use_mad { diff.abs() } else { diff * diff };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    let mut best_error = 0.0f32;
    for i in 0..n {
        let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
        l_out[i] = l as u8;
        best_error += weights[i] * err(scale * l as f32 + min - x[i]);
    }
    if nstep < 1 {
        return (scale, -min);
    }
    let mut laux = [0u8; 32];
    for is in 0..=nstep {
        iscale = (rmin + rdelta * is as f32 + nmax as f32) / (max - min);
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for i in 0..n {
            let l = nearest_int(iscale * (x[i] - min)).clamp(0, nmax);
            laux[i] = l as u8;
            let (w, lf) = (weights[i], l as f32);
            sum_l += w * lf;
            sum_l2 += w * lf * lf;
            sum_xl += w * lf * x[i];
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let mut cur_error = 0.0f32;
            for i in 0..n {
                cur_error += weights[i] * err(this_scale * laux[i] as f32 + this_min - x[i]);
            }
            if cur_error < best_error {
                l_out[..n].copy_from_slice(&laux[..n]);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}

/// Symmetric fit `x ≈ scale·(L - nmax)` with L in 0..2·nmax, weights x² (ggml's rmse_type 1
/// without importance weights), trying 18 inverse scales around -nmax/max. Returns the scale.
fn make_qx_quants(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..x.len()].fill(0);
        return 0.0;
    }
    let quant = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
    let sums = |iscale: f32| {
        let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
        for &v in x {
            let l = quant(iscale, v) as f32;
            let w = v * v;
            sumlx += w * v * l;
            suml2 += w * l * l;
        }
        (sumlx, suml2)
    };
    let mut iscale = -(nmax as f32) / max;
    for (i, &v) in x.iter().enumerate() {
        l_out[i] = (quant(iscale, v) + nmax) as i8;
    }
    let (sumlx, suml2) = sums(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9i32..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = sums(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (i, &v) in x.iter().enumerate() {
                l_out[i] = (quant(iscale, v) + nmax) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Q3_K's per-group fit: like `make_qx_quants` but refined one value at a time (weights x²).
/// Fills `l_out` with L + nmax and returns the scale.
fn make_q3_quants(nmax: i32, x: &[f32], l_out: &mut [i8]) -> f32 {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l_out[..x.len()].fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (i, &v) in x.iter().enumerate() {
        let l = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        l_out[i] = l as i8;
        let w = v * v;
        sumlx += w * v * l as f32;
        suml2 += w * l as f32 * l as f32;
    }
    for _ in 0..5 {
        let mut changed = false;
        for (i, &v) in x.iter().enumerate() {
            let w = v * v;
            let li = l_out[i] as f32;
            let mut slx = sumlx - w * v * li;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * li * li;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != l_out[i] as i32 {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        l_out[i] = new_l as i8;
                        sumlx = slx;
                        suml2 = sl2;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    for l in l_out[..x.len()].iter_mut() {
        *l += nmax as i8;
    }
    if suml2 > 0.0 {
        sumlx / suml2
    } else {
        0.0
    }
}

/// Pack 2-bit values: byte `j/4 + l` of each 128-value half holds L[j+l], L[j+l+32], L[j+l+64],
/// L[j+l+96] at bit offsets 0, 2, 4, 6.
fn pack_2bit(l: &[u8; QK_K], out: &mut Vec<u8>) {
    for j in (0..QK_K).step_by(128) {
        out.extend(
            (0..32)
                .map(|i| l[j + i] | l[j + i + 32] << 2 | l[j + i + 64] << 4 | l[j + i + 96] << 6),
        );
    }
}

/// Q2_K: 16 groups of 16, each fitted with min (MAD weights |x|), 4-bit scales and mins.
pub(super) fn quantize_q2_k(x: &[f32; QK_K], out: &mut Vec<u8>) {
    let mut l = [0u8; QK_K];
    let (mut scales, mut mins) = ([0f32; 16], [0f32; 16]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..16 {
        let xs = &x[16 * j..16 * j + 16];
        let weights: Vec<f32> = xs.iter().map(|v| v.abs()).collect();
        let (s, m) = make_qkx2_quants(3, xs, &weights, &mut l[16 * j..], -0.5, 0.1, 15, true);
        scales[j] = s;
        mins[j] = m;
        max_scale = if s > max_scale { s } else { max_scale };
        max_min = if m > max_min { m } else { max_min };
    }
    let mut sc = [0u8; 16];
    let (mut d, mut dmin) = (f16_bits(0.0), f16_bits(0.0));
    if max_scale > 0.0 {
        let iscale = 15.0 / max_scale;
        for j in 0..16 {
            sc[j] = nearest_int(iscale * scales[j]) as u8;
        }
        d = f16_bits(max_scale / 15.0);
    }
    if max_min > 0.0 {
        let iscale = 15.0 / max_min;
        for j in 0..16 {
            sc[j] |= (nearest_int(iscale * mins[j]) << 4) as u8;
        }
        dmin = f16_bits(max_min / 15.0);
    }
    for j in 0..16 {
        let dl = f16_to_f32(d) * (sc[j] & 0x0f) as f32;
        if dl == 0.0 {
            continue;
        }
        let dm = f16_to_f32(dmin) * (sc[j] >> 4) as f32;
        for i in 16 * j..16 * j + 16 {
            l[i] = nearest_int((x[i] + dm) / dl).clamp(0, 3) as u8;
        }
    }
    out.extend_from_slice(&sc);
    pack_2bit(&l, out);
    out.extend_from_slice(&d.to_le_bytes());
    out.extend_from_slice(&dmin.to_le_bytes());
}

/// Q3_K: 16 groups of 16, symmetric, 6-bit signed scales, 2 low bits in qs and the third in hmask.
pub(super) fn quantize_q3_k(x: &[f32; QK_K], out: &mut Vec<u8>) {
    let mut li = [0i8; QK_K];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
    for j in 0..16 {
        scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut li[16 * j..16 * j + 16]);
        if scales[j].abs() > amax {
            amax = scales[j].abs();
            max_scale = scales[j];
        }
    }
    let mut packed = [0u8; 12];
    let mut d = f16_bits(0.0);
    if max_scale != 0.0 {
        let iscale = -32.0 / max_scale;
        for j in 0..16 {
            let l = ((nearest_int(iscale * scales[j]) as i8).clamp(-32, 31) + 32) as u8;
            if j < 8 {
                packed[j] = l & 0x0f;
            } else {
                packed[j - 8] |= (l & 0x0f) << 4;
            }
            packed[j % 4 + 8] |= (l >> 4) << (2 * (j / 4));
        }
        d = f16_bits(1.0 / iscale);
    }
    for j in 0..16 {
        let low = if j < 8 {
            packed[j] & 0x0f
        } else {
            packed[j - 8] >> 4
        };
        let sc = (low | ((packed[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) as i32 - 32;
        let dl = f16_to_f32(d) * sc as f32;
        if dl == 0.0 {
            continue;
        }
        for i in 16 * j..16 * j + 16 {
            li[i] = (nearest_int(x[i] / dl).clamp(-4, 3) + 4) as i8;
        }
    }
    let mut hmask = [0u8; 32];
    let mut l = [0u8; QK_K];
    for j in 0..QK_K {
        let mut v = li[j] as u8;
        if v > 3 {
            hmask[j % 32] |= 1 << (j / 32);
            v -= 4;
        }
        l[j] = v;
    }
    out.extend_from_slice(&hmask);
    pack_2bit(&l, out);
    out.extend_from_slice(&packed);
    out.extend_from_slice(&d.to_le_bytes());
}

/// Shared by Q4_K and Q5_K: 8 sub-blocks of 32 fitted with `make_qkx2_quants`, 6-bit scales and
/// mins against f16 super-scales, then every value re-quantized against the stored scales.
/// Returns (d, dmin, packed scales, L).
fn fit_k4_k5(
    x: &[f32; QK_K],
    nmax: i32,
    rmin: f32,
    nstep: i32,
) -> (u16, u16, [u8; 12], [u8; QK_K]) {
    let mut l = [0u8; QK_K];
    let (mut scales, mut mins) = ([0f32; 8], [0f32; 8]);
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    let mut weights = [0f32; 32];
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let sum_x2 = xs.iter().fold(0.0f32, |s, v| s + v * v);
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let (s, m) = make_qkx2_quants(
            nmax,
            xs,
            &weights,
            &mut l[32 * j..],
            rmin,
            0.1,
            nstep,
            false,
        );
        scales[j] = s;
        mins[j] = m;
        max_scale = if s > max_scale { s } else { max_scale };
        max_min = if m > max_min { m } else { max_min };
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut packed = [0u8; 12];
    for j in 0..8 {
        let ls = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        let lm = (nearest_int(inv_min * mins[j]) as u8).min(63);
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0x0f) | (lm & 0x0f) << 4;
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    let d = f16_bits(max_scale / 63.0);
    let dmin = f16_bits(max_min / 63.0);
    for j in 0..8 {
        let (sc, m) = get_scale_min_k4(j, &packed);
        let dl = f16_to_f32(d) * sc as f32;
        if dl == 0.0 {
            continue;
        }
        let dm = f16_to_f32(dmin) * m as f32;
        for i in 32 * j..32 * j + 32 {
            l[i] = nearest_int((x[i] + dm) / dl).clamp(0, nmax) as u8;
        }
    }
    (d, dmin, packed, l)
}

/// Q4_K: d, dmin, scales[12], qs[128] (sub-blocks 2k and 2k+1 share 32 bytes: low, high nibble).
pub(super) fn quantize_q4_k(x: &[f32; QK_K], out: &mut Vec<u8>) {
    let (d, dmin, packed, l) = fit_k4_k5(x, 15, -1.0, 20);
    out.extend_from_slice(&d.to_le_bytes());
    out.extend_from_slice(&dmin.to_le_bytes());
    out.extend_from_slice(&packed);
    for j in (0..QK_K).step_by(64) {
        out.extend((0..32).map(|i| l[j + i] | l[j + i + 32] << 4));
    }
}

/// Q5_K: d, dmin, scales[12], qh[32] (bit 2k / 2k+1 = 5th bit of sub-block 2k / 2k+1), qs[128].
pub(super) fn quantize_q5_k(x: &[f32; QK_K], out: &mut Vec<u8>) {
    let (d, dmin, packed, l) = fit_k4_k5(x, 31, -0.5, 15);
    let mut qh = [0u8; 32];
    let mut qs = [0u8; 128];
    for (pair, n) in (0..QK_K).step_by(64).enumerate() {
        for j in 0..32 {
            let (l1, l2) = (l[n + j], l[n + j + 32]);
            qh[j] |= (l1 >> 4) << (2 * pair) | (l2 >> 4) << (2 * pair + 1);
            qs[32 * pair + j] = (l1 & 0x0f) | (l2 & 0x0f) << 4;
        }
    }
    out.extend_from_slice(&d.to_le_bytes());
    out.extend_from_slice(&dmin.to_le_bytes());
    out.extend_from_slice(&packed);
    out.extend_from_slice(&qh);
    out.extend_from_slice(&qs);
}

/// Q6_K: 16 groups of 16 fitted symmetrically, i8 scales against one f16 d; ql[128], qh[64],
/// scales[16], d.
pub(super) fn quantize_q6_k(x: &[f32; QK_K], out: &mut Vec<u8>) {
    let mut l = [0i8; QK_K];
    let mut scales = [0f32; 16];
    let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
    for ib in 0..16 {
        let s = make_qx_quants(32, &x[16 * ib..16 * ib + 16], &mut l[16 * ib..16 * ib + 16]);
        scales[ib] = s;
        if s.abs() > max_abs_scale {
            max_abs_scale = s.abs();
            max_scale = s;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        out.extend_from_slice(&[0u8; 210]);
        return;
    }
    let iscale = -128.0 / max_scale;
    let d = f16_bits(1.0 / iscale);
    let mut sc = [0i8; 16];
    for ib in 0..16 {
        sc[ib] = nearest_int(iscale * scales[ib]).min(127) as i8;
    }
    for j in 0..16 {
        let dl = f16_to_f32(d) * sc[j] as f32;
        if dl == 0.0 {
            continue;
        }
        for i in 16 * j..16 * j + 16 {
            l[i] = (nearest_int(x[i] / dl).clamp(-32, 31) + 32) as i8;
        }
    }
    let (mut ql, mut qh) = ([0u8; 128], [0u8; 64]);
    for (half, j) in (0..QK_K).step_by(128).enumerate() {
        for i in 0..32 {
            let q = |k: usize| l[j + i + 32 * k] as u8;
            ql[64 * half + i] = (q(0) & 0x0f) | (q(2) & 0x0f) << 4;
            ql[64 * half + i + 32] = (q(1) & 0x0f) | (q(3) & 0x0f) << 4;
            qh[32 * half + i] = q(0) >> 4 | (q(1) >> 4) << 2 | (q(2) >> 4) << 4 | (q(3) >> 4) << 6;
        }
    }
    out.extend_from_slice(&ql);
    out.extend_from_slice(&qh);
    out.extend(sc.iter().map(|&s| s as u8));
    out.extend_from_slice(&d.to_le_bytes());
}

/// Q8_K (the activation format of ggml's K-quant dot products): d (f32) = max/-127 with max the
/// signed absmax, qs[256] = min(127, nearest_int(x/d)), bsums[16] = sums of 16 qs each (i16).
pub(super) fn quantize_q8_k(x: &[f32; QK_K], out: &mut Vec<u8>) {
    let (mut max, mut amax) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        out.extend_from_slice(&[0u8; 292]);
        return;
    }
    let iscale = -127.0 / max;
    let qs: Vec<i8> = x
        .iter()
        .map(|&v| nearest_int(iscale * v).min(127) as i8)
        .collect();
    out.extend_from_slice(&(1.0 / iscale).to_le_bytes());
    out.extend(qs.iter().map(|&q| q as u8));
    for group in qs.chunks_exact(16) {
        let sum: i32 = group.iter().map(|&q| q as i32).sum();
        out.extend_from_slice(&(sum as i16).to_le_bytes());
    }
}
