//! Running an OpenAI-shaped request on an [`Engine`]: tokenize (chat template or raw text), map
//! the request to [`GenParams`], stream chunks, build the final object with usage (cached tokens
//! included) and logprobs. Shared by the native API and the browser's (`src/wasm/chat.rs`).

use super::request::{ChatCompletionRequest, CompletionRequest, Prompt};
use super::toolparse::{ToolEvent, ToolParser};
use super::tools::{self, ToolCallConstraint, ToolChoice, ToolSyntax};
use super::*;
use crate::chat::{FunctionCall, ToolCall};
use crate::constrain::Constraint;
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
/// token. A cancelled answer ends like a stop string: what was said so far stands. With tools, the
/// output goes through a [`ToolParser`] (streamed or not, so both give the same answer).
pub async fn chat_completion(
    engine: &mut Engine,
    req: &ChatCompletionRequest,
    model: &str,
    mut on_chunk: impl FnMut(&ChatCompletionChunk) -> bool,
    cancelled: impl Fn() -> bool,
) -> Result<ChatCompletion> {
    req.sampling.check_vocab(engine.model.cfg.vocab)?;
    let plan = ToolPlan::of(req, engine.template.source())?;
    let shown = plan.as_ref().and(req.tools.as_deref());
    let prompt = engine.chat_prompt_with_tools(&req.messages, shown)?;
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
    let mut constraint: Option<Box<dyn Constraint>> = match &plan {
        Some(p) if p.forced.is_some() => p.forced.clone().map(|c| Box::new(c) as _),
        _ => super::format::constraint(req.response_format.as_ref())?.map(|c| Box::new(c) as _),
    };
    let mut parser = plan.as_ref().map(|p| ToolParser::new(p.syntax));
    let mut answer = Answer::default();
    let stats = engine
        .generate_maybe_constrained(&prompt, &params, constraint.as_mut(), |t| {
            let lp = token_logprob(&tok, t);
            let events = match parser.as_mut() {
                Some(p) => p.push(&t.text),
                None => vec![ToolEvent::Content(t.text.clone())],
            };
            let out = answer.take(events, lp.clone(), &mut chunks);
            if stream && !out.into_iter().all(|c| on_chunk(&c)) {
                return false;
            }
            content.extend(lp);
            !cancelled()
        })
        .await?;
    let tail = parser.as_mut().map(ToolParser::finish).unwrap_or_default();
    let tail = answer.take(tail, None, &mut chunks);
    let usage = usage(&stats);
    let finish = match answer.calls.is_empty() {
        true => stats.finish_reason,
        false => FinishReason::ToolCalls,
    };
    if stream {
        for c in &tail {
            on_chunk(c);
        }
        let last = chunks.finish(finish, req.sampling.include_usage().then_some(usage));
        on_chunk(&last);
    }
    let logprobs = req.logprobs.then_some(ChoiceLogprobs { content });
    let mut done = ChatCompletion::new(id, created, model, answer.text, finish, usage, logprobs);
    if !answer.calls.is_empty() {
        done.choices[0].message.tool_calls = Some(answer.calls);
    }
    Ok(done)
}

/// How a request with tools runs: the template's call syntax, and the constraint of a forced
/// choice. `None` when no tools are in play (none given, or `tool_choice: "none"`).
struct ToolPlan {
    syntax: ToolSyntax,
    forced: Option<ToolCallConstraint>,
}

impl ToolPlan {
    fn of(req: &ChatCompletionRequest, template: &str) -> Result<Option<ToolPlan>> {
        let tools = tools::tools(req.tools.as_deref())?;
        let choice = tools::choice(req.tool_choice.as_ref(), &tools)?;
        if tools.is_empty() || choice == ToolChoice::None {
            return Ok(None);
        }
        let Some(syntax) = ToolSyntax::of_template(template) else {
            return Err(crate::Error::bad_request(
                "tools",
                "`tools`: the model's chat template takes no tools in a syntax attend reads (Qwen2.5/Hermes \
                 `<tool_call>` or Llama 3 JSON)",
            ));
        };
        let forced = tools::forced(&tools, &choice)?;
        let forced = (!forced.is_empty()).then(|| ToolCallConstraint::new(syntax, &forced));
        Ok(Some(ToolPlan { syntax, forced }))
    }
}

/// The answer as it is released: its text, its calls, and the chunks that stream them.
#[derive(Default)]
struct Answer {
    text: String,
    calls: Vec<ToolCall>,
}

impl Answer {
    /// Take what the parser released (and the token's logprobs); returns the chunks to send.
    fn take(
        &mut self,
        events: Vec<ToolEvent>,
        mut lp: Option<TokenLogprob>,
        chunks: &mut ChunkStream,
    ) -> Vec<ChatCompletionChunk> {
        let mut out = Vec::new();
        for e in events {
            match e {
                ToolEvent::Content(t) => {
                    self.text.push_str(&t);
                    out.extend(match lp.take() {
                        Some(lp) => Some(
                            chunks.content_with_logprobs(&t, ChoiceLogprobs { content: vec![lp] }),
                        ),
                        None => chunks.content(&t),
                    });
                }
                ToolEvent::Call { name, arguments } => {
                    let call = ToolCall {
                        id: new_id("call").0.replace('-', "_"),
                        kind: "function".into(),
                        function: FunctionCall { name, arguments },
                    };
                    out.push(chunks.tool_call(self.calls.len() as u32, call.clone()));
                    self.calls.push(call);
                }
            }
        }
        if let Some(lp) = lp {
            // Held-back text: the token's logprobs go out with an empty delta.
            out.push(chunks.content_with_logprobs("", ChoiceLogprobs { content: vec![lp] }));
        }
        out
    }
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
