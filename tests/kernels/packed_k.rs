//! The packed layout of Q4_K and Q6_K (src/quant/pack.rs) against their GGUF layout: the same
//! weights give bit-identical outputs through matvec (one part and split across parts, 1 and 3
//! tokens) and matmul, since both layouts decode the same values and sum them in the same order.
//! Also the A/B timing of the two layouts on Gemma 3 270M's K-quant decode shapes
//! (ignored: `packed_k_timing`).

use crate::blocks::random_weights;
use crate::common::*;
use crate::matvec::Kernel;
use attend::gpu::Gpu;
use attend::kernels::matmul::matmul;
use attend::kernels::matvec::matvec;
use attend::quant::GgmlType;
use attend::weights::{Layout, QMatrix};

/// `ty` weights of `n` x `k` in `layout`, split into parts of at most `part_rows` rows, written in
/// uneven chunks (streamed loading: row groups arrive in pieces).
fn upload(
    gpu: &Gpu,
    ty: GgmlType,
    n: usize,
    k: usize,
    bytes: &[u8],
    layout: Layout,
    part_rows: usize,
) -> QMatrix {
    let limit = (ty.row_bytes(k) * part_rows) as u64;
    let w = QMatrix::with_layout(gpu, "w", ty, n, k, limit, layout).unwrap();
    assert_eq!(w.layout, layout);
    let mut at = 0;
    let mut step = 1;
    while at < bytes.len() {
        let end = (at + step).min(bytes.len());
        w.write(gpu, at as u64, &bytes[at..end]).unwrap();
        at = end;
        step = step * 7 % 3001 + 1;
    }
    w
}

async fn run(gpu: &Gpu, kernel: Kernel, w: &QMatrix, x: &[f32], m: usize) -> Vec<f32> {
    let (n, k) = (w.rows, w.cols);
    let xb = gpu.activation("x", (m * k * 4) as u64).unwrap();
    gpu.write(&xb, 0, bytemuck::cast_slice(x));
    let yb = gpu.storage("y", (m * n * 4) as u64).unwrap();
    let mut rec = gpu.recorder("packed_k");
    kernel(&mut rec, w, &xb, &yb, m as u32, None);
    rec.submit();
    gpu.read(&yb, 0, m * n).await.unwrap()
}

async fn same_in_both_layouts(ty: GgmlType) {
    let gpu = gpu().await;
    let mut rng = Rng::new(ty as u64 + 40);
    // 45 rows: a short last row group; parts of 12 (packed: whole groups) and 45 rows.
    let (n, k) = (45, 512);
    let bytes = random_weights(ty, n, k, &mut rng);
    let x = rng.normal(3 * k, 1.0);
    for part_rows in [45, 12] {
        let gguf = upload(&gpu, ty, n, k, &bytes, Layout::Gguf, part_rows);
        let packed = upload(&gpu, ty, n, k, &bytes, Layout::Packed, part_rows);
        assert!(part_rows == n || packed.parts().len() >= 3, "did not split");
        for (name, kernel, m) in [
            ("matvec", matvec as Kernel, 1),
            ("matvec", matvec, 3),
            ("matmul", matmul, 3),
        ] {
            let a = run(&gpu, kernel, &gguf, &x[..m * k], m).await;
            let b = run(&gpu, kernel, &packed, &x[..m * k], m).await;
            assert!(a.iter().any(|v| *v != 0.0));
            let same = a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(
                same,
                "{} {name} m={m} parts of {part_rows}: layouts differ",
                ty.name()
            );
        }
    }
}

gpu_test! {
    async fn packed_q4_k_same_as_gguf() {
        same_in_both_layouts(GgmlType::Q4K).await
    }
}

gpu_test! {
    async fn packed_q6_k_same_as_gguf() {
        same_in_both_layouts(GgmlType::Q6K).await
    }
}

gpu_test! {
    #[ignore = "timing, not a check: cargo test --release --test kernels packed_k_timing -- --ignored --nocapture"]
    async fn packed_k_timing() {
        let gpu = gpu().await;
        let mut rng = Rng::new(11);
        // Gemma 3 270M: ffn_down (640 x 2048) and attn_output (640 x 1024).
        let mats = [
            (GgmlType::Q6K, 640, 2048),
            (GgmlType::Q4K, 640, 2048),
            (GgmlType::Q4K, 640, 1024),
        ];
        let reps = if cfg!(target_arch = "wasm32") { 4 } else { 10 };
        for (ty, n, k) in mats {
            let bytes = random_weights(ty, n, k, &mut rng);
            let ws = [Layout::Gguf, Layout::Packed].map(|l| upload(&gpu, ty, n, k, &bytes, l, n));
            let x = rng.normal(k, 1.0);
            let xb = gpu.activation("x", (k * 4) as u64).unwrap();
            gpu.write(&xb, 0, bytemuck::cast_slice(&x));
            let yb = gpu.storage("y", (n * 4) as u64).unwrap();
            let mut best = [f64::MAX; 2];
            for round in 0..6 {
                for (i, w) in ws.iter().enumerate() {
                    let (t, _) = timed(&gpu, reps, &yb, n, |rec| {
                        matvec(rec, w, &xb, &yb, 1, None)
                    })
                    .await;
                    if round > 0 {
                        best[i] = best[i].min(t);
                    }
                }
            }
            let line = format!(
                "{} {n}x{k}: gguf {:.3} ms, packed {:.3} ms ({:.2}x)",
                ty.name(), best[0] * 1e3, best[1] * 1e3, best[0] / best[1]
            );
            report(&line);
        }
    }
}
