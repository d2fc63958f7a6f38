//! Token sampling on the CPU: penalties, temperature, top-k / top-p / min-p truncation, a seeded RNG,
//! and log-probabilities for the OpenAI `logprobs` field.
//!
//! Processing order follows HF transformers' logits processors: repetition/presence/frequency
//! penalties → temperature → top-k → top-p → min-p → draw. Vocabularies reach 262,144 entries, so
//! truncation uses partial selection (a small sorted buffer or `select_nth_unstable`) instead of
//! sorting the whole vocabulary, and the untruncated path is three linear passes.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

mod candidates;
pub use candidates::Candidates;

/// Sampling parameters with OpenAI's defaults (temperature 1, top_p 1, no penalties); `top_k = 0`,
/// `min_p = 0` and `repetition_penalty = 1` switch those filters off. `temperature <= 0` is greedy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SamplerConfig {
    pub temperature: f32,
    pub top_k: usize,
    pub top_p: f32,
    pub min_p: f32,
    /// CTRL-style: a seen token's logit is divided by this when positive, multiplied when negative.
    pub repetition_penalty: f32,
    /// OpenAI-style: subtracted once from every token that occurs in the history.
    pub presence_penalty: f32,
    /// OpenAI-style: subtracted once per occurrence in the history.
    pub frequency_penalty: f32,
    /// Fixed seed for reproducible draws; `None` seeds from the clock.
    pub seed: Option<u64>,
    /// OpenAI's `logit_bias`: (token id, value added to its logit), applied before the penalties
    /// (ids outside the vocabulary are ignored).
    pub logit_bias: Vec<(u32, f32)>,
}

impl Default for SamplerConfig {
    fn default() -> Self {
        SamplerConfig {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            repetition_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            seed: None,
            logit_bias: Vec::new(),
        }
    }
}

impl SamplerConfig {
    /// Deterministic argmax decoding.
    pub fn greedy() -> Self {
        SamplerConfig {
            temperature: 0.0,
            ..Default::default()
        }
    }

    fn has_penalties(&self) -> bool {
        self.repetition_penalty != 1.0
            || self.presence_penalty != 0.0
            || self.frequency_penalty != 0.0
    }

    /// NaN, non-positive or infinite temperature: greedy.
    fn is_greedy(&self) -> bool {
        let t = self.temperature;
        t.is_nan() || t <= 0.0 || t.is_infinite()
    }

    /// The truncation in force over `vocab` tokens whose largest logit is `m`: top-k (0: off),
    /// top-p (1: off) and min-p's logit floor (-inf: off).
    fn truncation(&self, m: f32, vocab: usize) -> (usize, f64, f32) {
        let top_k = if self.top_k > 0 && self.top_k < vocab {
            self.top_k
        } else {
            0
        };
        let top_p = if self.top_p.is_nan() {
            1.0
        } else {
            self.top_p as f64
        };
        // min-p keeps p_i >= min_p * p_max, i.e. (x_i - m) / T >= ln(min_p).
        let floor = if self.min_p > 0.0 {
            (m as f64 + (self.min_p.min(1.0) as f64).ln() * self.temperature as f64) as f32
        } else {
            f32::NEG_INFINITY
        };
        (top_k, top_p, floor)
    }

    /// Whether the logits are used as the model gives them: no penalty and no bias can change
    /// which token is the most likely (only then may greedy decoding pick it on the GPU).
    pub fn leaves_logits_unchanged(&self) -> bool {
        !self.has_penalties() && self.logit_bias.iter().all(|b| b.1 == 0.0)
    }
}

/// xoshiro256** seeded through SplitMix64: small, fast, identical on every target (no getrandom).
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut next = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [next(), next(), next(), next()],
        }
    }

    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let out = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        out
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// A seed from the clock, for requests that give none.
fn clock_seed() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        let t = js_sys::Date::now();
        let r = js_sys::Math::random();
        (t as u64) ^ ((r * (1u64 << 53) as f64) as u64).rotate_left(17)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x5EED)
    }
}

/// Candidate token: id and (penalized) logit.
type Cand = (u32, f32);

/// Descending logit, then ascending id: a total order, so ties resolve to the lowest id.
fn by_logit_desc(a: &Cand, b: &Cand) -> Ordering {
    b.1.partial_cmp(&a.1)
        .unwrap_or(Ordering::Equal)
        .then(a.0.cmp(&b.0))
}

/// The `n` largest entries with value >= `floor` (NaN and -inf never qualify), sorted by
/// [`by_logit_desc`]. Small `n` keeps a sorted buffer in one pass; large `n` selects in O(len).
fn top_n(x: &[f32], n: usize, floor: f32) -> Vec<Cand> {
    let keep = |v: f32| v > f32::NEG_INFINITY && v >= floor;
    if n == 0 {
        return Vec::new();
    }
    if n <= 256 {
        let mut buf: Vec<Cand> = Vec::with_capacity(n + 1);
        for (i, &v) in x.iter().enumerate() {
            if !keep(v) || (buf.len() == n && v <= buf[n - 1].1) {
                continue;
            }
            // Insert after equal values: ids arrive in increasing order, so ties stay lowest-first.
            let at = buf.partition_point(|c| c.1 >= v);
            buf.insert(at, (i as u32, v));
            buf.truncate(n);
        }
        return buf;
    }
    let mut all: Vec<Cand> = x
        .iter()
        .enumerate()
        .filter(|(_, &v)| keep(v))
        .map(|(i, &v)| (i as u32, v))
        .collect();
    if all.len() > n {
        all.select_nth_unstable_by(n - 1, by_logit_desc);
        all.truncate(n);
    }
    all.sort_unstable_by(by_logit_desc);
    all
}

/// Index of the largest value, lowest index on ties; NaN never wins. 0 when nothing is finite.
pub fn argmax(x: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_v = f32::NEG_INFINITY;
    for (i, &v) in x.iter().enumerate() {
        if v > best_v {
            best_v = v;
            best = i;
        }
    }
    best as u32
}

/// log Σ exp(x) in f64, ignoring NaN; -inf when nothing is finite.
pub fn logsumexp(logits: &[f32]) -> f64 {
    let m = logits
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
    if m == f32::NEG_INFINITY {
        return f64::NEG_INFINITY;
    }
    if m == f32::INFINITY {
        return f64::INFINITY;
    }
    let m = m as f64;
    let sum: f64 = logits
        .iter()
        .filter(|v| !v.is_nan())
        .map(|&v| (v as f64 - m).exp())
        .sum();
    m + sum.ln()
}

/// log-softmax of one token (NaN logits count as -inf).
pub fn token_logprob(logits: &[f32], id: u32) -> f32 {
    match logits.get(id as usize) {
        Some(&v) if !v.is_nan() => (v as f64 - logsumexp(logits)) as f32,
        _ => f32::NEG_INFINITY,
    }
}

/// The `k` most likely tokens with their log-probabilities (log-softmax of the raw logits, computed
/// stably in f64), most likely first, lowest id first on ties.
pub fn top_logprobs(logits: &[f32], k: usize) -> Vec<(u32, f32)> {
    let lse = logsumexp(logits);
    top_n(logits, k.min(logits.len()), f32::NEG_INFINITY)
        .into_iter()
        .map(|(id, v)| (id, (v as f64 - lse) as f32))
        .collect()
}

/// Draws tokens from logits under a [`SamplerConfig`]; reuse one per generation for a reproducible
/// stream from a seed.
#[derive(Debug, Clone)]
pub struct Sampler {
    cfg: SamplerConfig,
    rng: Rng,
    /// Seeds the GPU's Gumbel draws (apart from `rng`, whose stream matches the CPU path's).
    gumbel_rng: Rng,
    penalized: Vec<f32>,
    weights: Vec<f32>,
    counts: Vec<(u32, u32)>,
}

impl Sampler {
    pub fn new(cfg: SamplerConfig) -> Self {
        let seed = cfg.seed.unwrap_or_else(clock_seed);
        Sampler {
            cfg,
            rng: Rng::new(seed),
            gumbel_rng: Rng::new(seed ^ 0x6A09_E667_F3BC_C908),
            penalized: Vec::new(),
            weights: Vec::new(),
            counts: Vec::new(),
        }
    }

    pub fn config(&self) -> &SamplerConfig {
        &self.cfg
    }

    /// Pick the next token. `history` is what the penalties look at (prompt and/or generated ids,
    /// the caller's choice); ids outside the vocabulary are ignored. Empty logits give 0.
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        if logits.is_empty() {
            return 0;
        }
        let mut penalized = std::mem::take(&mut self.penalized);
        let penalize = self.cfg.has_penalties() && !history.is_empty();
        let x: &[f32] = if penalize || !self.cfg.logit_bias.is_empty() {
            penalized.clear();
            penalized.extend_from_slice(logits);
            for &(id, b) in &self.cfg.logit_bias {
                if let Some(v) = penalized.get_mut(id as usize) {
                    *v += b;
                }
            }
            if penalize {
                self.apply_penalties(&mut penalized, history);
            }
            &penalized
        } else {
            logits
        };
        let id = self.sample_from(x);
        self.penalized = penalized;
        id
    }

    /// The logits [`Sampler::sample`] draws from: biased, then penalized for `history`.
    pub fn adjusted(&mut self, logits: &[f32], history: &[u32]) -> Vec<f32> {
        let mut x = logits.to_vec();
        for &(id, b) in &self.cfg.logit_bias {
            if let Some(v) = x.get_mut(id as usize) {
                *v += b;
            }
        }
        if self.cfg.has_penalties() && !history.is_empty() {
            self.apply_penalties(&mut x, history);
        }
        x
    }

    fn apply_penalties(&mut self, x: &mut [f32], history: &[u32]) {
        let counts = &mut self.counts;
        counts.clear();
        let mut ids: Vec<u32> = history
            .iter()
            .copied()
            .filter(|&t| (t as usize) < x.len())
            .collect();
        ids.sort_unstable();
        for id in ids {
            match counts.last_mut() {
                Some((last, n)) if *last == id => *n += 1,
                _ => counts.push((id, 1)),
            }
        }
        let c = &self.cfg;
        for &(id, n) in counts.iter() {
            let v = &mut x[id as usize];
            if c.repetition_penalty != 1.0 && c.repetition_penalty > 0.0 {
                *v = if *v > 0.0 {
                    *v / c.repetition_penalty
                } else {
                    *v * c.repetition_penalty
                };
            }
            *v -= n as f32 * c.frequency_penalty + c.presence_penalty;
        }
    }

    fn sample_from(&mut self, x: &[f32]) -> u32 {
        let c = &self.cfg;
        let m = x
            .iter()
            .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m });
        if c.is_greedy() || m == f32::NEG_INFINITY || m == f32::INFINITY {
            return argmax(x);
        }
        let inv_t = 1.0 / c.temperature as f64;
        let weight = |v: f32| ((v as f64 - m as f64) * inv_t).exp();
        let (top_k, top_p, floor) = c.truncation(m, x.len());

        if top_k == 0 && top_p >= 1.0 && floor == f32::NEG_INFINITY {
            return self.draw_full(x, m, inv_t as f32);
        }

        // Each filter keeps a head of the descending order, applied in HF's order (top-p fractions
        // refer to the top-k set's mass; min-p's floor does not depend on the others).
        let cands: Vec<Cand> = if top_k > 0 {
            let mut head = top_n(x, top_k, f32::NEG_INFINITY);
            if top_p < 1.0 {
                let z: f64 = head.iter().map(|&(_, v)| weight(v)).sum();
                head.truncate(prefix_reaching(&head, top_p * z, weight));
            }
            head.retain(|&(_, v)| v >= floor);
            head
        } else if top_p < 1.0 {
            self.nucleus(x, m, inv_t, top_p, floor)
        } else {
            x.iter()
                .enumerate()
                .filter(|(_, &v)| v >= floor)
                .map(|(i, &v)| (i as u32, v))
                .collect()
        };
        self.draw_among(&cands, weight)
    }

    /// Top-p over the whole vocabulary without sorting it: one pass sums the softmax mass into
    /// buckets of 1/8 (scaled) logit below the max, which locates the logit where the cumulative
    /// mass crosses `top_p`; only the tokens above that bucket (and above the min-p floor) are
    /// then sorted to cut the prefix exactly.
    fn nucleus(&mut self, x: &[f32], m: f32, inv_t: f64, top_p: f64, floor: f32) -> Vec<Cand> {
        const PER_LOGIT: f32 = 8.0;
        const BUCKETS: usize = 64 * PER_LOGIT as usize; // the last one collects everything lower
        let mut mass = [0f64; BUCKETS];
        let inv_t32 = inv_t as f32;
        let mut z = 0.0f64;
        for &v in x {
            let d = (m - v) * inv_t32; // >= 0 for real logits
            if d.is_nan() || d == f32::INFINITY {
                continue; // NaN logit, or -inf (weight 0)
            }
            let w = (-d).exp() as f64;
            z += w;
            mass[((d * PER_LOGIT) as usize).min(BUCKETS - 1)] += w;
        }
        let target = top_p * z;
        let mut acc = 0.0;
        let mut crossing = BUCKETS - 1;
        for (b, &w) in mass.iter().enumerate() {
            acc += w;
            if acc >= target {
                crossing = b;
                break;
            }
        }
        // One bucket of slack absorbs rounding between this pass and the exact one below.
        let cut = if crossing + 2 >= BUCKETS {
            f32::NEG_INFINITY
        } else {
            m - ((crossing + 2) as f32 / PER_LOGIT) / inv_t32
        };
        let lo = cut.max(floor);
        let mut cands: Vec<Cand> = x
            .iter()
            .enumerate()
            .filter(|(_, &v)| v >= lo && v > f32::NEG_INFINITY)
            .map(|(i, &v)| (i as u32, v))
            .collect();
        cands.sort_unstable_by(by_logit_desc);
        let len = prefix_reaching(&cands, target, |v| ((v as f64 - m as f64) * inv_t).exp());
        cands.truncate(len);
        cands
    }

    /// Draw over the whole vocabulary: weights once, then one cumulative scan.
    fn draw_full(&mut self, x: &[f32], m: f32, inv_t: f32) -> u32 {
        self.weights.clear();
        let mut total = 0.0f64;
        self.weights.extend(x.iter().map(|&v| {
            // f32 exp is plenty for weights (the sum is f64) and twice as fast over 262k entries.
            let w = if v.is_nan() {
                0.0
            } else {
                ((v - m) * inv_t).exp()
            };
            total += w as f64;
            w
        }));
        let target = self.rng.next_f64() * total;
        let mut acc = 0.0f64;
        let mut last = argmax(x);
        for (i, &w) in self.weights.iter().enumerate() {
            if w > 0.0 {
                acc += w as f64;
                last = i as u32;
                if acc > target {
                    return i as u32;
                }
            }
        }
        last
    }

    fn draw_among(&mut self, cands: &[Cand], weight: impl Fn(f32) -> f64) -> u32 {
        let total: f64 = cands.iter().map(|&(_, v)| weight(v)).sum();
        let target = self.rng.next_f64() * total;
        let mut acc = 0.0;
        for &(id, v) in cands {
            acc += weight(v);
            if acc > target {
                return id;
            }
        }
        cands.last().map_or(0, |c| c.0)
    }
}

/// Length of the shortest prefix of `sorted` whose weight reaches `target` (HF / llama.cpp top-p: a
/// token stays while the mass strictly above it is below top_p); at least 1, at most all.
fn prefix_reaching(sorted: &[Cand], target: f64, weight: impl Fn(f32) -> f64) -> usize {
    let mut acc = 0.0;
    for (i, &(_, v)) in sorted.iter().enumerate() {
        acc += weight(v);
        if acc >= target {
            return i + 1;
        }
    }
    sorted.len()
}
