//! `engine.attention` in a real browser (headless Chromium, WebGPU on SwiftShader): the tiny
//! Qwen2 GGUF through the wasm-bindgen API, every golden query of
//! tests/reference/attention-tiny-qwen2.json, every layer, head and key within 1e-3 of HF
//! transformers: loaded with `kvPrecision: "f32"` against plain fp32 HF (`weights_e5`), and with
//! the default f16 cache against HF with f16 K/V (`weights_kvf16_e5`) — the same bounds and golden
//! data as the native tests/attention.rs. Also: the request defaults (the cached conversation,
//! the last token), narrowing, and errors for bad requests and a bad `kvPrecision`; and tiny
//! Gemma 2's soft-capped, windowed attention against its golden.
//! Browser-only.
#![cfg(target_arch = "wasm32")]

use attend::wasm::{CancelToken, WasmEngine};
use js_sys::{Function, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

const GGUF: &[u8] = include_bytes!("reference/tiny-qwen2.gguf");
const GOLDEN: &str = include_str!("reference/attention-tiny-qwen2.json");

fn js(v: serde_json::Value) -> JsValue {
    js_sys::JSON::parse(&v.to_string()).unwrap()
}

async fn attention(e: &WasmEngine, req: serde_json::Value) -> Result<serde_json::Value, String> {
    match JsFuture::from(e.attention(js(req))).await {
        Ok(v) => Ok(serde_wasm_bindgen::from_value(v).unwrap()),
        Err(e) => Err(format!("{e:?}")),
    }
}

async fn load(options: serde_json::Value) -> Result<WasmEngine, JsValue> {
    load_gguf(GGUF, options).await
}

async fn load_gguf(gguf: &[u8], options: serde_json::Value) -> Result<WasmEngine, JsValue> {
    let noop = Closure::<dyn FnMut(JsValue)>::new(|_: JsValue| {});
    WasmEngine::load(
        Uint8Array::from(gguf).into(),
        js(options),
        noop.as_ref().unchecked_ref::<Function>().clone(),
        &CancelToken::new(),
    )
    .await
}

/// Every golden query, layer, head and key against the golden weights under `key`, within 1e-3;
/// returns the largest error.
async fn check_golden(engine: &WasmEngine, g: &serde_json::Value, key: &str) -> f64 {
    let mut worst = 0f64;
    for p in g["prompts"].as_array().unwrap() {
        for row in p["queries"].as_array().unwrap() {
            let qi = row["query"].as_u64().unwrap();
            let a = attention(engine, serde_json::json!({"ids": p["ids"], "token": qi}))
                .await
                .unwrap();
            assert_eq!(a["query"].as_u64(), Some(qi));
            let (got, want) = (
                a["weights"].as_array().unwrap(),
                row[key].as_array().unwrap(),
            );
            assert_eq!(got.len(), want.len());
            for (l, (gl, wl)) in got.iter().zip(want).enumerate() {
                for (h, (gh, wh)) in gl
                    .as_array()
                    .unwrap()
                    .iter()
                    .zip(wl.as_array().unwrap())
                    .enumerate()
                {
                    let (gh, wh) = (gh.as_array().unwrap(), wh.as_array().unwrap());
                    assert_eq!(gh.len() as u64, qi + 1);
                    for (j, (x, y)) in gh.iter().zip(wh).enumerate() {
                        let (x, y) = (x.as_f64().unwrap(), y.as_i64().unwrap() as f64 * 1e-5);
                        assert!(
                            (x - y).abs() <= 1e-3,
                            "{key}: query {qi} layer {l} head {h} key {j}: {x} vs HF {y}"
                        );
                        worst = worst.max((x - y).abs());
                    }
                }
            }
        }
    }
    web_sys::console::log_1(
        &format!("browser lens: max |attend - HF ({key})| = {worst:.2e}").into(),
    );
    worst
}

#[wasm_bindgen_test]
async fn browser_attention_with_an_f32_cache_matches_fp32_transformers() {
    let engine = load(serde_json::json!({"kvPrecision": "f32"}))
        .await
        .expect("load");
    let info: serde_json::Value = serde_wasm_bindgen::from_value(engine.info().unwrap()).unwrap();
    assert_eq!(info["kv_precision"], "f32");
    let g: serde_json::Value = serde_json::from_str(GOLDEN).unwrap();
    check_golden(&engine, &g, "weights_e5").await;
    drop(engine);
    for bad in [serde_json::json!("f8"), serde_json::json!(32)] {
        let err = load(serde_json::json!({"kvPrecision": bad})).await.err();
        let msg = format!("{err:?}");
        assert!(msg.contains("kvPrecision"), "kvPrecision {bad}: {msg}");
    }
}

/// Gemma 2's soft-capped scores (cap 10) and sliding window (8) in the lens, both caches, against
/// HF (tests/reference/attention-tiny-gemma2.json, queries past the window).
#[wasm_bindgen_test]
async fn browser_attention_of_gemma2_matches_transformers() {
    let gguf = include_bytes!("reference/tiny-gemma2.gguf");
    let g: serde_json::Value =
        serde_json::from_str(include_str!("reference/attention-tiny-gemma2.json")).unwrap();
    for (kv, key) in [("f32", "weights_e5"), ("f16", "weights_kvf16_e5")] {
        let engine = load_gguf(gguf, serde_json::json!({"kvPrecision": kv}))
            .await
            .expect("load");
        check_golden(&engine, &g, key).await;
    }
}

#[wasm_bindgen_test]
async fn browser_attention_matches_transformers() {
    let engine = load(serde_json::json!({})).await.expect("load");
    let g: serde_json::Value = serde_json::from_str(GOLDEN).unwrap();
    check_golden(&engine, &g, "weights_kvf16_e5").await;

    // No prompt: the conversation in the cache (the last prompt above, up to its last query),
    // and its last token by default; narrowed to one layer and head.
    let last = g["prompts"].as_array().unwrap().last().unwrap();
    let q_last = last["queries"].as_array().unwrap().last().unwrap()["query"]
        .as_u64()
        .unwrap();
    let a = attention(&engine, serde_json::json!({"layer": 1, "head": 0}))
        .await
        .unwrap();
    assert_eq!(a["query"].as_u64(), Some(q_last));
    assert_eq!(a["layers"], serde_json::json!([1]));
    assert_eq!(
        a["weights"][0][0].as_array().unwrap().len() as u64,
        q_last + 1
    );

    // Bad requests are errors.
    for bad in [
        serde_json::json!({"ids": [1, 2], "token": 5}),
        serde_json::json!({"ids": [1, 2], "token": 1, "layer": 99}),
        serde_json::json!({"prompt": "a", "ids": [1], "token": 0}),
        serde_json::json!({"token": "x"}),
    ] {
        assert!(attention(&engine, bad.clone()).await.is_err(), "{bad}");
    }
}
