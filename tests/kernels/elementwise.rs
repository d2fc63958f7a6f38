//! Elementwise kernels against plain-Rust references, at sizes that take the vec4 path (multiples
//! of 4) and the scalar path (odd sizes), including a grid above 65535 workgroups.

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
    async fn binary_and_unary_ops_match_cpu() {
        let gpu = gpu().await;
        let mut rng = Rng::new(1);
        for &n in &SIZES {
            // Large magnitudes too: silu/gelu must not turn ±30 into NaN.
            let a = rng.normal(n, 8.0);
            let b = rng.normal(n, 1.0);
            let (ga, gb) = (gpu.upload("a", &a).unwrap(), gpu.upload("b", &b).unwrap());
            let outs: Vec<_> = (0..6).map(|_| gpu.storage("out", 4 * n as u64).unwrap()).collect();
            let mut rec = gpu.recorder("ew");
            let m = n as u32;
            ew::add(&mut rec, &ga, &gb, &outs[0], m).unwrap();
            ew::mul(&mut rec, &ga, &gb, &outs[1], m).unwrap();
            ew::silu(&mut rec, &ga, &outs[2], m).unwrap();
            ew::gelu(&mut rec, &ga, &outs[3], m).unwrap();
            ew::swiglu(&mut rec, &ga, &gb, &outs[4], m).unwrap();
            ew::geglu(&mut rec, &ga, &gb, &outs[5], m).unwrap();
            rec.submit();
            type F = fn(f32, f32) -> f32;
            let refs: [(&str, F); 6] = [
                ("add", |x, y| x + y),
                ("mul", |x, y| x * y),
                ("silu", |x, _| silu(x)),
                ("gelu", |x, _| gelu(x)),
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
    async fn in_place_ops_match_cpu() {
        let gpu = gpu().await;
        let mut rng = Rng::new(2);
        for &(rows, cols) in &[(1usize, 1usize), (3, 7), (5, 64), (2, 257), (7, 1000), (1, 49153)] {
            let n = rows * cols;
            let x = rng.normal(n, 1.0);
            let b = rng.normal(n, 1.0);
            let bias = rng.normal(cols, 1.0);
            let gx = gpu.upload("x", &x).unwrap();
            let gy = gpu.upload("y", &x).unwrap();
            let gb = gpu.upload("b", &b).unwrap();
            let gbias = gpu.upload("bias", &bias).unwrap();
            let mut rec = gpu.recorder("ew");
            ew::add_assign(&mut rec, &gx, &gb, n as u32).unwrap();
            ew::scale(&mut rec, &gx, -0.37, n as u32).unwrap();
            ew::add_bias(&mut rec, &gy, &gbias, rows as u32, cols as u32).unwrap();
            rec.submit();
            let got: Vec<f32> = gpu.read(&gx, 0, n).await.unwrap();
            let want: Vec<f32> = x.iter().zip(&b).map(|(x, b)| (x + b) * -0.37).collect();
            // Two roundings of plain f32 arithmetic.
            assert_close(&format!("add_assign+scale {rows}x{cols}"), &got, &want, 1e-6, 1e-6);
            let got: Vec<f32> = gpu.read(&gy, 0, n).await.unwrap();
            let want: Vec<f32> = (0..n).map(|i| x[i] + bias[i % cols]).collect();
            assert_close(&format!("add_bias {rows}x{cols}"), &got, &want, 0.0, 0.0);
        }
    }
}

gpu_test! {
    async fn huge_grid_folds_and_aliasing_is_rejected() {
        let gpu = gpu().await;
        // 65537 workgroups of 256 scalars: the grid must fold into (x, y) and cover every element.
        let n = 65537 * 256 + 3;
        let a = gpu.upload("a", &vec![1.5f32; n]).unwrap();
        let mut rec = gpu.recorder("ew");
        ew::scale(&mut rec, &a, 2.0, n as u32).unwrap();
        // Aliased output and short buffers are errors, not panics or validation failures.
        assert!(ew::add(&mut rec, &a, &a, &a, 4).is_err());
        assert!(ew::silu(&mut rec, &a, &a, 4).is_err());
        let small = gpu.storage("small", 16).unwrap();
        assert!(ew::add(&mut rec, &a, &a, &small, 5).is_err());
        rec.submit();
        let got: Vec<f32> = gpu.read(&a, 0, n).await.unwrap();
        let bad = got.iter().position(|&v| v != 3.0);
        assert_eq!(bad, None, "element not scaled");
    }
}
