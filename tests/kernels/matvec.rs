//! matvec (decode) for every GPU format against `y = dequant(W) · x` computed in f64 on the CPU,
//! plus the shared linear-layer helpers the matmul and embedding tests use.
//!
//! Weights are random *valid blocks* (`blocks.rs`) decoded on the CPU by `dequant`, written from
//! ggml's block layouts independently of the shader. The GPU dequantizes these bits exactly (or to
//! 1 ulp where a scale and a min combine), so the only error is f32 summation order: every output
//! must be within `REL · Σ_j |W[r,j] x[t,j]|` of the reference.

use crate::blocks::{dequant, ks, random_weights, FORMATS};
use crate::common::*;
use attend::kernels::matvec::{matvec, MatvecShape};
use attend::quant::GgmlType;
use attend::weights::{Layout, QMatrix};

/// Summation-order tolerance relative to Σ|w·x| (same for every format: decoding is exact).
pub const REL: f64 = 2e-5;

/// Reference `y[t, r] = Σ_j w[r, j] x[t, j]` (+ bias) in f64, with Σ|w·x| for the tolerance.
pub fn reference(
    w: &[f32],
    x: &[f32],
    bias: Option<&[f32]>,
    m: usize,
    n: usize,
    k: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut y = vec![0f64; m * n];
    let mut mag = vec![0f64; m * n];
    for t in 0..m {
        for r in 0..n {
            let (mut s, mut a) = (bias.map_or(0.0, |b| b[r] as f64), 0f64);
            for j in 0..k {
                let p = w[r * k + j] as f64 * x[t * k + j] as f64;
                s += p;
                a += p.abs();
            }
            y[t * n + r] = s;
            mag[t * n + r] = a + bias.map_or(0.0, |b| b[r].abs() as f64);
        }
    }
    (y, mag)
}

/// Every output within `REL · Σ|w·x|` (+1e-30) of the reference; the message names the worst.
pub fn check(what: &str, got: &[f32], want: &[f64], mag: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let mut worst = (0, 0f64);
    for i in 0..got.len() {
        assert!(got[i].is_finite(), "{what}: element {i} is {}", got[i]);
        let excess = (got[i] as f64 - want[i]).abs() / (REL * mag[i] + 1e-30);
        if excess > worst.1 {
            worst = (i, excess);
        }
    }
    let i = worst.0;
    assert!(
        worst.1 <= 1.0,
        "{what}: element {i} is {} but the reference is {} (tolerance {:.3e})",
        got[i],
        want[i],
        REL * mag[i]
    );
}

/// A QMatrix holding `bytes`; with `split`, parts of about a third of the matrix (an odd row
/// count, so 2-byte rows force the 4-byte alignment rule), filled by small unaligned chunks in
/// reverse order to exercise `write`'s edge merging.
pub fn upload_weights(
    gpu: &Gpu,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    bytes: &[u8],
    split: bool,
) -> QMatrix {
    let layout = LAYOUT.with(|l| l.get()).unwrap_or(Layout::preferred(ty));
    if !split {
        let w = QMatrix::with_layout(gpu, "w", ty, rows, cols, 1 << 30, layout).unwrap();
        w.write(gpu, 0, bytes).unwrap();
        return w;
    }
    let limit = (ty.row_bytes(cols) * ((rows / 3) | 1)) as u64;
    let w = QMatrix::with_layout(gpu, "w", ty, rows, cols, limit, layout).unwrap();
    assert!(w.parts().len() >= 2, "{ty:?} {rows}x{cols} did not split");
    for p in &w.parts()[..w.parts().len() - 1] {
        assert_eq!(p.rows * w.row_bytes() % 4, 0, "part not 4-byte aligned");
        assert!((p.rows * w.row_bytes()) as u64 <= limit);
    }
    let mut cuts = vec![0usize];
    let mut rng = Rng::new(bytes.len() as u64);
    while *cuts.last().unwrap() < bytes.len() {
        let next = cuts.last().unwrap() + 1 + rng.below(4099) as usize;
        cuts.push(next.min(bytes.len()));
    }
    for c in cuts.windows(2).rev() {
        w.write(gpu, c[0] as u64, &bytes[c[0]..c[1]]).unwrap();
    }
    w
}

/// A weight-times-activations kernel, matvec or matmul: (recorder, W, x, y, tokens, bias).
pub type Kernel = fn(
    &mut attend::gpu::Recorder,
    &QMatrix,
    &wgpu::Buffer,
    &wgpu::Buffer,
    u32,
    Option<&wgpu::Buffer>,
);

/// Run matvec or matmul (`kernel`) on random data of one shape and check it.
pub async fn run_linear(
    gpu: &Gpu,
    kernel: Kernel,
    ty: GgmlType,
    (m, n, k): (usize, usize, usize),
    split: bool,
    with_bias: bool,
    seed: u64,
) {
    let mut rng = Rng::new(seed);
    let bytes = random_weights(ty, n, k, &mut rng);
    let wf = dequant(ty, &bytes, n * k);
    let x = rng.normal(m * k, 1.0);
    let bias = with_bias.then(|| rng.normal(n, 1.0));
    let w = upload_weights(gpu, ty, n, k, &bytes, split);
    // Activation buffers (uniform-capable) let matvec read x through its uniform view.
    let xb = if X_ACTIVATION.with(|a| a.get()) {
        let b = gpu.activation("x", (x.len() * 4) as u64).unwrap();
        gpu.write(&b, 0, bytemuck::cast_slice(&x));
        b
    } else {
        gpu.upload("x", &x).unwrap()
    };
    let yb = gpu.upload("y", &vec![f32::NAN; m * n]).unwrap();
    let bb = bias.as_ref().map(|b| gpu.upload("bias", b).unwrap());
    let mut rec = gpu.recorder("linear");
    kernel(
        &mut rec,
        &w,
        &xb,
        &yb,
        m as u32,
        bb.as_ref().map(|b| b.raw()),
    );
    rec.submit();
    let got: Vec<f32> = gpu.read(&yb, 0, m * n).await.unwrap();
    let (want, mag) = reference(&wf, &x, bias.as_deref(), m, n, k);
    let what = format!(
        "{} m={m} n={n} k={k} split={split} bias={with_bias}",
        ty.name()
    );
    check(&what, &got, &want, &mag);
}

/// Shapes for matvec: k = one block, m not a multiple of the 4 tokens per dispatch, odd n.
async fn matvec_format(ty: GgmlType) {
    let gpu = gpu().await;
    let [k0, k1, k2] = ks(ty);
    let shapes = [
        ((1, 1, k0), false, false),
        ((1, 100, k1), false, true),
        ((3, 257, k2), false, false),
        ((5, 7, k1), false, true),
        ((17, 33, k0), false, false),
        ((1, 257, k2), true, false),
        ((2, 100, k1), true, true),
    ];
    for (i, (shape, split, bias)) in shapes.into_iter().enumerate() {
        run_linear(&gpu, matvec, ty, shape, split, bias, 100 + i as u64).await;
    }
    // x through the uniform view (CPU adapters) with several workgroup sizes, 1..4 tokens.
    X_ACTIVATION.with(|a| a.set(true));
    for (i, wg) in [8u32, 16, 64].into_iter().enumerate() {
        if !variant_runs(ty, i, 3) {
            continue;
        }
        SHAPE.with(|t| {
            t.set(MatvecShape {
                wg,
                tpr: 1,
                x_uniform: true,
                groups: [2, 1, 2][i], // 8 rows per invocation for the one-token dispatches
                q8: false,
            })
        });
        let m = [1, 4, 5][i];
        run_linear(
            &gpu,
            matvec_shape,
            ty,
            (m, 57, k2),
            i == 2,
            i == 1,
            140 + i as u64,
        )
        .await;
    }
    X_ACTIVATION.with(|a| a.set(false));
    // Two row groups per invocation with x from storage.
    SHAPE.with(|t| {
        t.set(MatvecShape {
            wg: 16,
            tpr: 1,
            x_uniform: false,
            groups: 2,
            q8: false,
        })
    });
    run_linear(&gpu, matvec_shape, ty, (1, 57, k1), true, true, 145).await;
    // The other invocations-per-row choices (GPUs pick 4..64 from k, CPU adapters 1).
    for (i, tpr) in [1u32, 4, 8, 64].into_iter().enumerate() {
        if !variant_runs(ty, i, 4) {
            continue;
        }
        THREADS.with(|t| t.set(tpr));
        run_linear(
            &gpu,
            matvec_threads,
            ty,
            (3, 45, k2),
            i == 1,
            true,
            150 + i as u64,
        )
        .await;
    }
}

thread_local!(static THREADS: std::cell::Cell<u32> = const { std::cell::Cell::new(1) });
thread_local!(static SHAPE: std::cell::Cell<MatvecShape> = const {
    std::cell::Cell::new(MatvecShape { wg: 64, tpr: 1, x_uniform: false, groups: 1, q8: false })
});
thread_local!(pub static X_ACTIVATION: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
// The layout `upload_weights` uses (None: attend's preferred one).
thread_local!(pub static LAYOUT: std::cell::Cell<Option<Layout>> = const { std::cell::Cell::new(None) });

fn matvec_shape(
    rec: &mut attend::gpu::Recorder,
    w: &QMatrix,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    m: u32,
    bias: Option<&wgpu::Buffer>,
) {
    let shape = SHAPE.with(|t| t.get());
    attend::kernels::matvec::matvec_with_shape(rec, w, x, y, m, bias, shape)
}

fn matvec_threads(
    rec: &mut attend::gpu::Recorder,
    w: &QMatrix,
    x: &wgpu::Buffer,
    y: &wgpu::Buffer,
    m: u32,
    bias: Option<&wgpu::Buffer>,
) {
    // `tpr` invocations per row group in 64-invocation workgroups: the choices other adapters make.
    let shape = attend::kernels::matvec::MatvecShape {
        wg: 64,
        tpr: THREADS.with(|t| t.get()),
        x_uniform: false,
        groups: 1,
        q8: false,
    };
    attend::kernels::matvec::matvec_with_shape(rec, w, x, y, m, bias, shape)
}

/// Whether kernel variant `i` of `n` runs for format `ty`. Each variant is a pipeline that the
/// software adapters take seconds to compile, so two variants per format run in turn, every
/// variant still on several formats: in the browser for every format; natively for the formats
/// from Q2_K on in `FORMATS` (the last added; matmul_q3_k alone: 38 s with every variant, 14 s
/// in turn), while the formats before it run every variant.
pub fn variant_runs(ty: GgmlType, i: usize, n: usize) -> bool {
    let f = FORMATS.iter().position(|&t| t == ty).unwrap_or(0);
    let rotate_from = FORMATS.iter().position(|&t| t == GgmlType::Q2K).unwrap();
    if !cfg!(target_arch = "wasm32") && f < rotate_from {
        return true;
    }
    (i + n - f % n) % n < 2
}

macro_rules! per_format {
    ($run:ident: $($name:ident = $ty:ident),* $(,)?) => {
        per_format!(#[cfg(all())] $run: $($name = $ty),*);
    };
    (#[$m:meta] $run:ident: $($name:ident = $ty:ident),* $(,)?) => {
        $(gpu_test! {
            #[$m]
            async fn $name() {
                $run(GgmlType::$ty).await
            }
        })*
    };
}
pub(crate) use per_format;

/// Two matvecs, a matmul and an embedding gather (split weights and bias included) of format `ty`.
async fn few_shapes(ty: GgmlType) {
    use attend::kernels::matmul::matmul;
    let gpu = gpu().await;
    let [_, k1, k2] = ks(ty);
    run_linear(&gpu, matvec, ty, (3, 45, k2), false, true, 170).await;
    run_linear(&gpu, matvec, ty, (1, 100, k1), true, false, 171).await;
    run_linear(&gpu, matmul, ty, (40, 45, k1), true, true, 172).await;
    crate::embedding::embedding_case(&gpu, ty, 45, k1, true, 173).await;
}

/// The packable formats also in GGUF layout (the path a repack-free build would take).
async fn gguf_layout(ty: GgmlType) {
    LAYOUT.with(|l| l.set(Some(Layout::Gguf)));
    few_shapes(ty).await;
    LAYOUT.with(|l| l.set(None));
}

per_format!(gguf_layout:
    gguf_layout_q8_0 = Q8_0, gguf_layout_q4_0 = Q4_0, gguf_layout_q4_1 = Q4_1,
    gguf_layout_q5_0 = Q5_0, gguf_layout_q4_k = Q4K, gguf_layout_q6_k = Q6K,
);

// The formats added last get their full matvec, matmul, embedding, GLU and split tests natively
// only: in the browser, where SwiftShader compiles each pipeline in seconds and the whole suite
// has one time limit, `few_shapes` checks their decoders through every kernel.
per_format!(few_shapes:
    few_shapes_q2_k = Q2K, few_shapes_q3_k = Q3K, few_shapes_iq4_nl = IQ4NL,
    few_shapes_iq4_xs = IQ4XS,
);

per_format!(matvec_format:
    matvec_f32 = F32, matvec_f16 = F16, matvec_bf16 = BF16, matvec_q8_0 = Q8_0,
    matvec_q4_0 = Q4_0, matvec_q4_1 = Q4_1, matvec_q5_0 = Q5_0, matvec_q4_k = Q4K,
    matvec_q5_k = Q5K, matvec_q6_k = Q6K,
);

per_format!(#[cfg(not(target_arch = "wasm32"))] matvec_format:
    matvec_q2_k = Q2K, matvec_q3_k = Q3K, matvec_iq4_nl = IQ4NL, matvec_iq4_xs = IQ4XS,
);

gpu_test! {
    async fn qmatrix_rejects_bad_shapes_and_types() {
        let gpu = gpu().await;
        assert!(QMatrix::new(&gpu, "a", GgmlType::Q4K, 4, 128).is_err()); // not a block multiple
        assert!(QMatrix::new(&gpu, "b", GgmlType::F32, 4, 40).is_err()); // kernels use 32-units
        assert!(QMatrix::new(&gpu, "c", GgmlType::Q8K, 4, 256).is_err()); // no GPU kernel
        assert!(QMatrix::with_part_limit(&gpu, "d", GgmlType::Q8_0, 4, 64, 60).is_err());
        let w = QMatrix::new(&gpu, "e", GgmlType::Q8_0, 4, 64).unwrap();
        assert_eq!(w.bytes(), 4 * 68);
        assert!(w.write(&gpu, 270, &[0; 3]).is_err()); // runs past the end
        assert!(QMatrix::upload(&gpu, "f", GgmlType::Q8_0, 4, 64, &[0; 10]).is_err());
        for ty in FORMATS {
            assert!(ty.gpu_supported(), "{ty:?}");
        }
    }
}

gpu_test! {
    async fn cpu_decoder_agrees_with_quant_module() {
        // The test decoder above and attend::quant (ggml's reference code) read the same bits.
        let mut rng = Rng::new(5);
        for ty in FORMATS {
            let n = 4 * 256;
            let bytes = random_weights(ty, 4, 256, &mut rng);
            let mine = dequant(ty, &bytes, n);
            let theirs = attend::quant::dequantize(ty, &bytes, n).unwrap();
            assert_close(ty.name(), &mine, &theirs, 0.0, 0.0);
        }
    }
}

gpu_test! {
    async fn quantized_by_quant_module_matvec_and_matmul() {
        // Realistic weights: normal values quantized by attend::quant::quantize (ggml's reference
        // quantizers), reference from attend::quant::dequantize.
        use attend::kernels::matmul::matmul;
        let gpu = gpu().await;
        let mut rng = Rng::new(6);
        // attend does not quantize to IQ4_NL/IQ4_XS (random blocks test them everywhere else)
        for ty in FORMATS.into_iter().filter(|t| !matches!(t, GgmlType::IQ4NL | GgmlType::IQ4XS)) {
            let (n, k) = (45, ks(ty)[1]);
            let values = rng.normal(n * k, 0.05);
            let bytes = attend::quant::quantize(ty, &values).unwrap();
            let wf = attend::quant::dequantize(ty, &bytes, n * k).unwrap();
            let w = QMatrix::upload(&gpu, "w", ty, n, k, &bytes).unwrap();
            for (m, mm) in [(2usize, false), (20, true)] {
                let x = rng.normal(m * k, 1.0);
                let xb = gpu.upload("x", &x).unwrap();
                let yb = gpu.upload("y", &vec![f32::NAN; m * n]).unwrap();
                let mut rec = gpu.recorder("linear");
                if mm {
                    matmul(&mut rec, &w, &xb, &yb, m as u32, None);
                } else {
                    matvec(&mut rec, &w, &xb, &yb, m as u32, None);
                }
                rec.submit();
                let got: Vec<f32> = gpu.read(&yb, 0, m * n).await.unwrap();
                let (want, mag) = reference(&wf, &x, None, m, n, k);
                check(&format!("{} quantized m={m}", ty.name()), &got, &want, &mag);
            }
        }
    }
}

gpu_test! {
    /// LARGE: a real > 128 MiB weight (Q8_0, 64000 × 2048 = 139,264,000 bytes, like Gemma 3's
    /// 178 MB token table). On adapters whose binding limit is 128 MiB (lavapipe) it is split into
    /// parts by `QMatrix::new` itself; matvec and embedding are checked on rows around the part
    /// boundary, the ends and a random sample.
    async fn large_q8_0_weight_over_128_mib() {
        let gpu = gpu().await;
        let ty = GgmlType::Q8_0;
        let (n, k) = (64000usize, 2048usize);
        let row_bytes = ty.row_bytes(k);
        let mut bytes = vec![0u8; n * row_bytes];
        let mut rng = Rng::new(9);
        for c in bytes.chunks_exact_mut(8) {
            c.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        for (i, blk) in bytes.chunks_exact_mut(34).enumerate() {
            // d = 2^-7 · (1 + a varying fraction): finite, distinct per block.
            blk[..2].copy_from_slice(&(0x2000u16 | (i as u16 & 0x3ff)).to_le_bytes());
        }
        assert!(bytes.len() > 128 << 20);
        let w = QMatrix::upload(&gpu, "big", ty, n, k, &bytes).unwrap();
        if gpu.caps().max_binding < bytes.len() as u64 {
            assert!(w.parts().len() >= 2, "not split");
        }
        let x = rng.normal(k, 1.0);
        let xb = gpu.upload("x", &x).unwrap();
        let yb = gpu.upload("y", &vec![f32::NAN; n]).unwrap();
        let mut sample: Vec<u32> = vec![0, 1, n as u32 - 2, n as u32 - 1];
        for p in &w.parts()[1..] {
            sample.extend((p.row0 as u32 - 3)..(p.row0 as u32 + 3));
        }
        sample.extend((0..200).map(|_| rng.below(n as u32)));
        let idb = gpu.upload("ids", &sample).unwrap();
        let eb = gpu.upload("emb", &vec![f32::NAN; sample.len() * k]).unwrap();
        let mut rec = gpu.recorder("big");
        matvec(&mut rec, &w, &xb, &yb, 1, None);
        attend::kernels::embedding::embedding(&mut rec, &w, &idb, &eb, sample.len() as u32, 1.0).unwrap();
        rec.submit();
        let y: Vec<f32> = gpu.read(&yb, 0, n).await.unwrap();
        let emb: Vec<f32> = gpu.read(&eb, 0, sample.len() * k).await.unwrap();
        let (mut got, mut want, mut mag) = (vec![], vec![], vec![]);
        for (i, &r) in sample.iter().enumerate() {
            let r = r as usize;
            let row = dequant(ty, &bytes[r * row_bytes..(r + 1) * row_bytes], k);
            assert_close(&format!("embedding row {r}"), &emb[i * k..(i + 1) * k], &row, 0.0, 0.0);
            let (yw, ym) = reference(&row, &x, None, 1, 1, k);
            got.push(y[r]);
            want.extend(yw);
            mag.extend(ym);
        }
        check("large Q8_0 matvec", &got, &want, &mag);
        assert!(y.iter().all(|v| v.is_finite()), "some row of y was not written");
    }
}

/// The fused GLU feed-forward: `[gate; up]` stacked in one matrix, decoded by matvec with the
/// activation (1..8 tokens) and by matmul + `glu_rows` (prefill), against
/// `act(gate·x) ⊙ (up·x)` in f64. Error: each dot product within `REL · Σ|w x|`, propagated
/// through the product (the activations' slopes are below 1.2).
async fn glu_format(ty: GgmlType) {
    use attend::kernels::elementwise::Glu;
    use attend::kernels::linear::linear_glu;
    let gpu = gpu().await;
    let k = ks(ty)[1];
    let f = 68; // whole row groups, not a multiple of the 64-row workgroup tiles
    for (i, (m, glu)) in [
        (1usize, Glu::Silu),
        (3, Glu::Gelu),
        (20, Glu::Silu),
        (33, Glu::Gelu),
        (1, Glu::Gelu),
        (20, Glu::Silu),
    ]
    .into_iter()
    .enumerate()
    {
        let mut rng = Rng::new(300 + i as u64);
        let bytes = random_weights(ty, 2 * f, k, &mut rng);
        let wf = dequant(ty, &bytes, 2 * f * k);
        let x = rng.normal(m * k, 1.0);
        let w = upload_weights(&gpu, ty, 2 * f, k, &bytes, false);
        // The last two: choices the tune may make on any adapter (two row groups per invocation
        // when decoding; the workgroup-tiled prefill kernel).
        if i == 4 {
            w.set_matvec_shape(MatvecShape {
                wg: 8,
                tpr: 1,
                x_uniform: true,
                groups: 2,
                q8: false,
            });
        }
        if i == 5 {
            w.set_matmul_shape(attend::kernels::matmul::MatmulShape::Tiled);
        }
        let xb = gpu.activation("x", (x.len() * 4) as u64).unwrap();
        gpu.write(&xb, 0, bytemuck::cast_slice(&x));
        let tmp = gpu.upload("tmp", &vec![f32::NAN; m * 2 * f]).unwrap();
        let out = gpu.upload("out", &vec![f32::NAN; m * f]).unwrap();
        let mut rec = gpu.recorder("glu");
        linear_glu(&mut rec, &w, glu, &xb, &tmp, &out, m as u32).unwrap();
        rec.submit();
        let got: Vec<f32> = gpu.read(&out, 0, m * f).await.unwrap();
        let (yw, ym) = reference(&wf, &x, None, m, 2 * f, k);
        let act = |v: f64| match glu {
            Glu::Silu => v / (1.0 + (-v).exp()),
            Glu::Gelu => {
                let u = 0.7978845608028654 * v * (1.0 + 0.044715 * v * v);
                0.5 * v * (1.0 + u.tanh())
            }
        };
        let (mut want, mut mag) = (vec![], vec![]);
        for t in 0..m {
            for j in 0..f {
                let (g, u) = (yw[t * 2 * f + j], yw[t * 2 * f + f + j]);
                let (gm, um) = (ym[t * 2 * f + j], ym[t * 2 * f + f + j]);
                want.push(act(g) * u);
                // |Δ(act(g) u)| ≤ 1.2 |Δg| |u| + |act(g)| |Δu|, with |Δ| ≤ REL · mag.
                mag.push(1.2 * gm * u.abs() + act(g).abs() * um + REL * 1.2 * gm * um);
            }
        }
        check(
            &format!("{} GLU {glu:?} m={m}", ty.name()),
            &got,
            &want,
            &mag,
        );
    }
}

per_format!(glu_format:
    glu_f16 = F16, glu_q8_0 = Q8_0, glu_q4_1 = Q4_1, glu_q5_0 = Q5_0, glu_q4_k = Q4K, glu_q6_k = Q6K,
);

// Native only, as `few_shapes` says.
per_format!(#[cfg(not(target_arch = "wasm32"))] glu_format:
    glu_q2_k = Q2K, glu_q3_k = Q3K, glu_iq4_nl = IQ4NL, glu_iq4_xs = IQ4XS,
);

/// A stacked `[a; b; c]` weight written to three outputs (Q, K and V from one pass), by matvec
/// (1..8 tokens) and matmul (prefill), with stacked biases, against three separate references.
async fn split_format(ty: GgmlType) {
    use attend::kernels::linear::linear_split;
    let gpu = gpu().await;
    let k = ks(ty)[1];
    // Three-way stacks, then two-way ones ([q; k] with V apart: the third output stays untouched).
    for (i, (m, with_bias, rows)) in [
        (1usize, false, [36usize, 12, 20]),
        (5, true, [36, 12, 20]),
        (21, true, [36, 12, 20]),
        (1, false, [36, 12, 0]),
        (21, true, [36, 12, 0]),
    ]
    .into_iter()
    .enumerate()
    {
        let n: usize = rows.iter().sum();
        let mut rng = Rng::new(400 + i as u64);
        let bytes = random_weights(ty, n, k, &mut rng);
        let wf = dequant(ty, &bytes, n * k);
        let x = rng.normal(m * k, 1.0);
        let bias = with_bias.then(|| rng.normal(n, 1.0));
        let w = upload_weights(&gpu, ty, n, k, &bytes, false);
        let xb = gpu.activation("x", (x.len() * 4) as u64).unwrap();
        gpu.write(&xb, 0, bytemuck::cast_slice(&x));
        let outs: Vec<_> = rows
            .iter()
            .map(|&r| gpu.upload("y", &vec![f32::NAN; (m * r).max(1)]).unwrap())
            .collect();
        let bb = bias.as_ref().map(|b| gpu.upload("bias", b).unwrap());
        let mut rec = gpu.recorder("split");
        let rows32 = rows.map(|r| r as u32);
        let o = [outs[0].raw(), outs[1].raw(), outs[2].raw()];
        linear_split(
            &mut rec,
            &w,
            &xb,
            o,
            rows32,
            m as u32,
            bb.as_ref().map(|b| b.raw()),
        )
        .unwrap();
        rec.submit();
        let (want, mag) = reference(&wf, &x, bias.as_deref(), m, n, k);
        let mut row0 = 0;
        for (j, &r) in rows.iter().enumerate() {
            if r == 0 {
                let got: Vec<f32> = gpu.read(&outs[j], 0, 1).await.unwrap();
                assert!(
                    got[0].is_nan(),
                    "{} two-way split wrote its third output",
                    ty.name()
                );
                continue;
            }
            let got: Vec<f32> = gpu.read(&outs[j], 0, m * r).await.unwrap();
            let pick = |v: &[f64]| -> Vec<f64> {
                (0..m)
                    .flat_map(|t| v[t * n + row0..t * n + row0 + r].to_vec())
                    .collect()
            };
            check(
                &format!("{} split out {j} m={m}", ty.name()),
                &got,
                &pick(&want),
                &pick(&mag),
            );
            row0 += r;
        }
    }
}

per_format!(split_format:
    split_f32 = F32, split_q8_0 = Q8_0, split_q4_1 = Q4_1, split_q5_0 = Q5_0, split_q4_k = Q4K,
);

per_format!(#[cfg(not(target_arch = "wasm32"))] split_format:
    split_q2_k = Q2K, split_q3_k = Q3K, split_iq4_nl = IQ4NL, split_iq4_xs = IQ4XS,
);
