//! OpenAI chat completions in the browser: the request arrives as a JS object, chunks leave as
//! `chat.completion.chunk` objects, the result is a `chat.completion`, all built in Rust.

use super::source::Cancel;
use crate::engine::{Engine, FinishReason, GenParams};
use crate::stop::{self, ChatCompletion, ChatCompletionRequest, ChunkStream, Usage};
use js_sys::Function;
use wasm_bindgen::prelude::*;

/// Plain JS objects (not `Map`s), as JSON would give.
pub fn to_js<T: serde::Serialize>(v: &T) -> Result<JsValue, JsValue> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsError::new(&e.to_string()).into())
}

pub async fn complete(
    engine: &mut Engine,
    model: &str,
    request: JsValue,
    on_chunk: Option<Function>,
    cancel: Cancel,
) -> Result<JsValue, JsValue> {
    let req: ChatCompletionRequest = serde_wasm_bindgen::from_value(request)
        .map_err(|e| JsError::new(&format!("invalid chat completion request: {e}")))?;
    req.validate().map_err(super::err)?;
    let prompt = engine.chat_prompt(&req.messages).map_err(super::err)?;
    let params = GenParams {
        max_tokens: req.max_tokens().unwrap_or(engine.model.context),
        sampler: req.sampler_config(),
        top_logprobs: 0,
        stop: req.stop_strings(),
        ignore_eog: false,
    };
    let created = (js_sys::Date::now() / 1000.0) as u64;
    let id = format!("chatcmpl-{:x}", (js_sys::Math::random() * 1e15) as u64);
    let mut chunks = ChunkStream::new(id.clone(), created, model);
    let mut failed: Option<JsValue> = None;
    let stats = engine
        .generate(&prompt, &params, |t| {
            if let (Some(f), Some(c)) = (&on_chunk, chunks.content(&t.text)) {
                if let Err(e) = to_js(&c).and_then(|v| f.call1(&JsValue::NULL, &v)) {
                    failed = Some(e);
                    return false;
                }
            }
            !cancel.0.get()
        })
        .await
        .map_err(super::err)?;
    if let Some(e) = failed {
        return Err(e);
    }
    // A cancelled answer ends like a stop string: what was said so far stands.
    let reason = match stats.finish_reason {
        FinishReason::Length => stop::FinishReason::Length,
        FinishReason::Stop | FinishReason::Cancelled => stop::FinishReason::Stop,
    };
    let mut usage = Usage::new(stats.prompt_tokens, stats.generated_tokens);
    usage.prefill_tokens_per_second = Some(stats.prefill_tok_s() as f32);
    usage.decode_tokens_per_second = Some(stats.decode_tok_s() as f32);
    if let Some(f) = &on_chunk {
        f.call1(
            &JsValue::NULL,
            &to_js(&chunks.finish(reason, Some(usage.clone())))?,
        )?;
    }
    let done = ChatCompletion::new(id, created, model, stats.text, reason, usage, None);
    to_js(&done)
}
