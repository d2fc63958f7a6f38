//! matmul (prefill) and `linear` for every GPU format against the f64 CPU reference of
//! `matvec.rs` (same random valid blocks, same tolerance: `REL · Σ|w·x|`).

use crate::blocks::ks;
use crate::common::*;
use crate::matvec::{per_format, run_linear, variant_runs, X_ACTIVATION};
use attend::kernels::linear::linear;
use attend::kernels::matmul::{default_shape_for, matmul, matmul_with_shape, MatmulShape};
use attend::quant::GgmlType;

/// m and n not multiples of the 32×32 tile, k from one block up, and a split matrix.
async fn matmul_format(ty: GgmlType) {
    let gpu = gpu().await;
    let [k0, k1, k2] = ks(ty);
    let shapes = [
        ((1, 7, k0), false, false),
        ((17, 100, k1), false, true),
        ((64, 257, k2), false, false),
        ((33, 70, k1), true, true),
    ];
    for (i, (shape, split, bias)) in shapes.into_iter().enumerate() {
        run_linear(&gpu, matmul, ty, shape, split, bias, 200 + i as u64).await;
    }
    // Every kernel choice the tune can make, whatever this adapter's default: the workgroup-tiled
    // kernel and the register-tiled one with 4/8 tokens, 4/8/16 rows, x from storage or through
    // the uniform view (in chunks of tokens when k is long).
    let rt = |tokens, rows, wg, x_uniform| MatmulShape::Rt {
        tokens,
        rows,
        wg,
        x_uniform,
    };
    let choices = [
        (MatmulShape::Tiled, false),
        (rt(4, 4, 16, false), false),
        (rt(8, 8, 8, true), true),
        (rt(4, 16, 8, true), true),
        (rt(8, 16, 64, false), true),
    ];
    for (i, (choice, activation)) in choices.into_iter().enumerate() {
        if !variant_runs(ty, i, choices.len()) {
            continue;
        }
        CHOICE.with(|c| c.set(choice));
        X_ACTIVATION.with(|a| a.set(activation));
        let (shape, split, bias) = shapes[1 + i % 3];
        run_linear(&gpu, matmul_choice, ty, shape, split, bias, 210 + i as u64).await;
        X_ACTIVATION.with(|a| a.set(false));
    }
}

thread_local!(static CHOICE: std::cell::Cell<MatmulShape> = const {
    std::cell::Cell::new(MatmulShape::Tiled)
});

/// `matmul` with the kernel in `CHOICE`, in the signature `run_linear` drives.
fn matmul_choice(
    rec: &mut attend::gpu::Recorder,
    w: &attend::weights::QMatrix,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    m: u32,
    bias: Option<&wgpu::Buffer>,
) {
    let shape = CHOICE.with(|c| c.get());
    matmul_with_shape(rec, w, x, y, m, bias, shape)
}

per_format!(matmul_format:
    matmul_f32 = F32, matmul_f16 = F16, matmul_bf16 = BF16, matmul_q8_0 = Q8_0,
    matmul_q4_0 = Q4_0, matmul_q4_1 = Q4_1, matmul_q5_0 = Q5_0, matmul_q4_k = Q4K,
    matmul_q5_k = Q5K, matmul_q6_k = Q6K,
);

// Native only; the browser checks these formats in `few_shapes` (matvec.rs).
per_format!(#[cfg(not(target_arch = "wasm32"))] matmul_format:
    matmul_q2_k = Q2K, matmul_q3_k = Q3K, matmul_iq4_nl = IQ4NL, matmul_iq4_xs = IQ4XS,
);

gpu_test! {
    async fn linear_picks_either_kernel_correctly() {
        let gpu = gpu().await;
        for (i, m) in [1usize, 8, 9, 40].into_iter().enumerate() {
            run_linear(&gpu, linear_ok, GgmlType::Q4_0, (m, 65, 256), false, true, 300 + i as u64)
                .await;
        }
    }
}

/// `linear` with its argument checks unwrapped, in the signature `run_linear` drives.
fn linear_ok(
    rec: &mut attend::gpu::Recorder,
    w: &attend::weights::QMatrix,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    m: u32,
    bias: Option<&wgpu::Buffer>,
) {
    linear(rec, w, x, y, m, bias).unwrap()
}

gpu_test! {
    async fn default_prefill_rows_follow_the_number_of_formats() {
        let gpu = gpu().await;
        let rows = |formats| match default_shape_for(&gpu, formats) {
            MatmulShape::Rt { rows, tokens, .. } => {
                assert_eq!(tokens, 8);
                rows
            }
            MatmulShape::Tiled => 0,
        };
        if gpu.adapter.device_type != "Cpu" {
            assert_eq!(rows(1), 0, "GPUs take the workgroup-tiled kernel");
            return;
        }
        // A browser compiles one pipeline per format, one after another: 16 rows only while few.
        let few = if cfg!(target_arch = "wasm32") { 16 } else { 8 };
        assert_eq!((rows(1), rows(2)), (few, few));
        assert_eq!((rows(3), rows(4)), (8, 8));
    }
}
