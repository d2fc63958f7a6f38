//! Sampling candidates (`topk`) against a CPU reference: the listed tokens are exactly the first
//! of the sorted row, every other token is at most `rest_max`, the normalisers match f64 sums,
//! and the Gumbel draw is the argmax of the same noise computed here (whose draws follow the
//! softmax). Rows of odd lengths, vocabulary sizes, ties, and a row built so that one invocation
//! holds more of the best tokens than it can keep.

use crate::common::*;
use attend::kernels::topk::{self, Sampling};
use attend::sampler::{self, Candidates};

fn pcg(v: u32) -> u32 {
    let state = v.wrapping_mul(747796405).wrapping_add(2891336453);
    let word = ((state >> ((state >> 28) + 4)) ^ state).wrapping_mul(277803737);
    (word >> 22) ^ word
}

/// The shader's Gumbel noise for token `id` (same hash, f64 logs).
fn gumbel(seed: u64, id: u32) -> f64 {
    let h = pcg(pcg(id ^ pcg(seed as u32)) ^ (seed >> 32) as u32);
    let u = ((h >> 8) as f64 + 0.5) / 16777216.0;
    -(-u.ln()).ln()
}

async fn run(gpu: &Gpu, x: &[f32], t: f32, seed: u64) -> Candidates {
    let n = x.len() as u32;
    let gx = gpu.upload("x", x).unwrap();
    let s = gpu
        .upload("sampling", &[Sampling::new(t, seed, 7)])
        .unwrap();
    let part = gpu.storage("part", topk::partial_bytes(n)).unwrap();
    let out = gpu.storage("out", topk::OUT_BYTES).unwrap();
    let mut rec = gpu.recorder("topk");
    topk::topk(&mut rec, &gx, n, &s, &part, &out).unwrap();
    rec.submit();
    let words: Vec<u32> = gpu
        .read(&out, 0, topk::OUT_BYTES as usize / 4)
        .await
        .unwrap();
    topk::parse(&words, n).unwrap()
}

/// Checks `c` against `x`; returns how many tokens it lists.
fn check(x: &[f32], c: &Candidates, t: f32, seed: u64, what: &str) -> usize {
    let mut order: Vec<(u32, f32)> = x
        .iter()
        .copied()
        .enumerate()
        .map(|(i, v)| (i as u32, v))
        .collect();
    order.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
    let k = c.top.len();
    assert_eq!(
        c.top[..],
        order[..k],
        "{what}: the list is the sorted row's prefix"
    );
    for &(id, v) in &order[k..] {
        assert!(
            v <= c.rest_max,
            "{what}: token {id} ({v}) above rest_max {}",
            c.rest_max
        );
    }
    assert_eq!(c.complete(), k == x.len(), "{what}: complete");
    assert_eq!(c.max, order[0].1, "{what}: max");
    let lse = sampler::logsumexp(x);
    assert!(
        (c.lse - lse).abs() <= 1e-5 * lse.abs().max(1.0),
        "{what}: lse {} vs {lse}",
        c.lse
    );
    let mass: f64 = x
        .iter()
        .map(|&v| ((v as f64 - c.max as f64) / t as f64).exp())
        .sum();
    assert!(
        (c.mass - mass).abs() <= 1e-5 * mass,
        "{what}: mass {} vs {mass}",
        c.mass
    );
    // The draw: the largest x/T + G, up to f32 rounding of the scores.
    let score = |i: u32| x[i as usize] as f64 / t as f64 + gumbel(seed, i);
    let best = (0..x.len() as u32).map(score).fold(f64::MIN, f64::max);
    let (gid, glogit) = c.gumbel.expect("a draw was asked for");
    assert!(
        score(gid) >= best - 1e-4 * best.abs().max(1.0),
        "{what}: Gumbel pick {gid} is not the argmax"
    );
    assert_eq!(glogit, x[gid as usize], "{what}: the Gumbel pick's logit");
    k
}

gpu_test! {
    async fn topk_lists_the_sorted_prefix_of_random_rows() {
        let gpu = gpu().await;
        let mut rng = Rng::new(51);
        for &n in &[1usize, 5, 63, 64, 65, 1000, 4099, 49152, 262_144] {
            for (t, seed) in [(1.0f32, 1u64), (0.7, 0xDEAD_BEEF_0000_0042)] {
                let x = rng.normal(n, 3.0);
                let c = run(&gpu, &x, t, seed).await;
                let k = check(&x, &c, t, seed, &format!("random {n}"));
                assert_eq!(k, n.min(topk::K), "random {n}: a full list");
            }
        }
    }
}

gpu_test! {
    async fn topk_ties_and_crowded_invocations_stay_exact() {
        let gpu = gpu().await;
        let mut rng = Rng::new(52);
        // Ties: the lowest ids first, and nothing listed past a tie it cannot prove complete.
        let mut x = rng.normal(5000, 1.0);
        for i in [4999, 17, 2500, 1024, 3] {
            x[i] = 8.0;
        }
        check(&x, &run(&gpu, &x, 1.0, 3).await, 1.0, 3, "ties");
        let flat = vec![0.5f32; 3001];
        check(&flat, &run(&gpu, &flat, 1.0, 4).await, 1.0, 4, "flat");
        // 8 best tokens where one invocation reads them (ids 0-3 and 1024-1027 of the first
        // chunk, read as vec4s 256 apart): it keeps 4, so only those are listed as exact.
        let mut x = rng.normal(49152, 1.0);
        for (j, i) in [0usize, 1, 2, 3, 1024, 1025, 1026, 1027].into_iter().enumerate() {
            x[i] = 20.0 - j as f32;
        }
        let c = run(&gpu, &x, 1.0, 5).await;
        let k = check(&x, &c, 1.0, 5, "crowded");
        assert_eq!(k, 4, "crowded: the list stops above what the invocation dropped");
        assert_eq!(c.rest_max, 16.0, "crowded: the largest dropped logit bounds the rest");
    }
}

gpu_test! {
    async fn topk_gumbel_draws_follow_the_softmax() {
        // The shader's noise, drawn here for many seeds: its argmax frequencies are softmax(x/T);
        // a few of those seeds go through the GPU and pick the same token.
        let gpu = gpu().await;
        let x = [1.0f32, 0.0, 2.5, -1.0, 1.5, 0.3];
        let t = 0.8;
        let z: f64 = x.iter().map(|&v| (v as f64 / t).exp()).sum();
        let draws = 20_000;
        let mut counts = [0usize; 6];
        let pick = |seed: u64| {
            (0..6u32)
                .max_by(|&a, &b| {
                    let s = |i: u32| x[i as usize] as f64 / t + gumbel(seed, i);
                    s(a).partial_cmp(&s(b)).unwrap()
                })
                .unwrap()
        };
        for seed in 0..draws as u64 {
            counts[pick(seed * 0x9E37_79B9) as usize] += 1;
        }
        for (i, &n) in counts.iter().enumerate() {
            let p = (x[i] as f64 / t).exp() / z;
            let f = n as f64 / draws as f64;
            let sd = (p * (1.0 - p) / draws as f64).sqrt();
            assert!((f - p).abs() < 5.0 * sd + 1e-3, "token {i}: frequency {f} vs probability {p}");
        }
        for seed in 0..8u64 {
            let c = run(&gpu, &x, t as f32, seed * 0x9E37_79B9).await;
            assert_eq!(c.gumbel.unwrap().0, pick(seed * 0x9E37_79B9), "seed {seed}");
        }
    }
}

#[cfg(not(target_arch = "wasm32"))]
#[test]
#[ignore = "timing, not a check: cargo test --release --test kernels topk_timing -- --ignored --nocapture"]
fn topk_timing() {
    use attend::kernels::argmax;
    pollster::block_on(async {
        let gpu = gpu().await;
        let mut rng = Rng::new(53);
        for &n in &[49152u32, 262_144] {
            let x = gpu.upload("x", &rng.normal(n as usize, 3.0)).unwrap();
            let s = gpu.upload("sampling", &[Sampling::new(0.8, 9, 7)]).unwrap();
            let part = gpu.storage("part", topk::partial_bytes(n)).unwrap();
            let out = gpu.storage("out", topk::OUT_BYTES).unwrap();
            let reps = 20;
            let mut best = [f64::MAX; 2];
            for round in 0..6 {
                let which = round % 2;
                let t = std::time::Instant::now();
                let mut rec = gpu.recorder("topk");
                for _ in 0..reps {
                    if which == 0 {
                        topk::topk(&mut rec, &x, n, &s, &part, &out).unwrap();
                    } else {
                        argmax::argmax(&mut rec, &x, 1, n, &out).unwrap();
                    }
                }
                rec.submit();
                gpu.wait();
                if round >= 2 {
                    best[which] = best[which].min(t.elapsed().as_secs_f64() * 1e6 / reps as f64);
                }
            }
            eprintln!("1x{n}: topk {:.0} µs, argmax {:.0} µs", best[0], best[1]);
        }
    });
}
