//! The OpenAI-shaped API without a GPU: the JSON shape of the objects, how requests are read
//! (unknown fields listed, wrong types and invalid values rejected naming the field) and the
//! sampler honouring `logit_bias`.

use attend::chat::Message;
use attend::openai::request::{parse_json, Prompt, Request};
use attend::openai::*;
use attend::sampler::{Sampler, SamplerConfig};
use attend::Error;
use serde_json::json;

#[test]
fn openai_objects_serialize_in_openai_shape() {
    let usage = Usage::new(12, 3);
    let c = ChatCompletion::new(
        "chatcmpl-1",
        1700000000,
        "smollm2",
        "Hi!",
        FinishReason::Stop,
        usage,
        None,
    );
    assert_eq!(
        serde_json::to_value(&c).unwrap(),
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000, "model": "smollm2",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi!"},
                         "finish_reason": "stop", "logprobs": null}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
        })
    );
    let back: ChatCompletion = serde_json::from_value(serde_json::to_value(&c).unwrap()).unwrap();
    assert_eq!(back, c);

    let mut s = ChunkStream::new("chatcmpl-2", 5, "gemma3");
    let first = s.content("Hel").unwrap();
    assert_eq!(
        serde_json::to_value(&first).unwrap(),
        json!({"id": "chatcmpl-2", "object": "chat.completion.chunk", "created": 5, "model": "gemma3",
               "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": null}]})
    );
    assert!(s.content("").is_none());
    let mid = serde_json::to_value(s.content("lo").unwrap()).unwrap();
    assert_eq!(mid["choices"][0]["delta"], json!({"content": "lo"}));
    let last = serde_json::to_value(s.finish(FinishReason::Length, Some(usage))).unwrap();
    assert_eq!(
        last["choices"][0],
        json!({"index": 0, "delta": {}, "finish_reason": "length"})
    );
    assert_eq!(last["usage"]["total_tokens"], 15);

    let lp = ChoiceLogprobs {
        content: vec![TokenLogprob {
            token: "Hi".into(),
            logprob: -0.5,
            bytes: Some(b"Hi".to_vec()),
            top_logprobs: vec![TopLogprob {
                token: "Hi".into(),
                logprob: -0.5,
                bytes: Some(b"Hi".to_vec()),
            }],
        }],
    };
    let with = serde_json::to_value(ChunkStream::new("x", 0, "m").content_with_logprobs("Hi", lp))
        .unwrap();
    assert_eq!(
        with["choices"][0]["logprobs"]["content"][0]["top_logprobs"][0]["bytes"],
        json!([72, 105])
    );
}

#[test]
fn requests_parse_like_openai_sends_them() {
    let r: ChatCompletionRequest = serde_json::from_value(json!({
        "model": "gpt-4o", "user": "ignored", "response_format": {"type": "text"},
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "text", "text": "there"}]},
            {"role": "assistant", "content": null}
        ],
        "max_tokens": 64, "temperature": 0.2, "top_p": 0.9, "stop": "\n\n", "seed": 7, "stream": true,
        "logprobs": true, "top_logprobs": 3, "top_k": 40
    }))
    .unwrap();
    assert_eq!(
        r.messages,
        vec![
            Message::system("Be brief."),
            Message::user("Hello\nthere"),
            Message::assistant("")
        ]
    );
    assert_eq!(r.stop_strings(), vec!["\n\n".to_string()]);
    assert_eq!(r.max_tokens(), Some(64));
    assert!(r.sampling.stream && r.logprobs);
    let c = r.sampler_config();
    assert_eq!(
        (c.temperature, c.top_p, c.top_k, c.seed, c.min_p),
        (0.2, 0.9, 40, Some(7), 0.0)
    );
    r.validate().unwrap();

    let r: ChatCompletionRequest = serde_json::from_value(
        json!({"messages": [{"role": "user", "content": "x"}], "stop": ["a", "b"],
                                      "max_completion_tokens": 5, "max_tokens": 9}),
    )
    .unwrap();
    assert_eq!(r.stop_strings(), vec!["a".to_string(), "b".to_string()]);
    assert_eq!(r.max_tokens(), Some(5));
    assert!(!r.sampling.stream);
    assert_eq!(r.sampler_config().temperature, 1.0);

    for bad in [
        json!({"messages": []}),
        json!({"messages": [{"role": "user", "content": "x"}], "temperature": -1}),
        json!({"messages": [{"role": "user", "content": "x"}], "top_p": 1.5}),
        json!({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 50}),
    ] {
        let r: ChatCompletionRequest = serde_json::from_value(bad.clone()).unwrap();
        let e = r.validate().unwrap_err().to_string();
        assert!(e.contains("invalid request"), "{bad}: {e}");
    }
    assert!(serde_json::from_value::<ChatCompletionRequest>(json!({"messages": "nope"})).is_err());
}

/// The field a rejected request names.
fn param_of(v: serde_json::Value) -> String {
    match parse_json::<ChatCompletionRequest>(&v) {
        Err(Error::BadRequest { param, message }) => {
            assert!(
                param == "body" || message.contains(&format!("`{param}`")),
                "{message}"
            );
            param
        }
        other => panic!("{v} was not rejected as a bad request: {other:?}"),
    }
}

#[test]
fn invalid_values_are_rejected_naming_the_field() {
    let msg = || json!([{"role": "user", "content": "x"}]);
    let with = |k: &str, v: serde_json::Value| {
        let mut r = json!({"messages": msg()});
        r[k] = v;
        r
    };
    let stops: Vec<String> = (0..17).map(|i| format!("s{i}")).collect();
    for (field, value) in [
        ("temperature", json!(-0.5)),
        ("top_p", json!(0)),
        ("top_p", json!(1.01)),
        ("max_tokens", json!(-1)),
        ("max_completion_tokens", json!(-3)),
        ("top_k", json!(-1)),
        ("min_p", json!(2)),
        ("repetition_penalty", json!(0)),
        ("presence_penalty", json!(2.5)),
        ("frequency_penalty", json!(-9)),
        ("stop", json!(stops)),
        ("stop", json!("x".repeat(2000))),
        ("logit_bias", json!({"abc": 1})),
        ("logit_bias", json!({"5": 101})),
        ("n", json!(2)),
        ("response_format", json!("json")),
        ("tools", json!("f")),
        ("tool_choice", json!("required")),
        // Wrong types are named too.
        ("max_tokens", json!("many")),
        ("temperature", json!("hot")),
        ("stop", json!(5)),
        ("messages", json!("hi")),
    ] {
        assert_eq!(
            param_of(with(field, value.clone())),
            field,
            "{field}: {value}"
        );
    }
    assert_eq!(param_of(json!({"messages": []})), "messages");
    // Structured output: each malformed part of `response_format` is named.
    for (format, param) in [
        (json!({"type": "xml"}), "response_format.type"),
        (
            json!({"type": "json_schema"}),
            "response_format.json_schema",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"schema": {}}}),
            "response_format.json_schema.name",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "strin"}}}),
            "response_format.json_schema.schema",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "a", "schema": {"pattern": "x"}}}),
            "response_format.json_schema.schema",
        ),
        (
            json!({"type": "json_schema", "json_schema": {"name": "a", "schema": {}, "strict": 1}}),
            "response_format.json_schema.strict",
        ),
    ] {
        assert_eq!(
            param_of(with("response_format", format.clone())),
            param,
            "{format}"
        );
    }
    for ok in [
        json!({"type": "json_object"}),
        json!({"type": "json_schema", "json_schema": {"name": "p", "strict": true,
            "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}),
    ] {
        let r = with("response_format", ok.clone());
        assert!(parse_json::<ChatCompletionRequest>(&r).is_ok(), "{ok}");
    }
    let mut r = with("top_logprobs", json!(21));
    r["logprobs"] = json!(true);
    assert_eq!(param_of(r), "top_logprobs");
    assert_eq!(param_of(with("top_logprobs", json!(2))), "top_logprobs"); // without logprobs
    assert_eq!(param_of(json!([1, 2])), "body");

    // NaN cannot travel in JSON, but can in a JS object (serde-wasm-bindgen): still rejected.
    let mut r: ChatCompletionRequest = serde_json::from_value(json!({"messages": msg()})).unwrap();
    r.sampling.temperature = Some(f32::NAN);
    assert!(matches!(r.validate(), Err(Error::BadRequest { param, .. }) if param == "temperature"));
    r.sampling.temperature = None;
    r.sampling.top_p = Some(f32::NAN);
    assert!(matches!(r.validate(), Err(Error::BadRequest { param, .. }) if param == "top_p"));

    // The boundaries themselves are fine.
    let ok = json!({"messages": msg(), "temperature": 0, "top_p": 1, "max_tokens": 0,
                    "stop": (0..16).map(|i| i.to_string()).collect::<Vec<_>>(),
                    "logit_bias": {"5": -100, " 7": 100}, "n": 1, "logprobs": true, "top_logprobs": 20,
                    "response_format": {"type": "text"}, "tools": [], "tool_choice": "none"});
    parse_json::<ChatCompletionRequest>(&ok).unwrap();
}

#[test]
fn unknown_fields_are_ignored_and_listed() {
    let (r, ignored) = parse_json::<ChatCompletionRequest>(&json!({
        "messages": [{"role": "user", "content": "x"}], "model": "m", "user": "u",
        "frobnicate": 3, "temperature": 0.5, "stream_options": {"include_usage": true}
    }))
    .unwrap();
    assert_eq!(
        ignored.0,
        ["frobnicate", "user"],
        "`model` is always sent: no warning"
    );
    let w = ignored.warning().unwrap();
    assert!(w.contains("frobnicate") && w.contains("user"), "{w}");
    assert!(r.sampling.include_usage());
    assert_eq!(r.sampler_config().temperature, 0.5);
    let (_, none) = parse_json::<ChatCompletionRequest>(
        &json!({"messages": [{"role": "user", "content": "x"}]}),
    )
    .unwrap();
    assert!(none.warning().is_none());
}

#[test]
fn completion_requests_parse_like_openai_sends_them() {
    let (r, ignored) = parse_json::<CompletionRequest>(&json!({
        "model": "m", "prompt": "<|im_start|>user", "logprobs": 3, "max_tokens": 5, "echo": true,
        "stop": ["\n"], "messages": []
    }))
    .unwrap();
    assert_eq!(r.prompt, Prompt::Text("<|im_start|>user".into()));
    assert_eq!((r.logprobs(), r.max_tokens(), r.echo), (Some(3), 5, true));
    assert!(r.parse_special(), "special tokens are parsed by default");
    assert_eq!(ignored.0, ["messages"]);
    let (r, _) =
        parse_json::<CompletionRequest>(&json!({"prompt": [1, 2, 3], "parse_special": false}))
            .unwrap();
    assert_eq!(r.prompt, Prompt::Ids(vec![1, 2, 3]));
    assert!(!r.parse_special());
    assert_eq!(r.max_tokens(), CompletionRequest::DEFAULT_MAX_TOKENS);
    for (bad, field) in [
        (json!({"prompt": ""}), "prompt"),
        (json!({"prompt": ["a", "b"]}), "prompt"),
        (json!({"prompt": "a", "logprobs": 21}), "logprobs"),
        (json!({"prompt": "a", "best_of": 3}), "best_of"),
        (json!({"prompt": "a", "suffix": "z"}), "suffix"),
        (json!({"prompt": "a", "temperature": -1}), "temperature"),
        (json!({"prompt": {"x": 1}}), "prompt"),
    ] {
        match parse_json::<CompletionRequest>(&bad) {
            Err(Error::BadRequest { param, .. }) => assert_eq!(param, field, "{bad}"),
            other => panic!("{bad}: {other:?}"),
        }
    }
}

#[test]
fn usage_reports_cached_tokens_in_openai_shape() {
    let u = Usage::new(20, 4).with_cached(12);
    assert_eq!(
        serde_json::to_value(u).unwrap(),
        json!({"prompt_tokens": 20, "completion_tokens": 4, "total_tokens": 24,
               "prompt_tokens_details": {"cached_tokens": 12}})
    );
    // A cancelled answer is a "stop" in OpenAI's objects.
    let mut s = ChunkStream::new("c", 0, "m");
    let last = serde_json::to_value(s.finish(FinishReason::Cancelled, None)).unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    assert!(last.get("usage").is_none());
    assert_eq!(FinishReason::Cancelled.as_str(), "cancelled");
}

#[test]
fn logit_bias_changes_the_choice() {
    let logits = [1.0f32, 3.0, 2.0, 0.5];
    let greedy = |bias: Vec<(u32, f32)>| {
        let cfg = SamplerConfig {
            logit_bias: bias,
            ..SamplerConfig::greedy()
        };
        assert_eq!(
            cfg.leaves_logits_unchanged(),
            cfg.logit_bias.iter().all(|b| b.1 == 0.0)
        );
        Sampler::new(cfg).sample(&logits, &[])
    };
    assert_eq!(greedy(vec![]), 1);
    assert_eq!(greedy(vec![(1, -100.0)]), 2, "a -100 bias bans the token");
    assert_eq!(greedy(vec![(3, 100.0)]), 3);
    assert_eq!(
        greedy(vec![(99, 100.0)]),
        1,
        "ids outside the vocabulary are ignored"
    );
    // Sampling at temperature 1 never draws a banned token.
    let mut s = Sampler::new(SamplerConfig {
        logit_bias: vec![(1, -100.0), (2, -100.0)],
        seed: Some(3),
        ..Default::default()
    });
    for _ in 0..200 {
        let id = s.sample(&logits, &[]);
        assert!(id == 0 || id == 3, "{id}");
    }
    // From a request: keys are token ids as strings.
    let (r, _) = parse_json::<ChatCompletionRequest>(&json!({
        "messages": [{"role": "user", "content": "x"}], "logit_bias": {"3": 100, "1": -50.5}
    }))
    .unwrap();
    assert_eq!(r.sampler_config().logit_bias, vec![(1, -50.5), (3, 100.0)]);
    assert!(r.sampling.check_vocab(4).is_ok());
    assert!(
        matches!(r.sampling.check_vocab(3), Err(Error::BadRequest { param, .. }) if param == "logit_bias")
    );
}

#[test]
fn request_trait_is_implemented_for_both_endpoints() {
    fn knows<R: Request>(f: &str) -> bool {
        R::known(f)
    }
    assert!(
        knows::<ChatCompletionRequest>("messages") && !knows::<ChatCompletionRequest>("prompt")
    );
    assert!(knows::<CompletionRequest>("prompt") && !knows::<CompletionRequest>("messages"));
    assert!(
        knows::<CompletionRequest>("logit_bias")
            && knows::<ChatCompletionRequest>("stream_options")
    );
    let _ = Message::user("x");
}
