//! RoPE fused with the KV cache write (`rope_kv`, `rmsnorm_rope_kv`) against an f64 CPU reference:
//! both pair layouts, partial rotation, a position offset, linear scaling, grouped kv heads, and
//! positions past 32768 (up to 131072) where a naive f32 angle is off by ~1e-2 rad. q is checked
//! in place; the cache's K is the reference's rotated k as the cache stores it (f16 or f32), V is
//! v stored bit for bit, and the positions on either side stay empty.

use crate::common::*;
use crate::kv_layout::{stored_bits, Span};
use attend::kernels::attention::{KvPrecision, LayerKv};
use attend::kernels::norm::Norm;
use attend::kernels::rope::{self, QkvActs, RopeParams};
use half::f16;

#[derive(Clone, Copy, Debug)]
struct Case {
    rows: usize,
    heads: usize,
    kv_heads: usize,
    head_dim: usize,
    rot_dims: usize,
    pos0: u32,
    base: f32,
    scale: f32,
    /// Per-pair frequency divisors (empty: none).
    factors: &'static [f32],
    /// Multiplies the rotated dims (LongRoPE's attention factor).
    mscale: f32,
}

/// `x` [rows, heads, head_dim] rotated in f64.
fn reference(x: &[f32], c: &Case, heads: usize, neox: bool) -> Vec<f32> {
    let mut out = x.to_vec();
    let half = c.rot_dims / 2;
    for t in 0..c.rows {
        let pos = (c.pos0 as usize + t) as f64;
        for h in 0..heads {
            let base = (t * heads + h) * c.head_dim;
            for j in 0..half {
                let factor = c.factors.get(j).map_or(1.0, |&f| f as f64);
                let theta = pos / c.scale as f64
                    * (c.base as f64).powf(-2.0 * j as f64 / c.rot_dims as f64)
                    / factor;
                let (i0, i1) = if neox {
                    (base + j, base + j + half)
                } else {
                    (base + 2 * j, base + 2 * j + 1)
                };
                let (a, b) = (x[i0] as f64, x[i1] as f64);
                let (sin, cos) = (theta.sin() * c.mscale as f64, theta.cos() * c.mscale as f64);
                out[i0] = (a * cos - b * sin) as f32;
                out[i1] = (a * sin + b * cos) as f32;
            }
        }
    }
    out
}

/// Each head row of `x` RMS-normalized with weight `w`, in f64.
fn rms_norm(x: &[f32], w: &[f32], eps: f32) -> Vec<f32> {
    x.chunks(w.len())
        .flat_map(|row| {
            let ms = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / w.len() as f64;
            let r = 1.0 / (ms + eps as f64).sqrt();
            row.iter()
                .zip(w)
                .map(move |(&v, &w)| (v as f64 * r * w as f64) as f32)
        })
        .collect()
}

/// Whether a stored K value is what the cache makes of some value within `tol` of `want`: within
/// `tol` for an f32 cache; for f16, between the roundings of `want ∓ tol` (rounding is monotone).
fn k_ok(precision: KvPrecision, got: f32, want: f32, tol: f64) -> bool {
    let w = want as f64;
    match precision {
        KvPrecision::F32 => (got as f64 - w).abs() <= tol,
        KvPrecision::F16 => {
            let (lo, hi) = (f16::from_f64(w - tol), f16::from_f64(w + tol));
            lo.to_f32() <= got && got <= hi.to_f32()
        }
    }
}

/// `rope_kv` (or, with `eps`, `rmsnorm_rope_kv` with random norm weights) on random q, k, v in one
/// dispatch: q in place and the cache's K within `atol + rtol·|ref|` of the f64 reference, V
/// stored exactly, the positions just before and after untouched.
async fn check(
    gpu: &Gpu,
    rng: &mut Rng,
    c: Case,
    neox: bool,
    precision: KvPrecision,
    eps: Option<f32>,
    (atol, rtol): (f32, f32),
) {
    let hd = c.head_dim;
    let std = if eps.is_some() { 2.0 } else { 1.0 };
    let q = rng.normal(c.rows * c.heads * hd, std);
    let k = rng.normal(c.rows * c.kv_heads * hd, std);
    let v = rng.normal(c.rows * c.kv_heads * hd, 1.0);
    let (lo, hi) = (
        c.pos0.saturating_sub(1) as usize,
        c.pos0 as usize + c.rows + 1,
    );
    let kv = LayerKv::with_precision(gpu, hi as u32, c.kv_heads as u32, hd as u32, precision);
    let kv = kv.unwrap();
    let up = |x: &[f32]| gpu.upload("t", x).unwrap();
    let (gq, gk, gv) = (up(&q), up(&k), up(&v));
    let (rows, heads, rot) = (c.rows as u32, c.heads as u32, c.rot_dims as u32);
    let acts = QkvActs {
        q: &gq,
        k: &gk,
        v: &gv,
        rows,
    };
    let p = RopeParams {
        n_heads: heads,
        rope_dims: rot,
        pos0: c.pos0,
        base: c.base,
        scale: c.scale,
        neox,
        factors: c.factors,
        mscale: c.mscale,
    };
    let mut rec = gpu.recorder("rope_kv");
    let (q_in, k_in, _w) = match eps {
        None => {
            rope::rope_kv(&mut rec, acts, &kv, &p).unwrap();
            (q.clone(), k.clone(), None)
        }
        Some(eps) => {
            let (wq, wk) = (rng.normal(hd, 1.0), rng.normal(hd, 1.0));
            let w = (up(&wq), up(&wk));
            let (qn, kn) = (Norm::new(&w.0, eps), Norm::new(&w.1, eps));
            rope::rmsnorm_rope_kv(&mut rec, acts, &kv, qn, kn, &p).unwrap();
            (rms_norm(&q, &wq, eps), rms_norm(&k, &wk, eps), Some(w))
        }
    };
    assert_eq!(rec.dispatches, 1);
    rec.submit();
    let what = format!("{c:?} neox={neox} {precision:?} norm={eps:?}");
    let got_q: Vec<f32> = gpu.read(&gq, 0, q.len()).await.unwrap();
    let got_k: Vec<f32> = gpu.read(&gk, 0, k.len()).await.unwrap();
    let want_k = reference(&k_in, &c, c.kv_heads, neox);
    assert_close(
        &format!("{what}: q"),
        &got_q,
        &reference(&q_in, &c, c.heads, neox),
        atol,
        rtol,
    );
    if eps.is_some() {
        // k is normalized and rotated in place too.
        assert_close(&format!("{what}: k"), &got_k, &want_k, atol, rtol);
    } else {
        // Dims past rot_dims are copied bit for bit; k is left as it was.
        for (i, (g, w)) in got_q.iter().zip(&q).enumerate() {
            if i % hd >= c.rot_dims {
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "{what}: untouched q dim {i} changed"
                );
            }
        }
        assert_eq!(got_k, k, "{what}: k input changed");
    }
    let span = Span::read(gpu, &kv, lo, hi - lo).await;
    for pos in lo..hi {
        let t = pos.checked_sub(c.pos0 as usize).filter(|&t| t < c.rows);
        for kvh in 0..c.kv_heads {
            for dim in 0..hd {
                let at = format!("{what}: pos {pos} kv head {kvh} dim {dim}");
                let (kb, vb) = (
                    span.bits(true, pos, kvh, dim),
                    span.bits(false, pos, kvh, dim),
                );
                let Some(t) = t else {
                    assert_eq!((kb, vb), (0, 0), "{at}: outside the rows, written");
                    continue;
                };
                let i = (t * c.kv_heads + kvh) * hd + dim;
                assert_eq!(vb, stored_bits(precision, v[i]), "{at}: V");
                let exact = match eps {
                    // The cache holds the k the dispatch left in place, as stored.
                    Some(_) => Some(got_k[i]),
                    None => (dim >= c.rot_dims).then_some(k[i]),
                };
                if let Some(x) = exact {
                    assert_eq!(kb, stored_bits(precision, x), "{at}: K is not k stored");
                }
                let (got, want) = (span.value(true, pos, kvh, dim), want_k[i]);
                let tol = atol as f64 + rtol as f64 * want.abs() as f64;
                assert!(
                    k_ok(precision, got, want, tol),
                    "{at}: K {got}, reference {want}"
                );
            }
        }
    }
}

const BOTH: [KvPrecision; 2] = [KvPrecision::F16, KvPrecision::F32];

gpu_test! {
    async fn rope_kv_small_positions_both_modes() {
        let gpu = gpu().await;
        let mut rng = Rng::new(31);
        // |x| ≲ 3.5 and angle error ~1e-6 rad: 1e-5 absolute covers sin/cos and f32 rounding
        // (measured ≤ 1e-6 on lavapipe). Grouped kv heads, a decode token, partial rotation.
        let cases = [
            Case { rows: 1, heads: 1, kv_heads: 1, head_dim: 2, rot_dims: 2, pos0: 0, base: 10000.0, scale: 1.0, factors: &[], mscale: 1.0 },
            Case { rows: 3, heads: 2, kv_heads: 1, head_dim: 8, rot_dims: 8, pos0: 0, base: 10000.0, scale: 1.0, factors: &[], mscale: 1.0 },
            Case { rows: 7, heads: 9, kv_heads: 3, head_dim: 64, rot_dims: 64, pos0: 5, base: 100000.0, scale: 1.0, factors: &[], mscale: 1.0 },
            Case { rows: 5, heads: 3, kv_heads: 3, head_dim: 64, rot_dims: 32, pos0: 17, base: 10000.0, scale: 4.0, factors: &[], mscale: 1.0 },
            Case { rows: 4, heads: 1, kv_heads: 1, head_dim: 256, rot_dims: 256, pos0: 1000, base: 1e6, scale: 1.0, factors: &[], mscale: 1.0 },
            Case { rows: 3, heads: 5, kv_heads: 5, head_dim: 128, rot_dims: 96, pos0: 300, base: 500000.0, scale: 0.5, factors: &[], mscale: 1.0 },
            Case { rows: 1, heads: 6, kv_heads: 2, head_dim: 32, rot_dims: 16, pos0: 41, base: 10000.0, scale: 1.0, factors: &[], mscale: 1.0 },
        ];
        for c in cases {
            for (neox, precision) in [false, true].into_iter().flat_map(|n| BOTH.map(|p| (n, p))) {
                check(&gpu, &mut rng, c, neox, precision, None, (1e-5, 0.0)).await;
            }
        }
    }
}

gpu_test! {
    async fn rope_kv_large_positions_match_f64() {
        let gpu = gpu().await;
        let mut rng = Rng::new(32);
        // Positions 32768..131072: a naive f32 angle would be off by up to ~1e-2 rad (errors of
        // ~3e-2 here); the split-frequency scheme keeps it within 2e-5
        // absolute (measured ≤ 3e-6 on lavapipe).
        let cases = [
            Case { rows: 3, heads: 3, kv_heads: 1, head_dim: 64, rot_dims: 64, pos0: 32768, base: 100000.0, scale: 1.0, factors: &[], mscale: 1.0 },
            Case { rows: 2, heads: 4, kv_heads: 1, head_dim: 256, rot_dims: 256, pos0: 131070, base: 1e6, scale: 1.0, factors: &[], mscale: 1.0 },
            Case { rows: 5, heads: 2, kv_heads: 2, head_dim: 128, rot_dims: 64, pos0: 100_003, base: 10000.0, scale: 8.0, factors: &[], mscale: 1.0 },
            Case { rows: 2, heads: 2, kv_heads: 1, head_dim: 64, rot_dims: 64, pos0: 131_071, base: 500000.0, scale: 1.0, factors: &[], mscale: 1.0 },
            Case { rows: 3, heads: 4, kv_heads: 1, head_dim: 256, rot_dims: 192, pos0: 70_000, base: 1e6, scale: 1.0, factors: &[], mscale: 1.0 },
        ];
        for c in cases {
            // A cache this long holds 2^17 positions per dim: f32 only where it stays ≤ 64 MiB.
            let f32_bytes = (c.pos0 as usize + c.rows + 1) * c.kv_heads * c.head_dim * 4;
            let precisions = if f32_bytes <= 64 << 20 { &BOTH[..] } else { &BOTH[..1] };
            for (neox, &precision) in [false, true].into_iter().flat_map(|n| precisions.iter().map(move |p| (n, p))) {
                check(&gpu, &mut rng, c, neox, precision, None, (2e-5, 0.0)).await;
            }
        }
    }
}

/// Frequency divisors shaped like Llama 3.x's `rope_freqs.weight` for 32 pairs: 1 for the high
/// frequencies, the scaling factor (8) for the low ones, a smooth ramp between.
const LLAMA3_FACTORS: [f32; 32] = {
    let ramp = [1.0, 1.0, 1.0, 1.3, 2.1, 3.4, 5.2, 8.0];
    let mut f = [8.0f32; 32];
    let mut j = 0;
    while j < ramp.len() {
        f[j] = ramp[j];
        j += 1;
    }
    f
};

gpu_test! {
    async fn rope_kv_frequency_factors_match_f64() {
        let gpu = gpu().await;
        let mut rng = Rng::new(35);
        // Llama 3.x files divide each pair's frequency by its factor; positions below and past
        // the original context, a decode token, partial rotation (factors per rotated pair).
        let cases = [
            Case { rows: 3, heads: 4, kv_heads: 2, head_dim: 64, rot_dims: 64, pos0: 5, base: 500000.0, scale: 1.0, factors: &LLAMA3_FACTORS, mscale: 1.0 },
            Case { rows: 1, heads: 4, kv_heads: 1, head_dim: 64, rot_dims: 64, pos0: 9000, base: 500000.0, scale: 1.0, factors: &LLAMA3_FACTORS, mscale: 1.0 },
            Case { rows: 2, heads: 2, kv_heads: 2, head_dim: 128, rot_dims: 64, pos0: 40_000, base: 500000.0, scale: 2.0, factors: &LLAMA3_FACTORS, mscale: 1.0 },
            // LongRoPE (Phi-3.5 / Phi-4-mini): factors and an attention factor on cos and sin.
            Case { rows: 4, heads: 3, kv_heads: 1, head_dim: 96, rot_dims: 64, pos0: 70, base: 10000.0, scale: 1.0, factors: &LLAMA3_FACTORS, mscale: 1.19 },
        ];
        for c in cases {
            for (neox, precision) in [false, true].into_iter().flat_map(|n| BOTH.map(|p| (n, p))) {
                check(&gpu, &mut rng, c, neox, precision, None, (2e-5, 0.0)).await;
            }
            check(&gpu, &mut rng, c, true, KvPrecision::F16, Some(1e-6), (3e-5, 1e-4)).await;
        }
    }
}

gpu_test! {
    async fn rmsnorm_rope_kv_matches_norm_then_rope() {
        let gpu = gpu().await;
        let mut rng = Rng::new(34);
        // Gemma 3 (4 q heads, 1 kv head, head 256, NeoX, whole or partial rotation), grouped
        // heads, a decode token, an odd head size.
        let shapes = [
            (3usize, 4usize, 1usize, 256usize, 256usize, 40_000u32, true),
            (3, 4, 1, 256, 192, 5, true),
            (2, 3, 3, 64, 48, 7, false),
            (1, 6, 2, 64, 64, 50, true),
            (5, 1, 1, 6, 4, 0, true),
        ];
        for (rows, heads, kv_heads, head_dim, rot_dims, pos0, neox) in shapes {
            let c = Case { rows, heads, kv_heads, head_dim, rot_dims, pos0, base: 1e6, scale: 1.0, factors: &[], mscale: 1.0 };
            for precision in BOTH {
                // Normalized values reach ~|w| * 4: rmsnorm's 1e-4 relative plus rope's 2e-5.
                check(&gpu, &mut rng, c, neox, precision, Some(1e-6), (3e-5, 1e-4)).await;
            }
        }
    }
}

gpu_test! {
    async fn rope_rejects_bad_arguments() {
        let gpu = gpu().await;
        let x = gpu.upload("x", &[0f32; 64]).unwrap();
        let (k, v) = (gpu.upload("k", &[0f32; 64]).unwrap(), gpu.upload("v", &[0f32; 64]).unwrap());
        let kv = LayerKv::new(&gpu, 4, 1, 64).unwrap();
        let kv32 = LayerKv::new(&gpu, 4, 1, 32).unwrap();
        let mut rec = gpu.recorder("bad");
        let acts = |rows| QkvActs { q: &x, k: &k, v: &v, rows };
        let p = |rope_dims, pos0, base, neox| RopeParams { n_heads: 1, rope_dims, pos0, base, scale: 1.0, neox, factors: &[], mscale: 1.0 };
        // Odd rot_dims, rot_dims past head_dim, rows past the buffers, a negative base.
        assert!(rope::rope_kv(&mut rec, acts(1), &kv, &p(63, 0, 1e4, false)).is_err());
        assert!(rope::rope_kv(&mut rec, acts(1), &kv32, &p(64, 0, 1e4, false)).is_err());
        assert!(rope::rope_kv(&mut rec, acts(2), &kv, &p(64, 0, 1e4, true)).is_err());
        assert!(rope::rope_kv(&mut rec, acts(1), &kv, &p(64, 0, -1.0, true)).is_err());
        // A zero or NaN mscale.
        for mscale in [0.0, f32::NAN] {
            let bad = RopeParams { mscale, ..p(64, 0, 1e4, false) };
            assert!(rope::rope_kv(&mut rec, acts(1), &kv, &bad).is_err());
        }
        // Frequency factors: one per rotated pair, each positive and finite.
        let short = [1.0f32; 31];
        let zero = { let mut f = [1.0f32; 32]; f[5] = 0.0; f };
        let nan = { let mut f = [1.0f32; 32]; f[31] = f32::NAN; f };
        for factors in [&short[..], &zero[..], &nan[..]] {
            let bad = RopeParams { factors, ..p(64, 0, 1e4, false) };
            assert!(rope::rope_kv(&mut rec, acts(1), &kv, &bad).is_err());
        }
        // Positions past the cache.
        assert!(rope::rope_kv(&mut rec, acts(2), &kv32, &p(32, 3, 1e4, false)).is_err());
        let w = gpu.upload("w", &[1f32; 64]).unwrap();
        let w2 = gpu.upload("w2", &[1f32; 64]).unwrap();
        let (qn, kn) = (Norm::new(&w, 1e-6), Norm::new(&w2, 1e-6));
        assert!(rope::rmsnorm_rope_kv(&mut rec, acts(2), &kv32, qn, kn, &p(32, 3, 1e4, true)).is_err());
        // q and k norms with different eps (the shader takes one).
        let kn5 = Norm::new(&w2, 1e-5);
        assert!(rope::rmsnorm_rope_kv(&mut rec, acts(1), &kv32, qn, kn5, &p(32, 0, 1e4, true)).is_err());
        assert_eq!(rec.dispatches, 0);
        rec.submit();
    }
}

gpu_test! {
    async fn rope_kv_cache_write_is_bit_exact() {
        let gpu = gpu().await;
        for precision in BOTH {
            cache_write_bit_exact(&gpu, precision).await;
        }
    }
}

/// With rot_dims 0 rope_kv only stores: two writes (positions 0..7 and 30..50) into a cache of 50,
/// every word read back against the layout, exact values, f16 halfway cases and subnormals.
async fn cache_write_bit_exact(gpu: &Gpu, precision: KvPrecision) {
    let (cap, n_kv, d) = (50usize, 3usize, 80usize);
    let row = n_kv * d;
    let kv = LayerKv::with_precision(gpu, cap as u32, n_kv as u32, d as u32, precision).unwrap();
    assert_eq!(kv.bytes(), 2 * (cap * row) as u64 * precision.bytes());
    let mut rng = Rng::new(4);
    let (m_a, pos_b, m_b) = (7usize, 30usize, 20usize);
    let mut k = rng.normal((m_a + m_b) * row, 1.0);
    let v = rng.normal((m_a + m_b) * row, 4.0);
    // Exactly representable values, halfway cases, large values, f16 subnormals (2^-24 and up).
    let special = [
        0.0,
        -0.0,
        1.0,
        -2.5,
        65504.0,
        1.0 + 1.0 / 4096.0,
        0.1,
        3.0e4,
    ];
    k[..8].copy_from_slice(&special);
    k[8..12].copy_from_slice(&[3.0e-6, -4.0e-5, 6.0e-8, 1.0e-9]);
    let q = rng.normal((m_a + m_b) * row, 1.0);
    let up = |x: &[f32]| gpu.upload("t", x).unwrap();
    let (ka, kb) = k.split_at(m_a * row);
    let (va, vb) = v.split_at(m_a * row);
    let (qa, qb) = q.split_at(m_a * row);
    let (ka, va, kb, vb, gqa, gqb) = (up(ka), up(va), up(kb), up(vb), up(qa), up(qb));
    let mut rec = gpu.recorder("store");
    let p = RopeParams {
        n_heads: n_kv as u32,
        rope_dims: 0,
        pos0: 0,
        base: 1e4,
        scale: 1.0,
        neox: false,
        factors: &[],
        mscale: 1.0,
    };
    let acts = |q, k, v, rows| QkvActs { q, k, v, rows };
    rope::rope_kv(&mut rec, acts(&gqa, &ka, &va, m_a as u32), &kv, &p).unwrap();
    let p = RopeParams {
        pos0: pos_b as u32,
        neox: true,
        ..p
    };
    rope::rope_kv(&mut rec, acts(&gqb, &kb, &vb, m_b as u32), &kv, &p).unwrap();
    rec.submit();
    let got_q: Vec<f32> = gpu.read(&gqa, 0, qa.len()).await.unwrap();
    assert_eq!(got_q, qa, "q with nothing to rotate changed");
    let span = Span::read(gpu, &kv, 0, cap).await;
    for pos in 0..cap {
        let tok = match pos {
            p if p < m_a => Some(p),
            p if (pos_b..pos_b + m_b).contains(&p) => Some(p - pos_b + m_a),
            _ => None,
        };
        for kvh in 0..n_kv {
            for dim in 0..d {
                for (is_k, src) in [(true, &k), (false, &v)] {
                    let want =
                        tok.map_or(0, |t| stored_bits(precision, src[t * row + kvh * d + dim]));
                    let got = span.bits(is_k, pos, kvh, dim);
                    let name = if is_k { "K" } else { "V" };
                    assert_eq!(
                        got, want,
                        "{precision:?} {name} kv head {kvh} pos {pos} dim {dim}"
                    );
                }
            }
        }
    }
}

gpu_test! {
    async fn rmsnorm_rope_kv_bits_do_not_depend_on_workgroup_size() {
        // As for the row norms: the per-head sums are taken head_dim/2 wide (32..128 here),
        // whichever workgroup runs them (16 invocations on CPU adapters), so q, k and the cache
        // hold the same bits for every allowed size.
        let gpu = gpu().await;
        let mut rng = Rng::new(36);
        for (rows, heads, kv_heads, hd, rot) in [(3usize, 4usize, 1usize, 256usize, 256u32), (2, 3, 3, 64, 48), (5, 1, 1, 6, 4)] {
            let vw = ((hd / 2) as u32).min(256).next_power_of_two().clamp(32, 256);
            let q = rng.normal(rows * heads * hd, 2.0);
            let k = rng.normal(rows * kv_heads * hd, 2.0);
            let v = rng.normal(rows * kv_heads * hd, 1.0);
            let up = |x: &[f32]| gpu.upload("t", x).unwrap();
            let (wq, wk) = (up(&rng.normal(hd, 1.0)), up(&rng.normal(hd, 1.0)));
            let norms = (Norm::new(&wq, 1e-6), Norm::new(&wk, 1e-6));
            let p = RopeParams { n_heads: heads as u32, rope_dims: rot, pos0: 7, base: 1e6, scale: 1.0, neox: true, factors: &[], mscale: 1.0 };
            let mut want: Option<Vec<Vec<u32>>> = None;
            let mut wg = vw;
            while wg >= (vw / 32).max(1) {
                let (gq, gk, gv) = (up(&q), up(&k), up(&v));
                let kv = LayerKv::new(&gpu, 7 + rows as u32, kv_heads as u32, hd as u32).unwrap();
                let acts = QkvActs { q: &gq, k: &gk, v: &gv, rows: rows as u32 };
                let mut rec = gpu.recorder("rmsnorm_rope_kv wg");
                rope::rmsnorm_rope_kv_with(&mut rec, acts, &kv, norms, &p, Some(wg)).unwrap();
                rec.submit();
                let words = |b: &wgpu::Buffer| (b.size() / 4) as usize;
                let mut got = Vec::new();
                for b in [&gq, &gk, &kv.k, &kv.v] {
                    got.push(gpu.read::<u32>(b, 0, words(b)).await.unwrap());
                }
                match &want {
                    None => want = Some(got),
                    Some(want) => {
                        for (i, (g, w)) in got.iter().zip(want).enumerate() {
                            assert!(g == w, "{rows}x{heads}x{hd}, buffer {i}: {wg} invocations differ from {vw}");
                        }
                    }
                }
                wg /= 2;
            }
        }
    }
}
