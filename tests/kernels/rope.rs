//! RoPE against an f64 CPU reference: both pair layouts, partial rotation, a position offset, linear
//! scaling, and positions past 32768 (up to 131072) where a naive f32 angle is off by ~1e-2 rad.

use crate::common::*;
use attend::kernels::rope;

struct Case {
    rows: usize,
    heads: usize,
    head_dim: usize,
    rot_dims: usize,
    pos0: u32,
    base: f32,
    scale: f32,
}

fn reference(x: &[f32], c: &Case, neox: bool) -> Vec<f32> {
    let mut out = x.to_vec();
    let half = c.rot_dims / 2;
    for t in 0..c.rows {
        let pos = (c.pos0 as usize + t) as f64;
        for h in 0..c.heads {
            let base = (t * c.heads + h) * c.head_dim;
            for j in 0..half {
                let theta = pos / c.scale as f64
                    * (c.base as f64).powf(-2.0 * j as f64 / c.rot_dims as f64);
                let (i0, i1) = if neox {
                    (base + j, base + j + half)
                } else {
                    (base + 2 * j, base + 2 * j + 1)
                };
                let (a, b) = (x[i0] as f64, x[i1] as f64);
                out[i0] = (a * theta.cos() - b * theta.sin()) as f32;
                out[i1] = (a * theta.sin() + b * theta.cos()) as f32;
            }
        }
    }
    out
}

async fn check(gpu: &Gpu, rng: &mut Rng, c: Case, atol: f32) {
    let n = c.rows * c.heads * c.head_dim;
    let x = rng.normal(n, 1.0);
    for neox in [false, true] {
        let g = gpu.upload("x", &x).unwrap();
        let mut rec = gpu.recorder("rope");
        rope::rope(
            &mut rec,
            &g,
            c.rows as u32,
            c.heads as u32,
            c.head_dim as u32,
            c.rot_dims as u32,
            c.pos0,
            c.base,
            c.scale,
            neox,
        )
        .unwrap();
        rec.submit();
        let got: Vec<f32> = gpu.read(&g, 0, n).await.unwrap();
        let want = reference(&x, &c, neox);
        let what = format!(
            "rope neox={neox} {}x{}x{} rot {} pos0 {} base {} scale {}",
            c.rows, c.heads, c.head_dim, c.rot_dims, c.pos0, c.base, c.scale
        );
        assert_close(&what, &got, &want, atol, 0.0);
        // Dims past rot_dims are copied bit for bit.
        for (i, (g, w)) in got.iter().zip(&x).enumerate() {
            if i % c.head_dim >= c.rot_dims {
                assert_eq!(
                    g.to_bits(),
                    w.to_bits(),
                    "{what}: untouched dim {i} changed"
                );
            }
        }
    }
}

gpu_test! {
    async fn rope_small_positions_both_modes() {
        let gpu = gpu().await;
        let mut rng = Rng::new(31);
        // |x| ≲ 3.5 and angle error ~1e-6 rad: 1e-5 absolute covers sin/cos and f32 rounding
        // (measured ≤ 1e-6 on lavapipe).
        let cases = [
            Case { rows: 1, heads: 1, head_dim: 2, rot_dims: 2, pos0: 0, base: 10000.0, scale: 1.0 },
            Case { rows: 3, heads: 2, head_dim: 8, rot_dims: 8, pos0: 0, base: 10000.0, scale: 1.0 },
            Case { rows: 7, heads: 9, head_dim: 64, rot_dims: 64, pos0: 5, base: 100000.0, scale: 1.0 },
            Case { rows: 5, heads: 3, head_dim: 64, rot_dims: 32, pos0: 17, base: 10000.0, scale: 4.0 },
            Case { rows: 4, heads: 1, head_dim: 256, rot_dims: 256, pos0: 1000, base: 1e6, scale: 1.0 },
            Case { rows: 3, heads: 5, head_dim: 128, rot_dims: 96, pos0: 300, base: 500000.0, scale: 0.5 },
        ];
        for c in cases {
            check(&gpu, &mut rng, c, 1e-5).await;
        }
    }
}

gpu_test! {
    async fn rope_large_positions_match_f64() {
        let gpu = gpu().await;
        let mut rng = Rng::new(32);
        // Positions 32768..131072: a naive f32 angle would be off by up to ~1e-2 rad (errors of
        // ~3e-2 here); the split-frequency scheme keeps it within 2e-5
        // absolute (measured ≤ 3e-6 on lavapipe).
        let cases = [
            Case { rows: 3, heads: 3, head_dim: 64, rot_dims: 64, pos0: 32768, base: 100000.0, scale: 1.0 },
            Case { rows: 2, heads: 4, head_dim: 256, rot_dims: 256, pos0: 131070, base: 1e6, scale: 1.0 },
            Case { rows: 5, heads: 2, head_dim: 128, rot_dims: 64, pos0: 100_003, base: 10000.0, scale: 8.0 },
            Case { rows: 2, heads: 2, head_dim: 64, rot_dims: 64, pos0: 131_071, base: 500000.0, scale: 1.0 },
        ];
        for c in cases {
            check(&gpu, &mut rng, c, 2e-5).await;
        }
    }
}

gpu_test! {
    async fn rope_qk_rotates_both_tensors_in_one_dispatch() {
        let gpu = gpu().await;
        let mut rng = Rng::new(33);
        // Grouped-query shapes (9 q heads, 3 k heads) and Gemma-like (4 q, 1 k, head 256, partial).
        for &(rows, qh, kh, hd, rot, pos0, base, neox) in &[
            (5usize, 9usize, 3usize, 64usize, 64usize, 3u32, 100000.0f32, false),
            (3, 4, 1, 256, 192, 70_000, 1e6, true),
        ] {
            let q = rng.normal(rows * qh * hd, 1.0);
            let k = rng.normal(rows * kh * hd, 1.0);
            let (gq, gk) = (gpu.upload("q", &q).unwrap(), gpu.upload("k", &k).unwrap());
            let mut rec = gpu.recorder("rope_qk");
            rope::rope_qk(
                &mut rec, &gq, &gk, rows as u32, qh as u32, kh as u32, hd as u32, rot as u32, pos0,
                base, 1.0, neox,
            )
            .unwrap();
            assert_eq!(rec.dispatches, 1);
            rec.submit();
            for (name, g, x, heads) in [("q", &gq, &q, qh), ("k", &gk, &k, kh)] {
                let c = Case { rows, heads, head_dim: hd, rot_dims: rot, pos0, base, scale: 1.0 };
                let got: Vec<f32> = gpu.read(g, 0, x.len()).await.unwrap();
                // Same bound as rope_large_positions_match_f64.
                assert_close(&format!("rope_qk {name} {rows}x{heads}x{hd}"), &got, &reference(x, &c, neox), 2e-5, 0.0);
            }
        }
    }
}

gpu_test! {
    async fn rmsnorm_rope_qk_matches_norm_then_rope() {
        let gpu = gpu().await;
        let mut rng = Rng::new(34);
        let eps = 1e-6;
        // Gemma 3 (4 q heads, 1 k head, head 256, NeoX), a partial rotation, an odd head size.
        for &(rows, qh, kh, hd, rot, pos0, neox) in &[
            (3usize, 4usize, 1usize, 256usize, 256usize, 40_000u32, true),
            (2, 3, 2, 64, 48, 7, false),
            (5, 1, 1, 6, 4, 0, true),
        ] {
            let q = rng.normal(rows * qh * hd, 2.0);
            let k = rng.normal(rows * kh * hd, 2.0);
            let wq = rng.normal(hd, 1.0);
            let wk = rng.normal(hd, 1.0);
            let (gq, gk) = (gpu.upload("q", &q).unwrap(), gpu.upload("k", &k).unwrap());
            let (gwq, gwk) = (gpu.upload("wq", &wq).unwrap(), gpu.upload("wk", &wk).unwrap());
            let mut rec = gpu.recorder("rmsnorm_rope_qk");
            rope::rmsnorm_rope_qk(
                &mut rec, &gq, &gk, &gwq, &gwk, rows as u32, qh as u32, kh as u32, hd as u32,
                rot as u32, pos0, 1e6, 1.0, neox, eps,
            )
            .unwrap();
            rec.submit();
            for (name, g, x, w, heads) in [("q", &gq, &q, &wq, qh), ("k", &gk, &k, &wk, kh)] {
                let normed: Vec<f32> = x
                    .chunks(hd)
                    .flat_map(|row| {
                        let ms = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / hd as f64;
                        let r = 1.0 / (ms + eps as f64).sqrt();
                        row.iter().zip(w).map(move |(&v, &w)| (v as f64 * r * w as f64) as f32)
                    })
                    .collect();
                let c = Case { rows, heads, head_dim: hd, rot_dims: rot, pos0, base: 1e6, scale: 1.0 };
                let want = reference(&normed, &c, neox);
                let got: Vec<f32> = gpu.read(g, 0, x.len()).await.unwrap();
                // Normalized values reach ~|w| * 4: rmsnorm's 1e-4 relative plus rope's 2e-5.
                let what = format!("rmsnorm_rope_qk {name} {rows}x{heads}x{hd} rot {rot}");
                assert_close(&what, &got, &want, 3e-5, 1e-4);
            }
        }
    }
}

gpu_test! {
    async fn rope_rejects_bad_arguments() {
        let gpu = gpu().await;
        let x = gpu.upload("x", &[0f32; 64]).unwrap();
        let mut rec = gpu.recorder("bad");
        assert!(rope::rope(&mut rec, &x, 1, 1, 64, 63, 0, 1e4, 1.0, false).is_err());
        assert!(rope::rope(&mut rec, &x, 1, 1, 32, 64, 0, 1e4, 1.0, false).is_err());
        assert!(rope::rope(&mut rec, &x, 2, 1, 64, 64, 0, 1e4, 1.0, true).is_err());
        assert!(rope::rope(&mut rec, &x, 1, 1, 64, 64, 0, -1.0, 1.0, true).is_err());
        rec.submit();
    }
}

gpu_test! {
    async fn rope_kv_equals_rope_qk_then_kv_store() {
        use attend::kernels::attention::{kv_store, KvPrecision, LayerKv};
        let gpu = gpu().await;
        let mut rng = Rng::new(34);
        // Both pair layouts, partial rotation, several kv heads, a prefill batch and a decode
        // token at a later position: q, and the cache words, bit for bit.
        // Both cache precisions (f16 pairs, f32 words).
        let shapes = [
            (5usize, 9usize, 3usize, 64usize, 64usize, 3u32, false),
            (3, 4, 1, 256, 192, 70, true),
            (1, 6, 2, 32, 16, 41, true),
            (1, 6, 2, 32, 32, 40, false),
        ];
        for (&(rows, qh, kh, hd, rot, pos0, neox), precision) in shapes
            .iter()
            .flat_map(|s| [(s, KvPrecision::F16), (s, KvPrecision::F32)])
        {
            let cap = 80u32;
            let q = rng.normal(rows * qh * hd, 1.0);
            let k = rng.normal(rows * kh * hd, 1.0);
            let v = rng.normal(rows * kh * hd, 1.0);
            let up = |x: &[f32]| gpu.upload("t", x).unwrap();
            let (qa, ka, va, qb, kb, vb) = (up(&q), up(&k), up(&v), up(&q), up(&k), up(&v));
            let (kva, kvb) = (
                LayerKv::with_precision(&gpu, cap, kh as u32, hd as u32, precision).unwrap(),
                LayerKv::with_precision(&gpu, cap, kh as u32, hd as u32, precision).unwrap(),
            );
            let mut rec = gpu.recorder("separate");
            rope::rope_qk(
                &mut rec, &qa, &ka, rows as u32, qh as u32, kh as u32, hd as u32, rot as u32, pos0,
                10000.0, 1.0, neox,
            )
            .unwrap();
            kv_store(&mut rec, &kva, &ka, &va, pos0, rows as u32).unwrap();
            rec.submit();
            let mut rec = gpu.recorder("fused");
            rope::rope_kv(
                &mut rec, &qb, &kb, &vb, &kvb, rows as u32, qh as u32, rot as u32, pos0, 10000.0,
                1.0, neox,
            )
            .unwrap();
            assert_eq!(rec.dispatches, 1);
            rec.submit();
            let what = format!("rope_kv {rows}x{qh}/{kh}x{hd} rot {rot} neox {neox} {precision:?}");
            let qa: Vec<u32> = gpu.read(&qa, 0, q.len()).await.unwrap();
            let qb: Vec<u32> = gpu.read(&qb, 0, q.len()).await.unwrap();
            assert_eq!(qa, qb, "{what}: q");
            let words = (kva.k.size() / 4) as usize;
            for (name, a, b) in [("K", &kva.k, &kvb.k), ("V", &kva.v, &kvb.v)] {
                let a: Vec<u32> = gpu.read(a, 0, words).await.unwrap();
                let b: Vec<u32> = gpu.read(b, 0, words).await.unwrap();
                assert_eq!(a, b, "{what}: {name} cache");
                assert!(a.iter().any(|&w| w != 0), "{what}: {name} cache was written");
            }
        }
        // Positions past the cache are refused.
        let kv = LayerKv::new(&gpu, 4, 1, 32).unwrap();
        let t = gpu.upload("t", &vec![0f32; 64]).unwrap();
        let q = gpu.upload("q", &vec![0f32; 64]).unwrap();
        let mut rec = gpu.recorder("bad");
        assert!(rope::rope_kv(&mut rec, &q, &t, &t, &kv, 2, 1, 32, 3, 1e4, 1.0, false).is_err());
    }
}

gpu_test! {
    async fn rmsnorm_rope_kv_equals_rmsnorm_rope_qk_then_kv_store() {
        use attend::kernels::attention::{kv_store, KvPrecision, LayerKv};
        let gpu = gpu().await;
        let mut rng = Rng::new(35);
        // Gemma-like (4 q heads, 1 kv head, head 256, NeoX, partial rotation) and a grouped
        // decode token: q, k and the cache words bit for bit.
        let shapes = [(3usize, 4usize, 1usize, 256usize, 192usize, 5u32), (1, 6, 2, 64, 64, 50)];
        for (&(rows, qh, kh, hd, rot, pos0), precision) in shapes
            .iter()
            .flat_map(|s| [(s, KvPrecision::F16), (s, KvPrecision::F32)])
        {
            let cap = 64u32;
            let q = rng.normal(rows * qh * hd, 1.0);
            let k = rng.normal(rows * kh * hd, 1.0);
            let v = rng.normal(rows * kh * hd, 1.0);
            let (wq, wk) = (rng.normal(hd, 1.0), rng.normal(hd, 1.0));
            let up = |x: &[f32]| gpu.upload("t", x).unwrap();
            let (qa, ka, va, qb, kb, vb) = (up(&q), up(&k), up(&v), up(&q), up(&k), up(&v));
            let (gwq, gwk) = (up(&wq), up(&wk));
            let (kva, kvb) = (
                LayerKv::with_precision(&gpu, cap, kh as u32, hd as u32, precision).unwrap(),
                LayerKv::with_precision(&gpu, cap, kh as u32, hd as u32, precision).unwrap(),
            );
            let mut rec = gpu.recorder("separate");
            rope::rmsnorm_rope_qk(
                &mut rec, &qa, &ka, &gwq, &gwk, rows as u32, qh as u32, kh as u32, hd as u32,
                rot as u32, pos0, 1e6, 1.0, true, 1e-6,
            )
            .unwrap();
            kv_store(&mut rec, &kva, &ka, &va, pos0, rows as u32).unwrap();
            rec.submit();
            let mut rec = gpu.recorder("fused");
            rope::rmsnorm_rope_kv(
                &mut rec, &qb, &kb, &vb, &kvb, &gwq, &gwk, rows as u32, qh as u32, rot as u32,
                pos0, 1e6, 1.0, true, 1e-6,
            )
            .unwrap();
            assert_eq!(rec.dispatches, 1);
            rec.submit();
            let what = format!("rmsnorm_rope_kv {rows}x{qh}/{kh}x{hd} {precision:?}");
            for (name, a, b, n) in [("q", &qa, &qb, q.len()), ("k", &ka, &kb, k.len())] {
                let a: Vec<u32> = gpu.read(a, 0, n).await.unwrap();
                let b: Vec<u32> = gpu.read(b, 0, n).await.unwrap();
                assert_eq!(a, b, "{what}: {name}");
            }
            let words = (kva.k.size() / 4) as usize;
            for (name, a, b) in [("K", &kva.k, &kvb.k), ("V", &kva.v, &kvb.v)] {
                let a: Vec<u32> = gpu.read(a, 0, words).await.unwrap();
                let b: Vec<u32> = gpu.read(b, 0, words).await.unwrap();
                assert_eq!(a, b, "{what}: {name} cache");
                assert!(a.iter().any(|&w| w != 0), "{what}: {name} cache was written");
            }
        }
    }
}
