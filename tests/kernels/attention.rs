//! Attention kernels against a plain f64 CPU reference of softmax(Q·Kᵀ·scale + mask)·V computed on
//! the same f16-rounded K/V (or the exact ones, for an f32 cache), so the only differences are
//! summation order and `exp`.
//! Outputs are convex combinations of V (|v| ≲ 3): tolerance atol 1e-4 + rtol 1e-4 (observed
//! errors are ~1e-6); lens probabilities atol 1e-5. The cache is filled from the CPU in the
//! layout the shaders read (tests/kernels/kv_layout.rs); what rope_kv writes is checked in rope.rs.

use crate::common::*;
use crate::kv_layout;
use attend::kernels::attention::{
    attention, attention_probs_row, attention_with, AttnKernels, AttnParams, KvPrecision, LayerKv,
};
use half::f16;

#[derive(Clone, Copy, Debug)]
struct Case {
    m: u32,
    pos0: u32,
    d: u32,
    n_heads: u32,
    n_kv: u32,
    window: u32,
    /// Attention logit soft-cap (0 = none).
    softcap: f32,
}

fn f16_round(x: &[f32]) -> Vec<f32> {
    x.iter().map(|&v| f16::from_f32(v).to_f32()).collect()
}

/// K or V as a cache of `precision` holds them.
fn stored(x: &[f32], precision: KvPrecision) -> Vec<f32> {
    match precision {
        KvPrecision::F16 => f16_round(x),
        KvPrecision::F32 => x.to_vec(),
    }
}

fn visible(qpos: usize, j: usize, window: u32) -> bool {
    j <= qpos && (window == 0 || qpos - j < window as usize)
}

/// Softmax weights of one query row (`q`: [H][D]) at `qpos` over keys 0..=qpos: [H][qpos + 1].
fn ref_probs(q: &[f32], k: &[f32], c: &Case, qpos: usize, scale: f32) -> Vec<f64> {
    let (d, h_n, kv_n) = (c.d as usize, c.n_heads as usize, c.n_kv as usize);
    let group = h_n / kv_n;
    let n = qpos + 1;
    let mut probs = vec![0f64; h_n * n];
    for h in 0..h_n {
        let kvh = h / group;
        let scores: Vec<Option<f64>> = (0..n)
            .map(|j| {
                visible(qpos, j, c.window)
                    .then(|| {
                        let kr = &k[(j * kv_n + kvh) * d..][..d];
                        let qr = &q[h * d..][..d];
                        qr.iter()
                            .zip(kr)
                            .map(|(a, b)| *a as f64 * *b as f64)
                            .sum::<f64>()
                            * scale as f64
                    })
                    .map(|s| {
                        // Soft-capping (Gemma 2): c · tanh(s / c) before the softmax.
                        let cap = c.softcap as f64;
                        if cap > 0.0 {
                            cap * (s / cap).tanh()
                        } else {
                            s
                        }
                    })
            })
            .collect();
        let mx = scores.iter().flatten().cloned().fold(f64::MIN, f64::max);
        let total: f64 = scores.iter().flatten().map(|s| (s - mx).exp()).sum();
        for (j, s) in scores.iter().enumerate() {
            probs[h * n + j] = s.map_or(0.0, |s| (s - mx).exp() / total);
        }
    }
    probs
}

/// Reference attention output [m][H][D]; `k`, `v` are [pos][KV][D], already f16-rounded.
fn reference(q: &[f32], k: &[f32], v: &[f32], c: &Case, scale: f32) -> Vec<f32> {
    let (d, h_n, kv_n) = (c.d as usize, c.n_heads as usize, c.n_kv as usize);
    let group = h_n / kv_n;
    let mut out = vec![0f32; c.m as usize * h_n * d];
    for i in 0..c.m as usize {
        let qpos = c.pos0 as usize + i;
        let probs = ref_probs(&q[i * h_n * d..][..h_n * d], k, c, qpos, scale);
        for h in 0..h_n {
            for e in 0..d {
                let mut acc = 0f64;
                for j in 0..=qpos {
                    acc += probs[h * (qpos + 1) + j] * v[(j * kv_n + h / group) * d + e] as f64;
                }
                out[(i * h_n + h) * d + e] = acc as f32;
            }
        }
    }
    out
}

/// Random K/V for positions 0..pos0+m written into the cache, then attention over the m queries.
/// Returns (gpu out, reference).
/// `kernels`: which ones (`attention_with`); the register ones get a capacity that is a
/// multiple of 4, which they need.
async fn run_case_with(
    gpu: &Gpu,
    c: Case,
    rng: &mut Rng,
    precision: KvPrecision,
    kernels: Option<AttnKernels>,
) -> (Vec<f32>, Vec<f32>) {
    let (d, total) = (c.d as usize, (c.pos0 + c.m) as usize);
    let row = c.n_kv as usize * d;
    let mut cap = total as u32 + 3;
    if kernels.is_some_and(AttnKernels::registers) {
        cap = cap.next_multiple_of(4);
    }
    let kv = LayerKv::with_precision(gpu, cap, c.n_kv, c.d, precision).unwrap();
    let k = rng.normal(total * row, 1.0);
    let v = rng.normal(total * row, 1.0);
    let q = rng.normal(c.m as usize * c.n_heads as usize * d, 1.5);
    let scale = 1.0 / (d as f32).sqrt();
    kv_layout::fill(gpu, &kv, &k, &v);
    let q_buf = gpu.upload("q", &q).unwrap();
    let out = gpu.storage("out", q.len() as u64 * 4).unwrap();
    let mut rec = gpu.recorder("attention test");
    let p = AttnParams {
        m: c.m,
        pos0: c.pos0,
        n_heads: c.n_heads,
        scale,
        window: c.window,
        softcap: c.softcap,
    };
    attention_with(&mut rec, &q_buf, &kv, &out, &p, kernels).unwrap();
    rec.submit();
    let got = gpu.read::<f32>(&out, 0, q.len()).await.unwrap();
    let want = reference(
        &q,
        &stored(&k, precision),
        &stored(&v, precision),
        &c,
        scale,
    );
    (got, want)
}

async fn run_case(
    gpu: &Gpu,
    c: Case,
    rng: &mut Rng,
    precision: KvPrecision,
) -> (Vec<f32>, Vec<f32>) {
    run_case_with(gpu, c, rng, precision, None).await
}

/// Whether the register kernels take this case (they need whole vec4s of V words).
fn registers_fit(c: &Case, precision: KvPrecision) -> bool {
    let per_word = match precision {
        KvPrecision::F16 => 8,
        KvPrecision::F32 => 4,
    };
    c.d.is_multiple_of(per_word)
}

async fn check_cases(gpu: &Gpu, cases: &[Case], seed: u64) {
    check_cases_at(gpu, cases, seed, KvPrecision::F16).await;
}

async fn check_cases_at(gpu: &Gpu, cases: &[Case], seed: u64, precision: KvPrecision) {
    let mut rng = Rng::new(seed);
    let mut worst = 0f32;
    let mut runs = 0;
    for c in cases {
        // Every case runs each kernel of its path on every adapter: the workgroup one (tiled
        // prefill, split-K decode) and, where the shape allows, the register one (the default
        // on CPU adapters), whose decode also runs with its merge as a second dispatch (the
        // default on SwiftShader).
        use AttnKernels::*;
        let kernels: &[AttnKernels] = match (registers_fit(c, precision), c.m) {
            (false, _) => &[Workgroup],
            (true, 1) => &[Workgroup, Registers, RegistersSplit],
            (true, _) => &[Workgroup, Registers],
        };
        for &k in kernels {
            let (got, want) = run_case_with(gpu, *c, &mut rng, precision, Some(k)).await;
            worst = worst.max(max_abs_diff(&got, &want));
            let what = format!("{c:?} {precision:?} kernels {k:?}");
            assert_close(&what, &got, &want, 1e-4, 1e-4);
            runs += 1;
        }
    }
    eprintln!(
        "attention ({precision:?} cache): {} cases in {runs} runs, max |gpu - ref| = {worst:e}",
        cases.len()
    );
}

const HEADS: [(u32, u32); 4] = [(1, 1), (4, 2), (9, 3), (8, 1)];
const DIMS: [u32; 3] = [64, 256, 80];

gpu_test! {
    async fn prefill_over_lengths_offsets_and_windows() {
        // Every (m, pos0, window); head dim and head grouping rotate through all their values.
        let gpu = gpu().await;
        let mut cases = Vec::new();
        let mut n = 0usize;
        for m in [1, 5, 33, 100] {
            for pos0 in [0, 7, 60] {
                for window in [0, 16] {
                    let (n_heads, n_kv) = HEADS[n % 4];
                    let d = DIMS[(n / 2 + n) % 3];
                    cases.push(Case { m, pos0, d, n_heads, n_kv, window, softcap: 0.0 });
                    n += 1;
                }
            }
        }
        check_cases(&gpu, &cases, 1).await;
    }
}

gpu_test! {
    async fn prefill_every_head_dim_and_grouping() {
        let gpu = gpu().await;
        let mut cases = Vec::new();
        for (n, d) in DIMS.into_iter().enumerate() {
            for (k, (n_heads, n_kv)) in HEADS.into_iter().enumerate() {
                let window = if (n + k) % 2 == 0 { 16 } else { 0 };
                cases.push(Case { m: 33, pos0: 7, d, n_heads, n_kv, window, softcap: 0.0 });
            }
        }
        // Odd head sizes (not a multiple of 4 or of the tile), windows of 1 (only the diagonal).
        cases.push(Case { m: 19, pos0: 3, d: 34, n_heads: 6, n_kv: 2, window: 0, softcap: 0.0 });
        cases.push(Case { m: 12, pos0: 5, d: 2, n_heads: 2, n_kv: 1, window: 1, softcap: 0.0 });
        cases.push(Case { m: 40, pos0: 0, d: 128, n_heads: 4, n_kv: 4, window: 1, softcap: 0.0 });
        // 18 heads per kv head: a tile's rows span several queries and partial head groups.
        cases.push(Case { m: 7, pos0: 3, d: 64, n_heads: 36, n_kv: 2, window: 5, softcap: 0.0 });
        check_cases(&gpu, &cases, 2).await;
    }
}

gpu_test! {
    async fn decode_across_split_k_chunks() {
        // m = 1: chunks of 64 keys walked by one workgroup (up to 1024 keys) or split across
        // workgroups plus a reduce pass (position 1100 without a window): positions at and across
        // chunk edges, windows shorter and longer than a chunk, and 16 or 18 heads per kv head
        // (more than one head group per workgroup row).
        let gpu = gpu().await;
        let shapes = [(64, 9, 3), (256, 8, 1), (80, 4, 2), (64, 18, 1)];
        let mut cases = Vec::new();
        let mut n = 0usize;
        for pos0 in [0, 1, 63, 64, 65, 130, 300, 1100] {
            for window in [0, 16, 100] {
                let (d, n_heads, n_kv) = shapes[n % shapes.len()];
                cases.push(Case { m: 1, pos0, d, n_heads, n_kv, window, softcap: 0.0 });
                n += 1;
            }
        }
        check_cases(&gpu, &cases, 3).await;
    }
}

gpu_test! {
    async fn decode_merge_as_a_second_dispatch_gives_the_same_bits() {
        // `RegistersSplit` (SwiftShader's default) merges the invocations' partials in a reduce
        // dispatch with the in-kernel merge's arithmetic: the same inputs give the same bits as
        // `Registers`, at every length (one invocation's keys to all eight's, windows), head
        // size and grouping (an odd group repeats its last head), for either cache.
        let gpu = gpu().await;
        let shapes = [(64, 9, 3), (256, 8, 1), (80, 4, 2), (64, 18, 1), (16, 3, 3)];
        let mut n = 0u64;
        for pos0 in [0, 5, 8, 63, 64, 65, 130, 1100] {
            for window in [0, 16] {
                for precision in [KvPrecision::F16, KvPrecision::F32] {
                    let (d, n_heads, n_kv) = shapes[n as usize % shapes.len()];
                    let c = Case { m: 1, pos0, d, n_heads, n_kv, window, softcap: 0.0 };
                    n += 1;
                    let (mut r1, mut r2) = (Rng::new(n), Rng::new(n));
                    let reg = Some(AttnKernels::Registers);
                    let (merged, want) = run_case_with(&gpu, c, &mut r1, precision, reg).await;
                    let split = Some(AttnKernels::RegistersSplit);
                    let (split, _) = run_case_with(&gpu, c, &mut r2, precision, split).await;
                    assert_close(&format!("{c:?} {precision:?}"), &split, &want, 1e-4, 1e-4);
                    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&split), bits(&merged), "{c:?} {precision:?}");
                }
            }
        }
    }
}

gpu_test! {
    async fn f32_cache_prefill_and_decode_match_exact_kv() {
        // The f32 cache (the lens's precision) on every path: prefill tiles of every head size
        // (half the keys per tile), windows, grouping, and decode walked and split-K; the
        // reference uses the unrounded K/V, which an f16 cache misses by ~1e-3.
        let gpu = gpu().await;
        let mut cases = Vec::new();
        for (n, d) in DIMS.into_iter().chain([34, 128]).enumerate() {
            let (n_heads, n_kv) = HEADS[n % 4];
            let window = if n % 2 == 0 { 16 } else { 0 };
            cases.push(Case { m: 33, pos0: 7, d, n_heads, n_kv, window, softcap: 0.0 });
            cases.push(Case { m: 1, pos0: 70 + n as u32, d, n_heads, n_kv, window, softcap: 0.0 });
        }
        cases.push(Case { m: 1, pos0: 1100, d: 64, n_heads: 9, n_kv: 3, window: 0, softcap: 0.0 });
        cases.push(Case { m: 7, pos0: 3, d: 64, n_heads: 36, n_kv: 2, window: 5, softcap: 0.0 });
        check_cases_at(&gpu, &cases, 6, KvPrecision::F32).await;
        // The same exact-K/V reference is out of reach of the f16 cache: the check can tell.
        let mut rng = Rng::new(6);
        let c = Case { m: 33, pos0: 7, d: 64, n_heads: 4, n_kv: 2, window: 0, softcap: 0.0 };
        let (got_f16, _) = run_case(&gpu, c, &mut rng, KvPrecision::F16).await;
        let mut rng = Rng::new(6);
        let (_, want_exact) = run_case(&gpu, c, &mut rng, KvPrecision::F32).await;
        let err = max_abs_diff(&got_f16, &want_exact);
        assert!(err > 1e-4, "an f16 cache came within {err:e} of exact K/V");
    }
}

gpu_test! {
    async fn soft_capped_scores_on_every_path() {
        // Gemma 2's attention logit soft-cap (scores -> c · tanh(s / c) before the mask): prefill
        // tiles, decode walked and split-K, windows, both caches, and the lens. A cap of 1.5 bites
        // hard at these scores (std ≈ 1.5, tails past 5), so an uncapped kernel is far off: the
        // reference without the cap must not match.
        let gpu = gpu().await;
        let cap = 1.5;
        let cases = [
            Case { m: 33, pos0: 7, d: 64, n_heads: 4, n_kv: 2, window: 0, softcap: cap },
            Case { m: 40, pos0: 0, d: 256, n_heads: 8, n_kv: 1, window: 8, softcap: cap },
            Case { m: 19, pos0: 3, d: 34, n_heads: 6, n_kv: 2, window: 5, softcap: cap },
            Case { m: 1, pos0: 70, d: 64, n_heads: 9, n_kv: 3, window: 0, softcap: cap },
            Case { m: 1, pos0: 300, d: 256, n_heads: 8, n_kv: 1, window: 16, softcap: cap },
            Case { m: 1, pos0: 1100, d: 80, n_heads: 4, n_kv: 2, window: 0, softcap: cap },
        ];
        check_cases(&gpu, &cases, 7).await;
        check_cases_at(&gpu, &cases, 8, KvPrecision::F32).await;
        for precision in [KvPrecision::F16, KvPrecision::F32] {
            lens_case(&gpu, precision, cap).await;
        }
        for c in [cases[0], cases[3], cases[5]] {
            let mut rng = Rng::new(9);
            let (got, _) = run_case(&gpu, c, &mut rng, KvPrecision::F32).await;
            let mut rng = Rng::new(9);
            let plain = Case { softcap: 0.0, ..c };
            let (_, uncapped) = run_case(&gpu, plain, &mut rng, KvPrecision::F32).await;
            let err = max_abs_diff(&got, &uncapped);
            assert!(err > 0.1, "{c:?}: capped and uncapped attention differ by only {err:e}");
        }
    }
}

gpu_test! {
    async fn lens_probabilities_sum_to_one_and_match() {
        let gpu = gpu().await;
        for precision in [KvPrecision::F16, KvPrecision::F32] {
            lens_case(&gpu, precision, 0.0).await;
        }
    }
}

async fn lens_case(gpu: &Gpu, precision: KvPrecision, softcap: f32) {
    let mut rng = Rng::new(5);
    for (n, (d, n_heads, n_kv, window, pos)) in [
        (64u32, 9u32, 3u32, 0u32, 0u32),
        (64, 9, 3, 0, 70),
        (256, 8, 1, 16, 40),
        (80, 4, 2, 300, 299),
        (80, 4, 4, 5, 600),
    ]
    .into_iter()
    .enumerate()
    {
        let c = Case {
            m: 1,
            pos0: pos,
            d,
            n_heads,
            n_kv,
            window,
            softcap,
        };
        let row = (n_kv * d) as usize;
        let kv = LayerKv::with_precision(gpu, pos + 1, n_kv, d, precision).unwrap();
        let k = rng.normal((pos as usize + 1) * row, 1.0);
        let v = rng.normal((pos as usize + 1) * row, 1.0);
        // A batch of 3 query rows: the lens reads row `q_row`.
        let q = rng.normal(3 * (n_heads * d) as usize, 2.0);
        let q_row = (n % 3) as u32;
        let scale = 1.0 / (d as f32).sqrt();
        let n_keys = pos as usize + 1;
        let probs = gpu
            .storage("probs", (n_heads as usize * n_keys * 4) as u64)
            .unwrap();
        let q_buf = gpu.upload("q", &q).unwrap();
        kv_layout::fill(gpu, &kv, &k, &v);
        let mut rec = gpu.recorder("lens");
        // The lens reads the last query of the call: row q_row of q_row + 1, at position `pos`.
        let p = AttnParams {
            m: q_row + 1,
            pos0: pos - q_row,
            n_heads,
            scale,
            window,
            softcap,
        };
        attention_probs_row(&mut rec, &q_buf, &kv, &probs, &p).unwrap();
        rec.submit();
        let got: Vec<f32> = gpu
            .read(&probs, 0, n_heads as usize * n_keys)
            .await
            .unwrap();
        let q_one = &q[(q_row * n_heads * d) as usize..][..(n_heads * d) as usize];
        let want: Vec<f32> = ref_probs(q_one, &stored(&k, precision), &c, pos as usize, scale)
            .into_iter()
            .map(|x| x as f32)
            .collect();
        assert_close(
            &format!("lens {c:?} {precision:?}"),
            &got,
            &want,
            1e-5,
            1e-4,
        );
        for h in 0..n_heads as usize {
            let r = &got[h * n_keys..][..n_keys];
            let sum: f64 = r.iter().map(|&x| x as f64).sum();
            assert!(
                (sum - 1.0).abs() < 1e-5,
                "head {h}: probabilities sum to {sum}"
            );
            for (j, &p) in r.iter().enumerate() {
                if !visible(pos as usize, j, window) {
                    assert_eq!(p, 0.0, "head {h}: masked key {j} has weight {p}");
                }
            }
        }
    }
}

gpu_test! {
    async fn bad_shapes_are_errors_not_panics() {
        let gpu = gpu().await;
        assert!(LayerKv::new(&gpu, 16, 2, 63).is_err(), "odd head_dim");
        assert!(LayerKv::new(&gpu, 16, 2, 258).is_err(), "head_dim > 256");
        assert!(LayerKv::new(&gpu, 0, 2, 64).is_err(), "zero capacity");
        let kv = LayerKv::new(&gpu, 16, 2, 64).unwrap();
        let small = gpu.storage("small", 64).unwrap();
        let big = gpu.storage("big", 1 << 20).unwrap();
        let mut rec = gpu.recorder("bad");
        let p = AttnParams { m: 2, pos0: 0, n_heads: 3, scale: 1.0, window: 0, softcap: 0.0 };
        assert!(attention(&mut rec, &big, &kv, &big, &p).is_err(), "3 heads over 2 kv heads");
        let p = AttnParams { n_heads: 4, ..p };
        assert!(attention(&mut rec, &small, &kv, &big, &p).is_err(), "short q");
        assert!(attention(&mut rec, &big, &kv, &big, &AttnParams { m: 0, ..p }).is_err());
        let lens = |m, pos0| AttnParams { m, pos0, ..p };
        assert!(attention_probs_row(&mut rec, &big, &kv, &big, &lens(1, 16)).is_err(), "pos");
        assert!(attention_probs_row(&mut rec, &big, &kv, &small, &lens(1, 15)).is_err(), "out");
        assert!(attention_probs_row(&mut rec, &big, &kv, &big, &lens(0, 3)).is_err(), "m = 0");
        // q too short for row 1 of 4 heads of 64.
        let q_one = gpu.storage("q_one", 4 * 64 * 4).unwrap();
        assert!(attention_probs_row(&mut rec, &q_one, &kv, &big, &lens(2, 2)).is_err(), "row");
        // The register kernels on a cache they cannot read as vec4s: an error, not a guess.
        let odd = LayerKv::new(&gpu, 18, 2, 64).unwrap();
        let narrow = LayerKv::new(&gpu, 16, 2, 36).unwrap();
        let one = AttnParams { m: 1, ..p };
        for k in [AttnKernels::Registers, AttnKernels::RegistersSplit] {
            assert!(attention_with(&mut rec, &big, &odd, &big, &p, Some(k)).is_err(), "cap 18");
            assert!(attention_with(&mut rec, &big, &odd, &big, &one, Some(k)).is_err(), "cap 18");
            assert!(attention_with(&mut rec, &big, &narrow, &big, &p, Some(k)).is_err(), "d 36");
        }
        assert_eq!(rec.dispatches, 0);
    }
}

/// CPU seconds used by this process so far (lavapipe runs its threads in-process, so this
/// measures the work itself, not other load on a shared machine). Linux only; 0 elsewhere.
#[cfg(not(target_arch = "wasm32"))]
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0 // utime, stime in clock ticks (100 Hz)
}

/// Rough timings on the native adapter (`cargo test --test kernels attention_timing -- --ignored
/// --nocapture`): decode and prefill at model shapes, wall and process-CPU time per call.
#[cfg(not(target_arch = "wasm32"))]
#[test]
#[ignore]
fn attention_timing() {
    pollster::block_on(async {
        let gpu = gpu().await;
        let mut rng = Rng::new(9);
        let only = std::env::var("ATTN_TIMING").unwrap_or_default();
        // (label, head_dim, heads, kv heads, window)
        let models = [
            ("smollm2", 64u32, 9u32, 3u32, 0u32),
            ("gemma3", 256, 4, 1, 512),
        ];
        for (label, d, n_heads, n_kv, window) in models {
            let cap = 2048u32;
            let kv = LayerKv::new(&gpu, cap, n_kv, d).unwrap();
            let kin = rng.normal((cap * n_kv * d) as usize, 1.0);
            kv_layout::fill(&gpu, &kv, &kin, &kin);
            gpu.wait();
            let q = gpu
                .upload("q", &rng.normal((512 * n_heads * d) as usize, 1.0))
                .unwrap();
            let out = gpu.storage("out", (512 * n_heads * d * 4) as u64).unwrap();
            let scale = 1.0 / (d as f32).sqrt();
            for (m, pos0, reps) in [
                (1u32, 127u32, 1000u32),
                (1, 1023, 300),
                (1, 2047, 150),
                (128, 0, 6),
                (512, 0, 1),
            ] {
                let name = format!("{label} m={m} pos0={pos0}");
                if !name.contains(&only) {
                    continue;
                }
                let p = AttnParams {
                    m,
                    pos0,
                    n_heads,
                    scale,
                    window,
                    softcap: 0.0,
                };
                let run = |reps: u32| {
                    let mut rec = gpu.recorder("time");
                    for _ in 0..reps {
                        attention(&mut rec, &q, &kv, &out, &p).unwrap();
                    }
                    rec.submit();
                    gpu.wait();
                };
                run(1); // compile pipelines
                let (t, c) = (std::time::Instant::now(), cpu_seconds());
                run(reps);
                let wall = t.elapsed().as_secs_f64() * 1e3 / reps as f64;
                let cpu = (cpu_seconds() - c) * 1e3 / reps as f64;
                eprintln!("{name}: {wall:.3} ms wall, {cpu:.3} ms cpu per call");
            }
        }
    });
}

gpu_test! {
    async fn split_decode_writes_int8_as_quantize_does() {
        // In a pass of int8 matvecs SwiftShader's split decode quantizes its output in the merge
        // (`attend_reduce_rt_q8`): the same f32 bits as without, the words `quantize` writes from
        // them, and the quantize after it skipped. SmolLM2's and Gemma 3's heads, heads of 80
        // (units across heads) and several workgroups; a row of 48 values (not whole units) is
        // left to the quantize step.
        use attend::kernels::attention::attention_to;
        use attend::kernels::matvec_i8::{quantize, xq_bytes};
        let gpu = gpu().await;
        for (n, (d, n_heads, n_kv, pos0)) in
            [(64u32, 9u32, 3u32, 40u32), (256, 4, 1, 9), (80, 4, 2, 70), (64, 36, 4, 5), (16, 3, 3, 12)]
                .into_iter()
                .enumerate()
        {
            let mut rng = Rng::new(90 + n as u64);
            let total = (pos0 + 1) as usize;
            let kv = LayerKv::with_precision(&gpu, (pos0 + 4).next_multiple_of(4), n_kv, d, KvPrecision::F16)
                .unwrap();
            let row = (n_kv * d) as usize;
            kv_layout::fill(&gpu, &kv, &rng.normal(total * row, 1.0), &rng.normal(total * row, 1.0));
            let k = (n_heads * d) as usize;
            let q = gpu.upload("q", &rng.normal(k, 1.5)).unwrap();
            let p = AttnParams { m: 1, pos0, n_heads, scale: 0.125, window: 0, softcap: 0.0 };
            let split = Some(AttnKernels::RegistersSplit);
            let whole = k.is_multiple_of(32);
            // [plain, fused]
            let outs: Vec<_> = (0..2).map(|_| gpu.storage("out", 4 * k as u64).unwrap()).collect();
            let xqs: Vec<_> = (0..2).map(|_| gpu.storage("xq", xq_bytes(k.next_multiple_of(32))).unwrap()).collect();
            let mut rec = gpu.recorder("int8 attention");
            for fused in [false, true] {
                let i = fused as usize;
                let before = rec.dispatches;
                let int8 = fused.then_some(xqs[1].raw());
                attention_to(&mut rec, &q, &kv, &outs[i], &p, split, int8).unwrap();
                if whole {
                    quantize(&mut rec, &outs[i], k, &xqs[i]);
                }
                let quantized = whole && !fused;
                assert_eq!(rec.dispatches - before, 2 + quantized as u32, "case {n} fused {fused}");
            }
            rec.submit();
            let a: Vec<u32> = gpu.read(&outs[0], 0, k).await.unwrap();
            let b: Vec<u32> = gpu.read(&outs[1], 0, k).await.unwrap();
            assert!(a == b, "case {n}: the fused merge's output differs");
            if whole {
                let words = xq_bytes(k) as usize / 4;
                let a: Vec<u32> = gpu.read(&xqs[0], 0, words).await.unwrap();
                let b: Vec<u32> = gpu.read(&xqs[1], 0, words).await.unwrap();
                assert!(a == b, "case {n}: the fused merge's int8 words differ from quantize's");
            }
        }
    }
}
