//! Pre-tokenizers of byte-level BPE vocabularies, chosen by `tokenizer.ggml.pre` as llama.cpp does.
//!
//! Each is a list of regexes applied one after another: every regex splits each piece the previous
//! ones produced (matches and the text between them both become pieces).

use super::regex::Regex;
use crate::{Error, Result};

const GPT2: &str = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const LLAMA3: &str = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2: &str = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN35: &str = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/// How one pre-tokenizer family behaves.
pub struct PreTokenizer {
    pub name: String,
    regexes: Vec<Regex>,
    /// Llama 3 style: a whole word that is in the vocabulary is one token, merges or not.
    pub ignore_merges: bool,
    /// GPT-2 byte-to-character mapping before BPE (false for Gemma 4's SentencePiece-style BPE).
    pub byte_encode: bool,
    /// Replace ' ' with U+2581 before splitting (Gemma 4).
    pub escape_whitespace: bool,
    /// A word made only of newlines is looked up whole (Gemma 4).
    pub newline_words_whole: bool,
}

impl PreTokenizer {
    /// `pre` is `tokenizer.ggml.pre` (None when absent: llama.cpp's 'default', with a warning).
    pub fn new(pre: Option<&str>) -> Result<PreTokenizer> {
        let name = match pre {
            Some(p) => p,
            None => {
                log::warn!("GGUF has no tokenizer.ggml.pre: using the 'default' pre-tokenizer (generation quality may degrade)");
                "default"
            }
        };
        let mut ignore_merges = false;
        let (mut byte_encode, mut escape_whitespace, mut newline_words_whole) =
            (true, false, false);
        let patterns: Vec<&str> = match name {
            "default" => vec!["[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2, "\\p{N}+", "[0-9][0-9][0-9]"],
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0" | "lfm2"
            | "jina-v5-nano" => {
                ignore_merges = true;
                vec![LLAMA3]
            }
            "dbrx" | "smaug-bpe" | "chatglm-bpe" => vec![LLAMA3],
            "glm4" | "glm5" => {
                ignore_merges = true;
                vec![LLAMA3]
            }
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "stablelm2" | "hunyuan" | "solar-open" | "grok-2" => {
                vec![QWEN2]
            }
            "qwen35" => vec![QWEN35],
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de" | "a.x-4.0"
            | "mellum" | "modern-bert" | "mpt" | "olmo" | "jais" | "trillion" | "granite-docling" | "jina-v1-en"
            | "jina-v2-code" | "roberta-bpe" => vec![GPT2],
            "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva" | "mellum2" => {
                vec!["\\p{N}", GPT2]
            }
            "falcon" => vec!["[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2, "[0-9][0-9][0-9]"],
            "deepseek-coder" => vec!["[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"],
            "deepseek-llm" => vec![
                "[\r\n]",
                "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
                "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
                "\\s+$",
                "[一-龥ࠀ-一가-퟿]+",
                "\\p{N}+",
            ],
            "poro-chat" | "bloom" | "gpt3-finnish" => vec![" ?[^(\\s|.,!?…。，、।۔،)]+"],
            "viking" => vec![" ?[^(\\s|.,!?…。，、।۔،)]+", "\\p{N}"],
            "gemma4" => {
                byte_encode = false;
                escape_whitespace = true;
                newline_words_whole = true;
                vec!["[^\\n]+|[\\n]+"]
            }
            other => {
                return Err(Error::Tokenizer(format!(
                    "pre-tokenizer '{other}' is not supported (llama.cpp refuses unknown ones too)"
                )))
            }
        };
        let regexes = patterns
            .iter()
            .map(|p| Regex::new(p))
            .collect::<Result<Vec<_>>>()?;
        Ok(PreTokenizer {
            name: name.to_string(),
            regexes,
            ignore_merges,
            byte_encode,
            escape_whitespace,
            newline_words_whole,
        })
    }

    /// Splits `text` into words (as code-point ranges of `cps`).
    pub fn split(&self, cps: &[u32]) -> Vec<(usize, usize)> {
        let mut lens = vec![cps.len()];
        let mut next = Vec::new();
        for re in &self.regexes {
            next.clear();
            let mut at = 0;
            for &l in &lens {
                re.split(&cps[at..at + l], &mut next);
                at += l;
            }
            std::mem::swap(&mut lens, &mut next);
        }
        let mut at = 0;
        lens.iter()
            .filter(|&&l| l > 0)
            .map(|&l| {
                at += l;
                (at - l, at)
            })
            .collect()
    }
}
