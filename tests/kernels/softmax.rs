//! Softmax and log-softmax against f64 CPU references: short, odd and vocabulary-sized rows, and
//! inputs of magnitude 1000 that overflow a naive exp().

use crate::common::*;
use attend::kernels::softmax;

fn reference(x: &[f32], cols: usize, log: bool) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks(cols) {
        let m = row.iter().fold(f64::MIN, |a, &b| a.max(b as f64));
        let s: f64 = row.iter().map(|&v| (v as f64 - m).exp()).sum();
        out.extend(row.iter().map(|&v| {
            let d = v as f64 - m;
            (if log { d - s.ln() } else { d.exp() / s }) as f32
        }));
    }
    out
}

async fn check(gpu: &Gpu, x: &[f32], rows: usize, cols: usize, what: &str) {
    let a = gpu.upload("a", x).unwrap();
    let b = gpu.upload("b", x).unwrap();
    let mut rec = gpu.recorder("softmax");
    softmax::softmax(&mut rec, &a, rows as u32, cols as u32).unwrap();
    softmax::log_softmax(&mut rec, &b, rows as u32, cols as u32).unwrap();
    rec.submit();
    let got: Vec<f32> = gpu.read(&a, 0, x.len()).await.unwrap();
    // Probabilities: 1e-6 absolute + 1e-4 relative (exp is approximate, sums are f32).
    assert_close(
        &format!("softmax {what} {rows}x{cols}"),
        &got,
        &reference(x, cols, false),
        1e-6,
        1e-4,
    );
    for (r, row) in got.chunks(cols).enumerate() {
        let total: f32 = row.iter().sum();
        assert!((total - 1.0).abs() < 1e-3, "{what} row {r} sums to {total}");
    }
    let got: Vec<f32> = gpu.read(&b, 0, x.len()).await.unwrap();
    // Log-probabilities of inputs up to ±1000: 2e-4 absolute + 1e-5 relative.
    assert_close(
        &format!("log_softmax {what} {rows}x{cols}"),
        &got,
        &reference(x, cols, true),
        2e-4,
        1e-5,
    );
}

gpu_test! {
    async fn softmax_matches_cpu_at_many_row_lengths() {
        let gpu = gpu().await;
        let mut rng = Rng::new(21);
        for &(rows, cols) in &[(1, 1), (3, 7), (4, 255), (2, 256), (3, 257), (2, 1000), (1, 49153)] {
            let x = rng.normal(rows * cols, 4.0);
            check(&gpu, &x, rows, cols, "normal").await;
        }
    }
}

gpu_test! {
    async fn softmax_survives_large_magnitudes() {
        let gpu = gpu().await;
        let mut rng = Rng::new(22);
        for &(rows, cols) in &[(1, 7), (5, 300), (1, 4099)] {
            // ±1000 with ties at the maximum: exp(1000) overflows without max-subtraction.
            let mut x: Vec<f32> = rng.vec(rows * cols, 1000.0);
            x[0] = 1000.0;
            x[cols / 2] = 1000.0;
            x[rows * cols - 1] = -1000.0;
            check(&gpu, &x, rows, cols, "±1000").await;
        }
    }
}

gpu_test! {
    async fn softmax_of_a_vocabulary_row() {
        let gpu = gpu().await;
        let mut rng = Rng::new(23);
        // Gemma 3's vocabulary: one row of 262144 logits.
        let cols = 262_144;
        let x = rng.normal(cols, 6.0);
        check(&gpu, &x, 1, cols, "vocab").await;
    }
}
