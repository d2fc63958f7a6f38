//! Running an OpenAI-shaped request on an [`Engine`]: tokenize (chat template or raw text), map
//! the request to [`GenParams`], stream chunks, build the final object with usage (cached tokens
//! included) and logprobs. Shared by the native API and the browser's (`src/wasm/chat.rs`).

use super::request::{ChatCompletionRequest, CompletionRequest, Prompt};
use super::*;
use crate::engine::{Engine, GenParams, GenStats, Token};
use crate::tokenizer::Tokenizer;
use crate::Result;

/// An id like OpenAI's (`chatcmpl-…`, `cmpl-…`) and the creation time in Unix seconds.
pub fn new_id(prefix: &str) -> (String, u64) {
    #[cfg(target_arch = "wasm32")]
    let (secs, r) = (
        js_sys::Date::now() / 1000.0,
        (js_sys::Math::random() * 9.0e15) as u64,
    );
    #[cfg(not(target_arch = "wasm32"))]
    let (secs, r) = {
        use std::sync::atomic::{AtomicU64, Ordering};
        static N: AtomicU64 = AtomicU64::new(0);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let n = N.fetch_add(1, Ordering::Relaxed);
        let r = (t.as_nanos() as u64 ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
            .wrapping_mul(0xBF58_476D_1CE4_E5B9);
        (t.as_secs_f64(), r >> 8)
    };
    (format!("{prefix}-{r:x}"), secs as u64)
}

/// A token's text and bytes as OpenAI's logprobs show them.
fn token_entry(tok: &Tokenizer, id: u32) -> (String, Vec<u8>) {
    let b = tok.token_bytes(id).to_vec();
    (String::from_utf8_lossy(&b).into_owned(), b)
}

/// The logprobs entry of one generated token; `None` for end-of-generation tokens (they are not
/// part of the content) and when none were computed.
pub fn token_logprob(tok: &Tokenizer, t: &Token) -> Option<TokenLogprob> {
    let logprob = t.logprob?;
    if tok.is_eog(t.id) {
        return None;
    }
    let (token, bytes) = token_entry(tok, t.id);
    let top_logprobs = t
        .top_logprobs
        .iter()
        .map(|&(id, logprob)| {
            let (token, bytes) = token_entry(tok, id);
            TopLogprob {
                token,
                logprob,
                bytes: Some(bytes),
            }
        })
        .collect();
    Some(TokenLogprob {
        token,
        logprob,
        bytes: Some(bytes),
        top_logprobs,
    })
}

/// Usage of one answer: cached tokens and measured speeds included.
pub fn usage(stats: &GenStats) -> Usage {
    let mut u =
        Usage::new(stats.prompt_tokens, stats.generated_tokens).with_cached(stats.reused_tokens);
    u.prefill_tokens_per_second = Some(stats.prefill_tok_s() as f32);
    u.decode_tokens_per_second = Some(stats.decode_tok_s() as f32);
    u
}

/// `POST /v1/chat/completions`. `on_chunk` receives the chunks of a streamed request (`stream:
/// true`; never called otherwise) and returns `false` to stop; `cancelled` is polled after every
/// token. A cancelled answer ends like a stop string: what was said so far stands.
pub async fn chat_completion(
    engine: &mut Engine,
    req: &ChatCompletionRequest,
    model: &str,
    mut on_chunk: impl FnMut(&ChatCompletionChunk) -> bool,
    cancelled: impl Fn() -> bool,
) -> Result<ChatCompletion> {
    req.sampling.check_vocab(engine.model.cfg.vocab)?;
    let prompt = engine.chat_prompt(&req.messages)?;
    let params = GenParams {
        max_tokens: req.max_tokens().unwrap_or(engine.model.context),
        sampler: req.sampler_config(),
        top_logprobs: req.top_logprobs(),
        logprobs: req.logprobs,
        stop: req.stop_strings(),
        ignore_eog: false,
    };
    let (id, created) = new_id("chatcmpl");
    let stream = req.sampling.stream;
    let mut chunks = ChunkStream::new(id.clone(), created, model);
    let tok = engine.tokenizer.clone();
    let mut content = Vec::new();
    let mut constraint = super::format::constraint(req.response_format.as_ref())?;
    let stats = engine
        .generate_maybe_constrained(&prompt, &params, constraint.as_mut(), |t| {
            let lp = token_logprob(&tok, t);
            if stream {
                let chunk = match lp.clone() {
                    Some(lp) => Some(
                        chunks.content_with_logprobs(&t.text, ChoiceLogprobs { content: vec![lp] }),
                    ),
                    None => chunks.content(&t.text),
                };
                if chunk.is_some_and(|c| !on_chunk(&c)) {
                    return false;
                }
            }
            content.extend(lp);
            !cancelled()
        })
        .await?;
    let usage = usage(&stats);
    if stream {
        let last = chunks.finish(
            stats.finish_reason,
            req.sampling.include_usage().then_some(usage),
        );
        on_chunk(&last);
    }
    let logprobs = req.logprobs.then_some(ChoiceLogprobs { content });
    Ok(ChatCompletion::new(
        id,
        created,
        model,
        stats.text,
        stats.finish_reason,
        usage,
        logprobs,
    ))
}

/// The prompt of a completions request as token ids.
pub fn completion_prompt(engine: &Engine, req: &CompletionRequest) -> Result<Vec<u32>> {
    let text = match &req.prompt {
        Prompt::Ids(ids) => return Ok(ids.clone()),
        Prompt::Text(t) => t,
        Prompt::Texts(t) => t.first().map_or("", String::as_str),
    };
    engine.encode_raw(text, req.parse_special())
}

/// `POST /v1/completions`: the prompt continued as plain text (no chat template). Chunks of a
/// streamed request are `text_completion` objects holding the new text.
pub async fn completion(
    engine: &mut Engine,
    req: &CompletionRequest,
    model: &str,
    mut on_chunk: impl FnMut(&TextCompletion) -> bool,
    cancelled: impl Fn() -> bool,
) -> Result<TextCompletion> {
    req.sampling.check_vocab(engine.model.cfg.vocab)?;
    let prompt = completion_prompt(engine, req)?;
    let params = GenParams {
        max_tokens: req.max_tokens(),
        sampler: req.sampling.sampler_config(),
        top_logprobs: req.logprobs().unwrap_or(0),
        logprobs: req.logprobs().is_some(),
        stop: req.sampling.stop_strings(),
        ignore_eog: false,
    };
    let (id, created) = new_id("cmpl");
    let stream = req.sampling.stream;
    let tok = engine.tokenizer.clone();
    let echo = if req.echo {
        tok.decode(&prompt)
    } else {
        String::new()
    };
    let mut logprobs = req.logprobs().map(|_| CompletionLogprobs::default());
    let mut offset = echo.len() as u32;
    let piece = |text: String, logprobs: Option<CompletionLogprobs>, finish| {
        TextCompletion::new(
            id.clone(),
            created,
            model,
            CompletionChoice {
                index: 0,
                text,
                finish_reason: finish,
                logprobs,
            },
            None,
        )
    };
    if stream && !echo.is_empty() && !on_chunk(&piece(echo.clone(), None, None)) {
        return Err(crate::Error::Invalid(
            "the chunk callback stopped the answer".into(),
        ));
    }
    let mut constraint = super::format::constraint(req.response_format.as_ref())?;
    let stats = engine
        .generate_maybe_constrained(&prompt, &params, constraint.as_mut(), |t| {
            let lp = token_logprob(&tok, t);
            let mut step = None;
            if let Some(lp) = &lp {
                let mut one = CompletionLogprobs::default();
                one.push(lp, offset);
                if let Some(all) = logprobs.as_mut() {
                    all.push(lp, offset);
                }
                step = Some(one);
            }
            offset += t.text.len() as u32;
            if stream
                && (!t.text.is_empty() || step.is_some())
                && !on_chunk(&piece(t.text.clone(), step, None))
            {
                return false;
            }
            !cancelled()
        })
        .await?;
    let usage = usage(&stats);
    let reason = Some(stats.finish_reason.openai());
    if stream {
        let mut last = piece(String::new(), None, reason);
        last.usage = req.sampling.include_usage().then_some(usage);
        on_chunk(&last);
    }
    let mut done = piece(echo + &stats.text, logprobs, reason);
    done.usage = Some(usage);
    Ok(done)
}
