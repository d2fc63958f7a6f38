//! One sampled step from the GPU's candidates: the token, its logprob and the top logprobs, with
//! the logits row read only when the candidates do not decide one of them; and the constrained
//! step of structured output ([`Engine::pick_constrained`]).

use super::passes::Fetch;
use super::{Engine, GenParams};
use crate::constrain::{allowed_ids, Constraint};
use crate::kernels::topk::Sampling;
use crate::model::Tail;
use crate::sampler::{self, Candidates, Sampler, SamplerConfig};
use crate::{Error, Result};

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

/// The sampler that draws among the tokens a constraint allows: the request's temperature and
/// truncation (top-k, top-p, min-p over the allowed tokens, renormalised), without bias or
/// penalties (those are applied to the logits before, see [`Engine::pick_constrained`]).
pub(super) fn draw_sampler(cfg: &SamplerConfig) -> Sampler {
    Sampler::new(SamplerConfig {
        logit_bias: Vec::new(),
        repetition_penalty: 1.0,
        presence_penalty: 0.0,
        frequency_penalty: 0.0,
        ..cfg.clone()
    })
}

/// Greedy: the first of the largest; otherwise a draw from `draw` over these logits.
fn choose(draw: &mut Sampler, ok: &[(u32, f32)]) -> u32 {
    if draw.config().temperature <= 0.0 {
        let best = ok.iter().fold(ok[0], |b, &c| if c.1 > b.1 { c } else { b });
        return best.0;
    }
    let x: Vec<f32> = ok.iter().map(|c| c.1).collect();
    ok[draw.sample(&x, &[]) as usize].0
}

impl Engine {
    /// A step of constrained decoding: the GPU's candidates (the 64 best logits, sorted) are
    /// tried in order and those `con` refuses are skipped; greedy takes the first allowed one,
    /// sampling draws among the allowed candidates renormalised. When none of them is allowed
    /// (or the request needs the row: a bias or a penalty), the logits row is read and the best
    /// allowed token of the whole vocabulary is taken (or drawn from all allowed ones). The
    /// constraint then takes the token's bytes. Logprobs are the model's, unconstrained.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn pick_constrained(
        &self,
        tail: Tail,
        submitted: wgpu::SubmissionIndex,
        sampler: &mut Sampler,
        draw: &mut Sampler,
        history: &[u32],
        p: &GenParams,
        con: &mut dyn Constraint,
    ) -> Result<Pick> {
        let tok = &*self.tokenizer;
        let complete = con.is_complete();
        let eog = |id: u32| !p.ignore_eog && tok.is_eog(id);
        let allowed = |id: u32| {
            if eog(id) {
                return complete;
            }
            let b = tok.token_bytes(id);
            !b.is_empty() && !tok.is_control(id) && con.allows(b)
        };
        let (mut id, mut cands, mut row) = (None, None, None);
        if tail == Tail::Candidates {
            let c = self.read_candidates(submitted).await?;
            let ok: Vec<(u32, f32)> = c.top.iter().copied().filter(|c| allowed(c.0)).collect();
            if !ok.is_empty() {
                id = Some(choose(draw, &ok));
            }
            cands = Some(c);
        } else {
            row = Some(self.read_logits(submitted).await?);
        }
        let id = match id {
            Some(id) => id,
            None => {
                let logits = match row.take() {
                    Some(l) => l,
                    None => self.row_read().await?,
                };
                let x = match sampler.config().leaves_logits_unchanged() {
                    true => std::borrow::Cow::Borrowed(&logits),
                    false => std::borrow::Cow::Owned(sampler.adjusted(&logits, history)),
                };
                let vocab = self.model.cfg.vocab as usize;
                let piece = |id: u32| tok.token_bytes(id);
                let ids = allowed_ids(con, vocab, piece, |id| tok.is_control(id), eog);
                if ids.is_empty() {
                    return Err(Error::Invalid(
                        "no token of the vocabulary can continue the structured output".into(),
                    ));
                }
                let ok: Vec<(u32, f32)> = ids.iter().map(|&i| (i, x[i as usize])).collect();
                let id = choose(draw, &ok);
                row = Some(logits);
                id
            }
        };
        let (mut top, mut logprob) = (Vec::new(), None);
        if p.wants_logprobs() {
            let k = p.top_logprobs;
            let from = cands
                .as_ref()
                .and_then(|c| Some((c.top_logprobs(k)?, c.logprob(id)?)));
            match from {
                Some((t, l)) => (top, logprob) = (t, Some(l)),
                None => {
                    let logits = match row {
                        Some(l) => l,
                        None => self.row_read().await?,
                    };
                    top = sampler::top_logprobs(&logits, k);
                    logprob = Some(sampler::token_logprob(&logits, id));
                }
            }
        }
        if !eog(id) {
            con.advance(tok.token_bytes(id));
        }
        Ok((id, top, logprob))
    }

    /// The logits row of the last pass, counted as a row read.
    async fn row_read(&self) -> Result<Vec<f32>> {
        let logits = self.logits_now().await?;
        let mut st = self.pass_stats.get();
        st.row_reads += 1;
        self.pass_stats.set(st);
        Ok(logits)
    }
}
