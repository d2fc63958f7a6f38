//! One sampled step from the GPU's candidates: the token, its logprob and the top logprobs, with
//! the logits row read only when the candidates do not decide one of them.

use super::passes::Fetch;
use super::{Engine, GenParams};
use crate::kernels::topk::Sampling;
use crate::model::Tail;
use crate::sampler::{self, Candidates, Sampler};
use crate::Result;

/// A step's token, its `top_logprobs` and its own logprob (when asked for).
pub(super) type Pick = (u32, Vec<(u32, f32)>, Option<f32>);

impl Engine {
    /// What a pass ending with `tail` copies back (`slot`: the greedy pick's ring slot).
    pub(super) fn fetch_for(tail: Tail, slot: usize) -> Fetch {
        match tail {
            Tail::Greedy => Fetch::Next(slot),
            Tail::Candidates => Fetch::Candidates,
            Tail::Logits => Fetch::Logits,
        }
    }

    /// Before a pass that ends with candidates: its temperature and a fresh Gumbel seed.
    /// (`logprobs`: whether the step returns logprobs, which need the normaliser.)
    pub(super) fn set_sampling(&self, sampler: &mut Sampler, tail: Tail, logprobs: bool) {
        if tail == Tail::Candidates {
            let vocab = self.model.cfg.vocab as usize;
            let mut flags = Sampling::LSE * logprobs as u32;
            if sampler.draws_from_the_row(vocab) {
                flags |= Sampling::DRAW;
            }
            if sampler.needs_the_mass(vocab) {
                flags |= Sampling::MASS;
            }
            let s = Sampling::new(sampler.config().temperature, sampler.gumbel_seed(), flags);
            self.gpu
                .write(&self.model.scratch.sampling, 0, bytemuck::bytes_of(&s));
        }
    }

    /// The step's pick from `c`, reading the logits row (still in the scratch buffer) for what
    /// the candidates leave open: the same token and logprobs as the row would give.
    pub(super) async fn pick(
        &self,
        c: &Candidates,
        sampler: &mut Sampler,
        history: &[u32],
        p: &GenParams,
    ) -> Result<Pick> {
        let vocab = self.model.cfg.vocab as usize;
        let mut id = sampler.sample_candidates(c, vocab);
        let mut top = match p.top_logprobs {
            0 => Some(Vec::new()),
            k => c.top_logprobs(k),
        };
        let mut logprob = match (p.wants_logprobs(), id) {
            (false, _) => Some(None),
            (true, Some(id)) => c.logprob(id).map(Some),
            (true, None) => None,
        };
        if id.is_none() || top.is_none() || logprob.is_none() {
            let logits = self.logits_now().await?;
            let id = *id.get_or_insert_with(|| sampler.sample(&logits, history));
            top.get_or_insert_with(|| sampler::top_logprobs(&logits, p.top_logprobs));
            logprob.get_or_insert_with(|| {
                p.wants_logprobs()
                    .then(|| sampler::token_logprob(&logits, id))
            });
            let mut st = self.pass_stats.get();
            st.row_reads += 1;
            self.pass_stats.set(st);
        }
        Ok((id.unwrap_or(0), top.unwrap_or_default(), logprob.flatten()))
    }
}
