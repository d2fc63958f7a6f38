//! Embedding gather from quantized tables (every GPU format, whole and split tables) against the
//! CPU dequantization of `blocks.rs`, times a scale. Dequantization is exact up to one rounding
//! of `d·q − m` (the GPU may fuse it), so the tolerance is 1e-6 relative plus 1e-6 of the row's
//! largest value. Out-of-range ids give zero rows.

use crate::blocks::{dequant, ks, random_weights};
use crate::common::*;
use crate::matvec::{per_format, upload_weights};
use attend::kernels::embedding::embedding;
use attend::quant::GgmlType;

async fn embedding_format(ty: GgmlType) {
    let gpu = gpu().await;
    for (split, cols) in [(false, ks(ty)[0]), (false, ks(ty)[2]), (true, ks(ty)[1])] {
        embedding_case(&gpu, ty, 301, cols, split, 7 + cols as u64).await;
    }
}

/// Gather random rows, both ends, out-of-range ids and (split) both sides of every part
/// boundary of a random `rows × cols` table, and check them.
pub async fn embedding_case(
    gpu: &attend::gpu::Gpu,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    split: bool,
    seed: u64,
) {
    {
        let mut rng = Rng::new(seed);
        let bytes = random_weights(ty, rows, cols, &mut rng);
        let table = dequant(ty, &bytes, rows * cols);
        let w = upload_weights(gpu, ty, rows, cols, &bytes, split);
        let mut ids: Vec<u32> = (0..37).map(|_| rng.below(rows as u32)).collect();
        ids.extend([0, rows as u32 - 1, rows as u32, u32::MAX]);
        if split {
            // Both sides of every part boundary.
            for p in &w.parts()[1..] {
                ids.extend([p.row0 as u32 - 1, p.row0 as u32]);
            }
        }
        let m = ids.len();
        let scale = 1.5f32;
        let idb = gpu.upload("ids", &ids).unwrap();
        let out = gpu.upload("out", &vec![f32::NAN; m * cols]).unwrap();
        let mut rec = gpu.recorder("embedding");
        embedding(&mut rec, &w, &idb, &out, m as u32, scale).unwrap();
        rec.submit();
        let got: Vec<f32> = gpu.read(&out, 0, m * cols).await.unwrap();
        let mut want = Vec::with_capacity(m * cols);
        for &id in &ids {
            let id = id as usize; // u32::MAX * cols would overflow usize on wasm32
            if id < rows {
                want.extend(table[id * cols..(id + 1) * cols].iter().map(|v| v * scale));
            } else {
                want.extend(std::iter::repeat_n(0.0, cols));
            }
        }
        let big = want.iter().fold(0f32, |a, v| a.max(v.abs()));
        let what = format!("{} embedding {rows}x{cols} split={split}", ty.name());
        assert_close(&what, &got, &want, 1e-6 * big, 1e-6);
    }
}

per_format!(embedding_format:
    embedding_f32 = F32, embedding_f16 = F16, embedding_bf16 = BF16, embedding_q8_0 = Q8_0,
    embedding_q4_0 = Q4_0, embedding_q4_1 = Q4_1, embedding_q5_0 = Q5_0, embedding_q4_k = Q4K,
    embedding_q5_k = Q5K, embedding_q6_k = Q6K,
);

// Native only; the browser checks these formats in `few_shapes` (matvec.rs).
per_format!(#[cfg(not(target_arch = "wasm32"))] embedding_format:
    embedding_q2_k = Q2K, embedding_q3_k = Q3K, embedding_iq4_nl = IQ4NL,
    embedding_iq4_xs = IQ4XS,
);
