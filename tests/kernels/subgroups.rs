//! The subgroup entry points (`shaders/matmul_sg.wgsl`: `matvec_sg`, `matmul_rt_sg`) against the
//! uniform-view kernels they stand in for. Natively, where subgroups have 8 or more invocations
//! (lavapipe's have 8), the other kernel tests already run them against the CPU reference (they
//! are the default there, with the wide weight loads where the device has 64-bit integers); this
//! one checks them bit for bit against `matvec_xu` / `matmul_rt_xu` on the same data, with the
//! wide loads (`quant_load64.wgsl`) and without, and all of them against the reference too. Four
//! repacked formats: a 32-element block with an auxiliary region (Q4_1) and one with two quant
//! runs per row (Q8_0), and the two 256-element ones (Q4_K, Q6_K), whose row groups are read in
//! different runs (each variant is a pipeline lavapipe takes ~2 s to build). Browsers never get
//! them.

use crate::blocks::{dequant, random_weights};
use crate::common::*;
use crate::matvec::{check, reference, upload_weights};
use attend::kernels::elementwise::Glu;
use attend::kernels::linear::linear_glu;
use attend::kernels::matmul::{matmul_with_shape, MatmulShape};
use attend::kernels::matvec::{matvec_with_shape, MatvecShape};

/// One kernel run with subgroup loads off (`sg` 0), on (1) or on with the wide weight loads (2):
/// `kind` 0 is matvec (one token, two row groups per invocation), 1 the GLU matvec, 2 and 3 the
/// register-tiled matmul (8 tokens x 16 rows, 4 x 8 with a bias), over a matrix split in parts.
async fn run(gpu: &Gpu, ty: attend::quant::GgmlType, kind: usize, sg: usize) -> Vec<f32> {
    assert_eq!(gpu.set_subgroup_loads(sg > 0), sg > 0);
    assert_eq!(
        gpu.set_wide_loads(sg == 2),
        sg == 2,
        "64-bit loads need shader-int64"
    );
    // k of 768 with 37 tokens: the uniform view holds 16 of them, so the matmul runs in chunks.
    let (m, n, k) = [(1, 136, 256), (1, 136, 512), (37, 70, 768), (20, 57, 512)][kind];
    let mut rng = Rng::new(900 + kind as u64);
    let bytes = random_weights(ty, n, k, &mut rng);
    let x = rng.normal(m * k, 1.0);
    let bias = rng.normal(n, 1.0);
    let w = upload_weights(gpu, ty, n, k, &bytes, kind != 1);
    let xb = gpu.activation("x", (x.len() * 4) as u64).unwrap();
    gpu.write(&xb, 0, bytemuck::cast_slice(&x));
    let bb = gpu.upload("bias", &bias).unwrap();
    let rows = if kind == 1 { n / 2 } else { n };
    let yb = gpu.upload("y", &vec![f32::NAN; m * rows]).unwrap();
    let tmp = gpu.upload("tmp", &vec![f32::NAN; m * n]).unwrap();
    let mut rec = gpu.recorder("subgroups");
    let mv = MatvecShape {
        wg: 16,
        tpr: 1,
        x_uniform: true,
        groups: 2,
        q8: false,
    };
    let rt = |tokens, rows| MatmulShape::Rt {
        tokens,
        rows,
        wg: 8,
        x_uniform: true,
    };
    match kind {
        0 => matvec_with_shape(&mut rec, &w, &xb, &yb, 1, None, mv),
        1 => {
            w.set_matvec_shape(mv);
            linear_glu(&mut rec, &w, Glu::Silu, &xb, &tmp, &yb, 1).unwrap();
        }
        2 => matmul_with_shape(&mut rec, &w, &xb, &yb, m as u32, None, rt(8, 16)),
        _ => matmul_with_shape(&mut rec, &w, &xb, &yb, m as u32, Some(bb.raw()), rt(4, 8)),
    }
    rec.submit();
    let got = gpu.read(&yb, 0, m * rows).await.unwrap();
    // (The GLU matvec's reference check is `glu_format`'s, in matvec.rs.)
    if kind != 1 {
        let wf = dequant(ty, &bytes, n * k);
        let (want, mag) = reference(&wf, &x, (kind == 3).then_some(&bias[..]), m, n, k);
        check(
            &format!("{} kind {kind} subgroups {sg}", ty.name()),
            &got,
            &want,
            &mag,
        );
    }
    got
}

gpu_test! {
    async fn subgroup_loads_give_the_uniform_kernels_bits() {
        let gpu = gpu().await;
        if cfg!(target_arch = "wasm32") {
            assert!(!gpu.set_subgroup_loads(true), "browsers must not get the subgroup module");
            return;
        }
        // CI's native adapter is lavapipe, whose subgroups have 8 invocations: there these
        // kernels must be on, so this test always checks them in CI.
        if gpu.adapter.name.contains("llvmpipe") {
            assert!(gpu.subgroup_loads(), "lavapipe has subgroups of 8: subgroup loads should be on");
        }
        if !gpu.subgroup_loads() {
            return; // a native adapter without subgroups of 8+: nothing to compare
        }
        // lavapipe has shaderInt64: the wide loads must be on there too.
        if gpu.adapter.name.contains("llvmpipe") {
            assert!(gpu.wide_loads(), "lavapipe has 64-bit integers: wide loads should be on");
        }
        let wide = gpu.wide_loads();
        use attend::quant::GgmlType::{Q4K, Q4_1, Q6K, Q8_0};
        for (ty, kinds) in [(Q4_1, 0..4), (Q4K, 0..4), (Q8_0, 0..3), (Q6K, 0..3)] {
            for kind in kinds {
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                let off = bits(&run(&gpu, ty, kind, 0).await);
                let on = bits(&run(&gpu, ty, kind, 1).await);
                assert_eq!(on, off, "{} kind {kind}: subgroup loads changed bits", ty.name());
                if wide {
                    let on64 = bits(&run(&gpu, ty, kind, 2).await);
                    assert_eq!(on64, off, "{} kind {kind}: wide loads changed bits", ty.name());
                }
            }
        }
        gpu.set_subgroup_loads(true);
        gpu.set_wide_loads(wide);
    }
}
