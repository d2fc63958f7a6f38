//! Both tokenizer families (byte-level BPE from the tiny Qwen2 model, SentencePiece from the tiny
//! Llama model, both committed test files) on arbitrary text, with and without special-token
//! parsing: ids in the vocabulary, and byte-level BPE decodes back to the text exactly.
#![no_main]
use attend::gguf::Gguf;
use attend::tokenizer::Tokenizer;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn load(bytes: &[u8]) -> (Tokenizer, usize) {
    let g = Gguf::parse(bytes).expect("committed test model");
    let vocab = g
        .get("tokenizer.ggml.tokens")
        .and_then(|v| v.as_array())
        .map_or(0, |a| a.len());
    (Tokenizer::from_gguf(&g).expect("tokenizer"), vocab)
}

fn bpe() -> &'static (Tokenizer, usize) {
    static T: OnceLock<(Tokenizer, usize)> = OnceLock::new();
    T.get_or_init(|| load(include_bytes!("../../tests/reference/tiny-qwen2.gguf")))
}

fn spm() -> &'static (Tokenizer, usize) {
    static T: OnceLock<(Tokenizer, usize)> = OnceLock::new();
    T.get_or_init(|| load(include_bytes!("../../tests/reference/tiny-llama-spm.gguf")))
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for (i, (tok, vocab)) in [bpe(), spm()].into_iter().enumerate() {
        for special in [false, true] {
            let ids = tok.encode(&text, false, special);
            assert!(
                ids.iter().all(|&id| (id as usize) < *vocab),
                "id out of range"
            );
            let back = tok.decode(&ids);
            if i == 0 && !special {
                assert_eq!(back, text, "byte-level BPE round trip");
            }
        }
    }
});
