//! Sampling from what the GPU sends instead of the logits row (`kernels::topk`): a sorted prefix
//! of the row, its normaliser and mass, and one Gumbel-max draw over the whole row. Every decision
//! here either equals what [`Sampler::sample`] would decide from the full row (same token, same
//! random stream) or is refused (`None`), and the caller reads the row after all.

use super::{prefix_reaching, Cand, Sampler};

/// One row of logits as the GPU summarises it.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidates {
    /// The row's first tokens in descending-logit order (lowest id first on ties): an exact
    /// prefix of the sorted row.
    pub top: Vec<(u32, f32)>,
    /// Every token not in `top` has a logit ≤ this (-inf: `top` is the whole row).
    pub rest_max: f32,
    /// The largest logit.
    pub max: f32,
    /// log Σ exp(x): the log-softmax normaliser at temperature 1.
    pub lse: f64,
    /// Σ exp((x - max) / T) at the sampling temperature (what top-p fractions refer to).
    pub mass: f64,
    /// A draw from softmax(x / T) over the whole row (Gumbel-max on the GPU), with its logit,
    /// when it was asked for ([`Sampler::draws_from_the_row`]).
    pub gumbel: Option<(u32, f32)>,
}

/// Relative uncertainty of the GPU's f32 mass against the CPU's sum: a top-p cut this close to
/// the mass is left to the CPU.
const MASS_EPS: f64 = 1e-4;

impl Candidates {
    /// Whether `top` holds the whole row.
    pub fn complete(&self) -> bool {
        self.rest_max == f32::NEG_INFINITY
    }

    /// The `k` most likely tokens with their log-probabilities, as
    /// [`top_logprobs`](super::top_logprobs) gives them from the row; `None` if `top` is shorter.
    pub fn top_logprobs(&self, k: usize) -> Option<Vec<(u32, f32)>> {
        if k > self.top.len() && !self.complete() {
            return None;
        }
        let lp = |&(id, v): &(u32, f32)| (id, (v as f64 - self.lse) as f32);
        Some(self.top.iter().take(k).map(lp).collect())
    }

    /// log-softmax of token `id`, if its logit is known (a listed token or the Gumbel draw).
    pub fn logprob(&self, id: u32) -> Option<f32> {
        let v = match self.top.iter().find(|c| c.0 == id) {
            Some(c) => c.1,
            None => match self.gumbel {
                Some((g, v)) if g == id => v,
                _ => return None,
            },
        };
        Some((v as f64 - self.lse) as f32)
    }

    /// The summary of `logits` computed on the CPU as the GPU does (keeping `k` tokens), with the
    /// Gumbel draw taken from `gumbel` (tests and references).
    pub fn from_logits(
        logits: &[f32],
        temperature: f32,
        k: usize,
        gumbel: Option<u32>,
    ) -> Candidates {
        let max = logits.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let inv_t = 1.0 / temperature as f64;
        let top = super::top_n(logits, k.min(logits.len()), f32::NEG_INFINITY);
        let rest_max = if top.len() < logits.len() {
            top.last().map_or(f32::NEG_INFINITY, |c| c.1)
        } else {
            f32::NEG_INFINITY
        };
        Candidates {
            top,
            rest_max,
            max,
            lse: super::logsumexp(logits),
            mass: logits
                .iter()
                .map(|&v| ((v as f64 - max as f64) * inv_t).exp())
                .sum(),
            gumbel: gumbel.map(|g| (g, logits[g as usize])),
        }
    }
}

impl Sampler {
    /// Whether a step's token is a draw from the whole row (a positive temperature and no top-k,
    /// top-p or min-p truncation): the GPU then draws it (`kernels::topk`).
    pub fn draws_from_the_row(&self, vocab: usize) -> bool {
        let (top_k, top_p, floor) = self.cfg.truncation(0.0, vocab);
        !self.cfg.is_greedy() && top_k == 0 && top_p >= 1.0 && floor == f32::NEG_INFINITY
    }

    /// Whether deciding a step needs the row's mass at the temperature (top-p without top-k).
    pub fn needs_the_mass(&self, vocab: usize) -> bool {
        let (top_k, top_p, _) = self.cfg.truncation(0.0, vocab);
        top_k == 0 && top_p < 1.0
    }

    /// The seed of the GPU's Gumbel draw for the next pass (its own stream, so that the CPU's
    /// draws stay the ones [`Sampler::sample`] makes).
    pub fn gumbel_seed(&mut self) -> u64 {
        self.gumbel_rng.next_u64()
    }

    /// The token [`Sampler::sample`] would pick from the full row (for a configuration without
    /// penalties or bias, see [`SamplerConfig::leaves_logits_unchanged`](super::SamplerConfig)),
    /// or `None` when the candidates do not decide it; the random stream is consumed only when a
    /// token is returned. Without any truncation the GPU's Gumbel draw is the sample.
    pub fn sample_candidates(&mut self, c: &Candidates, vocab: usize) -> Option<u32> {
        if self.cfg.is_greedy() {
            return c.top.first().map(|c| c.0);
        }
        let (m, inv_t) = (c.max, 1.0 / self.cfg.temperature as f64);
        let weight = |v: f32| ((v as f64 - m as f64) * inv_t).exp();
        let (top_k, top_p, floor) = self.cfg.truncation(m, vocab);
        if top_k == 0 && top_p >= 1.0 && floor == f32::NEG_INFINITY {
            return c.gumbel.map(|g| g.0);
        }
        let cands: Vec<Cand> = if top_k > 0 {
            if top_k > c.top.len() && !c.complete() {
                return None;
            }
            let mut head = c.top[..top_k.min(c.top.len())].to_vec();
            if top_p < 1.0 {
                let z: f64 = head.iter().map(|&(_, v)| weight(v)).sum();
                head.truncate(prefix_reaching(&head, top_p * z, weight));
            }
            head.retain(|&(_, v)| v >= floor);
            head
        } else if top_p < 1.0 {
            let target = top_p * c.mass;
            let mut acc = 0.0;
            let mut len = None;
            for (i, &(_, v)) in c.top.iter().enumerate() {
                acc += weight(v);
                if acc >= target * (1.0 - MASS_EPS) {
                    // Past the band only: inside it the CPU's own sum decides.
                    if acc < target * (1.0 + MASS_EPS) {
                        return None;
                    }
                    len = Some(i + 1);
                    break;
                }
            }
            let len = match len {
                Some(len) => len,
                None if c.complete() => c.top.len(),
                None => return None,
            };
            let mut head = c.top[..len].to_vec();
            head.retain(|&(_, v)| v >= floor);
            head
        } else {
            if c.rest_max >= floor {
                return None;
            }
            // The full-row path walks the kept tokens in id order.
            let mut kept: Vec<Cand> = c.top.iter().copied().filter(|c| c.1 >= floor).collect();
            kept.sort_unstable_by_key(|c| c.0);
            kept
        };
        Some(self.draw_among(&cands, weight))
    }
}
