//! Tool calls on a real engine: the tiny random Qwen2 with Qwen2.5's tool-calling template
//! (tests/support/tool_model.rs). A forced call (`tool_choice` named or "required") must come
//! back as `message.tool_calls` with `finish_reason: "tool_calls"` and arguments that validate
//! against the tool's schema (checked with `boon`); the next turn, with the assistant's call and
//! a `role: "tool"` result, must be accepted; a streamed answer's deltas must add up to the
//! whole answer. Native only; the browser's side is in tests/wasm_engine.rs.
#![cfg(not(target_arch = "wasm32"))]

use attend::chat::ChatTemplate;
use attend::engine::{Engine, LoadOptions};
use attend::openai::request::parse_json;
use attend::openai::run::chat_completion;
use attend::openai::{ChatCompletionChunk, ChatCompletionRequest};
use serde_json::{json, Value};
use std::sync::Mutex;

#[path = "support/schema.rs"]
mod schema;
use schema::valid;

#[path = "support/tool_model.rs"]
mod tool_model;
use tool_model::{tiny_qwen2_with_tools, QWEN25_TEMPLATE as QWEN25};

static ENGINE: Mutex<Option<Engine>> = Mutex::new(None);

fn with_engine<T>(qwen25: bool, f: impl FnOnce(&mut Engine) -> T) -> T {
    let mut g = ENGINE.lock().unwrap_or_else(|e| e.into_inner());
    let e = g.get_or_insert_with(|| {
        let path = std::env::temp_dir().join(format!("attend-tools-{}.gguf", std::process::id()));
        std::fs::write(&path, tiny_qwen2_with_tools()).unwrap();
        let opts = LoadOptions {
            context: Some(2048),
            ..Default::default()
        };
        let e = pollster::block_on(Engine::load_file(&path, &opts)).expect("load tiny-qwen2");
        let _ = std::fs::remove_file(&path);
        e
    });
    e.template = match qwen25 {
        true => ChatTemplate::new(QWEN25, "", "<|im_end|>").unwrap(),
        false => ChatTemplate::fallback("qwen2").unwrap(),
    };
    e.reset();
    f(e)
}

/// The whole answer and the streamed chunks (when `stream` is set).
fn chat(e: &mut Engine, req: &Value) -> attend::Result<(Value, Vec<Value>)> {
    let (r, _) = parse_json::<ChatCompletionRequest>(req)?;
    let mut chunks = Vec::new();
    let on_chunk = |c: &ChatCompletionChunk| {
        chunks.push(serde_json::to_value(c).unwrap());
        true
    };
    let done = pollster::block_on(chat_completion(e, &r, "tiny", on_chunk, || false))?;
    Ok((serde_json::to_value(done).unwrap(), chunks))
}

fn tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city.",
            "parameters": {"type": "object", "properties": {
                "city": {"type": "string", "maxLength": 12},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                "required": ["city", "unit"]}}},
        {"type": "function", "function": {"name": "set_alarm", "description": "Set an alarm.",
            "parameters": {"type": "object", "properties": {
                "on": {"type": "boolean"}, "label": {"type": "string", "maxLength": 8}},
                "required": ["on"]}}}
    ])
}

fn request(choice: Value) -> Value {
    json!({"messages": [{"role": "user", "content": "What is the weather in Paris?"}],
           "tools": tools(), "tool_choice": choice, "temperature": 0, "max_tokens": 120})
}

/// The single call of a forced answer, checked against its tool's schema.
fn the_call(done: &Value, names: &[&str]) -> Value {
    let choice = &done["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{done:#}");
    let calls = choice["message"]["tool_calls"]
        .as_array()
        .expect("tool_calls");
    assert_eq!(calls.len(), 1, "{done:#}");
    let call = &calls[0];
    assert_eq!(call["type"], "function");
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    let name = call["function"]["name"].as_str().unwrap();
    assert!(names.contains(&name), "{name}");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap())
        .expect("arguments are JSON text");
    let tools = tools();
    let tool = tools.as_array().unwrap().iter();
    let schema = tool
        .map(|t| &t["function"])
        .find(|f| f["name"] == name)
        .unwrap();
    valid(&schema["parameters"], &args).unwrap_or_else(|e| panic!("{args}: {e}"));
    call.clone()
}

#[test]
fn forced_calls_round_trip() {
    with_engine(true, |e| {
        let named = json!({"type": "function", "function": {"name": "get_weather"}});
        let (done, _) = chat(e, &request(named)).unwrap();
        let call = the_call(&done, &["get_weather"]);
        assert!(
            done["choices"][0]["message"]["content"].is_null(),
            "{done:#}"
        );

        let (done, _) = chat(e, &request(json!("required"))).unwrap();
        the_call(&done, &["get_weather", "set_alarm"]);

        // The next turn: the assistant's call and the tool's result are accepted and rendered.
        let mut next = request(json!("auto"));
        let msgs = next["messages"].as_array_mut().unwrap();
        msgs.push(json!({"role": "assistant", "content": null, "tool_calls": [call.clone()]}));
        msgs.push(
            json!({"role": "tool", "tool_call_id": call["id"], "content": "{\"sky\": \"clear\"}"}),
        );
        let first = done["usage"]["prompt_tokens"].as_u64().unwrap();
        let (done, _) = chat(e, &next).unwrap();
        let reason = done["choices"][0]["finish_reason"].as_str().unwrap();
        assert!(
            ["stop", "length", "tool_calls"].contains(&reason),
            "{reason}"
        );
        assert!(done["usage"]["prompt_tokens"].as_u64().unwrap() > first + 10);
        assert!(done["usage"]["completion_tokens"].as_u64().unwrap() > 0);

        // A tool message without its call id is refused, naming the field.
        let mut bad = next.clone();
        bad["messages"][2]
            .as_object_mut()
            .unwrap()
            .remove("tool_call_id");
        match chat(e, &bad).unwrap_err() {
            attend::Error::BadRequest { param, .. } => {
                assert_eq!(param, "messages[2].tool_call_id")
            }
            err => panic!("{err}"),
        }
    });
}

/// The streamed deltas put together: content, calls (without ids), finish reason.
fn assemble(chunks: &[Value]) -> (String, Vec<(String, String)>, String) {
    let (mut content, mut calls, mut finish) = (String::new(), Vec::new(), String::new());
    for c in chunks {
        let ch = &c["choices"][0];
        content.push_str(ch["delta"]["content"].as_str().unwrap_or(""));
        for tc in ch["delta"]["tool_calls"].as_array().into_iter().flatten() {
            assert_eq!(tc["index"].as_u64().unwrap() as usize, calls.len());
            assert!(tc["id"].as_str().unwrap().starts_with("call_"));
            let f = &tc["function"];
            calls.push((
                f["name"].as_str().unwrap().into(),
                f["arguments"].as_str().unwrap().into(),
            ));
        }
        if let Some(f) = ch["finish_reason"].as_str() {
            finish = f.into();
        }
    }
    (content, calls, finish)
}

fn whole(done: &Value) -> (String, Vec<(String, String)>, String) {
    let ch = &done["choices"][0];
    let calls = ch["message"]["tool_calls"].as_array().into_iter().flatten();
    let calls = calls
        .map(|tc| {
            let f = &tc["function"];
            (
                f["name"].as_str().unwrap().into(),
                f["arguments"].as_str().unwrap().into(),
            )
        })
        .collect();
    let content = ch["message"]["content"].as_str().unwrap_or("").to_string();
    (content, calls, ch["finish_reason"].as_str().unwrap().into())
}

#[test]
fn streamed_deltas_add_up_to_the_whole_answer() {
    with_engine(true, |e| {
        for choice in [json!("required"), json!("auto")] {
            let req = request(choice.clone());
            let (done, _) = chat(e, &req).unwrap();
            let mut streamed = req.clone();
            streamed["stream"] = json!(true);
            let (also, chunks) = chat(e, &streamed).unwrap();
            assert_eq!(whole(&also), whole(&done), "{choice}");
            assert_eq!(assemble(&chunks), whole(&done), "{choice}");
            assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
        }
    });
}

#[test]
fn tool_choice_none_and_templates_without_tools() {
    with_engine(true, |e| {
        // "none": the tools are not shown and the answer is plain text.
        let (none, _) = chat(e, &request(json!("none"))).unwrap();
        let mut plain = request(json!("none"));
        plain.as_object_mut().unwrap().remove("tools");
        plain.as_object_mut().unwrap().remove("tool_choice");
        let (without, _) = chat(e, &plain).unwrap();
        assert_eq!(
            none["usage"]["prompt_tokens"],
            without["usage"]["prompt_tokens"]
        );
        assert!(none["choices"][0]["message"].get("tool_calls").is_none());
        let (auto, _) = chat(e, &request(json!("auto"))).unwrap();
        let shown = auto["usage"]["prompt_tokens"].as_u64().unwrap();
        assert!(shown > without["usage"]["prompt_tokens"].as_u64().unwrap() + 100);
    });
    with_engine(false, |e| {
        // The file's own ChatML template takes no tools: asking for them is a clear error.
        match chat(e, &request(json!("auto"))).unwrap_err() {
            attend::Error::BadRequest { param, .. } => assert_eq!(param, "tools"),
            err => panic!("{err}"),
        }
    });
}
