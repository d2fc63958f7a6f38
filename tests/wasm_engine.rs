//! The engine's wasm-bindgen API in a real browser (headless Chromium, WebGPU on SwiftShader):
//! `WasmEngine` loads the tiny Qwen2 GGUF and answers OpenAI-shaped requests with streamed chunks,
//! logprobs, structured output and tool calls as the native engine does; split models, the
//! `index.d.ts` shapes and the `tune` option. (Each architecture's tiny model against HF
//! transformers, streamed: tests/wasm_models.rs.)
//! Browser-only: natively this file is empty (the native engine is covered by tests/models.rs).
#![cfg(target_arch = "wasm32")]

use attend::wasm::{CancelToken, WasmEngine};
use js_sys::{Function, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const GGUF: &[u8] = include_bytes!("reference/tiny-qwen2.gguf");
/// Logprobs of one request as the native engine computes them (tests/api.rs checks and writes it).
const LOGPROBS: &str = include_str!("reference/tiny-qwen2-logprobs.json");

/// A plain JS object, as a page would pass it.
fn js(v: serde_json::Value) -> JsValue {
    js_sys::JSON::parse(&v.to_string()).unwrap()
}

#[wasm_bindgen_test]
async fn wasm_engine_answers_openai_requests_with_streamed_chunks() {
    let bytes = Uint8Array::from(GGUF);
    let progress = js_sys::Array::new();
    let p2 = progress.clone();
    let on_progress = Closure::<dyn FnMut(JsValue)>::new(move |v: JsValue| {
        p2.push(&v);
    });
    let engine = WasmEngine::load(
        bytes.into(),
        js_sys::Object::new().into(),
        on_progress.as_ref().unchecked_ref::<Function>().clone(),
        &CancelToken::new(),
    )
    .await
    .expect("load from an ArrayBuffer");
    let phases: Vec<String> = progress
        .iter()
        .map(|p| {
            Reflect::get(&p, &"phase".into())
                .unwrap()
                .as_string()
                .unwrap()
        })
        .collect();
    assert!(
        phases.contains(&"download".into()) && phases.last() == Some(&"ready".to_string()),
        "{phases:?}"
    );

    let info = engine.info().unwrap();
    assert_eq!(
        Reflect::get(&info, &"architecture".into())
            .unwrap()
            .as_string()
            .unwrap(),
        "qwen2"
    );

    let chunks = js_sys::Array::new();
    let c2 = chunks.clone();
    let on_chunk = Closure::<dyn FnMut(JsValue)>::new(move |v: JsValue| {
        c2.push(&v);
    });
    let request = js(serde_json::json!({
        "messages": [{"role": "user", "content": "Hello there"}],
        "max_tokens": 6, "temperature": 0, "stream": true
    }));
    let done = JsFuture::from(engine.chat(
        request,
        Some(on_chunk.as_ref().unchecked_ref::<Function>().clone()),
        &CancelToken::new(),
    ))
    .await
    .expect("chat completion");
    let done: serde_json::Value = serde_wasm_bindgen::from_value(done).unwrap();
    assert_eq!(done["object"], "chat.completion");
    let reason = done["choices"][0]["finish_reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason == "length" || reason == "stop", "{reason}");
    let completion = done["usage"]["completion_tokens"].as_u64().unwrap();
    assert!((1..=6).contains(&completion));

    // Streamed chunks: role first, content deltas adding up to the message, a final finish_reason.
    let chunks: Vec<serde_json::Value> = chunks
        .iter()
        .map(|c| serde_wasm_bindgen::from_value(c).unwrap())
        .collect();
    assert!(chunks.len() >= 2, "{chunks:?}");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(
        text,
        done["choices"][0]["message"]["content"].as_str().unwrap()
    );
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        reason.as_str()
    );
    assert!(!engine.tokenize("Hello", None).unwrap().is_empty());

    // A cancelled generation ends early with what it had.
    let cancel = CancelToken::new();
    cancel.cancel();
    let request = js(serde_json::json!({
        "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 6, "temperature": 0
    }));
    let stopped: serde_json::Value = serde_wasm_bindgen::from_value(
        JsFuture::from(engine.chat(request, None, &cancel))
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stopped["usage"]["completion_tokens"], 1);

    // The browser bench reports the same fields as `attend bench --json`.
    let r: serde_json::Value = serde_wasm_bindgen::from_value(
        JsFuture::from(engine.bench(js(serde_json::json!({
            "promptTokens": 8, "genTokens": 4, "repeat": 1
        }))))
        .await
        .expect("bench"),
    )
    .unwrap();
    for k in [
        "prefill_tok_s",
        "decode_tok_s",
        "sampled_decode_tok_s",
        "sampled_row_decode_tok_s",
        "ttft_s",
        "load_s",
        "compile_s",
        "bytes_per_token",
        "decode_gb_s",
        "copy_gb_s",
        "buffer_copy_gb_s",
        "roofline_fraction",
        "gpu_bytes",
    ] {
        let v = r[k].as_f64().unwrap_or(f64::NAN);
        assert!(v.is_finite() && v > 0.0, "{k} = {} in {r}", r[k]);
    }
    // A 2-layer model's record + submit can take less than the browser's timer resolution.
    let cpu = r["cpu_ms_per_token"].as_f64().unwrap_or(f64::NAN);
    assert!(
        cpu.is_finite() && cpu >= 0.0,
        "cpu_ms_per_token = {cpu} in {r}"
    );
    let layers = info_layers(&info);
    assert!(r["dispatches_per_token"].as_u64().unwrap() > layers, "{r}");
    assert!(r["weight_bytes"].as_u64().unwrap() <= r["gpu_bytes"].as_u64().unwrap());
    assert_eq!(r["prompt_tokens"], 8);
    assert_eq!(r["gen_tokens"], 4);
    assert!(
        r.get("profile").is_none(),
        "a profile nobody asked for: {r}"
    );

    // With `profile`, GPU time per kernel from timestamp queries, where the adapter has them
    // (Chromium's SwiftShader adapter does); elsewhere a clear refusal.
    let profiled = JsFuture::from(engine.bench(js(serde_json::json!({
        "promptTokens": 8, "genTokens": 4, "repeat": 1, "profile": true
    }))))
    .await;
    match profiled {
        Ok(v) => {
            let r: serde_json::Value = serde_wasm_bindgen::from_value(v).unwrap();
            let rows = r["profile"].as_array().expect("profile rows");
            let has = |pass: &str, kernel: &str| {
                rows.iter().any(|k| {
                    k["pass"] == pass
                        && k["kernel"].as_str().unwrap().contains(kernel)
                        && k["calls"].as_u64().unwrap() >= 1
                        && k["ms"]
                            .as_f64()
                            .is_some_and(|ms| ms.is_finite() && ms >= 0.0)
                })
            };
            assert!(has("decode", "matvec") && has("prefill", ""), "{r}");
        }
        Err(e) => {
            let msg = format!("{e:?}");
            assert!(msg.contains("timestamp"), "{msg}");
        }
    }
}

fn info_layers(info: &JsValue) -> u64 {
    let params = Reflect::get(info, &"parameters".into()).unwrap();
    Reflect::get(&params, &"layers".into())
        .unwrap()
        .as_f64()
        .unwrap() as u64
}

/// `WasmEngine::load` of `source` with `options`, progress ignored.
async fn load_quietly(source: JsValue, options: serde_json::Value) -> Result<WasmEngine, JsValue> {
    let on_progress = Closure::<dyn FnMut(JsValue)>::new(|_: JsValue| {});
    WasmEngine::load(
        source,
        js(options),
        on_progress.as_ref().unchecked_ref::<Function>().clone(),
        &CancelToken::new(),
    )
    .await
}

async fn load_engine() -> WasmEngine {
    load_quietly(Uint8Array::from(GGUF).into(), serde_json::json!({}))
        .await
        .expect("load from an ArrayBuffer")
}

/// Run a chat (or completions) request; returns the result and the streamed chunks.
async fn call(
    engine: &WasmEngine,
    request: serde_json::Value,
    completions: bool,
) -> Result<(serde_json::Value, Vec<serde_json::Value>), JsValue> {
    let chunks = js_sys::Array::new();
    let c2 = chunks.clone();
    let on_chunk = Closure::<dyn FnMut(JsValue)>::new(move |v: JsValue| {
        c2.push(&v);
    });
    let f = on_chunk.as_ref().unchecked_ref::<Function>().clone();
    let p = if completions {
        engine.completion(js(request), Some(f), &CancelToken::new())
    } else {
        engine.chat(js(request), Some(f), &CancelToken::new())
    };
    let done = JsFuture::from(p).await?;
    let chunks = chunks
        .iter()
        .map(|c| serde_wasm_bindgen::from_value(c).unwrap())
        .collect();
    Ok((serde_wasm_bindgen::from_value(done).unwrap(), chunks))
}

#[wasm_bindgen_test]
async fn wasm_logprobs_usage_and_completions_match_native() {
    let engine = load_engine().await;
    // Logprobs: the same request as tests/api.rs, the same values within 1e-3.
    let want: serde_json::Value = serde_json::from_str(LOGPROBS).unwrap();
    let (done, chunks) = call(&engine, want["request"].clone(), false).await.unwrap();
    let got = done["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap();
    let want_c = want["content"].as_array().unwrap();
    assert_eq!(got.len(), want_c.len(), "{done}");
    for (g, w) in got.iter().zip(want_c) {
        assert_eq!(g["token"], w["token"]);
        assert_eq!(g["bytes"], w["bytes"]);
        assert!(
            (g["logprob"].as_f64().unwrap() - w["logprob"].as_f64().unwrap()).abs() <= 1e-3,
            "{g} vs {w}"
        );
        let (gt, wt) = (
            g["top_logprobs"].as_array().unwrap(),
            w["top_logprobs"].as_array().unwrap(),
        );
        assert_eq!(gt.len(), wt.len());
        for (a, b) in gt.iter().zip(wt) {
            assert_eq!(a["token"], b["token"]);
            assert!(
                (a["logprob"].as_f64().unwrap() - b["logprob"].as_f64().unwrap()).abs() <= 1e-3,
                "{a} vs {b}"
            );
        }
    }
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["logprobs"]["content"].is_array()));

    // A second turn reuses the first one's KV cache; the last streamed chunk carries usage.
    let first = serde_json::json!([{"role": "user", "content": "Hello there"}]);
    let (a, _) = call(
        &engine,
        serde_json::json!({"messages": first, "max_tokens": 4, "temperature": 0}),
        false,
    )
    .await
    .unwrap();
    let answer = a["choices"][0]["message"]["content"].clone();
    let second = serde_json::json!([{"role": "user", "content": "Hello there"},
        {"role": "assistant", "content": answer}, {"role": "user", "content": "More?"}]);
    let (b, chunks) = call(
        &engine,
        serde_json::json!({"messages": second, "max_tokens": 3, "temperature": 0,
        "stream": true, "stream_options": {"include_usage": true}}),
        false,
    )
    .await
    .unwrap();
    let cached = b["usage"]["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .unwrap();
    assert!(
        cached > 0 && cached < b["usage"]["prompt_tokens"].as_u64().unwrap(),
        "{b}"
    );
    assert_eq!(chunks.last().unwrap()["usage"], b["usage"]);

    // Completions: special-token text parsed unless parse_special is false.
    let text = "<|im_start|>user\nHi<|im_end|>\n";
    let (p, _) = call(
        &engine,
        serde_json::json!({"prompt": text, "max_tokens": 2, "temperature": 0}),
        true,
    )
    .await
    .unwrap();
    let (q, _) = call(
        &engine,
        serde_json::json!({"prompt": text, "max_tokens": 2, "temperature": 0,
        "parse_special": false}),
        true,
    )
    .await
    .unwrap();
    assert_eq!(p["object"], "text_completion");
    assert!(
        p["usage"]["prompt_tokens"].as_u64() < q["usage"]["prompt_tokens"].as_u64(),
        "{p} {q}"
    );

    // A bad value is a BadRequestError naming the field.
    let e = call(
        &engine,
        serde_json::json!({"messages": first, "top_p": 7}),
        false,
    )
    .await
    .unwrap_err();
    let name = Reflect::get(&e, &"name".into())
        .unwrap()
        .as_string()
        .unwrap();
    let param = Reflect::get(&e, &"param".into())
        .unwrap()
        .as_string()
        .unwrap();
    assert_eq!(
        (name.as_str(), param.as_str()),
        ("BadRequestError", "top_p")
    );
}

#[wasm_bindgen_test]
async fn wasm_structured_output_parses_and_follows_the_schema() {
    // The same Rust path as natively (tests/structured.rs): response_format through
    // engine.chat(), greedy and seeded, on the tiny random Qwen2 (its answers are noise, so
    // only a constraint makes them JSON).
    let engine = load_engine().await;
    let schema = serde_json::json!({"type": "object", "properties": {
        "mood": {"enum": ["good", "bad"]},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
        "ok": {"type": "boolean"},
    }, "required": ["mood", "ok"]});
    let format = serde_json::json!({"type": "json_schema",
        "json_schema": {"name": "m", "schema": schema, "strict": true}});
    let msgs = serde_json::json!([{"role": "user", "content": "Hello there"}]);
    for sampling in [
        serde_json::json!({"temperature": 0}),
        serde_json::json!({"temperature": 0.9, "seed": 7}),
    ] {
        let mut req = serde_json::json!({"messages": msgs, "max_tokens": 48,
            "response_format": format});
        for (k, v) in sampling.as_object().unwrap() {
            req[k] = v.clone();
        }
        let (done, _) = call(&engine, req, false).await.unwrap();
        let choice = &done["choices"][0];
        let text = choice["message"]["content"].as_str().unwrap();
        assert_eq!(choice["finish_reason"], "stop", "{text}");
        let v: serde_json::Value = serde_json::from_str(text).expect(text);
        assert!(
            ["good", "bad"].contains(&v["mood"].as_str().unwrap()),
            "{text}"
        );
        assert!(v["ok"].is_boolean(), "{text}");
        let keys = v.as_object().unwrap().keys();
        assert!(keys
            .into_iter()
            .all(|k| ["mood", "tags", "ok"].contains(&k.as_str())));
    }
    let (obj, _) = call(
        &engine,
        serde_json::json!({"messages": msgs, "max_tokens": 48, "temperature": 0,
            "response_format": {"type": "json_object"}}),
        false,
    )
    .await
    .unwrap();
    let choice = &obj["choices"][0];
    if choice["finish_reason"] == "stop" {
        let text = choice["message"]["content"].as_str().unwrap();
        assert!(serde_json::from_str::<serde_json::Value>(text)
            .unwrap()
            .is_object());
    }
    // A schema outside the subset is a BadRequestError naming it.
    let bad = serde_json::json!({"type": "json_schema",
        "json_schema": {"name": "m", "schema": {"type": "string", "pattern": "a+"}}});
    let e = call(
        &engine,
        serde_json::json!({"messages": msgs, "response_format": bad}),
        false,
    )
    .await
    .unwrap_err();
    let param = Reflect::get(&e, &"param".into()).unwrap().as_string();
    assert_eq!(param.as_deref(), Some("response_format.json_schema.schema"));
}

#[path = "support/tool_model.rs"]
mod tool_model;

#[wasm_bindgen_test]
async fn wasm_named_tool_call_round_trip() {
    // The native round trip of tests/tools.rs through engine.chat(): a forced call to a named
    // function comes back in tool_calls (streamed as one delta), and the next turn with the call
    // and its result is accepted.
    let engine = load_quietly(
        Uint8Array::from(&tool_model::tiny_qwen2_with_tools()[..]).into(),
        serde_json::json!({"contextLength": 2048}),
    )
    .await
    .expect("load the tool model");
    let tools = serde_json::json!([{"type": "function", "function": {"name": "get_weather",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "maxLength": 12},
            "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"]}}}]);
    let mut req = serde_json::json!({
        "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
        "tools": tools, "temperature": 0, "max_tokens": 120, "stream": true,
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}}});
    let (done, chunks) = call(&engine, req.clone(), false).await.unwrap();
    let choice = &done["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{done}");
    assert!(choice["message"]["content"].is_null());
    let calls = choice["message"]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let args: serde_json::Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert!(
        args["city"].as_str().unwrap().chars().count() <= 12,
        "{args}"
    );
    assert!(["celsius", "fahrenheit"].contains(&args["unit"].as_str().unwrap()));
    let deltas: Vec<&serde_json::Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
        .flatten()
        .collect();
    assert_eq!(deltas.len(), 1);
    assert_eq!(deltas[0]["index"], 0);
    assert_eq!(deltas[0]["id"], calls[0]["id"]);
    assert_eq!(deltas[0]["function"], calls[0]["function"]);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    let msgs = req["messages"].as_array_mut().unwrap();
    msgs.push(serde_json::json!({"role": "assistant", "content": null, "tool_calls": calls}));
    msgs.push(
        serde_json::json!({"role": "tool", "tool_call_id": calls[0]["id"],
        "content": "{\"sky\": \"clear\"}"}),
    );
    req["tool_choice"] = serde_json::json!("auto");
    req["max_tokens"] = serde_json::json!(8);
    let (next, _) = call(&engine, req, false).await.unwrap();
    assert!(next["usage"]["completion_tokens"].as_u64().unwrap() > 0);
}

/// A split model given as several sources (Uint8Arrays here; URLs and Blobs take the same path):
/// every shard's header is read first, then the shards are pushed through `attend::push` (run
/// natively by tests/push_load.rs), and the engine answers as the single file's does.
#[wasm_bindgen_test]
async fn wasm_split_model_answers_like_the_file() {
    let g = attend::gguf::Gguf::parse(GGUF).unwrap();
    let w = attend::gguf::GgufWriter::copy_of(&g, |t| {
        let (_, start, len) = g.tensor_location(t)?;
        Ok(GGUF[start as usize..(start + len) as usize].to_vec())
    })
    .unwrap();
    let shards = js_sys::Array::new();
    for s in w.split(10).unwrap() {
        shards.push(&Uint8Array::from(&s.to_bytes().unwrap()[..]));
    }
    assert_eq!(shards.length(), 3);
    let split = load_quietly(shards.into(), serde_json::json!({}))
        .await
        .expect("load the shards");
    let whole = load_engine().await;
    let request = serde_json::json!({"prompt": "Hello there", "max_tokens": 8, "temperature": 0});
    let (a, _) = call(&split, request.clone(), true).await.unwrap();
    let (b, _) = call(&whole, request, true).await.unwrap();
    assert_eq!(
        a["choices"][0]["text"], b["choices"][0]["text"],
        "{a} vs {b}"
    );
    assert_eq!(a["usage"]["completion_tokens"], 8, "{a}");
    let info = |e: &WasmEngine| -> serde_json::Value {
        serde_wasm_bindgen::from_value(e.info().unwrap()).unwrap()
    };
    let (a, b) = (info(&split), info(&whole));
    for k in [
        "architecture",
        "parameters",
        "weight_bytes",
        "kv_cache_bytes",
        "tensor_types",
    ] {
        assert_eq!(a[k], b[k], "{k}: {a} vs {b}");
    }
}

#[path = "support/dts.rs"]
mod dts;

/// What the browser receives (engine.info(), a streamed chat with logprobs and its chunks, a
/// completion) conforms to the interfaces `www/attend-llm/index.d.ts` declares, checked by the
/// same checker as tests/dts.rs runs natively.
#[wasm_bindgen_test]
async fn wasm_results_match_index_d_ts() {
    let d = dts::Dts::parse(include_str!("../www/attend-llm/index.d.ts"));
    let conforms = |name: &str, v: &serde_json::Value| {
        let errs = d.check(name, v);
        assert!(errs.is_empty(), "{name}:\n{}\n{v:#}", errs.join("\n"));
    };
    let engine = load_engine().await;
    let info: serde_json::Value = serde_wasm_bindgen::from_value(engine.info().unwrap()).unwrap();
    conforms("EngineInfo", &info);
    assert!(info["wasm_heap_bytes"].as_u64().unwrap() > 0, "{info}");
    let request = serde_json::json!({"messages": [{"role": "user", "content": "Hello there"}],
        "max_tokens": 4, "temperature": 0, "logprobs": true, "top_logprobs": 2, "stream": true,
        "stream_options": {"include_usage": true}});
    let (done, chunks) = call(&engine, request, false).await.unwrap();
    conforms("ChatCompletion", &done);
    assert!(chunks.len() >= 3, "{chunks:?}");
    for c in &chunks {
        conforms("ChatCompletionChunk", c);
    }
    let request = serde_json::json!({"prompt": "Hello", "max_tokens": 3, "temperature": 0});
    let (done, _) = call(&engine, request, true).await.unwrap();
    conforms("TextCompletion", &done);
}

/// The `tune` load option. SwiftShader is a CPU adapter, where a load by default ("auto") takes
/// remembered or built-in kernel shapes instead of compiling and timing every candidate; asked to
/// ("measure"), it measures and remembers them; a bad value is refused before any work.
#[wasm_bindgen_test]
async fn wasm_tune_option_measures_only_when_asked() {
    async fn load_with(options: serde_json::Value) -> Result<(WasmEngine, usize), JsValue> {
        attend::kernels::tuned::clear();
        let e = load_quietly(Uint8Array::from(GGUF).into(), options).await?;
        let measured: serde_json::Value =
            serde_json::from_str(&attend::kernels::tuned::export()).unwrap();
        Ok((e, measured.as_object().unwrap().len()))
    }
    let pipelines = |e: &WasmEngine| -> u64 {
        let info: serde_json::Value = serde_wasm_bindgen::from_value(e.info().unwrap()).unwrap();
        info["pipelines"].as_u64().expect("pipelines")
    };
    let (auto, n) = load_with(serde_json::json!({})).await.unwrap();
    assert_eq!(
        n, 0,
        "auto measured {n} shapes on SwiftShader, a CPU adapter"
    );
    let (measured, n) = load_with(serde_json::json!({"tune": "measure"}))
        .await
        .unwrap();
    assert!(n > 0, "measure remembered no shape");
    assert!(pipelines(&measured) > pipelines(&auto));
    // Both answer alike (shapes change the summation order only).
    let request = serde_json::json!({"prompt": "Hello there", "max_tokens": 6, "temperature": 0});
    let (a, _) = call(&auto, request.clone(), true).await.unwrap();
    let (b, _) = call(&measured, request, true).await.unwrap();
    assert_eq!(
        a["choices"][0]["text"], b["choices"][0]["text"],
        "{a} vs {b}"
    );
    drop((auto, measured));
    for bad in [serde_json::json!("fast"), serde_json::json!(true)] {
        let err = load_with(serde_json::json!({ "tune": bad })).await.err();
        let msg = format!("{err:?}");
        assert!(msg.contains("tune must be"), "tune {bad}: {msg}");
    }
}
