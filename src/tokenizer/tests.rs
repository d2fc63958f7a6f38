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
