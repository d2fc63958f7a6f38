//! Stop strings across token boundaries (every split of the text), EOG / max_tokens.

// The same tests run in the browser: `cargo test --target wasm32-unknown-unknown --test stop`.
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use attend::stop::*;

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
