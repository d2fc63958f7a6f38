//! Sampler statistics and edge cases against plain references written here.

// The same tests run in the browser: `cargo test --target wasm32-unknown-unknown --test sampler`.
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use attend::sampler::{
    argmax, logsumexp, token_logprob, top_logprobs, Rng, Sampler, SamplerConfig,
};

fn softmax(x: &[f32], t: f64) -> Vec<f64> {
    let m = x.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let w: Vec<f64> = x.iter().map(|&v| ((v as f64 - m) / t).exp()).collect();
    let s: f64 = w.iter().sum();
    w.iter().map(|v| v / s).collect()
}

fn frequencies(cfg: SamplerConfig, logits: &[f32], draws: usize) -> Vec<f64> {
    let mut s = Sampler::new(cfg);
    let mut counts = vec![0usize; logits.len()];
    for _ in 0..draws {
        counts[s.sample(logits, &[]) as usize] += 1;
    }
    counts.iter().map(|&c| c as f64 / draws as f64).collect()
}

/// Every empirical frequency within 4.5 standard errors (+1/N) of the expected probability: with a
/// fixed seed this is deterministic, and a wrong distribution misses by far more.
fn assert_close(freq: &[f64], want: &[f64], n: usize, what: &str) {
    for (i, (&f, &p)) in freq.iter().zip(want).enumerate() {
        let tol = 4.5 * (p * (1.0 - p) / n as f64).sqrt() + 1.0 / n as f64;
        assert!(
            (f - p).abs() <= tol,
            "{what}: token {i}: freq {f:.4} vs p {p:.4} (tol {tol:.4})"
        );
    }
}

fn cfg(temperature: f32, seed: u64) -> SamplerConfig {
    SamplerConfig {
        temperature,
        seed: Some(seed),
        ..Default::default()
    }
}

const LOGITS: [f32; 6] = [2.0, 1.5, 0.3, -0.5, 1.0, -2.0];

#[test]
fn temperature_draws_follow_the_softmax() {
    let n = 10_000;
    for (t, seed) in [(1.0, 1), (0.7, 2), (2.0, 3), (0.25, 4)] {
        let f = frequencies(cfg(t, seed), &LOGITS, n);
        assert_close(&f, &softmax(&LOGITS, t as f64), n, &format!("T={t}"));
    }
}

#[test]
fn top_k_top_p_min_p_keep_exactly_their_sets() {
    let n = 10_000;
    // Probabilities at T=1: [0.443, 0.269, 0.081, 0.036, 0.163, 0.008] (order by id).
    let p = softmax(&LOGITS, 1.0);
    let renorm = |keep: &[usize]| -> Vec<f64> {
        let s: f64 = keep.iter().map(|&i| p[i]).sum();
        (0..p.len())
            .map(|i| if keep.contains(&i) { p[i] / s } else { 0.0 })
            .collect()
    };
    let top_k = frequencies(
        SamplerConfig {
            top_k: 3,
            ..cfg(1.0, 10)
        },
        &LOGITS,
        n,
    );
    assert_close(&top_k, &renorm(&[0, 1, 4]), n, "top_k=3");
    // Mass above: id0 0, id1 .443, id4 .712, id2 .875 → top_p .75 keeps {0,1,4}, .5 keeps {0,1}.
    let top_p = frequencies(
        SamplerConfig {
            top_p: 0.75,
            ..cfg(1.0, 11)
        },
        &LOGITS,
        n,
    );
    assert_close(&top_p, &renorm(&[0, 1, 4]), n, "top_p=0.75");
    let top_p = frequencies(
        SamplerConfig {
            top_p: 0.5,
            ..cfg(1.0, 12)
        },
        &LOGITS,
        n,
    );
    assert_close(&top_p, &renorm(&[0, 1]), n, "top_p=0.5");
    // min_p .15: keep p >= .066 → {0,1,2,4}.
    let min_p = frequencies(
        SamplerConfig {
            min_p: 0.15,
            ..cfg(1.0, 13)
        },
        &LOGITS,
        n,
    );
    assert_close(&min_p, &renorm(&[0, 1, 2, 4]), n, "min_p=0.15");
    // Combined: top_k 4 → {0,1,4,2} (mass .956); top_p .9 of that (.860): mass above id2 is .712, so
    // all 4 stay; min_p .3 → p >= .133 → {0,1,4}.
    let both = frequencies(
        SamplerConfig {
            top_k: 4,
            top_p: 0.9,
            min_p: 0.3,
            ..cfg(1.0, 14)
        },
        &LOGITS,
        n,
    );
    assert_close(&both, &renorm(&[0, 1, 4]), n, "top_k+top_p+min_p");
    // top_p 0 keeps only the best token; temperature changes the distribution the filters see.
    let only = frequencies(
        SamplerConfig {
            top_p: 0.0,
            ..cfg(1.0, 15)
        },
        &LOGITS,
        200,
    );
    assert_eq!(only[0], 1.0);
    let hot = frequencies(
        SamplerConfig {
            top_k: 2,
            ..cfg(3.0, 16)
        },
        &LOGITS,
        n,
    );
    let q = softmax(&[2.0, 1.5], 3.0);
    assert_close(&hot, &[q[0], q[1], 0.0, 0.0, 0.0, 0.0], n, "top_k=2 at T=3");
}

/// Large vocabularies: truncation by partial selection must keep exactly the naive sets.
#[test]
fn truncation_on_a_262144_vocabulary_matches_a_full_sort() {
    let vocab = 262_144;
    let mut rng = Rng::new(99);
    let mut logits: Vec<f32> = (0..vocab)
        .map(|_| (rng.next_f64() * 2.0 - 1.0) as f32)
        .collect();
    // A head of 1500 strong tokens holding most of the mass, so top-p needs a prefix of several hundred.
    for _ in 0..1500 {
        let i = (rng.next_u64() % vocab as u64) as usize;
        logits[i] = 8.0 + rng.next_f64() as f32;
    }
    logits[7] = f32::NAN;
    logits[8] = f32::NEG_INFINITY;
    let mut order: Vec<u32> = (0..vocab as u32)
        .filter(|&i| !logits[i as usize].is_nan())
        .collect();
    order.sort_by(|&a, &b| {
        logits[b as usize]
            .partial_cmp(&logits[a as usize])
            .unwrap()
            .then(a.cmp(&b))
    });
    let p = softmax(
        &logits
            .iter()
            .map(|&v| if v.is_nan() { f32::NEG_INFINITY } else { v })
            .collect::<Vec<_>>(),
        1.0,
    );

    let top_p = 0.5;
    let mut acc = 0.0;
    let keep = order.iter().take_while(|&&i| {
        let before = acc;
        acc += p[i as usize];
        before < top_p
    });
    let nucleus: std::collections::HashSet<u32> = keep.copied().collect();
    assert!(
        nucleus.len() > 512,
        "nucleus of {} tokens is too small to test growth",
        nucleus.len()
    );
    let rank: std::collections::HashMap<u32, usize> =
        order.iter().enumerate().map(|(r, &i)| (i, r)).collect();

    let mut s = Sampler::new(SamplerConfig {
        top_p: top_p as f32,
        ..cfg(1.0, 5)
    });
    let mut deepest = 0;
    for _ in 0..2000 {
        let t = s.sample(&logits, &[]);
        assert!(
            nucleus.contains(&t),
            "top_p drew {t} (rank {}) outside the nucleus",
            rank[&t]
        );
        deepest = deepest.max(rank[&t]);
    }
    assert!(
        deepest > 512,
        "never drew past rank {deepest}: nucleus cut short"
    );

    let mut s = Sampler::new(SamplerConfig {
        top_k: 40,
        ..cfg(1.5, 6)
    });
    let top40: std::collections::HashSet<u32> = order[..40].iter().copied().collect();
    for _ in 0..500 {
        assert!(top40.contains(&s.sample(&logits, &[])));
    }
    let mut s = Sampler::new(SamplerConfig {
        top_k: 3000,
        min_p: 0.5,
        ..cfg(1.0, 7)
    });
    let m = logits[order[0] as usize];
    for _ in 0..500 {
        let t = s.sample(&logits, &[]);
        assert!(
            logits[t as usize] >= m + 0.5f32.ln() - 1e-6,
            "min_p drew {t}"
        );
    }
    // Untruncated draws never pick NaN or -inf entries.
    let mut s = Sampler::new(cfg(1.0, 8));
    for _ in 0..200 {
        let t = s.sample(&logits, &[]);
        assert!(t != 7 && t != 8);
    }
}

#[test]
fn seeded_sampling_is_deterministic() {
    let logits: Vec<f32> = (0..1000).map(|i| ((i * 37 % 101) as f32) / 25.0).collect();
    let run = |seed| {
        let mut s = Sampler::new(SamplerConfig {
            top_k: 50,
            top_p: 0.95,
            ..cfg(0.9, seed)
        });
        (0..64).map(|_| s.sample(&logits, &[])).collect::<Vec<_>>()
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
    let mut a = Rng::new(1);
    let mut b = Rng::new(1);
    for _ in 0..100 {
        let x = a.next_f64();
        assert!((0.0..1.0).contains(&x));
        assert_eq!(x, b.next_f64());
    }
}

#[test]
fn greedy_takes_the_lowest_id_among_ties() {
    let mut g = Sampler::new(SamplerConfig::greedy());
    assert_eq!(g.sample(&[1.0, 3.0, 3.0, 2.0], &[]), 1);
    assert_eq!(g.sample(&[f32::NAN, 0.5, 0.5], &[]), 1);
    assert_eq!(g.sample(&[-1.0, -1.0], &[]), 0);
    assert_eq!(g.sample(&[], &[]), 0);
    assert_eq!(g.sample(&[f32::NAN, f32::NAN], &[]), 0);
    assert_eq!(argmax(&[0.0, f32::INFINITY, f32::INFINITY]), 1);
    // Negative temperatures are greedy too; a lone finite token wins any draw.
    let mut s = Sampler::new(cfg(-1.0, 1));
    assert_eq!(s.sample(&[0.0, 5.0, 5.0], &[]), 1);
    let mut s = Sampler::new(cfg(1.0, 1));
    assert_eq!(s.sample(&[f32::NEG_INFINITY, 2.0, f32::NAN], &[]), 1);
}

#[test]
fn penalties_shift_the_choice() {
    let greedy =
        |c: SamplerConfig, logits: &[f32], hist: &[u32]| Sampler::new(c).sample(logits, hist);
    let rep = SamplerConfig {
        repetition_penalty: 1.2,
        ..SamplerConfig::greedy()
    };
    assert_eq!(greedy(rep.clone(), &[2.0, 1.9, -1.0], &[0]), 1); // 2.0 / 1.2 < 1.9
    assert_eq!(greedy(rep.clone(), &[2.0, 1.5, -1.0], &[0]), 0); // 1.67 > 1.5
    assert_eq!(greedy(rep.clone(), &[-1.0, -1.1], &[0, 0, 0]), 1); // -1.2 < -1.1, once per token
    assert_eq!(greedy(rep, &[2.0, 1.9], &[1000, 7]), 0); // out-of-vocabulary ids are ignored
    let freq = SamplerConfig {
        frequency_penalty: 0.2,
        ..SamplerConfig::greedy()
    };
    assert_eq!(greedy(freq.clone(), &[1.0, 0.5], &[0, 0, 0]), 1); // 1 - 3·0.2 = 0.4
    assert_eq!(greedy(freq, &[1.0, 0.5], &[0, 0]), 0); // 0.6
    let pres = SamplerConfig {
        presence_penalty: 0.6,
        ..SamplerConfig::greedy()
    };
    assert_eq!(greedy(pres.clone(), &[1.0, 0.5], &[0]), 1);
    assert_eq!(greedy(pres, &[1.0, 0.5], &[1]), 0);
    // Penalized draws: a penalty that kills token 0 makes the others take its mass.
    let n = 5000;
    let c = SamplerConfig {
        presence_penalty: 100.0,
        ..cfg(1.0, 21)
    };
    let mut s = Sampler::new(c);
    let mut counts = [0usize; 3];
    for _ in 0..n {
        counts[s.sample(&[3.0, 0.0, 0.0], &[0]) as usize] += 1;
    }
    assert_eq!(counts[0], 0);
    assert_close(&[counts[1] as f64 / n as f64], &[0.5], n, "penalized");
}

fn naive_top_logprobs(x: &[f32], k: usize) -> Vec<(u32, f64)> {
    let finite: Vec<(u32, f64)> = x
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_nan())
        .map(|(i, &v)| (i as u32, v as f64))
        .collect();
    let m = finite.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let lse = m + finite.iter().map(|p| (p.1 - m).exp()).sum::<f64>().ln();
    let mut all: Vec<(u32, f64)> = finite
        .iter()
        .filter(|p| p.1 > f64::NEG_INFINITY)
        .map(|&(i, v)| (i, v - lse))
        .collect();
    all.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0)));
    all.truncate(k);
    all
}

#[test]
fn top_logprobs_match_a_naive_log_softmax() {
    let mut rng = Rng::new(3);
    for &(n, k) in &[
        (10usize, 3usize),
        (1000, 20),
        (1000, 1000),
        (5, 9),
        (262_144, 5),
        (262_144, 300),
        (7, 0),
    ] {
        let mut x: Vec<f32> = (0..n)
            .map(|_| (rng.next_f64() * 40.0 - 20.0) as f32)
            .collect();
        if n > 4 {
            x[1] = x[0]; // a tie
            x[2] = f32::NAN;
            x[3] = f32::NEG_INFINITY;
            x[4] = 1000.0; // large logits stay stable
        }
        let got = top_logprobs(&x, k);
        let want = naive_top_logprobs(&x, k);
        assert_eq!(got.len(), want.len(), "n={n} k={k}");
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.0, w.0, "n={n} k={k}");
            assert!(
                (g.1 as f64 - w.1).abs() <= 1e-5 * (1.0 + w.1.abs()),
                "n={n} k={k}: {} vs {}",
                g.1,
                w.1
            );
        }
        if let Some(&(id, lp)) = got.first() {
            assert_eq!(token_logprob(&x, id), lp);
        }
    }
    assert!((logsumexp(&[0.0, 0.0]) - 2f64.ln()).abs() < 1e-12);
    assert_eq!(top_logprobs(&[], 4), vec![]);
    assert_eq!(token_logprob(&[1.0], 5), f32::NEG_INFINITY);
}

#[test]
fn config_uses_openai_defaults_in_json() {
    let c: SamplerConfig = serde_json::from_str("{}").unwrap();
    assert_eq!(c, SamplerConfig::default());
    assert_eq!(
        (c.temperature, c.top_p, c.top_k, c.min_p, c.seed),
        (1.0, 1.0, 0, 0.0, None)
    );
    let c: SamplerConfig =
        serde_json::from_str(r#"{"temperature":0.2,"seed":5,"top_k":40}"#).unwrap();
    assert_eq!(
        (c.temperature, c.seed, c.top_k, c.top_p),
        (0.2, Some(5), 40, 1.0)
    );
}

#[test]
fn unseeded_samplers_seed_from_the_clock() {
    // No seed: the clock (JavaScript's on wasm) seeds the RNG; draws are still valid tokens.
    let mut s = Sampler::new(SamplerConfig::default());
    for _ in 0..100 {
        assert!((s.sample(&LOGITS, &[3]) as usize) < LOGITS.len());
    }
}

/// What the GPU's candidates decide (`Sampler::sample_candidates`) is what the full row decides:
/// the same token from the same seed, for top-k, top-p, min-p and their mixes, over many rows;
/// undecided steps are few, and top logprobs and the picked token's logprob agree with the row's.
#[test]
fn candidates_decide_as_the_full_row_does() {
    use attend::sampler::Candidates;
    let mut rng = Rng::new(77);
    let configs = [
        (0.8, 40, 1.0, 0.0),
        (1.0, 5, 0.9, 0.0),
        (0.7, 64, 1.0, 0.05),
        (1.2, 0, 0.9, 0.0),
        (0.6, 0, 0.5, 0.0),
        (1.0, 0, 0.95, 0.02),
        (0.9, 0, 1.0, 0.1),
        (0.0, 0, 1.0, 0.0),
    ];
    for (c, &(temperature, top_k, top_p, min_p)) in configs.iter().enumerate() {
        let cfg = SamplerConfig {
            temperature,
            top_k,
            top_p,
            min_p,
            seed: Some(c as u64),
            ..Default::default()
        };
        let (mut gpu_side, mut cpu_side) = (Sampler::new(cfg.clone()), Sampler::new(cfg.clone()));
        let mut undecided = 0;
        for step in 0..200 {
            // Peaked rows (a model's usual output): 30 likely tokens over a 2,000-token tail.
            let scale = 1.0 + (step % 7) as f32;
            let mut logits: Vec<f32> = (0..2000)
                .map(|_| (rng.next_f64() as f32 - 0.5) * scale - 8.0)
                .collect();
            for _ in 0..30 {
                logits[(rng.next_u64() % 2000) as usize] = rng.next_f64() as f32 * 6.0;
            }
            let cands = Candidates::from_logits(&logits, temperature.max(1e-3), 64, Some(0));
            match gpu_side.sample_candidates(&cands, logits.len()) {
                Some(id) => assert_eq!(id, cpu_side.sample(&logits, &[]), "config {c} step {step}"),
                None => {
                    undecided += 1;
                    // The caller then samples from the row: both streams stay in step.
                    assert_eq!(gpu_side.sample(&logits, &[]), cpu_side.sample(&logits, &[]));
                }
            }
            let want = top_logprobs(&logits, 5);
            let got = cands.top_logprobs(5).unwrap();
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.0, w.0);
                assert!(
                    (g.1 - w.1).abs() < 1e-5,
                    "config {c}: top logprob {g:?} vs {w:?}"
                );
            }
            let id = want[0].0;
            let lp = cands.logprob(id).unwrap();
            assert!((lp - token_logprob(&logits, id)).abs() < 1e-5);
        }
        assert!(
            undecided <= 60,
            "config {c}: {undecided} of 200 steps undecided"
        );
    }
}

/// Without truncation the draw is the GPU's Gumbel pick; a top-k beyond the list, or a min-p
/// floor below the list's end, is left to the row.
#[test]
fn candidates_leave_open_what_they_cannot_see() {
    use attend::sampler::Candidates;
    let logits: Vec<f32> = (0..500).map(|i| (i % 13) as f32 * 0.1).collect();
    let cands = Candidates::from_logits(&logits, 1.0, 64, Some(123));
    let mut s = Sampler::new(cfg(1.0, 1));
    assert_eq!(s.sample_candidates(&cands, 500), Some(123));
    let mut s = Sampler::new(SamplerConfig {
        top_k: 100,
        ..cfg(1.0, 1)
    });
    assert_eq!(s.sample_candidates(&cands, 500), None);
    let mut s = Sampler::new(SamplerConfig {
        min_p: 0.5,
        ..cfg(1.0, 1)
    });
    assert_eq!(s.sample_candidates(&cands, 500), None);
    assert_eq!(cands.top_logprobs(65), None);
    assert_eq!(cands.logprob(0), None, "a token neither listed nor drawn");
}
