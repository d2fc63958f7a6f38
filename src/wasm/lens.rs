//! `engine.attention(request)`: the attention lens of any token, from JS.

use super::{chat::to_js, err, WasmEngine};
use crate::chat::Message;
use crate::engine::{now_s, AttentionQuery};
use wasm_bindgen::prelude::*;

/// `{ prompt | messages | ids, token?, layer?, head? }`; with none of prompt, messages and ids,
/// the tokens of the conversation in the cache (what the chat page shows); `token` defaults to
/// the last one.
#[derive(serde::Deserialize)]
struct AttentionRequest {
    prompt: Option<String>,
    messages: Option<Vec<Message>>,
    ids: Option<Vec<u32>>,
    token: Option<u32>,
    layer: Option<u32>,
    head: Option<u32>,
}

#[wasm_bindgen]
impl WasmEngine {
    /// Attention weights of one token: `{tokens, query, layers, heads, weights[layer][head][key],
    /// elapsed_ms}`; `elapsed_ms` is the lens's own cost (tokenize, forward pass with the weights
    /// recorded, readback), not the time it waited behind an answer.
    pub fn attention(&self, request: JsValue) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let r: AttentionRequest = serde_wasm_bindgen::from_value(request)
                .map_err(|e| JsError::new(&format!("invalid attention request: {e}")))?;
            let mut e = inner
                .try_borrow_mut()
                .map_err(|_| JsError::new("the engine is busy generating"))?;
            let t0 = now_s();
            let ids = match (r.prompt, r.messages, r.ids) {
                (Some(p), None, None) => e.encode(&p).map_err(err)?,
                (None, Some(m), None) => e.chat_prompt(&m).map_err(err)?,
                (None, None, Some(ids)) => ids,
                (None, None, None) => e.cached_tokens().to_vec(),
                _ => {
                    return Err(JsError::new("give at most one of prompt, messages and ids").into())
                }
            };
            let q = AttentionQuery {
                token: r.token.unwrap_or(ids.len().saturating_sub(1) as u32),
                layer: r.layer,
                head: r.head,
            };
            let a = e.attention(&ids, &q).await.map_err(err)?;
            let v = to_js(&a)?;
            let ms = (now_s() - t0) * 1000.0;
            js_sys::Reflect::set(&v, &"elapsed_ms".into(), &ms.into())?;
            Ok(v)
        })
    }
}
