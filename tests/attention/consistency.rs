//! The lens against attend itself (tiny models, no golden data needed beyond the prompts).

use super::{golden, ids, load, q, LOCK};
use attend::engine::{AttentionQuery, Engine, GenParams};
use attend::sampler::SamplerConfig;

fn prompt(e: &Engine) -> Vec<u32> {
    let g = golden("tiny-qwen2");
    let p = ids(&g["prompts"][0]["ids"]);
    assert!(p.len() > 8 && p.iter().all(|&t| t < e.model.cfg.vocab));
    p
}

fn tiny() -> Engine {
    load(&golden("tiny-qwen2"))
}

/// Σ_j w_j · v_j, with w from the lens and v from the last layer's V cache, equals the attention
/// output the decode kernel wrote in the same pass: the lens shows the weights generation used.
#[test]
fn lens_weights_reproduce_the_generating_kernel_output() {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut e = tiny();
    let p = prompt(&e);
    let c = e.model.cfg.clone();
    let (hd, last) = (c.head_dim as usize, c.n_layers as usize - 1);
    for qi in [3u32, p.len() as u32 - 1] {
        let att = pollster::block_on(e.attention(&p, &q(qi))).unwrap();
        let s = &e.model.scratch;
        let out =
            pollster::block_on(e.gpu.read::<f32>(&s.attn, 0, c.n_heads as usize * hd)).unwrap();
        let kv = &e.model.kv[last];
        let words = kv.n_kv_heads as usize * kv.capacity as usize * hd / 2;
        let v = pollster::block_on(e.gpu.read::<u32>(&kv.v, 0, words)).unwrap();
        let v_at = |kvh: usize, pos: usize, d: usize| {
            let w = v[(kvh * kv.capacity as usize + pos) * hd / 2 + d / 2];
            half::f16::from_bits((w >> (16 * (d % 2))) as u16).to_f32()
        };
        let group = (c.n_heads / c.n_kv_heads) as usize;
        let mut worst = 0f32;
        for h in 0..c.n_heads as usize {
            for d in 0..hd {
                let want: f32 = (0..=qi as usize)
                    .map(|j| att.weights[last][h][j] * v_at(h / group, j, d))
                    .sum();
                let got = out[h * hd + d];
                let err = (got - want).abs();
                assert!(
                    err <= 1e-4 * (1.0 + want.abs()),
                    "query {qi} head {h} dim {d}: kernel {got} vs lens·V {want}"
                );
                worst = worst.max(err);
            }
        }
        eprintln!("query {qi}: max |attention output - lens·V| = {worst:.2e}");
    }
}

#[test]
fn narrowed_queries_are_slices_and_bad_ones_are_errors() {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut e = tiny();
    let p = prompt(&e);
    let (layers, heads) = (e.model.cfg.n_layers, e.model.cfg.n_heads);
    let qi = p.len() as u32 - 2;
    let all = pollster::block_on(e.attention(&p, &q(qi))).unwrap();
    assert_eq!(all.layers, (0..layers).collect::<Vec<_>>());
    assert_eq!(all.heads, (0..heads).collect::<Vec<_>>());
    for row in all.weights.iter().flatten() {
        let sum: f32 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "a head sums to {sum}");
    }
    let one = AttentionQuery {
        token: qi,
        layer: Some(layers - 1),
        head: Some(heads - 1),
    };
    let a = pollster::block_on(e.attention(&p, &one)).unwrap();
    assert_eq!(
        (a.layers.clone(), a.heads.clone()),
        (vec![layers - 1], vec![heads - 1])
    );
    let want = &all.weights[layers as usize - 1][heads as usize - 1];
    let diff = a.weights[0][0]
        .iter()
        .zip(want)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(diff < 1e-6, "narrowed differs by {diff}");
    // The text table names the query and ranks keys.
    let table = a.table(3);
    assert!(
        table.contains(&format!("query token {qi}")) && table.lines().count() == 2,
        "{table}"
    );

    let bad = [
        (q(p.len() as u32), "does not exist"),
        (
            AttentionQuery {
                layer: Some(layers),
                ..q(1)
            },
            "layer",
        ),
        (
            AttentionQuery {
                head: Some(heads),
                ..q(1)
            },
            "head",
        ),
    ];
    for (query, what) in bad {
        let err = pollster::block_on(e.attention(&p, &query))
            .unwrap_err()
            .to_string();
        assert!(err.contains(what), "{query:?}: {err}");
    }
    assert!(pollster::block_on(e.attention(&[], &q(0))).is_err());
    let vocab = e.model.cfg.vocab;
    assert!(pollster::block_on(e.attention(&[1, vocab], &q(1))).is_err());
    // Still usable after the errors.
    let again = pollster::block_on(e.attention(&p, &q(qi))).unwrap();
    assert_eq!(again.weights, all.weights);
}

/// A lens on a token in the middle of a cached conversation leaves that conversation usable:
/// the next generation (reusing the cache) gives the same tokens and logprobs; `lens()` equals
/// `attention()` on the last token.
#[test]
fn lens_on_a_cached_conversation_changes_nothing() {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut e = tiny();
    let p = prompt(&e);
    let params = GenParams {
        max_tokens: 6,
        sampler: SamplerConfig {
            temperature: 0.0,
            ..Default::default()
        },
        top_logprobs: 3,
        ignore_eog: true,
        ..Default::default()
    };
    let run = |e: &mut Engine| {
        let mut out = Vec::new();
        pollster::block_on(e.generate(&p, &params, |t| {
            out.push((t.id, t.top_logprobs.clone()));
            true
        }))
        .unwrap();
        out
    };
    e.reset();
    let first = run(&mut e);
    let conv = e.cached_tokens().to_vec();
    assert!(conv.len() > p.len());
    let layer = e.model.cfg.n_layers - 1;
    let lens = pollster::block_on(e.lens(Some(layer))).unwrap();
    let last = conv.len() as u32 - 1;
    let att = pollster::block_on(e.attention(&conv, &q(last))).unwrap();
    let flat: Vec<f32> = att.weights[layer as usize].concat();
    let diff = lens
        .weights
        .iter()
        .zip(&flat)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        lens.weights.len() == flat.len() && diff < 1e-5,
        "lens vs attention: {diff}"
    );
    // A token in the middle: the cache keeps the whole conversation.
    pollster::block_on(e.attention(&conv, &q(4))).unwrap();
    assert_eq!(e.cached_tokens(), &conv[..]);
    let second = run(&mut e);
    assert_eq!(first.len(), second.len());
    for ((a, ta), (b, tb)) in first.iter().zip(&second) {
        assert_eq!(a, b);
        for ((i, x), (j, y)) in ta.iter().zip(tb) {
            assert!(i == j && (x - y).abs() < 1e-3, "{ta:?} vs {tb:?}");
        }
    }
}
