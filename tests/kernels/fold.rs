//! The RMSNorm folded into decode's matvecs (`kernels::matvec::Fold`, `shaders/matvec.wgsl`
//! NORM_IN / NORM_OUT, `rmsnorm_fold`) against f64 references: the start of a folded norm
//! (`g ⊙ v` and v's partial sums of squares), a consumer of it (plain, GLU and split Q/K/V
//! matvecs, which must equal `W · (rmsnorm(v) · g)`), a producer (the residual add and the next
//! norm's start in a matvec's epilogue) and the two chained, in every matvec shape the tune may
//! pick (uniform or storage x, one or several invocations per row group, one or two row groups)
//! and, natively, with the subgroup kernels off and on.

use crate::blocks::{dequant, random_weights};
use crate::common::*;
use crate::matvec::{check, per_format, reference, upload_weights, REL};
use attend::kernels::elementwise::Glu;
use attend::kernels::linear::{linear_fold, linear_glu_fold, linear_split_fold};
use attend::kernels::matvec::{Fold, MatvecShape, NORM_SSQ};
use attend::kernels::norm::rmsnorm_fold;
use attend::quant::GgmlType;
use attend::weights::QMatrix;

const D: usize = 512;
const EPS: f32 = 1e-5;

/// The shapes a decode matvec may run in: the CPU adapters' (uniform x, one invocation per row
/// group, two groups), a GPU's (storage x, 4 invocations per row group) and uniform x shared by 8.
fn shapes() -> [MatvecShape; 3] {
    let s = |wg, tpr, x_uniform, groups| MatvecShape {
        wg,
        tpr,
        x_uniform,
        groups,
        q8: false,
    };
    [s(16, 1, true, 2), s(64, 4, false, 1), s(32, 8, true, 1)]
}

/// `rmsnorm(v) · g` in f64.
fn normed(v: &[f32], g: &[f32]) -> Vec<f32> {
    let ss: f64 = v.iter().map(|&a| a as f64 * a as f64).sum();
    let r = 1.0 / (ss / v.len() as f64 + EPS as f64).sqrt();
    v.iter()
        .zip(g)
        .map(|(&a, &w)| (a as f64 * r * w as f64) as f32)
        .collect()
}

/// The folded vector in `h` is `g ⊙ v` with v's partial sums of squares per 4.
async fn check_folded(gpu: &Gpu, what: &str, h: &wgpu::Buffer, v: &[f32], g: &[f32]) {
    let z: Vec<f32> = gpu.read(h, 0, D).await.unwrap();
    let ssq: Vec<f32> = gpu.read(h, NORM_SSQ as u64 * 4, D / 4).await.unwrap();
    for i in 0..D {
        let want = v[i] as f64 * g[i] as f64;
        assert!(
            (z[i] as f64 - want).abs() <= 1e-6 * want.abs(),
            "{what}: g ⊙ v [{i}] is {} not {want}",
            z[i]
        );
    }
    for q in 0..D / 4 {
        let want: f64 = v[4 * q..4 * q + 4]
            .iter()
            .map(|&a| a as f64 * a as f64)
            .sum();
        assert!(
            (ssq[q] as f64 - want).abs() <= 1e-6 * want,
            "{what}: partial sum {q} is {} not {want}",
            ssq[q]
        );
    }
}

/// A random `rows × cols` matrix of `ty` in `shape`, and its dequantized values.
fn matrix(
    gpu: &Gpu,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    shape: MatvecShape,
    rng: &mut Rng,
) -> (QMatrix, Vec<f32>) {
    let bytes = random_weights(ty, rows, cols, rng);
    let w = upload_weights(gpu, ty, rows, cols, &bytes, false);
    w.set_matvec_shape(shape);
    (w, dequant(ty, &bytes, rows * cols))
}

/// A folded vector: the buffer `h`, and the v and g it holds `g ⊙ v` of.
type Folded<'a> = (&'a wgpu::Buffer, &'a [f32], &'a [f32]);

/// The three consumers of a folded vector: a plain matvec, a GLU one and a split Q/K/V one, each
/// against the same product of `rmsnorm(v) · g`.
async fn consumers(
    gpu: &Gpu,
    ty: GgmlType,
    what: &str,
    (h, v, g): Folded<'_>,
    shape: MatvecShape,
    rng: &mut Rng,
) {
    let xn = normed(v, g);
    let f = Fold::NormIn { eps: EPS };
    // Plain, 72 rows.
    let (w, wf) = matrix(gpu, ty, 72, D, shape, rng);
    let y = gpu.upload("y", &vec![f32::NAN; 72]).unwrap();
    let mut rec = gpu.recorder("fold plain");
    linear_fold(&mut rec, &w, h, &y, 1, None, f).unwrap();
    rec.submit();
    let (want, mag) = reference(&wf, &xn, None, 1, 72, D);
    check(
        &format!("{what} plain"),
        &gpu.read(&y, 0, 72).await.unwrap(),
        &want,
        &mag,
    );

    // GLU: [gate; up] of 2 × 68 rows.
    let (w, wf) = matrix(gpu, ty, 136, D, shape, rng);
    let out = gpu.upload("out", &vec![f32::NAN; 68]).unwrap();
    let tmp = gpu.upload("tmp", &vec![f32::NAN; 136]).unwrap();
    let mut rec = gpu.recorder("fold glu");
    linear_glu_fold(&mut rec, &w, Glu::Silu, h, &tmp, &out, 1, f).unwrap();
    rec.submit();
    let got = gpu.read(&out, 0, 68).await.unwrap();
    let (yw, ym) = reference(&wf, &xn, None, 1, 136, D);
    let silu = |a: f64| a / (1.0 + (-a).exp());
    let want: Vec<f64> = (0..68).map(|j| silu(yw[j]) * yw[68 + j]).collect();
    // |Δ(silu(g) u)| ≤ 1.2 |Δg| |u| + |silu(g)| |Δu|, as in matvec.rs's GLU check.
    let mag: Vec<f64> = (0..68)
        .map(|j| 1.2 * ym[j] * yw[68 + j].abs() + silu(yw[j]).abs() * ym[68 + j])
        .collect();
    check(&format!("{what} glu"), &got, &want, &mag);

    // Split [q; k; v] of 36, 12 and 20 rows, with biases.
    let rows = [36u32, 12, 20];
    let (w, wf) = matrix(gpu, ty, 68, D, shape, rng);
    let bias = rng.normal(68, 1.0);
    let bb = gpu.upload("bias", &bias).unwrap();
    let outs: Vec<_> = rows
        .iter()
        .map(|&r| gpu.upload("out", &vec![f32::NAN; r as usize]).unwrap())
        .collect();
    let mut rec = gpu.recorder("fold split");
    let o = [outs[0].raw(), outs[1].raw(), outs[2].raw()];
    linear_split_fold(&mut rec, &w, h, o, rows, 1, Some(bb.raw()), f).unwrap();
    rec.submit();
    let (want, mag) = reference(&wf, &xn, Some(&bias), 1, 68, D);
    let mut at = 0;
    for (i, &r) in rows.iter().enumerate() {
        let r = r as usize;
        let got = gpu.read(&outs[i], 0, r).await.unwrap();
        check(
            &format!("{what} split {i}"),
            &got,
            &want[at..at + r],
            &mag[at..at + r],
        );
        at += r;
    }
}

async fn fold_format(ty: GgmlType) {
    let gpu = gpu().await;
    let subgroups = gpu.subgroup_loads();
    let k_in = 256; // the producer's input (the attention output or the GLU's)
    for (i, shape) in shapes().into_iter().enumerate() {
        for sg in [false, true] {
            if sg && (!gpu.set_subgroup_loads(true) || i > 0) {
                continue;
            }
            gpu.set_subgroup_loads(sg);
            let what = format!("{} shape {i} subgroups {sg}", ty.name());
            let mut rng = Rng::new(1000 + i as u64);
            let v: Vec<f32> = rng.normal(D, 3.0);
            let g: Vec<f32> = rng.normal(D, 1.0);
            let gb = gpu.upload("g", &g).unwrap();
            let g2: Vec<f32> = rng.normal(D, 1.0);
            let g2b = gpu.upload("g2", &g2).unwrap();

            // The start of a folded norm, and its consumers.
            let vb = gpu.upload("v", &v).unwrap();
            let h = gpu.activation("h", (D * 4) as u64).unwrap();
            let mut rec = gpu.recorder("rmsnorm_fold");
            rmsnorm_fold(&mut rec, &vb, D as u32, &gb, &h).unwrap();
            rec.submit();
            check_folded(&gpu, &what, &h, &v, &g).await;
            consumers(
                &gpu,
                ty,
                &format!("{what} after rmsnorm_fold"),
                (&h, &v, &g),
                shape,
                &mut rng,
            )
            .await;

            // A producer: v += W · a, h2 = g2 ⊙ v and its partial sums.
            let (w, wf) = matrix(&gpu, ty, D, k_in, shape, &mut rng);
            let a = rng.normal(k_in, 1.0);
            let ab = gpu.activation("a", (k_in * 4) as u64).unwrap();
            gpu.write(&ab, 0, bytemuck::cast_slice(&a));
            let h2 = gpu.activation("h2", (D * 4) as u64).unwrap();
            let mut rec = gpu.recorder("fold producer");
            let f = Fold::ResidualNorm {
                resid: &vb,
                gain: &g2b,
            };
            linear_fold(&mut rec, &w, &ab, &h2, 1, None, f).unwrap();
            rec.submit();
            let v2 = gpu.read(&vb, 0, D).await.unwrap();
            let (o, mag) = reference(&wf, &a, None, 1, D, k_in);
            let want: Vec<f64> = v.iter().zip(&o).map(|(&a, b)| a as f64 + b).collect();
            let mag: Vec<f64> = mag
                .iter()
                .zip(&v)
                .map(|(m, a)| m + a.abs() as f64 / REL * 1e-7)
                .collect();
            check(&format!("{what} residual"), &v2, &want, &mag);
            check_folded(&gpu, &format!("{what} producer"), &h2, &v2, &g2).await;
            // ...read by the next matvecs.
            consumers(
                &gpu,
                ty,
                &format!("{what} after a producer"),
                (&h2, &v2, &g2),
                shape,
                &mut rng,
            )
            .await;
        }
    }
    gpu.set_subgroup_loads(subgroups);
}

per_format!(fold_format:
    fold_f16 = F16, fold_q8_0 = Q8_0, fold_q4_1 = Q4_1, fold_q4_k = Q4K, fold_q6_k = Q6K,
);

gpu_test! {
    async fn fold_errors() {
        // A producer with a bias, a folded pass of several tokens and rows that cannot carry the
        // partial sums are refused, not run.
        let gpu = gpu().await;
        let mut rng = Rng::new(77);
        let shape = shapes()[0];
        let (w, _) = matrix(&gpu, GgmlType::Q8_0, D, 64, shape, &mut rng);
        let x = gpu.activation("x", 64 * 4 * 2).unwrap();
        let h = gpu.activation("h", (D * 4) as u64).unwrap();
        let v = gpu.upload("v", &vec![0f32; D]).unwrap();
        let g = gpu.upload("g", &vec![1f32; D]).unwrap();
        let f = Fold::ResidualNorm { resid: &v, gain: &g };
        let mut rec = gpu.recorder("fold errors");
        assert!(linear_fold(&mut rec, &w, &x, &h, 1, Some(&g), f).is_err());
        assert!(linear_fold(&mut rec, &w, &x, &h, 2, None, f).is_err());
        let (odd, _) = matrix(&gpu, GgmlType::Q8_0, 40, 64, shape, &mut rng);
        assert!(linear_fold(&mut rec, &odd, &x, &h, 1, None, f).is_err());
        let small = gpu.upload("small", &vec![0f32; D]).unwrap();
        assert!(linear_fold(&mut rec, &w, &x, &small, 1, None, f).is_err());
        assert!(rmsnorm_fold(&mut rec, &v, 40, &g, &h).is_err());
        assert!(linear_fold(&mut rec, &w, &x, &h, 1, None, f).is_ok());
    }
}

/// The stacked Q/K/V matvec that rotates in its store and writes the cache
/// (`linear_qkv_rope`) against the two dispatches it replaces (`linear_split` then `rope_kv`,
/// which tests/kernels/rope.rs and matvec.rs check against references): the same q and the same
/// cache words, with an f16 and an f32 cache, whole and partial rotation, Llama 3 frequency
/// factors, a position past 4096 (the hi/lo split of the angle), reading a folded norm or not.
async fn rope_store_format(ty: GgmlType) {
    use attend::kernels::attention::{KvPrecision, LayerKv};
    use attend::kernels::linear::{linear_qkv_rope, linear_split_fold};
    use attend::kernels::rope::{rope_kv, QkvActs, RopeParams};
    let gpu = gpu().await;
    let (heads, kv_heads, hd, cap) = (4u32, 2u32, 32u32, 4200u32);
    let rows = [heads * hd, kv_heads * hd, kv_heads * hd];
    let n = (rows[0] + 2 * rows[1]) as usize;
    let cases = [
        (KvPrecision::F16, 32, false, 5, false),
        (KvPrecision::F16, 16, true, 4100, true),
        (KvPrecision::F32, 32, true, 77, true),
        (KvPrecision::F32, 24, false, 4133, false),
    ];
    for (i, (prec, rot, llama3, pos, folded)) in cases.into_iter().enumerate() {
        let what = format!("{} case {i}", ty.name());
        let mut rng = Rng::new(2000 + i as u64);
        let (w, _) = matrix(&gpu, ty, n, D, shapes()[i % 3], &mut rng);
        let v = rng.normal(D, 2.0);
        let h = gpu.activation("h", (D * 4) as u64).unwrap();
        let fold = if folded {
            let g = gpu.upload("g", &rng.normal(D, 1.0)).unwrap();
            let vb = gpu.upload("v", &v).unwrap();
            let mut rec = gpu.recorder("rmsnorm_fold");
            rmsnorm_fold(&mut rec, &vb, D as u32, &g, &h).unwrap();
            rec.submit();
            Fold::NormIn { eps: EPS }
        } else {
            gpu.write(&h, 0, bytemuck::cast_slice(&v));
            Fold::None
        };
        let factors: Vec<f32> = (0..rot / 2).map(|j| 1.0 + j as f32 * 0.37).collect();
        let rope = RopeParams {
            n_heads: heads,
            rope_dims: rot,
            pos0: pos,
            base: 10000.0,
            scale: 1.0,
            neox: false,
            factors: if llama3 { &factors } else { &[] },
            mscale: 1.0,
        };
        let table = gpu.upload("table", &rope.turns()).unwrap();
        let kv_a = LayerKv::with_precision(&gpu, cap, kv_heads, hd, prec).unwrap();
        let kv_b = LayerKv::with_precision(&gpu, cap, kv_heads, hd, prec).unwrap();
        assert!(rope.storable(&kv_b), "{what}: not storable");
        let out = |r: u32| gpu.upload("out", &vec![f32::NAN; r as usize]).unwrap();
        let (qa, ka, va, qb) = (out(rows[0]), out(rows[1]), out(rows[2]), out(rows[0]));
        let mut rec = gpu.recorder("rope two dispatches");
        let o = [qa.raw(), ka.raw(), va.raw()];
        linear_split_fold(&mut rec, &w, &h, o, rows, 1, None, fold).unwrap();
        let acts = QkvActs {
            q: &qa,
            k: &ka,
            v: &va,
            rows: 1,
        };
        rope_kv(&mut rec, acts, &kv_a, &rope).unwrap();
        rec.submit();
        let mut rec = gpu.recorder("rope in the store");
        linear_qkv_rope(&mut rec, &w, &h, &qb, rows, fold, rope.store(&table, &kv_b)).unwrap();
        rec.submit();
        let close = |a: f32, b: f32, rel: f32| (a - b).abs() <= rel * a.abs().max(b.abs()) + 1e-30;
        let (q1, q2): (Vec<f32>, Vec<f32>) = (
            gpu.read(&qa, 0, rows[0] as usize).await.unwrap(),
            gpu.read(&qb, 0, rows[0] as usize).await.unwrap(),
        );
        for j in 0..q1.len() {
            assert!(
                close(q1[j], q2[j], 1e-6),
                "{what}: q[{j}] {} vs {}",
                q1[j],
                q2[j]
            );
        }
        for (name, a, b) in [("k", &kv_a.k, &kv_b.k), ("v", &kv_a.v, &kv_b.v)] {
            let words = (a.size() / 4) as usize;
            let (wa, wb): (Vec<u32>, Vec<u32>) = (
                gpu.read(a, 0, words).await.unwrap(),
                gpu.read(b, 0, words).await.unwrap(),
            );
            let written = wa.iter().filter(|&&x| x != 0).count();
            assert!(
                written >= (kv_heads * hd / 2) as usize,
                "{what}: {name} not written"
            );
            for j in 0..words {
                let ok = match prec {
                    KvPrecision::F32 => close(f32::from_bits(wa[j]), f32::from_bits(wb[j]), 1e-6),
                    KvPrecision::F16 => [0, 16].iter().all(|s| {
                        let h = |x: u32| half::f16::from_bits((x >> s) as u16).to_f32();
                        close(h(wa[j]), h(wb[j]), 1e-3)
                    }),
                };
                assert!(ok, "{what}: {name} word {j}: {:#x} vs {:#x}", wa[j], wb[j]);
            }
        }
    }
}

per_format!(rope_store_format:
    rope_store_f16 = F16, rope_store_q4_1 = Q4_1, rope_store_q4_k = Q4K,
);
