//! RMSNorm (plain and fused with residual adds) against f64 CPU references, at row lengths that are
//! and are not powers of two, one row and many.

use crate::common::*;
use attend::kernels::norm::{self, Norm};
use attend::kernels::Act;

fn rms_ref(x: &[f32], w: &[f32], dim: usize, eps: f32) -> Vec<f32> {
    let mut out = vec![0f32; x.len()];
    for (xr, or) in x.chunks(dim).zip(out.chunks_mut(dim)) {
        let ms = xr.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / dim as f64;
        let r = 1.0 / (ms + eps as f64).sqrt();
        for i in 0..dim {
            or[i] = (xr[i] as f64 * r * w[i] as f64) as f32;
        }
    }
    out
}

const SHAPES: [(usize, usize); 9] = [
    (1, 1),
    (3, 7),
    (2, 64),
    (5, 255),
    (4, 257),
    (1, 576),
    (33, 64),
    (2, 1000),
    (1, 49153),
];

gpu_test! {
    async fn rmsnorm_matches_cpu() {
        let gpu = gpu().await;
        let mut rng = Rng::new(11);
        // The last case has tiny activations, where eps is a large part of the denominator.
        let cases = SHAPES.iter().map(|&s| (s, 3.0, 1e-6)).chain([((3, 96), 1e-3, 1e-5)]);
        for ((rows, dim), std, eps) in cases {
            let n = rows * dim;
            let x = rng.normal(n, std);
            let w = rng.normal(dim, 1.0);
            let (gx, gw) = (gpu.upload("x", &x).unwrap(), gpu.upload("w", &w).unwrap());
            let gout = gpu.storage("out", 4 * n as u64).unwrap();
            let mut rec = gpu.recorder("rms");
            let x_act = Act::new(&gx, rows as u32, dim as u32);
            norm::rmsnorm(&mut rec, x_act, Norm::new(&gw, eps), &gout, None).unwrap();
            rec.submit();
            let want = rms_ref(&x, &w, dim, eps);
            let got: Vec<f32> = gpu.read(&gout, 0, n).await.unwrap();
            // f32 sums of up to 49153 squares: 1e-5 absolute + 1e-4 relative.
            assert_close(&format!("rmsnorm {rows}x{dim}"), &got, &want, 1e-5, 1e-4);
        }
    }
}

gpu_test! {
    async fn fused_add_and_norm_chains_match_cpu() {
        let gpu = gpu().await;
        let mut rng = Rng::new(13);
        for &(rows, dim) in &[(1usize, 1usize), (3, 7), (2, 64), (4, 257), (1, 640), (2, 1000)] {
            let n = rows * dim;
            let eps = 1e-6;
            let x = rng.normal(n, 2.0);
            let res = rng.normal(n, 1.0);
            let w = rng.normal(dim, 1.0);
            let w2 = rng.normal(dim, 1.0);
            let gx = gpu.upload("x", &x).unwrap();
            let (gw, gw2) = (gpu.upload("w", &w).unwrap(), gpu.upload("w2", &w2).unwrap());
            let res_a = gpu.upload("res a", &res).unwrap();
            let res_b = gpu.upload("res b", &res).unwrap();
            let out_a = gpu.storage("out a", 4 * n as u64).unwrap();
            let out_b = gpu.storage("out b", 4 * n as u64).unwrap();
            let (r, d) = (rows as u32, dim as u32);
            let (n1, n2) = (Norm::new(&gw, eps), Norm::new(&gw2, eps));
            let mut rec = gpu.recorder("fused");
            norm::add_rmsnorm(&mut rec, Act::new(&res_a, r, d), &gx, n1, &out_a, None).unwrap();
            norm::rmsnorm_add_rmsnorm(&mut rec, Act::new(&gx, r, d), n1, &res_b, n2, &out_b, None)
                .unwrap();
            rec.submit();
            // Same tolerances as plain rmsnorm.
            let sum: Vec<f32> = res.iter().zip(&x).map(|(a, b)| a + b).collect();
            let got: Vec<f32> = gpu.read(&res_a, 0, n).await.unwrap();
            assert_close(&format!("add_rmsnorm residual {rows}x{dim}"), &got, &sum, 1e-6, 1e-6);
            let got: Vec<f32> = gpu.read(&out_a, 0, n).await.unwrap();
            let want = rms_ref(&sum, &w, dim, eps);
            assert_close(&format!("add_rmsnorm out {rows}x{dim}"), &got, &want, 1e-5, 1e-4);
            let post: Vec<f32> = res.iter().zip(rms_ref(&x, &w, dim, eps)).map(|(a, b)| a + b).collect();
            let got: Vec<f32> = gpu.read(&res_b, 0, n).await.unwrap();
            assert_close(&format!("rmsnorm_add_rmsnorm residual {rows}x{dim}"), &got, &post, 1e-5, 1e-4);
            let got: Vec<f32> = gpu.read(&out_b, 0, n).await.unwrap();
            let want = rms_ref(&post, &w2, dim, eps);
            assert_close(&format!("rmsnorm_add_rmsnorm out {rows}x{dim}"), &got, &want, 2e-5, 2e-4);
        }
    }
}

gpu_test! {
    async fn norm_rejects_bad_arguments() {
        let gpu = gpu().await;
        let x = gpu.upload("x", &[1f32; 64]).unwrap();
        let w = gpu.upload("w", &[1f32; 16]).unwrap();
        let mut rec = gpu.recorder("bad");
        let nw = Norm::new(&w, 1e-6);
        // Output aliases the input; buffers too short for rows × dim; weight too short.
        assert!(norm::rmsnorm(&mut rec, Act::new(&x, 4, 16), nw, &x, None).is_err());
        let out = gpu.storage("out", 64 * 4).unwrap();
        assert!(norm::rmsnorm(&mut rec, Act::new(&x, 5, 16), nw, &out, None).is_err());
        assert!(norm::rmsnorm(&mut rec, Act::new(&x, 2, 32), nw, &out, None).is_err());
        // Fused norms with different eps (the shader takes one).
        let other = Norm::new(&w, 1e-5);
        let (x4, res) = (Act::new(&x, 4, 16), gpu.storage("res", 64 * 4).unwrap());
        assert!(norm::rmsnorm_add_rmsnorm(&mut rec, x4, nw, &res, other, &out, None).is_err());
        assert_eq!(rec.dispatches, 0);
        rec.submit();
    }
}

gpu_test! {
    async fn norm_bits_do_not_depend_on_workgroup_size() {
        // Each row's sums are taken as a workgroup as wide as the row's reduction (up to 256)
        // would take them, however many invocations run it: CPU adapters run 16, GPUs all, and
        // both must give the same bits. Every allowed size against the widest, for all three
        // entry points, rows that are and are not multiples of the width.
        let gpu = gpu().await;
        let mut rng = Rng::new(17);
        for &(rows, dim) in &[(1usize, 7usize), (3, 64), (2, 257), (1, 576), (4, 1000)] {
            let n = rows * dim;
            let (r, d) = (rows as u32, dim as u32);
            let vw = (dim as u32).min(256).next_power_of_two().clamp(32, 256);
            let x = gpu.upload("x", &rng.normal(n, 2.0)).unwrap();
            let res = rng.normal(n, 1.0);
            let w = gpu.upload("w", &rng.normal(dim, 1.0)).unwrap();
            let w2 = gpu.upload("w2", &rng.normal(dim, 1.0)).unwrap();
            let (n1, n2) = (Norm::new(&w, 1e-6), Norm::new(&w2, 1e-6));
            let mut want: Option<Vec<Vec<f32>>> = None;
            let mut wg = vw;
            while wg >= vw / 32 {
                let outs: Vec<_> = (0..5).map(|_| gpu.storage("out", 4 * n as u64).unwrap()).collect();
                let res_a = gpu.upload("res a", &res).unwrap();
                let res_b = gpu.upload("res b", &res).unwrap();
                let mut rec = gpu.recorder("norm wg");
                let xa = Act::new(&x, r, d);
                norm::rmsnorm_with(&mut rec, xa, n1, &outs[0], None, Some(wg)).unwrap();
                norm::add_rmsnorm_with(&mut rec, Act::new(&res_a, r, d), &x, n1, &outs[1], None, Some(wg))
                    .unwrap();
                norm::rmsnorm_add_rmsnorm_with(&mut rec, xa, n1, &res_b, n2, &outs[2], None, Some(wg))
                    .unwrap();
                rec.submit();
                let mut got = Vec::new();
                for b in [&outs[0], &res_a, &outs[1], &res_b, &outs[2]] {
                    got.push(gpu.read(b, 0, n).await.unwrap());
                }
                match &want {
                    None => want = Some(got),
                    Some(want) => {
                        for (i, (g, w)) in got.iter().zip(want).enumerate() {
                            let same = g.iter().zip(w).all(|(a, b)| a.to_bits() == b.to_bits());
                            assert!(same, "{rows}x{dim}, output {i}: {wg} invocations differ from {vw}");
                        }
                    }
                }
                wg /= 2;
            }
            // Outside vw / 32 ..= vw, or not a power of two: an error, nothing recorded.
            let mut rec = gpu.recorder("bad wg");
            for bad in [vw * 2, vw / 64, 24] {
                let xa = Act::new(&x, r, d);
                let out = gpu.storage("out", 4 * n as u64).unwrap();
                assert!(norm::rmsnorm_with(&mut rec, xa, n1, &out, None, Some(bad)).is_err(), "wg {bad}");
            }
            assert_eq!(rec.dispatches, 0);
            rec.submit();
        }
    }
}

gpu_test! {
    async fn norms_write_int8_as_quantize_does() {
        // A decode step's pre-norms write their output in int8 too, so the int8 matvec after them
        // records no quantize: for each of the three norms, the f32 output must be the plain
        // kernel's bits and the int8 words those `quantize` writes from it (one row and two, 576
        // and 640 wide as SmolLM2's and Gemma 3's), and the recorder must skip exactly the
        // quantize that would repeat them.
        use attend::kernels::matvec_i8::{quantize, xq_bytes};
        let gpu = gpu().await;
        let mut rng = Rng::new(23);
        for &(rows, dim) in &[(1usize, 576usize), (2, 640)] {
            let n = rows * dim;
            let (r, d) = (rows as u32, dim as u32);
            let x = gpu.upload("x", &rng.normal(n, 2.0)).unwrap();
            let res = rng.normal(n, 1.0);
            let w = gpu.upload("w", &rng.normal(dim, 1.0)).unwrap();
            let w2 = gpu.upload("w2", &rng.normal(dim, 1.0)).unwrap();
            let (n1, n2) = (Norm::new(&w, 1e-6), Norm::new(&w2, 1e-6));
            for entry in 0..3 {
                // [plain, fused]: output, residual, int8 words.
                let outs: Vec<_> = (0..2).map(|_| gpu.storage("out", 4 * n as u64).unwrap()).collect();
                let resids: Vec<_> = (0..2).map(|_| gpu.upload("res", &res).unwrap()).collect();
                let xqs: Vec<_> = (0..2).map(|_| gpu.storage("xq", xq_bytes(n)).unwrap()).collect();
                let mut rec = gpu.recorder("int8 norms");
                for fused in [false, true] {
                    let i = fused as usize;
                    let q = fused.then_some(xqs[1].raw());
                    let (out, resid) = (&outs[i], &resids[i]);
                    let before = rec.dispatches;
                    match entry {
                        0 => norm::rmsnorm(&mut rec, Act::new(&x, r, d), n1, out, q),
                        1 => norm::add_rmsnorm(&mut rec, Act::new(resid, r, d), &x, n1, out, q),
                        _ => norm::rmsnorm_add_rmsnorm(&mut rec, Act::new(&x, r, d), n1, resid, n2, out, q),
                    }
                    .unwrap();
                    quantize(&mut rec, out, n, &xqs[i]);
                    // The plain norm then its quantize; the fused norm alone.
                    assert_eq!(rec.dispatches - before, 2 - fused as u32, "entry {entry} fused {fused}");
                }
                // Another dispatch since: the fused output is quantized again (the same words).
                let spare = gpu.storage("spare", 4 * n as u64).unwrap();
                norm::rmsnorm(&mut rec, Act::new(&x, r, d), n1, &spare, None).unwrap();
                let before = rec.dispatches;
                quantize(&mut rec, &outs[1], n, &xqs[1]);
                assert_eq!(rec.dispatches - before, 1, "entry {entry}: a stale mark");
                rec.submit();
                let words = xq_bytes(n) as usize / 4;
                for (what, a, b, len) in [
                    ("out", &outs[0], &outs[1], n),
                    ("residual", &resids[0], &resids[1], n),
                    ("int8", &xqs[0], &xqs[1], words),
                ] {
                    let a: Vec<u32> = gpu.read(a, 0, len).await.unwrap();
                    let b: Vec<u32> = gpu.read(b, 0, len).await.unwrap();
                    assert!(a == b, "{rows}x{dim} entry {entry}: fused {what} differs from plain");
                }
            }
        }
        // Rows that are not whole units, an int8 buffer too small or aliasing the output: errors,
        // nothing recorded.
        let x = gpu.upload("x", &[1f32; 64]).unwrap();
        let out = gpu.storage("out", 64 * 4).unwrap();
        let ones = gpu.upload("w", &[1f32; 32]).unwrap();
        let nw = Norm::new(&ones, 1e-6);
        let xq = gpu.storage("xq", xq_bytes(64)).unwrap();
        let small = gpu.storage("small", xq_bytes(32)).unwrap();
        let mut rec = gpu.recorder("bad int8");
        let odd = gpu.upload("w", &[1f32; 16]).unwrap();
        assert!(norm::rmsnorm(&mut rec, Act::new(&x, 4, 16), Norm::new(&odd, 1e-6), &out, Some(&*xq)).is_err());
        assert!(norm::rmsnorm(&mut rec, Act::new(&x, 2, 32), nw, &out, Some(&*small)).is_err());
        assert!(norm::rmsnorm(&mut rec, Act::new(&x, 2, 32), nw, &out, Some(&*out)).is_err());
        assert_eq!(rec.dispatches, 0);
        rec.submit();
    }
}
