//! OpenAI chat completions and completions in the browser: the request arrives as a JS object,
//! chunks leave as `chat.completion.chunk` / `text_completion` objects, the result is the whole
//! object; all built by [`crate::openai::run`], the same code as natively.

use super::source::Cancel;
use crate::engine::Engine;
use crate::openai::request::Request;
use crate::openai::{run, ChatCompletionRequest, CompletionRequest, IgnoredFields};
use js_sys::{Function, Object, Reflect};
use wasm_bindgen::prelude::*;

/// Plain JS objects (not `Map`s), as JSON would give.
pub fn to_js<T: serde::Serialize>(v: &T) -> Result<JsValue, JsValue> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| JsError::new(&e.to_string()).into())
}

/// Read a request object like [`crate::openai::request::parse_json`] does natively: unknown
/// fields are listed in a console warning, a field of the wrong type is a `BadRequestError`
/// naming it, values are validated. (Read from the JS object itself, so NaN stays NaN.)
fn parse<R: Request>(request: &JsValue) -> Result<R, JsValue> {
    if !request.is_object() || js_sys::Array::is_array(request) {
        return Err(super::err(crate::Error::bad_request(
            "body",
            "the request must be an object",
        )));
    }
    let keys: Vec<String> = Object::keys(request.unchecked_ref::<Object>())
        .iter()
        .filter_map(|k| k.as_string())
        .collect();
    let r: R = match serde_wasm_bindgen::from_value(request.clone()) {
        Ok(r) => r,
        Err(e) => {
            for k in &keys {
                let one = Object::new();
                let v = Reflect::get(request, &k.into()).unwrap_or(JsValue::UNDEFINED);
                let _ = Reflect::set(&one, &k.into(), &v);
                if let Err(e) = serde_wasm_bindgen::from_value::<R>(one.into()) {
                    return Err(super::err(crate::Error::bad_request(
                        k,
                        format!("`{k}`: {e}"),
                    )));
                }
            }
            return Err(super::err(crate::Error::bad_request("body", e.to_string())));
        }
    };
    r.validate().map_err(super::err)?;
    if let Some(w) = IgnoredFields::of::<R>(keys.iter().map(String::as_str)).warning() {
        web_sys::console::warn_1(&w.into());
    }
    Ok(r)
}

/// Calls `on_chunk` with each chunk; the first failure is kept and stops the answer.
struct Sink {
    f: Option<Function>,
    failed: Option<JsValue>,
}

impl Sink {
    fn send<T: serde::Serialize>(&mut self, chunk: &T) -> bool {
        let Some(f) = &self.f else { return true };
        match to_js(chunk).and_then(|v| f.call1(&JsValue::NULL, &v)) {
            Ok(_) => true,
            Err(e) => {
                self.failed.get_or_insert(e);
                false
            }
        }
    }
}

pub async fn complete(
    engine: &mut Engine,
    model: &str,
    request: JsValue,
    on_chunk: Option<Function>,
    cancel: Cancel,
) -> Result<JsValue, JsValue> {
    let req: ChatCompletionRequest = parse(&request)?;
    let mut sink = Sink {
        f: on_chunk,
        failed: None,
    };
    let done = run::chat_completion(engine, &req, model, |c| sink.send(c), || cancel.0.get())
        .await
        .map_err(super::err)?;
    if let Some(e) = sink.failed {
        return Err(e);
    }
    to_js(&done)
}

/// `completions.create`: plain text continued (no chat template).
pub async fn complete_text(
    engine: &mut Engine,
    model: &str,
    request: JsValue,
    on_chunk: Option<Function>,
    cancel: Cancel,
) -> Result<JsValue, JsValue> {
    let req: CompletionRequest = parse(&request)?;
    let mut sink = Sink {
        f: on_chunk,
        failed: None,
    };
    let done = run::completion(engine, &req, model, |c| sink.send(c), || cancel.0.get())
        .await
        .map_err(super::err)?;
    if let Some(e) = sink.failed {
        return Err(e);
    }
    to_js(&done)
}
