//! Unit tests on hand-built vocabularies (no files needed).

use super::*;
use crate::gguf::Value;

fn strs(v: &[&str]) -> Value {
    Value::Array(v.iter().map(|s| Value::String(s.to_string())).collect())
}

/// A tiny SentencePiece vocabulary: merges by score, `<0xXX>` fallback, control and
/// user-defined tokens.
fn spm() -> Gguf {
    let mut tokens = vec![
        "<unk>", "<s>", "</s>", "<ctl>", "\n\n", "▁", "h", "i", "▁h", "▁hi", "hi",
    ];
    let hex: Vec<String> = (0..256).map(|b| format!("<0x{b:02X}>")).collect();
    tokens.extend(hex.iter().map(|s| s.as_str()));
    let mut types = vec![2, 3, 3, 3, 4, 1, 1, 1, 1, 1, 1];
    types.extend([6; 256]);
    let scores: Vec<Value> = (0..tokens.len()).map(|i| Value::F32(-(i as f32))).collect();
    Gguf {
        metadata: vec![
            ("tokenizer.ggml.model".into(), Value::String("llama".into())),
            ("tokenizer.ggml.tokens".into(), strs(&tokens)),
            ("tokenizer.ggml.scores".into(), Value::Array(scores)),
            (
                "tokenizer.ggml.token_type".into(),
                Value::Array(types.into_iter().map(Value::I32).collect()),
            ),
        ],
        ..Default::default()
    }
}

#[test]
fn spm_merges_specials_and_byte_fallback() {
    let t = Tokenizer::from_gguf(&spm()).unwrap();
    assert_eq!(
        (t.bos(), t.eos(), t.unk(), t.adds_bos()),
        (Some(1), Some(2), Some(0), true)
    );
    // " hi" -> "▁hi" (space prefix added), then BOS.
    assert_eq!(t.encode("hi", true, false), [1, 9]);
    // Control text is split out only with parse_special; user-defined "\n\n" always.
    assert_eq!(t.encode("hi<ctl>hi", false, true), [9, 3, 9]);
    let ctl_as_text = t.encode("hi<ctl>", false, false);
    assert_eq!(ctl_as_text[0], 9);
    assert_eq!(
        ctl_as_text[1..],
        [b'<', b'c', b't', b'l', b'>'].map(|b| 11 + b as u32)
    );
    assert_eq!(t.encode("hi\n\nhi", false, false), [9, 4, 9]);
    // "é" has no token: its two UTF-8 bytes fall back to <0xC3><0xA9>.
    assert_eq!(t.encode("é", false, false), [5, 11 + 0xC3, 11 + 0xA9]);
    assert_eq!(t.decode(&[9, 8]), "hi h");
    assert_eq!(t.decode(&[1, 9, 8]), "<s> hi h");
    assert_eq!(t.decode_text(&[1, 9, 8]), " hi h");
    assert_eq!(t.decode(&[5, 11 + 0xC3, 11 + 0xA9]), "é");
    assert!(t.is_eog(2) && !t.is_eog(1));
    assert!(t.encode("", true, true) == [1] && t.encode("", false, true).is_empty());
}

#[test]
fn bad_metadata_is_an_error() {
    let mut g = spm();
    g.metadata[0].1 = Value::String("gpt2".into());
    g.metadata.push((
        "tokenizer.ggml.pre".into(),
        Value::String("no-such-pre".into()),
    ));
    let e = Tokenizer::from_gguf(&g)
        .err()
        .expect("unknown pre must be refused");
    assert!(e.to_string().contains("no-such-pre"), "{e}");
    g.metadata[0].1 = Value::String("bert".into());
    assert!(Tokenizer::from_gguf(&g).is_err());
    assert!(Tokenizer::from_gguf(&Gguf::default()).is_err());
}

#[test]
fn byte_level_bpe_by_rank() {
    // Ranks make "ab" before "bc": "abc" -> ["ab", "c"].
    let g = Gguf {
        metadata: vec![
            ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
            ("tokenizer.ggml.pre".into(), Value::String("gpt-2".into())),
            (
                "tokenizer.ggml.tokens".into(),
                strs(&["a", "b", "c", "ab", "bc", "Ġ", "Ġab", "<|endoftext|>"]),
            ),
            (
                "tokenizer.ggml.merges".into(),
                strs(&["a b", "b c", "Ġ ab"]),
            ),
            ("tokenizer.ggml.bos_token_id".into(), Value::U32(7)),
            ("tokenizer.ggml.eos_token_id".into(), Value::U32(7)),
        ],
        ..Default::default()
    };
    let t = Tokenizer::from_gguf(&g).unwrap();
    assert_eq!(t.encode("abc abc", false, false), [3, 2, 6, 2]);
    assert_eq!(t.decode(&[3, 2, 6, 2]), "abc abc");
    assert!(!t.adds_bos());
    assert!(t.is_eog(7));
    assert_eq!(t.encode("a<|endoftext|>", false, true), [0, 7]);
}

// ---- special-token partition: linear, and the same result as llama.cpp's loop ------------------

/// An SPM vocabulary with `extra` special tokens after the usual ones: (text, token type).
fn spm_with(extra: &[(String, i32)]) -> Gguf {
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>", "▁", "a", "b"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut types = vec![2, 3, 3, 1, 1, 1];
    tokens.extend((0..256).map(|b| format!("<0x{b:02X}>")));
    types.extend([6; 256]);
    for (t, ty) in extra {
        tokens.push(t.clone());
        types.push(*ty);
    }
    let scores: Vec<Value> = (0..tokens.len()).map(|i| Value::F32(-(i as f32))).collect();
    let tokens: Vec<&str> = tokens.iter().map(|s| s.as_str()).collect();
    Gguf {
        metadata: vec![
            ("tokenizer.ggml.model".into(), Value::String("llama".into())),
            ("tokenizer.ggml.tokens".into(), strs(&tokens)),
            ("tokenizer.ggml.scores".into(), Value::Array(scores)),
            (
                "tokenizer.ggml.token_type".into(),
                Value::Array(types.into_iter().map(Value::I32).collect()),
            ),
        ],
        ..Default::default()
    }
}

#[derive(Debug, PartialEq)]
enum RefFrag {
    Text(String),
    Token(u32),
}

/// llama.cpp's tokenizer_st_partition as this crate implemented it before (one pass over the text
/// per special token): the reference for the one-pass version.
fn reference_partition(t: &Tokenizer, text: &str, parse_special: bool) -> Vec<RefFrag> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut frags = vec![RefFrag::Text(text.to_string())];
    for &id in &t.specials {
        let attr = t.vocab.attrs[id as usize];
        let tok = t.vocab.texts[id as usize].as_str();
        if tok.is_empty()
            || t.vocab.ids.get(tok) != Some(&id)
            || (!parse_special && attr & (CONTROL | UNKNOWN) != 0)
        {
            continue;
        }
        let mut next = Vec::new();
        for f in frags {
            let RefFrag::Text(text) = f else {
                next.push(f);
                continue;
            };
            let mut rest = text.as_str();
            while let Some(at) = rest.find(tok) {
                if at > 0 {
                    next.push(RefFrag::Text(rest[..at].to_string()));
                }
                next.push(RefFrag::Token(id));
                rest = &rest[at + tok.len()..];
                if attr & RSTRIP != 0 {
                    rest = rest.trim_start_matches([' ', '\t', '\n', '\u{b}', '\u{c}', '\r']);
                }
            }
            if !rest.is_empty() {
                next.push(RefFrag::Text(rest.to_string()));
            }
        }
        frags = next;
    }
    frags
}

fn partition_owned(t: &Tokenizer, text: &str, parse_special: bool) -> Vec<RefFrag> {
    t.partition(text, parse_special)
        .into_iter()
        .map(|f| match f {
            Frag::Text(s) => RefFrag::Text(s.to_string()),
            Frag::Token(id) => RefFrag::Token(id),
        })
        .collect()
}

#[test]
fn special_partition_matches_the_reference_on_overlapping_tokens() {
    // Overlapping, nested and equal-length special tokens, control (3) and user-defined (4).
    let extra: Vec<(String, i32)> = [
        ("<a>", 3),
        ("<a><a>", 3),
        ("a>", 4),
        ("<<", 3),
        ("ab", 4),
        ("b<", 3),
        ("<a", 4),
        ("ba", 3),
        ("\n<", 3),
    ]
    .iter()
    .map(|&(s, ty)| (s.to_string(), ty))
    .collect();
    let mut t = Tokenizer::from_gguf(&spm_with(&extra)).unwrap();
    let alphabet = ['<', 'a', '>', 'b', ' ', '\n'];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..2 {
        if round == 1 {
            // Phi-3 style: whitespace after (some) special tokens is swallowed.
            for &id in &t.specials.clone() {
                if id % 2 == 0 {
                    t.vocab.attrs[id as usize] |= RSTRIP;
                }
            }
        }
        for _ in 0..4000 {
            let len = (next() % 40) as usize;
            let text: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            for parse in [true, false] {
                assert_eq!(
                    partition_owned(&t, &text, parse),
                    reference_partition(&t, &text, parse),
                    "{text:?} parse_special={parse} round {round}"
                );
            }
            // The two-stage encoding used for chat prompts equals encode(.., true) on plain text.
            assert_eq!(
                t.encode_with_plain_parts(&text, false, |s| s.to_string()),
                t.encode(&text, false, true),
                "{text:?} round {round}"
            );
        }
    }
}

#[test]
fn special_matching_is_linear_in_thousands_of_special_tokens() {
    // 2,000 control tokens of 2,000 different lengths (the old matcher hashed the substring of
    // every length at every position: text length × total special-token length, ~2 MB here).
    let extra: Vec<(String, i32)> = (0..2000)
        .map(|i| (format!("{}<ctl{i}>", "_".repeat(i)), 3))
        .collect();
    let t = Tokenizer::from_gguf(&spm_with(&extra)).unwrap();
    let mut text = String::new();
    let mut i = 0;
    while text.len() < 8192 {
        text.push_str("ab ba a b ");
        if i % 10 == 0 {
            text.push_str(&extra[(i * 37) % 2000].0);
        }
        i += 1;
    }
    let start = std::time::Instant::now();
    let ids = t.encode(&text, false, true);
    let took = start.elapsed();
    let n_ctl = ids.iter().filter(|&&id| t.is_control(id)).count();
    assert_eq!(
        n_ctl,
        i.div_ceil(10),
        "every inserted control token is found"
    );
    // Linear: ~10 ms in a debug build; the old matcher took seconds.
    assert!(
        took.as_secs_f64() < 1.0,
        "8 KB with 2,000 special tokens took {took:?}"
    );
    // Same fragments as the reference (one pass per special token: fine at this size).
    assert_eq!(
        partition_owned(&t, &text, true),
        reference_partition(&t, &text, true)
    );
}
