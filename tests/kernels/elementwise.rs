//! SwiGLU and GeGLU against plain-Rust references, at sizes that take the vec4 path (multiples of 4)
//! and the scalar path (odd sizes), including a grid above 65535 workgroups. (Their `[gate | up]`
//! row form is tested with the fused matmul, `tests/kernels/matvec.rs`.)

use crate::common::*;
use attend::kernels::elementwise as ew;

fn silu(x: f32) -> f32 {
    (x as f64 / (1.0 + (-x as f64).exp())) as f32
}

fn gelu(x: f32) -> f32 {
    let x = x as f64;
    let u = (2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x * x * x);
    (0.5 * x * (1.0 + u.tanh())) as f32
}

const SIZES: [usize; 8] = [1, 3, 7, 255, 256, 257, 1000, 49153];

gpu_test! {
    async fn glu_activations_match_cpu() {
        let gpu = gpu().await;
        let mut rng = Rng::new(1);
        for &n in &SIZES {
            // Large magnitudes too: silu/gelu must not turn ±30 into NaN.
            let a = rng.normal(n, 8.0);
            let b = rng.normal(n, 1.0);
            let (ga, gb) = (gpu.upload("a", &a).unwrap(), gpu.upload("b", &b).unwrap());
            let outs: Vec<_> = (0..2).map(|_| gpu.storage("out", 4 * n as u64).unwrap()).collect();
            let mut rec = gpu.recorder("ew");
            let m = n as u32;
            ew::swiglu(&mut rec, &ga, &gb, &outs[0], m).unwrap();
            ew::geglu(&mut rec, &ga, &gb, &outs[1], m).unwrap();
            rec.submit();
            type F = fn(f32, f32) -> f32;
            let refs: [(&str, F); 2] = [
                ("swiglu", |x, y| silu(x) * y),
                ("geglu", |x, y| gelu(x) * y),
            ];
            for (out, (name, f)) in outs.iter().zip(refs) {
                let got: Vec<f32> = gpu.read(out, 0, n).await.unwrap();
                let want: Vec<f32> = a.iter().zip(&b).map(|(&x, &y)| f(x, y)).collect();
                // exp/tanh are approximate on GPUs: 1e-5 absolute + 1e-5 relative.
                assert_close(&format!("{name} n={n}"), &got, &want, 1e-5, 1e-5);
            }
        }
    }
}

gpu_test! {
    async fn huge_grid_folds_and_aliasing_is_rejected() {
        let gpu = gpu().await;
        // 65537 workgroups of 256 scalars: the grid must fold into (x, y) and cover every element.
        let n = 65537 * 256 + 3;
        let a = gpu.upload("a", &vec![1.5f32; n]).unwrap();
        let out = gpu.storage("out", 4 * n as u64).unwrap();
        let mut rec = gpu.recorder("ew");
        // Gate and up may be one buffer (both bindings are read-only).
        ew::swiglu(&mut rec, &a, &a, &out, n as u32).unwrap();
        // Aliased output and short buffers are errors, not panics or validation failures.
        assert!(ew::swiglu(&mut rec, &a, &out, &a, 4).is_err());
        assert!(ew::geglu(&mut rec, &out, &a, &out, 4).is_err());
        let small = gpu.storage("small", 16).unwrap();
        assert!(ew::swiglu(&mut rec, &a, &a, &small, 5).is_err());
        rec.submit();
        let got: Vec<f32> = gpu.read(&out, 0, n).await.unwrap();
        let want = silu(1.5) * 1.5;
        let bad = got.iter().position(|&v| (v - want).abs() > 1e-5 * (1.0 + want.abs()));
        assert_eq!(bad, None, "element not computed (want {want})");
    }
}

gpu_test! {
    async fn softcap_matches_tanh_closely() {
        // Final logit soft-capping (Gemma 2), in place: x -> c · tanh(x / c), against f64 tanh to
        // ~1e-6 relative over the whole range: tiny |x| (where tanh's series takes over), both
        // sides of the series/exp switch at |x / c| = 0.25, large |x| (tanh → ±1 exactly, no
        // NaN), on the vec4 and the scalar path.
        let gpu = gpu().await;
        let mut rng = Rng::new(4);
        let cap = 15.0f32;
        for n in [4usize, 1000, 7, 257] {
            let mut x = rng.normal(n, 20.0);
            let special = [0.0, 1e-30, -1e-7, 3.7499, -3.7501, 3.75, 1e4, -1e4, 3e38, -3e38];
            for (i, v) in special.into_iter().enumerate().take(n) {
                x[i] = v;
            }
            let buf = gpu.upload("x", &x).unwrap();
            let mut rec = gpu.recorder("softcap");
            ew::softcap(&mut rec, &buf, n as u32, cap).unwrap();
            rec.submit();
            let got: Vec<f32> = gpu.read(&buf, 0, n).await.unwrap();
            let want: Vec<f32> = x
                .iter()
                .map(|&v| (cap as f64 * (v as f64 / cap as f64).tanh()) as f32)
                .collect();
            assert_close(&format!("softcap n={n}"), &got, &want, 1e-30, 2e-6);
        }
        let buf = gpu.storage("x", 16).unwrap();
        let mut rec = gpu.recorder("softcap");
        assert!(ew::softcap(&mut rec, &buf, 4, 0.0).is_err(), "cap 0");
        assert!(ew::softcap(&mut rec, &buf, 5, 1.0).is_err(), "short buffer");
    }
}
