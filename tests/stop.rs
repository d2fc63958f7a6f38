//! Stop strings across token boundaries (every split of the text), EOG / max_tokens, and the JSON
//! shape of the OpenAI objects.

// The same tests run in the browser: `cargo test --target wasm32-unknown-unknown --test stop`.
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use attend::chat::Message;
use attend::stop::*;
use serde_json::json;

/// Definition: generation ends when the first stop string completes; the answer is everything
/// before that occurrence (the longest one when several complete on the same character).
fn reference(text: &str, stops: &[&str]) -> (String, bool) {
    let mut best: Option<(usize, usize)> = None;
    for s in stops.iter().filter(|s| !s.is_empty()) {
        if let Some(start) = text.find(s) {
            let c = (start + s.len(), start);
            if best.is_none_or(|b| c < b) {
                best = Some(c);
            }
        }
    }
    match best {
        Some((_, start)) => (text[..start].to_string(), true),
        None => (text.to_string(), false),
    }
}

/// Run the checker on `text` cut at the char boundaries selected by `mask`.
fn run(text: &str, stops: &[&str], mask: u64) -> (String, Option<FinishReason>) {
    let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).skip(1).collect();
    let mut cuts = vec![0];
    cuts.extend(
        bounds
            .iter()
            .enumerate()
            .filter(|(j, _)| mask >> j & 1 == 1)
            .map(|(_, &b)| b),
    );
    cuts.push(text.len());
    let mut sc = StopChecker::new(stops).with_eog(&[0]);
    let mut out = String::new();
    let mut fed = 0;
    for w in cuts.windows(2) {
        let step = sc.push_token(5, &text[w[0]..w[1]]);
        out.push_str(&step.text);
        fed = w[1];
        if step.finish.is_some() {
            return (out, step.finish);
        }
        // Nothing is lost or invented: released + held is exactly what was fed, and what is held
        // is a proper prefix of some stop string.
        assert_eq!(format!("{out}{}", sc.held()), text[..fed], "mask {mask:b}");
        assert!(
            sc.held().is_empty()
                || stops
                    .iter()
                    .any(|s| s.len() > sc.held().len() && s.starts_with(sc.held())),
            "held {:?} is no stop prefix",
            sc.held()
        );
    }
    assert_eq!(fed, text.len());
    out.push_str(&sc.finish());
    (out, sc.finish_reason())
}

/// The same through the text-only `push` (what the engine calls), ending with `finish()`.
fn run_text(text: &str, stops: &[&str], mask: u64) -> (String, bool) {
    let mut cuts = vec![0];
    let bounds: Vec<usize> = text.char_indices().map(|(i, _)| i).skip(1).collect();
    cuts.extend(
        bounds
            .iter()
            .enumerate()
            .filter(|(j, _)| mask >> j & 1 == 1)
            .map(|(_, &b)| b),
    );
    cuts.push(text.len());
    let mut sc = StopChecker::new(stops);
    let mut out = String::new();
    for w in cuts.windows(2) {
        let (piece, stopped) = sc.push(&text[w[0]..w[1]]);
        out.push_str(&piece);
        if stopped {
            assert_eq!(sc.push("more"), (String::new(), true));
            return (out, true);
        }
    }
    out.push_str(&sc.finish());
    (out, false)
}

#[test]
fn stop_strings_split_in_every_possible_way() {
    let cases: &[(&str, &[&str])] = &[
        (
            "Hello, world! The END is near",
            &["END", "world!!", "Hel lo"],
        ),
        ("abcabcabdx", &["abcabd"]),
        ("xabcdey", &["abcde", "cd"]),
        ("xabcdey", &["bcd", "abcd"]),
        ("no stop here ab", &["abc"]),
        ("héllo→wörld→", &["→w", "ö"]),
        ("日本語のテキスト", &["のテ", "本語の"]),
        ("aaaaaaab", &["aab", ""]),
        ("stop at the very end", &["end"]),
        ("<|im_end|> first", &["<|im_end|>"]),
        ("prefix only <|im_", &["<|im_end|>", "<|endoftext|>"]),
    ];
    for (text, stops) in cases {
        let (want, stopped) = reference(text, stops);
        let n = text.chars().count() - 1;
        let masks: Vec<u64> = if n <= 14 {
            (0..1u64 << n).collect()
        } else {
            (0..4096).map(|i| i * 2654435761 % (1 << n)).collect()
        };
        for mask in masks {
            let (got, finish) = run(text, stops, mask);
            assert_eq!(got, want, "{text:?} {stops:?} split {mask:b}");
            assert_eq!(
                run_text(text, stops, mask),
                (want.clone(), stopped),
                "push(): {text:?} split {mask:b}"
            );
            assert_eq!(
                finish,
                stopped.then_some(FinishReason::Stop),
                "{text:?} split {mask:b}"
            );
        }
    }
}

#[test]
fn eog_tokens_and_max_tokens_end_generation() {
    let mut sc = StopChecker::new(&["STOP"]).with_eog(&[2, 106]);
    assert_eq!(sc.push_token(10, "Hi ST").text, "Hi ");
    let step = sc.push_token(106, "<end_of_turn>");
    assert_eq!(
        step,
        StopStep {
            text: "ST".into(),
            finish: Some(FinishReason::Stop)
        }
    );
    assert_eq!(sc.push_token(11, "more").text, "");
    assert_eq!(sc.tokens(), 2);

    let mut sc = StopChecker::new(&["STOP"])
        .with_eog(&[2])
        .with_max_tokens(3);
    assert_eq!(sc.push_token(10, "a").finish, None);
    assert_eq!(sc.push_token(10, "b S").text, "b ");
    let last = sc.push_token(10, "T");
    assert_eq!(
        last,
        StopStep {
            text: "ST".into(),
            finish: Some(FinishReason::Length)
        }
    );
    assert!(sc.is_finished());

    // A stop string completed by the last allowed token is a stop, not a length finish.
    let mut sc = StopChecker::new(&["STOP"])
        .with_eog(&[2])
        .with_max_tokens(2);
    assert_eq!(sc.push_token(10, "xST").text, "x");
    assert_eq!(
        sc.push_token(10, "OPy"),
        StopStep {
            text: "".into(),
            finish: Some(FinishReason::Stop)
        }
    );

    let sc = StopChecker::new::<&str>(&[]).with_max_tokens(0);
    assert_eq!(sc.finish_reason(), Some(FinishReason::Length));

    // Text-only push does not count tokens; a stop string sets the finish reason.
    let mut sc = StopChecker::new(&["\n\n"]).with_max_tokens(1);
    assert_eq!(sc.push("a\n"), ("a".to_string(), false));
    assert_eq!(sc.push("\nb"), (String::new(), true));
    assert_eq!(sc.finish_reason(), Some(FinishReason::Stop));
}

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
    assert!(r.stream && r.logprobs);
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
    assert!(!r.stream);
    assert_eq!(r.sampler_config().temperature, 1.0);

    for bad in [
        json!({"messages": []}),
        json!({"messages": [{"role": "user", "content": "x"}], "temperature": -1}),
        json!({"messages": [{"role": "user", "content": "x"}], "top_p": 1.5}),
        json!({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 50}),
    ] {
        let r: ChatCompletionRequest = serde_json::from_value(bad.clone()).unwrap();
        let e = r.validate().unwrap_err().to_string();
        assert!(e.contains("chat completion request"), "{bad}: {e}");
    }
    assert!(serde_json::from_value::<ChatCompletionRequest>(json!({"messages": "nope"})).is_err());
}

#[test]
fn the_engine_call_pattern_compiles_and_works() {
    // As src/engine.rs drives it: stop strings from a Vec<String>, decoded pieces as Strings,
    // finish() to release held text when the stream ends without a stop string.
    let stops: Vec<String> = vec!["</s>".into()];
    let mut stop = StopChecker::new(&stops);
    let (piece, stopped) = stop.push(&String::from("Hi <"));
    assert_eq!((piece.as_str(), stopped), ("Hi ", false));
    let (piece, stopped) = stop.push(&String::from("b"));
    assert_eq!((piece.as_str(), stopped), ("<b", false));
    stop.push("<");
    assert_eq!(stop.finish(), "<");
}
