//! matvec with 8-bit activations (`kernels::matvec_i8`) for every format it reads, against a CPU
//! reference that quantizes x as the shader does (per 32: d = max|x| / 127, q = round(x / d)) and
//! sums `dequant(W) · d q` in f64; and a timing comparison with the f32-activation matvec on
//! SmolLM2's decode shapes (ignored: `q8_timing`).
//!
//! Error allowed per output: the f32 summation order (`REL · Σ|w · d q|`) plus one code of x per
//! block (`Σ_blocks max|w| · d`), in case the GPU's 1 / d rounds a value at a .5 the other way.
//! A wrong nibble, scale, offset or row is off by far more.

use crate::blocks::{dequant, random_weights};
use crate::common::*;
use crate::matvec::{check, per_format, upload_weights, REL};
use attend::kernels::elementwise::Glu;
use attend::kernels::matvec::{
    default_shape, matvec_glu, matvec_split, matvec_with_shape, Io, MatvecShape, Split,
};
use attend::kernels::matvec_i8::{matmul_q8, matvec_q8, quantize, xq_bytes};
use attend::quant::GgmlType;

fn shape(wg: u32, tpr: u32, x_uniform: bool, groups: u32) -> MatvecShape {
    MatvecShape {
        wg,
        tpr,
        x_uniform,
        groups,
        q8: true,
    }
}

/// x as the shader quantizes it: (d q) per element, and d per block.
fn quantized(x: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut xq = vec![];
    let mut ds = vec![];
    for b in x.chunks(32) {
        let d = b.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
        let id = if d > 0.0 { 1.0 / d } else { 0.0 };
        xq.extend(b.iter().map(|v| (v * id).round_ties_even() * d));
        ds.push(d);
    }
    (xq, ds)
}

/// Per row: the reference W·x̂ and the allowed error (see the module doc).
fn reference(w: &[f32], x: &[f32], n: usize, k: usize) -> (Vec<f64>, Vec<f64>) {
    let (xq, ds) = quantized(x);
    let (mut y, mut tol) = (vec![], vec![]);
    for r in 0..n {
        let row = &w[r * k..(r + 1) * k];
        let (mut s, mut a, mut flip) = (0f64, 0f64, 0f64);
        for j in 0..k {
            let p = row[j] as f64 * xq[j] as f64;
            s += p;
            a += p.abs();
        }
        for (b, d) in ds.iter().enumerate() {
            let m = row[32 * b..32 * b + 32]
                .iter()
                .fold(0f32, |m, v| m.max(v.abs()));
            flip += m as f64 * *d as f64;
        }
        y.push(s);
        tol.push(REL * a + flip);
    }
    (y, tol)
}

/// x in an activation buffer (uniform-capable, as the engine's are).
fn activation(gpu: &Gpu, x: &[f32]) -> attend::gpu::Buffer {
    let b = gpu.activation("x", (x.len() * 4) as u64).unwrap();
    gpu.write(&b, 0, bytemuck::cast_slice(x));
    b
}

/// Plain matvecs (bias, a weight in several parts, every shape family), GLU and split outputs.
async fn q8_format(ty: GgmlType) {
    let gpu = gpu().await;
    attend::kernels::matvec_i8::force(None);
    for (i, (n, k, s, parts, with_bias)) in [
        (57, 768, shape(32, 1, true, 1), true, true),
        (37, 256, shape(16, 1, true, 2), false, false),
        (45, 768, shape(64, 8, false, 1), false, true),
        (4, 32, shape(8, 1, false, 2), false, false),
    ]
    .into_iter()
    .enumerate()
    {
        let mut rng = Rng::new(500 + i as u64);
        let k = k.max(ty.block_len());
        let bytes = random_weights(ty, n, k, &mut rng);
        let wf = dequant(ty, &bytes, n * k);
        let x = rng.normal(k, 1.0);
        let bias = rng.normal(n, 1.0);
        let w = upload_weights(&gpu, ty, n, k, &bytes, parts);
        let xb = activation(&gpu, &x);
        let yb = gpu.upload("y", &vec![f32::NAN; n]).unwrap();
        let bb = gpu.upload("bias", &bias).unwrap();
        let mut rec = gpu.recorder("q8");
        let b = with_bias.then_some(bb.raw());
        matvec_with_shape(&mut rec, &w, &xb, &yb, 1, b, s);
        rec.submit();
        let got: Vec<f32> = gpu.read(&yb, 0, n).await.unwrap();
        let (mut want, tol) = reference(&wf, &x, n, k);
        if with_bias {
            want.iter_mut()
                .zip(&bias)
                .for_each(|(y, b)| *y += *b as f64);
        }
        let mag: Vec<f64> = tol.iter().map(|t| t / REL).collect();
        check(
            &format!("q8 {} {n}x{k} {s:?} parts={parts}", ty.name()),
            &got,
            &want,
            &mag,
        );
    }
    // GLU: act(gate·x) ⊙ (up·x), errors propagated as in `glu_format`.
    let (f, k) = (68, 256);
    for (i, (glu, s)) in [
        (Glu::Silu, shape(8, 1, true, 2)),
        (Glu::Gelu, shape(64, 8, false, 1)),
    ]
    .into_iter()
    .enumerate()
    {
        let mut rng = Rng::new(600 + i as u64);
        let bytes = random_weights(ty, 2 * f, k, &mut rng);
        let wf = dequant(ty, &bytes, 2 * f * k);
        let x = rng.normal(k, 1.0);
        let w = upload_weights(&gpu, ty, 2 * f, k, &bytes, false);
        w.set_matvec_shape(s);
        let xb = activation(&gpu, &x);
        let out = gpu.upload("out", &vec![f32::NAN; f]).unwrap();
        let mut rec = gpu.recorder("q8 glu");
        matvec_glu(&mut rec, &w, &xb, &out, 1, glu);
        rec.submit();
        let got: Vec<f32> = gpu.read(&out, 0, f).await.unwrap();
        let (yw, tw) = reference(&wf, &x, 2 * f, k);
        let act = |v: f64| match glu {
            Glu::Silu => v / (1.0 + (-v).exp()),
            Glu::Gelu => {
                0.5 * v * (1.0 + (0.7978845608028654 * v * (1.0 + 0.044715 * v * v)).tanh())
            }
        };
        let (mut want, mut mag) = (vec![], vec![]);
        for j in 0..f {
            let (g, u, tg, tu) = (yw[j], yw[f + j], tw[j], tw[f + j]);
            want.push(act(g) * u);
            mag.push((1.2 * tg * u.abs() + act(g).abs() * tu + 1.2 * tg * tu) / REL);
        }
        check(
            &format!("q8 {} GLU {glu:?} {s:?}", ty.name()),
            &got,
            &want,
            &mag,
        );
    }
    // Split: [a; b; c] into three outputs (and [a; b] leaving the third alone), with biases.
    for (i, rows) in [[36usize, 12, 20], [36, 12, 0]].into_iter().enumerate() {
        let (n, k) = (rows.iter().sum::<usize>(), 256);
        let mut rng = Rng::new(700 + i as u64);
        let bytes = random_weights(ty, n, k, &mut rng);
        let wf = dequant(ty, &bytes, n * k);
        let x = rng.normal(k, 1.0);
        let bias = rng.normal(n, 1.0);
        let w = upload_weights(&gpu, ty, n, k, &bytes, false);
        w.set_matvec_shape(shape(32, 1, true, 1));
        let xb = activation(&gpu, &x);
        let ys: Vec<_> = rows
            .iter()
            .map(|&r| gpu.upload("y", &vec![f32::NAN; r.max(1)]).unwrap())
            .collect();
        let bb = gpu.upload("bias", &bias).unwrap();
        let split = Split {
            y2: ys[1].raw(),
            y3: ys[2].raw(),
            n1: rows[0] as u32,
            n2: rows[1] as u32,
        };
        let mut rec = gpu.recorder("q8 split");
        matvec_split(&mut rec, &w, &xb, &ys[0], 1, Some(bb.raw()), split);
        rec.submit();
        let (want, tol) = reference(&wf, &x, n, k);
        let mut r0 = 0;
        for (o, &r) in rows.iter().enumerate() {
            let got: Vec<f32> = gpu.read(&ys[o], 0, r.max(1)).await.unwrap();
            if r == 0 {
                assert!(
                    got[0].is_nan(),
                    "q8 split: the unused third output was written"
                );
                continue;
            }
            let want: Vec<f64> = (r0..r0 + r).map(|j| want[j] + bias[j] as f64).collect();
            let mag: Vec<f64> = tol[r0..r0 + r].iter().map(|t| t / REL).collect();
            check(
                &format!("q8 {} split output {o}", ty.name()),
                &got,
                &want,
                &mag,
            );
            r0 += r;
        }
    }
}

/// `random_weights` with every quant at its extreme code (4-bit 15, Q5_0 31, Q8_0 -128; Q4_K's
/// sub-block scales and mins stay random), so the
/// sums reach the bounds the SWAR products of `matvec_q8.wgsl` rely on.
fn saturated(ty: GgmlType, bytes: &mut [u8]) {
    let (block, quants) = match ty {
        GgmlType::Q4_0 => (18, 2..18),
        GgmlType::Q4_1 => (20, 4..20),
        GgmlType::Q5_0 => (22, 2..22),
        GgmlType::Q8_0 => (34, 2..34),
        GgmlType::Q4K => (144, 16..144),
        _ => unreachable!("not an int8-activation format"),
    };
    let fill = if ty == GgmlType::Q8_0 { 0x80 } else { 0xff };
    for b in bytes.chunks_mut(block) {
        b[quants.clone()].fill(fill);
    }
}

/// Extreme weights against x all +1, all -1 and alternating (every int8 ±127), both views of x.
async fn q8_saturated(ty: GgmlType) {
    let gpu = gpu().await;
    attend::kernels::matvec_i8::force(None);
    let (n, k) = (12, 256);
    let mut rng = Rng::new(900);
    let mut bytes = random_weights(ty, n, k, &mut rng);
    saturated(ty, &mut bytes);
    let wf = dequant(ty, &bytes, n * k);
    let w = upload_weights(&gpu, ty, n, k, &bytes, false);
    let xs: [Vec<f32>; 3] = [
        vec![1.0; k],
        vec![-1.0; k],
        (0..k)
            .map(|j| if j % 2 == 0 { 1.0 } else { -1.0 })
            .collect(),
    ];
    for x in &xs {
        for s in [shape(32, 1, true, 1), shape(16, 4, false, 2)] {
            let xb = activation(&gpu, x);
            let yb = gpu.upload("y", &vec![f32::NAN; n]).unwrap();
            let mut rec = gpu.recorder("q8 saturated");
            matvec_with_shape(&mut rec, &w, &xb, &yb, 1, None, s);
            rec.submit();
            let got: Vec<f32> = gpu.read(&yb, 0, n).await.unwrap();
            // Every int8 is exactly ±127 (no rounding can flip), so the integer sums must be
            // exact: allow 1e-6 of Σ|w·x̂| for the f32 epilogue, 20× under REL. One code off in
            // one unit's sum is ~3e-4 of it, a carry lost at bit 16 far more.
            let (want, _) = reference(&wf, x, n, k);
            let mag: Vec<f64> = (0..n)
                .map(|r| {
                    let row = &wf[r * k..(r + 1) * k];
                    row.iter()
                        .zip(x)
                        .map(|(w, v)| (w * v).abs() as f64)
                        .sum::<f64>()
                        * 0.05
                })
                .collect();
            check(
                &format!("q8 {} saturated, x[0..2] = {:?}, {s:?}", ty.name(), &x[..2]),
                &got,
                &want,
                &mag,
            );
        }
    }
}

per_format!(q8_saturated:
    q8_saturated_q4_0 = Q4_0, q8_saturated_q4_1 = Q4_1, q8_saturated_q5_0 = Q5_0,
    q8_saturated_q8_0 = Q8_0, q8_saturated_q4_k = Q4K,
);

/// Prefill through int8 activations (`matmul_q8`): m tokens quantized at once, each token's
/// outputs the same bits as the one-token `matvec_q8` gives it (one thread per row) and within
/// the reference's bounds; tokens past a multiple of 8, row groups past the part, several parts,
/// bias and the split output of a stacked [q; k; v].
async fn q8_matmul(ty: GgmlType) {
    let gpu = gpu().await;
    attend::kernels::matvec_i8::force(None);
    for (i, (rows, k, m, parts, with_bias)) in [
        ([57, 0, 0], 256, 9, true, true),
        ([36, 0, 0], 768, 17, false, false),
        ([36, 12, 20], 256, 11, false, true),
        ([4, 0, 0], 32, 1, false, false),
    ]
    .into_iter()
    .enumerate()
    {
        let n: usize = rows.iter().sum();
        let mut rng = Rng::new(1000 + i as u64);
        let k = k.max(ty.block_len());
        let bytes = random_weights(ty, n, k, &mut rng);
        let wf = dequant(ty, &bytes, n * k);
        let x = rng.normal(m * k, 1.0);
        let bias = rng.normal(n, 1.0);
        let w = upload_weights(&gpu, ty, n, k, &bytes, parts);
        let bb = gpu.upload("bias", &bias).unwrap();
        let b = with_bias.then_some(bb.raw());
        let outs: Vec<_> = rows
            .iter()
            .map(|&r| gpu.upload("y", &vec![f32::NAN; (m * r).max(1)]).unwrap())
            .collect();
        let split = (rows[1] > 0).then(|| Split {
            y2: outs[1].raw(),
            y3: outs[2].raw(),
            n1: rows[0] as u32,
            n2: rows[1] as u32,
        });
        let xb = gpu.upload("x", &x).unwrap();
        let xq = gpu.storage("xq", xq_bytes(m * k)).unwrap();
        let mut rec = gpu.recorder("q8 matmul");
        quantize(&mut rec, &xb, m * k, &xq);
        let io = Io {
            x: &xb,
            y: &outs[0],
            m: m as u32,
            bias: b,
            split,
            fold: Default::default(),
            rope: None,
        };
        matmul_q8(&mut rec, &w, &xq, io);
        rec.submit();
        let mut got = vec![vec![]; m]; // token t's n outputs, in row order
        for (o, &r) in rows.iter().enumerate().filter(|(_, &r)| r > 0) {
            let y: Vec<f32> = gpu.read(&outs[o], 0, m * r).await.unwrap();
            y.chunks(r)
                .enumerate()
                .for_each(|(t, c)| got[t].extend_from_slice(c));
        }
        for (t, got) in got.iter().enumerate() {
            let what = format!("q8 matmul {} {rows:?}x{k} token {t} of {m}", ty.name());
            let xt = &x[t * k..(t + 1) * k];
            let (mut want, tol) = reference(&wf, xt, n, k);
            if with_bias {
                want.iter_mut()
                    .zip(&bias)
                    .for_each(|(y, b)| *y += *b as f64);
            }
            let mag: Vec<f64> = tol.iter().map(|t| t / REL).collect();
            check(&what, got, &want, &mag);
            // The decode matvec of the same token, one thread per row.
            let xt = activation(&gpu, xt);
            let xq1 = gpu.storage("xq1", xq_bytes(k)).unwrap();
            let y1 = gpu.upload("y1", &vec![f32::NAN; n]).unwrap();
            let mut rec = gpu.recorder("q8 matvec");
            quantize(&mut rec, &xt, k, &xq1);
            let io = Io {
                x: &xt,
                y: &y1,
                m: 1,
                bias: b,
                split: None,
                fold: Default::default(),
                rope: None,
            };
            matvec_q8(&mut rec, &w, &xq1, io, shape(32, 1, false, 2), None);
            rec.submit();
            let one: Vec<f32> = gpu.read(&y1, 0, n).await.unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(got),
                bits(&one),
                "{what}: not the decode matvec's bits"
            );
        }
    }
}

per_format!(q8_matmul:
    q8_matmul_q4_0 = Q4_0, q8_matmul_q4_1 = Q4_1, q8_matmul_q5_0 = Q5_0, q8_matmul_q8_0 = Q8_0,
    q8_matmul_q4_k = Q4K,
);

per_format!(q8_format:
    q8_q4_0 = Q4_0, q8_q4_1 = Q4_1, q8_q5_0 = Q5_0, q8_q8_0 = Q8_0, q8_q4_k = Q4K,
);

gpu_test! {
    /// Formats int8 activations cannot read keep the f32 matvec even with a q8 shape.
    async fn q8_shape_on_other_formats_is_the_f32_matvec() {
        let gpu = gpu().await;
        attend::kernels::matvec_i8::force(None);
        for ty in [GgmlType::F16, GgmlType::Q6K] {
            let k = crate::blocks::ks(ty)[1];
            let mut rng = Rng::new(800);
            let bytes = random_weights(ty, 9, k, &mut rng);
            let wf = dequant(ty, &bytes, 9 * k);
            let x = rng.normal(k, 1.0);
            let w = upload_weights(&gpu, ty, 9, k, &bytes, false);
            assert!(!attend::kernels::matvec_i8::usable(&gpu, &w));
            let xb = activation(&gpu, &x);
            let yb = gpu.upload("y", &[f32::NAN; 9]).unwrap();
            let mut rec = gpu.recorder("q8 other");
            matvec_with_shape(&mut rec, &w, &xb, &yb, 1, None, shape(32, 1, true, 1));
            rec.submit();
            let got: Vec<f32> = gpu.read(&yb, 0, 9).await.unwrap();
            let (want, mag) = crate::matvec::reference(&wf, &x, None, 1, 9, k);
            check(&format!("q8 shape, {}", ty.name()), &got, &want, &mag);
        }
    }
}

gpu_test! {
    #[ignore = "timing, not a check: cargo test --release --test kernels q8_timing -- --ignored --nocapture"]
    async fn q8_timing() {
        let gpu = gpu().await;
        attend::kernels::matvec_i8::force(None);
        let mut rng = Rng::new(7);
        // SmolLM2-135M's decode matrices: [q; k; v], [gate; up], o, down, the output head; then one
        // of Gemma 3's.
        let mats = [
            (GgmlType::Q4_1, 960, 576),
            (GgmlType::Q4_1, 3072, 576),
            (GgmlType::Q4_1, 576, 576),
            (GgmlType::Q4_1, 576, 1536),
            (GgmlType::Q8_0, 49152, 576),
            // Gemma 3's [gate; up].
            (GgmlType::Q5_0, 4096, 640),
        ];
        let reps = if cfg!(target_arch = "wasm32") { 4 } else { 10 };
        for (ty, n, k) in mats {
            let bytes = random_weights(ty, n, k, &mut rng);
            let w = upload_weights(&gpu, ty, n, k, &bytes, false);
            let x = rng.normal(k, 1.0);
            let xb = gpu.activation("x", (k * 4) as u64).unwrap();
            gpu.write(&xb, 0, bytemuck::cast_slice(&x));
            let xq = gpu.activation("xq", xq_bytes(k)).unwrap();
            let yb = gpu.storage("y", (n * 4) as u64).unwrap();
            let base = MatvecShape { q8: false, ..default_shape(&gpu, &w) };
            let shapes = [base, MatvecShape { groups: 2, ..base }];
            // 0: f32 x; 1: quantize + int8; 2: int8 alone (x quantized once before).
            let mut best = [[f64::MAX; 3]; 2];
            let mut out = [vec![], vec![]];
            for round in 0..4 {
                for (si, &shape) in shapes.iter().enumerate() {
                    for v in 0..3 {
                        if v == 2 {
                            let mut rec = gpu.recorder("q");
                            quantize(&mut rec, &xb, k, &xq);
                            rec.submit();
                        }
                        let (t, y) = timed(&gpu, reps, &yb, n, |rec| {
                            if v == 0 {
                                matvec_with_shape(rec, &w, &xb, &yb, 1, None, shape);
                            } else {
                                if v == 1 {
                                    // Each rep quantizes (the recorder would skip a repeat).
                                    rec.forget_quantized();
                                    quantize(rec, &xb, k, &xq);
                                }
                                let io = Io { x: &xb, y: &yb, m: 1, bias: None, split: None, fold: Default::default(), rope: None };
                                matvec_q8(rec, &w, &xq, io, shape, None);
                            }
                        })
                        .await;
                        if round > 0 {
                            best[si][v] = best[si][v].min(t);
                        }
                        if si == 0 && v < 2 {
                            out[v] = y;
                        }
                    }
                }
            }
            let scale = out[0].iter().map(|v| v.abs()).fold(0f32, f32::max);
            let diff = max_abs_diff(&out[0], &out[1]);
            for (si, s) in shapes.iter().enumerate() {
                let b = best[si];
                let line = format!(
                    "{} {n}x{k} wg {} groups {}: f32 {:.3} ms, quantize+int8 {:.3} ms, int8 {:.3} ms ({:.2}x); max|Δy| {diff:.2e} of {scale:.2e}",
                    ty.name(), s.wg, s.groups, b[0] * 1e3, b[1] * 1e3, b[2] * 1e3, b[0] / b[1]
                );
                report(&line);
            }
        }
    }
}
