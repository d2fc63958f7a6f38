//! The generation loop: chunked prefill, decode, sampling (on the GPU or from read-back logits),
//! streaming text, stopping.

use super::passes::{Fetch, Input};
use super::*;

impl Engine {
    /// Run `prompt` through the model and generate up to `p.max_tokens` tokens, calling
    /// `on_token` for each; returning `false` from it stops the generation.
    pub async fn generate(
        &mut self,
        prompt: &[u32],
        p: &GenParams,
        on_token: impl FnMut(&Token) -> bool,
    ) -> Result<GenStats> {
        self.generate_with(prompt, p, None, on_token).await
    }

    /// [`Engine::generate`] with every token allowed by `constraint` (structured output, see
    /// `pick.rs`): the answer ends (`Stop`) as soon as the constraint is done, and an
    /// end-of-generation token is allowed only where it is complete.
    pub async fn generate_constrained(
        &mut self,
        prompt: &[u32],
        p: &GenParams,
        constraint: &mut dyn Constraint,
        on_token: impl FnMut(&Token) -> bool,
    ) -> Result<GenStats> {
        self.generate_with(prompt, p, Some(constraint), on_token)
            .await
    }

    /// [`Engine::generate_constrained`] when there is a constraint, else [`Engine::generate`].
    pub async fn generate_maybe_constrained<C: Constraint>(
        &mut self,
        prompt: &[u32],
        p: &GenParams,
        constraint: Option<&mut C>,
        on_token: impl FnMut(&Token) -> bool,
    ) -> Result<GenStats> {
        let c = constraint.map(|c| c as &mut dyn Constraint);
        self.generate_with(prompt, p, c, on_token).await
    }

    async fn generate_with(
        &mut self,
        prompt: &[u32],
        p: &GenParams,
        mut constraint: Option<&mut dyn Constraint>,
        mut on_token: impl FnMut(&Token) -> bool,
    ) -> Result<GenStats> {
        // A device lost since the last call: say so before any GPU call (a write to a destroyed
        // device is a wgpu validation panic, not an error).
        self.gpu.check_lost()?;
        let ctx = self.model.context;
        self.check_prompt(prompt)?;
        let max_new = p.max_tokens.min(ctx - prompt.len() as u32);
        let mut sampler = Sampler::new(p.sampler.clone());
        let mut draw = pick::draw_sampler(&p.sampler);
        // Plain greedy decoding picks the token on the GPU (argmax) and reads back 4 bytes;
        // sampling and logprobs read the GPU's candidates; a penalty or a logit bias, which may
        // change any logit, needs the row.
        let sc = &p.sampler;
        let plain = sc.leaves_logits_unchanged();
        let free = constraint.is_none();
        let tail = if free && plain && sc.temperature <= 0.0 && !p.wants_logprobs() {
            Tail::Greedy
        } else if plain && self.gpu_sampling && p.top_logprobs <= topk::K {
            Tail::Candidates
        } else {
            Tail::Logits
        };
        let greedy = tail == Tail::Greedy;
        let speculate = greedy && self.pipeline;

        // Reuse the cached prefix (keep at least one token to compute fresh logits from).
        let reuse = self
            .cached
            .iter()
            .zip(prompt)
            .take_while(|(a, b)| a == b)
            .count()
            .min(prompt.len() - 1);
        self.cached.truncate(reuse);
        let t0 = now_s();
        let batch = self.model.scratch.batch as usize;
        let mut pos = reuse;
        // The submission whose readback holds the next token (greedy) or logits.
        let mut pending = None;
        while pos < prompt.len() {
            let chunk = &prompt[pos..(pos + batch).min(prompt.len())];
            let last = pos + chunk.len() == prompt.len();
            let (logits, tail, fetch) = match last {
                false => (Logits::None, Tail::Logits, Fetch::Nothing),
                true => {
                    self.set_sampling(&mut sampler, tail, p.wants_logprobs());
                    (Logits::Last, tail, Self::fetch_for(tail, 0))
                }
            };
            let index = self.run(Input::Ids(chunk), pos as u32, logits, tail, fetch)?;
            pending = Some(index);
            pos += chunk.len();
        }
        self.cached.extend_from_slice(&prompt[reuse..]);

        let tokenizer = &self.tokenizer;
        let mut stream = tokenizer.stream();
        let eog = if p.ignore_eog {
            Vec::new()
        } else {
            tokenizer.eog_ids()
        };
        let mut stop = StopChecker::new(&p.stop)
            .with_eog(&eog)
            .with_max_tokens(max_new as usize);
        let is_eog = |id: u32| !p.ignore_eog && tokenizer.is_eog(id);
        let mut history: Vec<u32> = prompt.to_vec();
        let mut text = String::new();
        let mut finish = FinishReason::Length;
        let mut generated = 0u32;
        let mut t_first = None;
        while generated < max_new {
            let submitted = pending.take().expect("a pass precedes every pick");
            let (id, top, logprob) = if let Some(con) = constraint.as_deref_mut() {
                let draw = &mut draw;
                self.pick_constrained(tail, submitted, &mut sampler, draw, &history, p, con)
                    .await?
            } else if greedy {
                // Greedy: the pick is already the next pass's input on the GPU, so that pass
                // goes in before this token is read (wasted if this token ends the answer).
                let slot = generated as usize % 2;
                if speculate && generated + 1 < max_new {
                    let pos = self.cached.len() as u32;
                    let fetch = Fetch::Next(1 - slot);
                    pending = Some(self.run(Input::OnGpu, pos, Logits::Last, tail, fetch)?);
                }
                (self.read_next(slot, submitted).await?, Vec::new(), None)
            } else if tail == Tail::Candidates {
                let c = self.read_candidates(submitted).await?;
                self.pick(&c, &mut sampler, &history, p).await?
            } else {
                let logits = self.read_logits(submitted).await?;
                let top = if p.top_logprobs > 0 {
                    crate::sampler::top_logprobs(&logits, p.top_logprobs)
                } else {
                    Vec::new()
                };
                let id = sampler.sample(&logits, &history);
                let logprob = p
                    .wants_logprobs()
                    .then(|| crate::sampler::token_logprob(&logits, id));
                (id, top, logprob)
            };
            t_first.get_or_insert_with(now_s);
            generated += 1;
            history.push(id);
            let piece = if is_eog(id) {
                String::new()
            } else {
                stream.push(id)
            };
            let mut step = stop.push_token(id, &piece);
            let done = constraint.as_ref().is_some_and(|c| c.is_done());
            if done && step.finish != Some(FinishReason::Stop) {
                // The constrained value is whole: nothing may follow it (a stop even when it
                // took the last token `max_tokens` allowed).
                step.text.push_str(&stop.finish());
                step.text.push_str(&stream.finish());
                step.finish = Some(FinishReason::Stop);
            }
            if let Some(f) = step.finish {
                // Release a character still incomplete at the end (as U+FFFD) unless a stop
                // string cut the text.
                if f == FinishReason::Length || is_eog(id) {
                    step.text.push_str(&stream.finish());
                }
                finish = f;
            }
            text.push_str(&step.text);
            let go_on = on_token(&Token {
                id,
                text: step.text,
                top_logprobs: top,
                logprob,
            });
            if step.finish.is_some() {
                break;
            }
            if !go_on {
                finish = FinishReason::Cancelled;
                break;
            }
            // Feed the token back for the next step (unless submitted above).
            if !speculate {
                let pos = self.cached.len() as u32;
                let fetch = Self::fetch_for(tail, generated as usize % 2);
                self.set_sampling(&mut sampler, tail, p.wants_logprobs());
                pending = Some(self.run(Input::Ids(&[id]), pos, Logits::Last, tail, fetch)?);
            }
            self.cached.push(id);
        }
        let t_end = now_s();
        let t_first = t_first.unwrap_or(t_end);
        Ok(GenStats {
            prompt_tokens: prompt.len() as u32,
            reused_tokens: reuse as u32,
            generated_tokens: generated,
            prefill_s: t_first - t0,
            decode_s: t_end - t_first,
            finish_reason: finish,
            text,
        })
    }
}
