//! Row argmax against a CPU reference: odd and vocabulary-sized rows, ties (lowest index wins),
//! many rows in one dispatch.

use crate::common::*;
use attend::kernels::argmax;

fn reference(x: &[f32], cols: usize) -> Vec<u32> {
    x.chunks(cols)
        .map(|row| {
            let mut best = 0;
            for (i, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = i;
                }
            }
            best as u32
        })
        .collect()
}

async fn check(gpu: &Gpu, x: &[f32], rows: usize, cols: usize, what: &str) {
    let (r, c) = (rows as u32, cols as u32);
    let gx = gpu.upload("x", x).unwrap();
    let out = gpu.storage("out", 4 * rows as u64).unwrap();
    let mut rec = gpu.recorder("argmax");
    argmax::argmax(&mut rec, &gx, r, c, &out).unwrap();
    rec.submit();
    let want = reference(x, cols);
    let got: Vec<u32> = gpu.read(&out, 0, rows).await.unwrap();
    assert_eq!(got, want, "argmax {what} {rows}x{cols}");
}

gpu_test! {
    async fn argmax_matches_cpu() {
        let gpu = gpu().await;
        let mut rng = Rng::new(41);
        for &(rows, cols) in &[(1, 1), (3, 7), (5, 255), (4, 256), (3, 257), (2, 1000), (1, 49153), (3, 16387), (40, 3)] {
            let x = rng.normal(rows * cols, 5.0);
            check(&gpu, &x, rows, cols, "random").await;
        }
    }
}

gpu_test! {
    async fn argmax_ties_pick_the_lowest_index() {
        let gpu = gpu().await;
        let mut rng = Rng::new(42);
        for &(rows, cols) in &[(1, 2), (3, 7), (2, 300), (1, 49153)] {
            let mut x = rng.normal(rows * cols, 1.0);
            for r in 0..rows {
                // Ties at indices the same invocation and different invocations visit.
                let row = &mut x[r * cols..(r + 1) * cols];
                let last = cols - 1;
                for i in [last, last / 2 + r % 2, (last / 3) | 1] {
                    row[i] = 9.0;
                }
            }
            check(&gpu, &x, rows, cols, "ties").await;
            // All equal, all very negative: index 0.
            check(&gpu, &vec![-3.0e38; rows * cols], rows, cols, "constant").await;
        }
    }
}

gpu_test! {
    async fn argmax_of_vocabulary_rows() {
        let gpu = gpu().await;
        let mut rng = Rng::new(43);
        for &cols in &[49152usize, 262_144] {
            let mut x = rng.normal(cols, 3.0);
            let peak = rng.below(cols as u32) as usize;
            x[peak] = 30.0;
            check(&gpu, &x, 1, cols, "vocab").await;
            x[cols - 1] = 30.0;
            x[7] = 30.0;
            check(&gpu, &x, 1, cols, "vocab ties").await;
        }
    }
}
