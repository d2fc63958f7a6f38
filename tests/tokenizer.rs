//! Tokenizer exactness: llama.cpp's own test vectors, HF transformers on the two test models, and
//! streaming decode. Needs `tests/fetch-vocab.sh` and `tests/fetch-models.sh` to have run (missing
//! files fail the test with that message; nothing is skipped).

use std::path::{Path, PathBuf};
use std::time::Instant;

use attend::gguf::{read_header, Gguf};
use attend::tokenizer::Tokenizer;

fn cache() -> PathBuf {
    match std::env::var_os("ATTEND_CACHE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/attend"),
    }
}

fn load(path: &Path, fetch: &str) -> Gguf {
    assert!(path.exists(), "{} is missing: run {fetch}", path.display());
    read_header(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn model(name: &str) -> Tokenizer {
    let g = load(&cache().join("models").join(name), "tests/fetch-models.sh");
    Tokenizer::from_gguf(&g).unwrap()
}

fn vocab(name: &str) -> (Gguf, PathBuf) {
    let path = cache()
        .join("vocab")
        .join(format!("ggml-vocab-{name}.gguf"));
    (load(&path, "tests/fetch-vocab.sh"), path)
}

/// Runs llama.cpp's test-tokenizer-0 vectors for one vocabulary: `.inp` holds the strings separated
/// by "\n__ggml_vocab_test__\n", `.out` one line of ids per string (add_special and parse_special
/// off, as test-tokenizer-0 tokenizes).
fn llama_cpp_vectors(name: &str) {
    let (g, path) = vocab(name);
    let tok = Tokenizer::from_gguf(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
    let inp = std::fs::read_to_string(path.with_extension("gguf.inp"))
        .expect("missing .inp: run tests/fetch-vocab.sh");
    let out = std::fs::read_to_string(path.with_extension("gguf.out"))
        .expect("missing .out: run tests/fetch-vocab.sh");
    let mut texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    if texts.last() == Some(&"") {
        texts.pop();
    }
    let expected: Vec<&str> = out.lines().collect();
    assert_eq!(
        texts.len(),
        expected.len(),
        "{name}: .inp/.out disagree on the number of cases"
    );
    let mut failures = Vec::new();
    for (text, want) in texts.iter().zip(&expected) {
        let want: Vec<u32> = want
            .split_whitespace()
            .map(|t| t.parse().unwrap())
            .collect();
        let got = tok.encode(text, false, false);
        if got != want {
            failures.push(format!("  {text:?}\n    want {want:?}\n    got  {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {}/{} cases differ:\n{}",
        failures.len(),
        texts.len(),
        failures.join("\n")
    );
    eprintln!(
        "{name}: {} cases identical ({:?}, pre {:?})",
        texts.len(),
        tok.model(),
        tok.pre_tokenizer()
    );
}

macro_rules! vectors {
    ($($f:ident => $name:literal,)*) => {$(
        #[test]
        fn $f() {
            llama_cpp_vectors($name);
        }
    )*};
}

vectors! {
    vocab_llama_bpe => "llama-bpe",
    vocab_qwen2 => "qwen2",
    vocab_qwen35 => "qwen35",
    vocab_gpt_2 => "gpt-2",
    vocab_mpt => "mpt",
    vocab_starcoder => "starcoder",
    vocab_refact => "refact",
    vocab_command_r => "command-r",
    vocab_falcon => "falcon",
    vocab_deepseek_llm => "deepseek-llm",
    vocab_deepseek_coder => "deepseek-coder",
    vocab_llama_spm => "llama-spm",
    vocab_phi_3 => "phi-3",
    vocab_gemma_4 => "gemma-4",
}

/// Vocabularies of models this crate does not tokenize must be refused with a clear error.
#[test]
fn unsupported_vocabularies_are_refused() {
    for name in ["bert-bge", "nomic-bert-moe"] {
        let (g, _) = vocab(name);
        match Tokenizer::from_gguf(&g) {
            Ok(_) => panic!("{name} should be refused"),
            Err(e) => eprintln!("{name}: refused: {e}"),
        }
    }
}

/// Vocabularies llama.cpp ships without test strings still load (aquila and gpt-neox have no
/// `tokenizer.ggml.pre`: llama.cpp's 'default' pre-tokenizer, with a warning) and round-trip.
#[test]
fn vocabularies_without_vectors_load() {
    for name in ["aquila", "baichuan", "gpt-neox"] {
        let (g, _) = vocab(name);
        let tok = Tokenizer::from_gguf(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ids = tok.encode("Hello world, 123!", false, false);
        assert!(!ids.is_empty(), "{name}");
        assert_eq!(tok.decode(&ids).trim_start(), "Hello world, 123!", "{name}");
        eprintln!(
            "{name}: {:?} pre {:?} -> {ids:?}",
            tok.model(),
            tok.pre_tokenizer()
        );
    }
}

// ---- transformers reference -------------------------------------------------------------------

/// Just enough JSON for tokenizer_golden.json.
#[derive(Debug)]
enum Json {
    /// true, false or null (not needed by the tests).
    Literal,
    Num(f64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    fn parse(s: &str) -> Json {
        let mut p = s.char_indices().peekable();
        Self::value(s, &mut p)
    }
    fn ws(p: &mut std::iter::Peekable<std::str::CharIndices>) {
        while p.peek().is_some_and(|(_, c)| c.is_whitespace()) {
            p.next();
        }
    }
    fn value(s: &str, p: &mut std::iter::Peekable<std::str::CharIndices>) -> Json {
        Self::ws(p);
        let (i, c) = *p.peek().expect("json: unexpected end");
        match c {
            '{' => {
                p.next();
                let mut o = Vec::new();
                loop {
                    Self::ws(p);
                    if p.peek().unwrap().1 == '}' {
                        p.next();
                        return Json::Obj(o);
                    }
                    let Json::Str(k) = Self::value(s, p) else {
                        panic!("json: key")
                    };
                    Self::ws(p);
                    assert_eq!(p.next().unwrap().1, ':');
                    o.push((k, Self::value(s, p)));
                    Self::ws(p);
                    if p.peek().unwrap().1 == ',' {
                        p.next();
                    }
                }
            }
            '[' => {
                p.next();
                let mut a = Vec::new();
                loop {
                    Self::ws(p);
                    if p.peek().unwrap().1 == ']' {
                        p.next();
                        return Json::Arr(a);
                    }
                    a.push(Self::value(s, p));
                    Self::ws(p);
                    if p.peek().unwrap().1 == ',' {
                        p.next();
                    }
                }
            }
            '"' => {
                p.next();
                // Collected as UTF-16 so that \uD83D\uDE00 surrogate pairs decode.
                let mut units: Vec<u16> = Vec::new();
                loop {
                    let c = match p.next().expect("json: unterminated string").1 {
                        '"' => return Json::Str(String::from_utf16_lossy(&units)),
                        '\\' => match p.next().unwrap().1 {
                            'n' => '\n',
                            't' => '\t',
                            'r' => '\r',
                            'b' => '\u{8}',
                            'f' => '\u{c}',
                            'u' => {
                                let h: String = (0..4).map(|_| p.next().unwrap().1).collect();
                                units.push(u16::from_str_radix(&h, 16).unwrap());
                                continue;
                            }
                            c => c,
                        },
                        c => c,
                    };
                    units.extend_from_slice(c.encode_utf16(&mut [0; 2]));
                }
            }
            't' | 'f' | 'n' => {
                while p.next_if(|(_, c)| c.is_ascii_alphabetic()).is_some() {}
                Json::Literal
            }
            _ => {
                let mut end = i;
                while let Some(&(j, c)) = p.peek() {
                    if c.is_ascii_digit() || "+-.eE".contains(c) {
                        end = j + 1;
                        p.next();
                    } else {
                        break;
                    }
                }
                Json::Num(s[i..end].parse().expect("json: number"))
            }
        }
    }
    fn get(&self, k: &str) -> &Json {
        match self {
            Json::Obj(o) => {
                &o.iter()
                    .find(|(key, _)| key == k)
                    .unwrap_or_else(|| panic!("json: no key {k}"))
                    .1
            }
            _ => panic!("json: not an object"),
        }
    }
    fn arr(&self) -> &[Json] {
        match self {
            Json::Arr(a) => a,
            _ => panic!("json: not an array"),
        }
    }
    fn str(&self) -> &str {
        match self {
            Json::Str(s) => s,
            _ => panic!("json: not a string"),
        }
    }
    fn ids(&self) -> Vec<u32> {
        self.arr()
            .iter()
            .map(|v| match v {
                Json::Num(n) => *n as u32,
                _ => panic!("json: not a number"),
            })
            .collect()
    }
}

struct GoldenCase {
    text: String,
    hf: Vec<u32>,
    hf_special: Vec<u32>,
    hf_decoded: String,
    lcpp: Vec<u32>,
    lcpp_special: Vec<u32>,
}

fn golden(file: &str) -> Vec<GoldenCase> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/reference/tokenizer_golden.json"
    );
    let text = std::fs::read_to_string(path)
        .expect("tests/reference/tokenizer_golden.json (written by tokenizer_golden.py)");
    let j = Json::parse(&text);
    j.get(file)
        .get("cases")
        .arr()
        .iter()
        .map(|c| GoldenCase {
            text: c.get("text").str().to_string(),
            hf: c.get("ids").ids(),
            hf_special: c.get("ids_add_special").ids(),
            hf_decoded: c.get("decoded").str().to_string(),
            lcpp: c.get("llama_cpp_ids").ids(),
            lcpp_special: c.get("llama_cpp_ids_add_special").ids(),
        })
        .collect()
}

/// Strings on which transformers' GGUF tokenizer is known to differ from llama.cpp:
/// - SmolLM2: HF's `Digits` pre-tokenizer splits ASCII digits only, llama.cpp's `\p{N}` regex splits
///   every number character, so " ٣" stays one word in HF but becomes " " + "٣" in llama.cpp.
/// - Gemma 3: HF matches added tokens on normalized text, where a typed "▁" equals a space, so
///   " ▁▁ " hits the user-defined "    " token; llama.cpp matches on the raw text.
const KNOWN_HF_DIFFERENCES: &[&str] = &["Arabic digits", "a\u{2581}b \u{2581}\u{2581} underscores"];

/// Against llama.cpp (llama-cpp-python 0.3.36) on every string, and against transformers (which
/// parses special tokens and adds BOS where configured) wherever the two references agree; where
/// they disagree the difference is printed. Plus round-trip decode.
fn against_references(file: &str) {
    let tok = model(file);
    let mut failures = Vec::new();
    let cases = golden(file);
    let mut hf_agree = 0;
    for c in &cases {
        let text = &c.text;
        for (add, want_lcpp, want_hf) in [
            (false, &c.lcpp, &c.hf),
            (true, &c.lcpp_special, &c.hf_special),
        ] {
            let got = tok.encode(text, add, true);
            if &got != want_lcpp {
                failures.push(format!("  {text:?} (add_special={add})\n    llama.cpp {want_lcpp:?}\n    got       {got:?}"));
            }
            if want_hf == want_lcpp {
                hf_agree += 1;
            } else if !KNOWN_HF_DIFFERENCES.iter().any(|k| text.contains(k)) {
                failures.push(format!("  {text:?}: transformers {want_hf:?} and llama.cpp {want_lcpp:?} differ (new case)"));
            } else {
                eprintln!(
                    "{file}: transformers differs from llama.cpp on {text:?} (add_special={add}):\n  transformers {want_hf:?}\n  llama.cpp    {want_lcpp:?} (= ours)"
                );
            }
        }
        let back = tok.decode(&c.lcpp);
        // A typed "▁" decodes as a space in SentencePiece vocabularies (llama.cpp and HF alike).
        if &back != text && !text.contains('\u{2581}') {
            failures.push(format!("  round trip {text:?}\n    got {back:?}"));
        }
        let hf_back = tok.decode(&c.hf);
        if hf_back != c.hf_decoded {
            failures.push(format!(
                "  decode {:?}\n    transformers {:?}\n    got          {hf_back:?}",
                c.hf, c.hf_decoded
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{file}: {} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{file}: {} strings identical to llama.cpp; transformers agrees on {hf_agree} of {} encodings",
        cases.len(),
        2 * cases.len()
    );
}

#[test]
fn smollm2_matches_llama_cpp_and_transformers() {
    against_references("SmolLM2-135M-Instruct.Q4_1.gguf");
}

#[test]
fn gemma3_matches_llama_cpp_and_transformers() {
    against_references("gemma-3-270m-q4_k_m.gguf");
}

#[test]
fn special_ids_from_metadata() {
    let smol = model("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert_eq!(
        (smol.vocab_size(), smol.bos(), smol.eos()),
        (49152, Some(1), Some(2))
    );
    assert!(!smol.adds_bos());
    let im_end = smol.token_id("<|im_end|>").unwrap();
    assert!(
        smol.is_eog(im_end)
            && smol.is_eog(0)
            && !smol.is_eog(smol.token_id("<|im_start|>").unwrap())
    );
    assert_eq!(smol.encode("<|im_end|>", false, true), [im_end]);
    assert_ne!(
        smol.encode("<|im_end|>", false, false),
        [im_end],
        "control text must not be parsed without parse_special"
    );

    let gemma = model("gemma-3-270m-q4_k_m.gguf");
    assert_eq!(
        (gemma.vocab_size(), gemma.bos(), gemma.eos()),
        (262144, Some(2), Some(1))
    );
    assert!(gemma.adds_bos() && !gemma.adds_eos());
    let eot = gemma.token_id("<end_of_turn>").unwrap();
    assert!(gemma.is_eog(eot) && gemma.is_eog(1));
    assert_eq!(gemma.encode("hi", true, false)[0], 2);
    assert_eq!(
        gemma.decode_text(&gemma.encode("<start_of_turn>user\nhi<end_of_turn>", true, true)),
        "user\nhi"
    );
}

// ---- streaming ---------------------------------------------------------------------------------

#[test]
fn stream_decoding_waits_for_whole_characters() {
    let gemma = model("gemma-3-270m-q4_k_m.gguf");
    let byte = |b: u8| gemma.token_id(&format!("<0x{b:02X}>")).unwrap();
    // "中" = E4 B8 AD, "😀" = F0 9F 98 80, each split over byte-fallback tokens.
    let ids: Vec<u32> = [0xE4, 0xB8, 0xAD].iter().map(|&b| byte(b)).collect();
    let mut s = gemma.stream();
    assert_eq!(s.push(gemma.token_id("a").unwrap()), "a");
    assert_eq!(s.push(ids[0]), "");
    assert_eq!(s.push(ids[1]), "");
    assert_eq!(s.push(ids[2]), "中");
    let emoji: Vec<u32> = [0xF0, 0x9F, 0x98, 0x80].iter().map(|&b| byte(b)).collect();
    let outs: Vec<String> = emoji.iter().map(|&i| s.push(i)).collect();
    assert_eq!(outs, ["", "", "", "😀"]);
    // An invalid byte is replaced at once; an unfinished character only at the end.
    assert_eq!(s.push(byte(0xFF)), "\u{FFFD}");
    assert_eq!(s.push(byte(0xE4)), "");
    assert_eq!(s.finish(), "\u{FFFD}");

    // Streaming whole texts gives the same as decode, for both models.
    let smol = model("SmolLM2-135M-Instruct.Q4_1.gguf");
    for tok in [&gemma, &smol] {
        let text = "Emoji 🙂👍🏽 中文 naïve — done\n\tx";
        let ids = tok.encode(text, false, false);
        let mut st = tok.stream();
        let mut streamed: String = ids.iter().map(|&i| st.push(i)).collect();
        streamed += &st.finish();
        assert_eq!(streamed, tok.decode(&ids));
        assert_eq!(streamed, text);
    }
}

// ---- speed -------------------------------------------------------------------------------------

#[test]
fn encoding_10kb_is_fast() {
    let base = "The quick brown fox jumps over the lazy dog; fn main() { let x = 42; }\n中文 テキスト 🙂 1234567\n";
    let text: String = base.repeat(10_240 / base.len() + 1);
    for file in [
        "SmolLM2-135M-Instruct.Q4_1.gguf",
        "gemma-3-270m-q4_k_m.gguf",
    ] {
        let g = load(&cache().join("models").join(file), "tests/fetch-models.sh");
        let t = Instant::now();
        let tok = Tokenizer::from_gguf(&g).unwrap();
        eprintln!(
            "{file}: from_gguf {:.1} ms",
            t.elapsed().as_secs_f64() * 1e3
        );
        let t = Instant::now();
        let ids = tok.encode(&text, true, true);
        let dt = t.elapsed();
        eprintln!(
            "{file}: {} bytes -> {} tokens in {:.1} ms",
            text.len(),
            ids.len(),
            dt.as_secs_f64() * 1e3
        );
        assert_eq!(tok.decode_text(&ids), text);
        assert!(dt.as_millis() < 500, "{file}: encoding 10 KB took {dt:?}");
    }
}

/// Inputs that made the pre-tokenizer (deepseek-llm's `\s+$`, retried at every start) or the
/// special-token matcher quadratic: 200,000-character prompts must stay fast in every vocabulary.
/// (Quadratic behaviour takes minutes here; linear takes well under a second per case.)
#[test]
fn long_hostile_inputs_tokenize_in_linear_time() {
    let n = 200_000;
    let cases: Vec<(&str, String)> = vec![
        ("spaces then a digit", " ".repeat(n) + "1"),
        ("spaces then a letter", " ".repeat(n) + "x"),
        (
            "tabs and spaces then punctuation",
            " \t".repeat(n / 2) + "!",
        ),
        ("newlines", "\n".repeat(n)),
        ("digits and spaces", "1 ".repeat(n / 2)),
        ("spaces between words", "a  ".repeat(n / 3)),
        ("control-token lookalikes", "<|im_start".repeat(n / 10)),
    ];
    let mut failures = Vec::new();
    for name in [
        "deepseek-llm",
        "deepseek-coder",
        "llama-bpe",
        "qwen2",
        "gpt-2",
        "falcon",
        "llama-spm",
        "gemma-4",
    ] {
        let (g, _) = vocab(name);
        let tok = Tokenizer::from_gguf(&g).unwrap();
        for (what, text) in &cases {
            let t = Instant::now();
            let ids = tok.encode(text, false, true);
            let dt = t.elapsed().as_secs_f64();
            assert!(!ids.is_empty());
            eprintln!("{name}: {what}: {} tokens in {:.0} ms", ids.len(), dt * 1e3);
            if dt > 3.0 {
                failures.push(format!("{name}: {what}: {dt:.1} s"));
            }
        }
    }
    assert!(failures.is_empty(), "slow:\n{}", failures.join("\n"));
}

/// Gemma 3 has user-defined tokens for runs of 1…31 newlines (and spaces, tabs): over a long run
/// they nest, 31 occurrences per byte. And thousands of control tokens (`<unused…>`) can all
/// appear in one prompt. Both stay linear in time (and in memory: occurrences are kept as runs).
#[test]
fn nested_and_numerous_special_tokens_stay_linear() {
    let tok = model("gemma-3-270m-q4_k_m.gguf");
    let controls: Vec<&str> = (0..tok.vocab_size() as u32)
        .filter(|&id| tok.is_control(id))
        .filter_map(|id| tok.token_text(id))
        .filter(|t| !t.is_empty())
        .collect();
    assert!(controls.len() > 1000, "{} control tokens", controls.len());
    let mut all_controls = String::new();
    while all_controls.len() < 1 << 20 {
        for t in &controls {
            all_controls.push_str(t);
            all_controls.push_str(" x ");
        }
    }
    for (what, text) in [
        ("1 MiB of newlines", "\n".repeat(1 << 20)),
        ("1 MiB of spaces", " ".repeat(1 << 20)),
        ("1 MiB of tabs and newlines", "\t\t\n".repeat(1 << 18)),
        ("every control token, for 1 MiB", all_controls),
    ] {
        let t = Instant::now();
        let ids = tok.encode(&text, false, true);
        let dt = t.elapsed().as_secs_f64();
        eprintln!("gemma3: {what}: {} tokens in {:.0} ms", ids.len(), dt * 1e3);
        assert_eq!(tok.decode(&ids), text, "{what}");
        assert!(dt < 3.0, "{what}: {dt:.1} s");
    }
}
