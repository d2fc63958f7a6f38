//! `www/attend-llm/index.d.ts` against the Rust types: the objects the engine really returns
//! (`EngineInfo`, chat completions and their chunks with logprobs, usage and a tool call,
//! completions and their chunks, the lens, the attention of a token, the bench report) are
//! serialized to JSON and checked field by field against the interfaces the package declares
//! (tests/support/dts.rs): a field the Rust side sends that the .d.ts lacks, a required field it
//! does not send, or a value outside the declared type fails. tests/wasm_engine.rs runs the same
//! check on what the browser receives.
#![cfg(not(target_arch = "wasm32"))]

use attend::engine::{AttentionQuery, Engine, LoadOptions};
use attend::openai::request::parse_json;
use attend::openai::run::{chat_completion, completion};
use attend::openai::{ChatCompletionRequest, CompletionRequest};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Mutex;

#[path = "support/dts.rs"]
mod dts;
use dts::Dts;

#[path = "support/tool_model.rs"]
mod tool_model;

static GPU_LOCK: Mutex<()> = Mutex::new(());

fn dts() -> Dts {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("www/attend-llm/index.d.ts");
    let d = Dts::parse(&std::fs::read_to_string(path).unwrap());
    for name in [
        "EngineInfo",
        "ChatCompletion",
        "ChatCompletionChunk",
        "TextCompletion",
    ] {
        assert!(d.types.contains_key(name), "index.d.ts declares no {name}");
    }
    d
}

#[track_caller]
fn conforms(d: &Dts, name: &str, v: &Value) {
    let errs = d.check(name, v);
    assert!(
        errs.is_empty(),
        "{name} vs index.d.ts:\n{}\n{v:#}",
        errs.join("\n")
    );
}

fn load(path: &std::path::Path, context: u32) -> Engine {
    let opts = LoadOptions {
        context: Some(context),
        ..Default::default()
    };
    pollster::block_on(Engine::load_file(path, &opts)).unwrap()
}

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/tiny-qwen2.gguf")
}

/// Runs a chat request; the whole answer and its streamed chunks as JSON.
fn chat(e: &mut Engine, req: Value) -> (Value, Vec<Value>) {
    let (r, _) = parse_json::<ChatCompletionRequest>(&req).unwrap();
    let mut chunks = Vec::new();
    let on_chunk = |c: &_| {
        chunks.push(serde_json::to_value(c).unwrap());
        true
    };
    let done = pollster::block_on(chat_completion(e, &r, "tiny", on_chunk, || false)).unwrap();
    (serde_json::to_value(done).unwrap(), chunks)
}

#[test]
fn engine_info_matches_index_d_ts() {
    let _g = GPU_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let d = dts();
    let mut e = load(&tiny(), 128);
    pollster::block_on(e.warmup()).unwrap();
    let mut v = serde_json::to_value(e.info()).unwrap();
    // The one field src/wasm/mod.rs adds to `Engine::info()` in the browser.
    v["wasm_heap_bytes"] = json!(1 << 20);
    conforms(&d, "EngineInfo", &v);
    assert!(v["pipelines"].as_u64().unwrap() > 0, "{v}");
}

#[test]
fn chat_completions_and_chunks_match_index_d_ts() {
    let _g = GPU_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let d = dts();
    let mut e = load(&tiny(), 128);
    let (done, chunks) = chat(
        &mut e,
        json!({"messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 4,
            "temperature": 0, "logprobs": true, "top_logprobs": 2, "stream": true,
            "stream_options": {"include_usage": true}}),
    );
    conforms(&d, "ChatCompletion", &done);
    assert!(
        done["choices"][0]["logprobs"]["content"].is_array(),
        "{done}"
    );
    assert!(chunks.len() >= 3, "{chunks:?}");
    for c in &chunks {
        conforms(&d, "ChatCompletionChunk", c);
    }
    assert!(chunks.last().unwrap()["usage"].is_object(), "{chunks:?}");
    // Not streamed, without logprobs: `logprobs: null`.
    let (done, _) = chat(
        &mut e,
        json!({"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}),
    );
    conforms(&d, "ChatCompletion", &done);

    // The lens and the attention of one token, after that conversation.
    let lens = pollster::block_on(e.lens(None)).unwrap();
    conforms(&d, "AttentionLens", &serde_json::to_value(lens).unwrap());
    let ids = e.encode("The cat sat").unwrap();
    let q = AttentionQuery {
        token: ids.len() as u32 - 1,
        layer: None,
        head: Some(1),
    };
    let a = pollster::block_on(e.attention(&ids, &q)).unwrap();
    conforms(&d, "Attention", &serde_json::to_value(a).unwrap());
}

#[test]
fn a_tool_call_matches_index_d_ts() {
    let _g = GPU_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let d = dts();
    let path = std::env::temp_dir().join(format!("attend-dts-{}.gguf", std::process::id()));
    std::fs::write(&path, tool_model::tiny_qwen2_with_tools()).unwrap();
    let mut e = load(&path, 2048);
    std::fs::remove_file(&path).unwrap();
    let tools = json!([{"type": "function", "function": {"name": "set_alarm",
        "parameters": {"type": "object", "properties": {"on": {"type": "boolean"}},
            "required": ["on"]}}}]);
    let (done, chunks) = chat(
        &mut e,
        json!({"messages": [{"role": "user", "content": "Wake me"}], "tools": tools,
            "tool_choice": {"type": "function", "function": {"name": "set_alarm"}},
            "temperature": 0, "max_tokens": 120, "stream": true}),
    );
    assert_eq!(done["choices"][0]["finish_reason"], "tool_calls", "{done}");
    conforms(&d, "ChatCompletion", &done);
    assert!(chunks
        .iter()
        .any(|c| c["choices"][0]["delta"]["tool_calls"].is_array()));
    for c in &chunks {
        conforms(&d, "ChatCompletionChunk", c);
    }
}

#[test]
fn completions_and_bench_match_index_d_ts() {
    let _g = GPU_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let d = dts();
    let mut e = load(&tiny(), 128);
    for stream in [true, false] {
        let req = json!({"prompt": "Once upon", "max_tokens": 3, "temperature": 0,
            "logprobs": 2, "echo": true, "stream": stream,
            "stream_options": if stream { json!({"include_usage": true}) } else { json!(null) }});
        let (r, _) = parse_json::<CompletionRequest>(&req).unwrap();
        let mut chunks = Vec::new();
        let on_chunk = |c: &_| {
            chunks.push(serde_json::to_value(c).unwrap());
            true
        };
        let done = pollster::block_on(completion(&mut e, &r, "tiny", on_chunk, || false));
        let done = serde_json::to_value(done.unwrap()).unwrap();
        conforms(&d, "TextCompletion", &done);
        assert!(done["choices"][0]["logprobs"].is_object(), "{done}");
        for c in &chunks {
            conforms(&d, "TextCompletion", c);
        }
        assert_eq!(chunks.is_empty(), !stream);
    }

    let o = attend::bench::BenchOptions {
        prompt_tokens: 8,
        gen_tokens: 2,
        repeat: 1,
        probe_bytes: 1 << 20,
        // lavapipe has timestamp queries: the profile rows are checked against `KernelTime`.
        profile: true,
    };
    let r = pollster::block_on(attend::bench::run(&mut e, &o)).unwrap();
    let mut v = serde_json::to_value(&r).unwrap();
    assert!(!r.profile.is_empty(), "{v}");
    // As the browser's bench sets it (src/wasm/mod.rs) and `attend bench --json` prints it.
    v["model"] = json!("tiny-qwen2.gguf");
    conforms(&d, "BenchReport", &v);
}

/// The checker itself fails where it should: an undeclared field, a missing required one, a
/// value outside a declared union, a nested object's stray field.
#[test]
fn the_checker_catches_drift() {
    let d = dts();
    let chunk = json!({"id": "x", "object": "chat.completion.chunk", "created": 1, "model": "m",
        "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": null}]});
    assert!(d.check("ChatCompletionChunk", &chunk).is_empty());
    let mut bad = chunk.clone();
    bad["system_fingerprint"] = json!("fp");
    assert_eq!(d.check("ChatCompletionChunk", &bad).len(), 1);
    let mut bad = chunk.clone();
    bad.as_object_mut().unwrap().remove("created");
    assert_eq!(d.check("ChatCompletionChunk", &bad).len(), 1);
    let mut bad = chunk.clone();
    bad["choices"][0]["finish_reason"] = json!("cancelled");
    assert!(!d.check("ChatCompletionChunk", &bad).is_empty());
    let mut bad = chunk.clone();
    bad["choices"][0]["delta"]["reasoning"] = json!("hmm");
    assert_eq!(d.check("ChatCompletionChunk", &bad).len(), 1);
    let mut bad = chunk;
    bad["created"] = json!("yesterday");
    assert_eq!(d.check("ChatCompletionChunk", &bad).len(), 1);
    assert!(!d.check("NoSuchType", &json!({})).is_empty());
}

/// The model catalog's entries and a fit verdict (what `models()` and `checkFit` return in the
/// browser, serialized by the same serde derives) against `CatalogModel` and `ModelFit`, for a
/// verdict that fits (reason null) and one that does not (a reason).
#[test]
fn catalog_and_fit_match_index_d_ts() {
    let d = dts();
    for m in attend::catalog::models() {
        conforms(&d, "CatalogModel", &serde_json::to_value(m).unwrap());
    }
    let caps = attend::gpu::Caps::webgpu_defaults(1 << 30, 1 << 30);
    let m = attend::catalog::find("SmolLM2-135M-Instruct").unwrap();
    for max_gpu_bytes in [None, Some(1 << 20)] {
        let opts = LoadOptions {
            max_gpu_bytes,
            ..Default::default()
        };
        let f = attend::catalog::check_fit(m, &opts, &caps).unwrap();
        assert_eq!(f.fits, max_gpu_bytes.is_none(), "{f:?}");
        conforms(&d, "ModelFit", &serde_json::to_value(&f).unwrap());
    }
}
