//! Structured output on a real model (SmolLM2-135M-Instruct Q4_1): five JSON Schemas (nested
//! objects, arrays, enums, optional fields, `$ref`s), four generations each (greedy and seeded
//! sampling) through the OpenAI chat path with `response_format`; every answer must finish by
//! itself (`finish_reason: "stop"`), parse, and validate under `boon` (a JSON Schema validator).
#![cfg(not(target_arch = "wasm32"))]

use attend::engine::{Engine, LoadOptions};
use attend::openai::request::parse_json;
use attend::openai::run::chat_completion;
use attend::openai::ChatCompletionRequest;
use serde_json::{json, Value};
use std::path::PathBuf;

#[path = "support/schema.rs"]
mod schema;
use schema::valid;

#[path = "support/cache.rs"]
mod cache;

fn model() -> PathBuf {
    cache::cached_model("SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn schemas() -> Vec<(&'static str, &'static str, Value)> {
    let short = |n: u32| json!({"type": "string", "maxLength": n});
    vec![
        (
            "person",
            "Describe a person who lives in Paris as JSON.",
            json!({"type": "object", "properties": {
                "name": short(12),
                "address": {"type": "object", "properties": {
                    "city": short(10), "zip": {"type": "integer"}},
                    "required": ["city", "zip"]},
            }, "required": ["name", "address"]}),
        ),
        (
            "shopping",
            "Give a short shopping list as JSON.",
            json!({"type": "object", "properties": {
                "items": {"type": "array", "items": short(10), "minItems": 1, "maxItems": 3},
                "counts": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
            }, "required": ["items", "counts"]}),
        ),
        (
            "review",
            "Classify the review 'The food was great!' as JSON.",
            json!({"type": "object", "properties": {
                "sentiment": {"enum": ["positive", "negative", "neutral"]},
                "confidence": {"enum": ["low", "medium", "high"]},
                "spam": {"type": "boolean"},
            }, "required": ["sentiment", "confidence", "spam"]}),
        ),
        (
            "book",
            "Describe a book as JSON.",
            json!({"type": "object", "properties": {
                "title": short(16),
                "year": {"type": "integer"},
                "rating": {"type": ["number", "null"]},
                "read": {"type": "boolean"},
            }, "required": ["title"]}),
        ),
        (
            "segment",
            "Give a line segment between two points as JSON.",
            json!({
                "$defs": {"point": {"type": "object", "properties": {
                    "x": {"type": "integer"}, "y": {"type": "integer"}}, "required": ["x", "y"]}},
                "type": "object",
                "properties": {"from": {"$ref": "#/$defs/point"}, "to": {"$ref": "#/$defs/point"}},
                "required": ["from", "to"],
            }),
        ),
    ]
}

#[test]
fn twenty_generations_parse_and_validate() {
    let opts = LoadOptions {
        context: Some(256),
        ..Default::default()
    };
    let mut e = pollster::block_on(Engine::load_file(&model(), &opts)).expect("load");
    let t0 = std::time::Instant::now();
    let mut failures = Vec::new();
    let mut tokens = 0;
    for (name, question, schema) in schemas() {
        let sampling = [
            json!({"temperature": 0}),
            json!({"temperature": 0.8, "seed": 1}),
            json!({"temperature": 1.0, "seed": 2, "top_p": 0.95}),
            json!({"temperature": 0.6, "seed": 3, "top_k": 20}),
        ];
        for s in sampling {
            let mut req = json!({
                "messages": [{"role": "user", "content": question}],
                "max_tokens": 64,
                "response_format": {"type": "json_schema",
                    "json_schema": {"name": name, "schema": schema, "strict": true}},
            });
            for (k, v) in s.as_object().unwrap() {
                req[k] = v.clone();
            }
            let (r, _) = parse_json::<ChatCompletionRequest>(&req).unwrap();
            let done = pollster::block_on(chat_completion(&mut e, &r, "smol", |_| true, || false))
                .unwrap();
            let choice = &done.choices[0];
            let text = choice.message.content.clone();
            tokens += done.usage.completion_tokens;
            let reason = serde_json::to_value(choice.finish_reason).unwrap();
            let verdict = match serde_json::from_str::<Value>(&text) {
                _ if reason != "stop" => Err(format!("finish_reason {reason}")),
                Err(err) => Err(format!("does not parse: {err}")),
                Ok(v) => valid(&schema, &v),
            };
            eprintln!("{name} {s}: {text}");
            if let Err(why) = verdict {
                failures.push(format!("{name} {s}: {text:?}: {why}"));
            }
        }
    }
    eprintln!(
        "20 generations, {tokens} tokens in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_validator_catches_what_it_must() {
    // The test above can fail: the validator refuses wrong values of each schema.
    let s = schemas();
    for (schema, bad) in [
        (&s[0].2, json!({"name": "x", "address": {"city": "y"}})),
        (&s[1].2, json!({"items": [], "counts": []})),
        (
            &s[2].2,
            json!({"sentiment": "happy", "confidence": "low", "spam": false}),
        ),
        (&s[3].2, json!({"title": "t", "extra": 1, "year": 1.5})),
        (&s[4].2, json!({"from": {"x": 1}, "to": {"x": 1, "y": 2}})),
    ] {
        assert!(valid(schema, &bad).is_err(), "{bad}");
    }
}

#[test]
fn full_vocabulary_mask() {
    // The fallback step (none of the GPU's 64 candidates allowed) checks every token of the
    // vocabulary; it must stay cheap next to a decode step (~100 ms here).
    use attend::constrain::{allowed_ids, Constraint, JsonConstraint};
    let file = attend::gguf::GgufFile::open(model()).unwrap();
    let tok = attend::tokenizer::Tokenizer::from_gguf(file.header()).unwrap();
    let vocab = tok.vocab_size();
    let schema = &schemas()[0].2;
    let mask = |text: &str| {
        let mut c = JsonConstraint::from_schema(schema).unwrap();
        assert!(c.advance(text.as_bytes()));
        let t = std::time::Instant::now();
        let ids = allowed_ids(
            &c,
            vocab,
            |i| tok.token_bytes(i),
            |i| tok.is_control(i),
            |i| tok.is_eog(i),
        );
        let ms = t.elapsed().as_secs_f64() * 1e3;
        eprintln!(
            "after {text:?}: {} of {vocab} tokens allowed, {ms:.1} ms",
            ids.len()
        );
        for &i in &ids {
            assert!(c.allows(tok.token_bytes(i)) || (tok.is_eog(i) && c.is_complete()));
        }
        (ids, ms)
    };
    let (inside, ms) = mask(r#"{"name":"Al"#); // inside a string: most tokens
    assert!(inside.len() > vocab / 2, "{}", inside.len());
    assert!(ms < 1000.0);
    let (key, _) = mask(r#"{"#); // a key: `"name":` or `"address":` pieces only
    assert!(!key.is_empty() && key.len() < 50);
    assert!(key.iter().all(|&i| tok.token_bytes(i)[0] == b'"'));
    let (end, _) = mask(r#"{"address":{"city":"P","zip":1},"name":"A""#);
    assert!(!end.iter().any(|&i| tok.is_eog(i))); // not complete before the last `}`
    assert!(end.iter().all(|&i| tok.token_bytes(i).starts_with(b"}")));
}

#[test]
fn a_random_model_is_held_to_the_schema() {
    // tiny-qwen2 has random weights: its top candidates are almost never allowed, so this runs
    // the full-vocabulary fallback (151,936 tokens) at nearly every step. The browser runs the
    // same request (tests/wasm_engine.rs).
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/reference/tiny-qwen2.gguf");
    let opts = LoadOptions {
        context: Some(256),
        ..Default::default()
    };
    let mut e = pollster::block_on(Engine::load_file(&path, &opts)).expect("load");
    let schema = json!({"type": "object", "properties": {
        "mood": {"enum": ["good", "bad"]},
        "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
        "ok": {"type": "boolean"},
    }, "required": ["mood", "ok"]});
    for sampling in [
        json!({"temperature": 0}),
        json!({"temperature": 0.9, "seed": 7}),
    ] {
        let mut req = json!({
            "messages": [{"role": "user", "content": "Hello there"}],
            "max_tokens": 48,
            "response_format": {"type": "json_schema",
                "json_schema": {"name": "m", "schema": schema, "strict": true}},
        });
        for (k, v) in sampling.as_object().unwrap() {
            req[k] = v.clone();
        }
        let (r, _) = parse_json::<ChatCompletionRequest>(&req).unwrap();
        e.reset();
        let done =
            pollster::block_on(chat_completion(&mut e, &r, "tiny", |_| true, || false)).unwrap();
        let text = &done.choices[0].message.content;
        eprintln!("tiny {sampling}: {text}");
        let reason = serde_json::to_value(done.choices[0].finish_reason).unwrap();
        assert_eq!(reason, "stop", "{text}");
        let v: Value = serde_json::from_str(text).expect(text);
        valid(&schema, &v).unwrap();
        // The same answer with exactly its tokens is still a stop; one fewer is cut ("length").
        let n = done.usage.completion_tokens as i64;
        for (max, want) in [(n, "stop"), (n - 1, "length")] {
            req["max_tokens"] = json!(max);
            let (r, _) = parse_json::<ChatCompletionRequest>(&req).unwrap();
            e.reset(); // the same prefill as the first run, so the same logits
            let again = pollster::block_on(chat_completion(&mut e, &r, "t", |_| true, || false));
            let again = again.unwrap();
            let reason = serde_json::to_value(again.choices[0].finish_reason).unwrap();
            assert_eq!(
                reason, want,
                "max_tokens {max}: {}",
                again.choices[0].message.content
            );
            let same = &again.choices[0].message.content;
            assert_eq!(same.len() == text.len(), want == "stop", "{same}");
        }
    }
}

#[test]
fn cli_json_and_json_schema() {
    // `attend generate --json` / `--json-schema FILE`: the answer on stdout parses (and
    // validates); a schema outside the subset fails before the model loads.
    let dir = std::env::temp_dir().join(format!("attend-structured-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let schema = &schemas()[2].2;
    let file = dir.join("review.json");
    std::fs::write(&file, schema.to_string()).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"type": "string", "pattern": "a+"}"#).unwrap();
    let run = |prompt: &str, extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_attend"))
            .args(["generate", "--model"])
            .arg(model())
            .args(["--chat", "--prompt", prompt])
            .args(["--temperature", "0", "--max-tokens", "48"])
            .args(extra)
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        (
            out.status.success(),
            text,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let review = "Classify the review 'The food was great!' as JSON.";
    let (ok, text, err) = run("Describe a cat as JSON.", &["--json"]);
    assert!(ok && err.contains("· stop]"), "{err}");
    assert!(
        serde_json::from_str::<Value>(text.trim())
            .unwrap()
            .is_object(),
        "{text}"
    );
    let (ok, text, err) = run(review, &["--json-schema", file.to_str().unwrap()]);
    assert!(ok && err.contains("· stop]"), "{err}");
    valid(schema, &serde_json::from_str(text.trim()).expect(&text)).unwrap();
    let (ok, _, err) = run(review, &["--json-schema", bad.to_str().unwrap()]);
    assert!(!ok && err.contains("`pattern` is not supported"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
