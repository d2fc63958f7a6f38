//! Tokenizers built from GGUF metadata, matching llama.cpp's `llama-vocab.cpp` token for token.
//!
//! - `tokenizer.ggml.model = gpt2`: byte-level BPE with merge ranks, pre-tokenized by the regexes
//!   `tokenizer.ggml.pre` names ([`pretokenize`]); `gemma4`: the same BPE on raw UTF-8 with `▁`.
//! - `tokenizer.ggml.model = llama`: SentencePiece-style BPE over scores with `<0xXX>` byte fallback.
//!
//! Special tokens (control, user-defined, unknown) are cut out of the text first, longest first, as
//! llama.cpp's `tokenizer_st_partition`; user-defined ones always, control ones only with
//! `parse_special`. End-of-generation ids are found by token text like llama.cpp does.
//!
//! This is an own compact implementation rather than the `tokenizers` crate: the pre-tokenizer
//! regexes run on a ~350-line backtracking engine ([`regex`]) with llama.cpp's own Unicode category
//! table (~9 KB), so the wasm bundle stays small and classification agrees with llama.cpp exactly.

mod bpe;
mod pretokenize;
mod regex;
mod spm;
mod stream;
mod unicode;

use std::collections::{HashMap, HashSet};

use crate::gguf::Gguf;
use crate::{Error, Result};

pub use stream::StreamDecoder;

// Token attributes (llama.cpp's llama_token_attr bits).
const NORMAL: u16 = 1 << 2;
const UNKNOWN: u16 = 1 << 1;
const UNUSED: u16 = 1 << 3;
const CONTROL: u16 = 1 << 4;
const USER_DEFINED: u16 = 1 << 5;
const BYTE: u16 = 1 << 6;
const RSTRIP: u16 = 1 << 9;

/// Which algorithm the vocabulary uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// Byte-level BPE (GPT-2 style, and Gemma 4's raw-UTF-8 BPE).
    Bpe,
    /// SentencePiece-style BPE with scores (Llama 2, Gemma 1–3).
    Spm,
}

/// The vocabulary tables both algorithms read.
pub(crate) struct Vocab {
    texts: Vec<String>,
    ids: HashMap<String, u32>,
    pub(crate) scores: Vec<f32>,
    attrs: Vec<u16>,
    /// Token of each byte value for byte fallback (`<0xXX>`), if any.
    pub(crate) byte_tokens: [Option<u32>; 256],
    pub(crate) unk: Option<u32>,
    pub(crate) pre: Option<pretokenize::PreTokenizer>,
}

impl Vocab {
    pub(crate) fn token_id(&self, text: &str) -> Option<u32> {
        self.ids.get(text).copied()
    }
}

/// A tokenizer for one model: encode text to token ids and decode them back.
pub struct Tokenizer {
    model: Model,
    vocab: Vocab,
    merges: Option<bpe::Merges>,
    /// Bytes each token decodes to (after byte-level / `▁` unmapping).
    pieces: Vec<Vec<u8>>,
    /// Special tokens (control, user-defined, unknown), longest text first.
    specials: Vec<u32>,
    special_lens: Vec<usize>,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    eog: HashSet<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    byte_chars: [char; 256],
}

fn opt_id(g: &Gguf, key: &str, n: usize, default: Option<u32>) -> Result<Option<u32>> {
    Ok(match g.opt_u64(key)? {
        Some(id) if (id as usize) < n => Some(id as u32),
        Some(id) => {
            log::warn!("{key} = {id} is outside the vocabulary; keeping the default");
            default.filter(|&d| (d as usize) < n)
        }
        None => default.filter(|&d| (d as usize) < n),
    })
}

const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>", "_<EOT>",
    "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>",
];
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
    "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
    "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>", "<｜end▁of▁sentence｜>", "[e~[",
];
/// Tokens llama.cpp recognizes by text as EOM / fill-in-the-middle markers (and so marks as control).
const MARKER_TEXTS: &[&[&str]] = &[
    &["<|eom_id|>"],
    &["<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>", "<|prefix|>"],
    &["<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>", "<|suffix|>"],
    &["<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>", "<|code_middle|>", "<|middle|>"],
    &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"],
    &["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"],
    &["<|file_sep|>"],
];

impl Tokenizer {
    /// Builds the tokenizer a GGUF file describes (`tokenizer.ggml.*`).
    pub fn from_gguf(g: &Gguf) -> Result<Tokenizer> {
        let model_name = g.str("tokenizer.ggml.model")?;
        let pre_name = g.get("tokenizer.ggml.pre").and_then(|v| v.as_str());
        let (model, pre_name) = match model_name {
            "gpt2" => (Model::Bpe, pre_name),
            "gemma4" => (Model::Bpe, Some("gemma4")),
            "llama" => (Model::Spm, None),
            other => return Err(Error::Tokenizer(format!("tokenizer model '{other}' is not supported (gpt2, llama, gemma4 are)"))),
        };
        let texts: Vec<String> = g
            .array("tokenizer.ggml.tokens")?
            .iter()
            .enumerate()
            .map(|(i, v)| match v.as_str() {
                Some("") => Ok(format!("[EMPTY_{i}]")),
                Some(s) => Ok(s.to_string()),
                None => Err(Error::Tokenizer("tokenizer.ggml.tokens must hold strings".into())),
            })
            .collect::<Result<_>>()?;
        let n = texts.len();
        if n == 0 || n > u32::MAX as usize / 2 {
            return Err(Error::Tokenizer(format!("bad vocabulary size {n}")));
        }
        let mut scores = vec![0f32; n];
        if let Some(arr) = g.get("tokenizer.ggml.scores").and_then(|v| v.as_array()) {
            if arr.len() < n {
                return Err(Error::Tokenizer(format!("{} scores for {n} tokens", arr.len())));
            }
            for (s, v) in scores.iter_mut().zip(arr) {
                *s = v.as_f64().ok_or_else(|| Error::Tokenizer("scores must be numbers".into()))? as f32;
            }
        }
        let mut attrs = vec![NORMAL; n];
        if let Some(arr) = g.get("tokenizer.ggml.token_type").and_then(|v| v.as_array()) {
            if arr.len() < n {
                return Err(Error::Tokenizer(format!("{} token types for {n} tokens", arr.len())));
            }
            for (a, v) in attrs.iter_mut().zip(arr) {
                *a = match v.as_i64() {
                    Some(1) => NORMAL,
                    Some(2) => UNKNOWN,
                    Some(3) => CONTROL,
                    Some(4) => USER_DEFINED,
                    Some(5) => UNUSED,
                    Some(6) => BYTE,
                    _ => 0,
                };
            }
        }
        let mut ids = HashMap::with_capacity(n);
        for (i, t) in texts.iter().enumerate() {
            ids.insert(t.clone(), i as u32);
        }

        // Defaults per model, then the metadata's word (as llama.cpp's llama_vocab::load).
        let (mut add_bos, mut add_eos, mut add_space_prefix) = (false, false, false);
        let (bos_d, eos_d, unk_d) = match model {
            Model::Spm => {
                add_bos = true;
                add_space_prefix = true;
                (Some(1), Some(2), Some(0))
            }
            Model::Bpe if model_name == "gemma4" => (None, None, None),
            Model::Bpe => (Some(11), Some(11), None),
        };
        let pre = match model {
            Model::Bpe => {
                let p = pretokenize::PreTokenizer::new(pre_name)?;
                if p.ignore_merges && !["dbrx", "smaug-bpe", "chatglm-bpe", "glm4", "glm5"].contains(&p.name.as_str()) {
                    add_bos = true; // llama3 family
                }
                Some(p)
            }
            Model::Spm => None,
        };
        if let Some(v) = g.opt_bool("tokenizer.ggml.add_space_prefix")? {
            add_space_prefix = v;
        }
        let bos = opt_id(g, "tokenizer.ggml.bos_token_id", n, bos_d)?;
        let eos = opt_id(g, "tokenizer.ggml.eos_token_id", n, eos_d)?;
        let unk = opt_id(g, "tokenizer.ggml.unknown_token_id", n, unk_d)?;
        let mut eot = opt_id(g, "tokenizer.ggml.eot_token_id", n, None)?;
        let eom = opt_id(g, "tokenizer.ggml.eom_token_id", n, None)?;
        if let Some(v) = g.opt_bool("tokenizer.ggml.add_bos_token")? {
            add_bos = v;
        }
        if let Some(v) = g.opt_bool("tokenizer.ggml.add_eos_token")? {
            add_eos = v;
        }
        if model_name == "gemma4" {
            add_bos = true;
        }

        // Tokens recognized by text: llama.cpp marks them as control, which changes how they split.
        let find = |list: &[&str]| list.iter().filter_map(|t| ids.get(*t).copied()).min();
        if eot.is_none() {
            eot = find(EOT_TEXTS);
        }
        for id in eot.into_iter().chain(MARKER_TEXTS.iter().filter_map(|l| find(l))) {
            attrs[id as usize] |= CONTROL;
        }
        let mut eog: HashSet<u32> = HashSet::new();
        for t in EOG_TEXTS {
            if let Some(&id) = ids.get(*t) {
                eog.insert(id);
                attrs[id as usize] |= CONTROL;
            }
        }
        // FIM pad/repo/sep end generation too.
        for l in &MARKER_TEXTS[4..] {
            eog.extend(find(l));
        }
        eog.extend(eos.into_iter().chain(eot).chain(eom));
        for i in 0..n {
            if attrs[i] & CONTROL != 0 && texts[i].contains("unused") {
                attrs[i] |= UNUSED;
            }
        }
        let has = |eog: &HashSet<u32>, t: &str| ids.get(t).is_some_and(|id| eog.contains(id));
        let harmony = (has(&eog, "<|return|>") && has(&eog, "<|call|>")) || (has(&eog, "<|calls|>") && has(&eog, "<|flush|>"));
        if harmony && has(&eog, "<|end|>") {
            let id = ids["<|end|>"];
            eog.remove(&id);
            attrs[id as usize] = USER_DEFINED;
        }
        if (has(&eog, "<|tool_response>") || has(&eog, "<|plamo:eos|>")) && has(&eog, "</s>") {
            let id = ids["</s>"];
            eog.remove(&id);
            attrs[id as usize] = NORMAL;
        }

        let mut specials: Vec<u32> =
            (0..n as u32).filter(|&i| attrs[i as usize] & (CONTROL | USER_DEFINED | UNKNOWN) != 0).collect();
        specials.sort_by_key(|&i| std::cmp::Reverse(texts[i as usize].len()));
        // Phi-3 strips whitespace after its special tokens (llama.cpp sets this by model name).
        let general_name = g.get("general.name").and_then(|v| v.as_str()).unwrap_or("").to_lowercase();
        if general_name.contains("phi-3") || general_name.contains("phi3") {
            for &i in &specials {
                attrs[i as usize] |= RSTRIP;
            }
            for (t, on) in [("</s>", true), ("<unk>", false), ("<s>", false), ("<|endoftext|>", false)] {
                if let Some(&i) = ids.get(t) {
                    if on {
                        attrs[i as usize] |= RSTRIP
                    } else {
                        attrs[i as usize] &= !RSTRIP
                    }
                }
            }
        }
        let mut special_lens: Vec<usize> = specials.iter().map(|&i| texts[i as usize].len()).collect();
        special_lens.dedup();

        let mut byte_tokens = [None; 256];
        for (b, slot) in byte_tokens.iter_mut().enumerate() {
            *slot = ids.get(&format!("<0x{b:02X}>")).copied();
            if slot.is_none() && b < 0x80 && model == Model::Spm {
                *slot = ids.get(&(b as u8 as char).to_string()).copied();
            }
        }

        let merges = match model {
            Model::Bpe => {
                let arr = g.array("tokenizer.ggml.merges")?;
                let strs = arr.iter().map(|v| v.as_str().unwrap_or(""));
                Some(bpe::Merges::new(&ids, n as u32, strs))
            }
            Model::Spm => None,
        };
        let byte_chars = unicode::byte_to_char_table();
        let byte_level = pre.as_ref().is_some_and(|p| p.byte_encode);
        let mut char_bytes: HashMap<char, u8> = HashMap::new();
        for (b, &c) in byte_chars.iter().enumerate() {
            char_bytes.insert(c, b as u8);
        }
        let pieces = (0..n)
            .map(|i| {
                let (t, a) = (&texts[i], attrs[i]);
                if a & BYTE != 0 {
                    if let Some(b) = t.strip_prefix("<0x").and_then(|h| h.strip_suffix('>')) {
                        if let Ok(b) = u8::from_str_radix(b, 16) {
                            return vec![b];
                        }
                    }
                }
                if a & NORMAL == 0 || (model == Model::Bpe && !byte_level && t.starts_with("<0x") && t.len() == 6) {
                    if let Some(b) = t.strip_prefix("<0x").and_then(|h| h.strip_suffix('>')) {
                        if let Ok(b) = u8::from_str_radix(b, 16) {
                            return vec![b];
                        }
                    }
                    return t.as_bytes().to_vec();
                }
                if byte_level {
                    let mut out = Vec::with_capacity(t.len());
                    for c in t.chars() {
                        match char_bytes.get(&c) {
                            Some(&b) => out.push(b),
                            None => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
                        }
                    }
                    out
                } else {
                    t.replace('\u{2581}', " ").into_bytes()
                }
            })
            .collect();

        Ok(Tokenizer {
            model,
            vocab: Vocab { texts, ids, scores, attrs, byte_tokens, unk, pre },
            merges,
            pieces,
            specials,
            special_lens,
            bos,
            eos,
            eot,
            eog,
            add_bos,
            add_eos,
            add_space_prefix,
            byte_chars,
        })
    }

    pub fn model(&self) -> Model {
        self.model
    }
    /// `tokenizer.ggml.pre` in effect (BPE vocabularies).
    pub fn pre_tokenizer(&self) -> Option<&str> {
        self.vocab.pre.as_ref().map(|p| p.name.as_str())
    }
    pub fn vocab_size(&self) -> usize {
        self.vocab.texts.len()
    }
    pub fn bos(&self) -> Option<u32> {
        self.bos
    }
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }
    pub fn eot(&self) -> Option<u32> {
        self.eot
    }
    pub fn unk(&self) -> Option<u32> {
        self.vocab.unk
    }
    /// Whether `encode(.., add_special = true, ..)` adds BOS / EOS.
    pub fn adds_bos(&self) -> bool {
        self.add_bos
    }
    pub fn adds_eos(&self) -> bool {
        self.add_eos
    }
    /// Whether generation should stop at `id` (EOS, EOT, `<|im_end|>`, `<end_of_turn>`, ...).
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }
    /// All end-of-generation ids, ascending.
    pub fn eog_ids(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.eog.iter().copied().collect();
        v.sort_unstable();
        v
    }
    /// Control tokens (`<|im_start|>`, `<bos>`, ...) and unknown tokens: rendered by `decode`,
    /// hidden by `decode_text`.
    pub fn is_control(&self, id: u32) -> bool {
        self.vocab.attrs.get(id as usize).is_some_and(|&a| a & (CONTROL | UNKNOWN) != 0)
    }
    /// The id of a token given its vocabulary text (e.g. "<|im_end|>", "Ġthe", "▁the").
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.token_id(text)
    }
    /// A token's text as stored in the vocabulary.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab.texts.get(id as usize).map(|s| s.as_str())
    }
    /// The bytes a token decodes to (not necessarily valid UTF-8 on its own); empty for bad ids.
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.pieces.get(id as usize).map(|p| p.as_slice()).unwrap_or(&[])
    }

    /// Token ids of `text`. `add_special` adds BOS/EOS where the metadata asks for them;
    /// `parse_special` turns control-token text (e.g. "<|im_start|>") into those tokens.
    pub fn encode(&self, text: &str, add_special: bool, parse_special: bool) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let mut prev_special = true;
        for frag in self.partition(text, parse_special) {
            match frag {
                Frag::Token(id) => {
                    out.push(id);
                    prev_special = true;
                }
                Frag::Text(s) => {
                    match self.model {
                        Model::Spm => {
                            let mut t = String::with_capacity(s.len() + 3);
                            if self.add_space_prefix && prev_special {
                                t.push(' ');
                            }
                            t.push_str(s);
                            spm::encode(&self.vocab, &t.replace(' ', "\u{2581}"), &mut out);
                        }
                        Model::Bpe => self.encode_bpe(s, &mut out),
                    }
                    prev_special = false;
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
    }

    fn encode_bpe(&self, text: &str, out: &mut Vec<u32>) {
        let (Some(pre), Some(merges)) = (self.vocab.pre.as_ref(), self.merges.as_ref()) else {
            return;
        };
        let escaped;
        let text = if pre.escape_whitespace {
            escaped = text.replace(' ', "\u{2581}");
            escaped.as_str()
        } else {
            text
        };
        let cps: Vec<u32> = text.chars().map(|c| c as u32).collect();
        let mut word = String::new();
        let mut chars = text.chars();
        for (s, e) in pre.split(&cps) {
            word.clear();
            if pre.byte_encode {
                let w: String = chars.by_ref().take(e - s).collect();
                for b in w.bytes() {
                    word.push(self.byte_chars[b as usize]);
                }
            } else {
                word.extend(chars.by_ref().take(e - s));
            }
            bpe::encode_word(&self.vocab, merges, &word, out);
        }
    }

    /// Cuts special tokens out of `text` like llama.cpp's tokenizer_st_partition: each special token,
    /// longest first, splits every remaining text fragment at each of its occurrences.
    fn partition<'t>(&self, text: &'t str, parse_special: bool) -> Vec<Frag<'t>> {
        let mut frags = vec![Frag::Text(text)];
        if text.is_empty() {
            return Vec::new();
        }
        // Only tokens that occur somewhere in the text can split anything.
        let mut present: HashSet<u32> = HashSet::new();
        let bytes = text.as_bytes();
        for &len in &self.special_lens {
            for start in 0..bytes.len().saturating_sub(len - 1) {
                if let Some(s) = text.get(start..start + len) {
                    if let Some(&id) = self.vocab.ids.get(s) {
                        present.insert(id);
                    }
                }
            }
        }
        for &id in &self.specials {
            let attr = self.vocab.attrs[id as usize];
            if !present.contains(&id) || (!parse_special && attr & (CONTROL | UNKNOWN) != 0) {
                continue;
            }
            let tok = self.vocab.texts[id as usize].as_str();
            let mut next = Vec::with_capacity(frags.len() + 2);
            for f in frags {
                let Frag::Text(mut rest) = f else {
                    next.push(f);
                    continue;
                };
                while let Some(at) = rest.find(tok) {
                    let left = &rest[..at];
                    if !left.is_empty() {
                        next.push(Frag::Text(left));
                    }
                    next.push(Frag::Token(id));
                    rest = &rest[at + tok.len()..];
                    if attr & RSTRIP != 0 {
                        rest = rest.trim_start_matches([' ', '\t', '\n', '\u{b}', '\u{c}', '\r']);
                    }
                }
                if !rest.is_empty() {
                    next.push(Frag::Text(rest));
                }
            }
            frags = next;
        }
        frags
    }

    /// Text of `ids`, special tokens included (as HF's `decode` and llama.cpp with special=true).
    /// Invalid UTF-8 becomes U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        self.decode_with(ids, false)
    }

    /// Text of `ids` without control tokens (what a chat UI shows).
    pub fn decode_text(&self, ids: &[u32]) -> String {
        self.decode_with(ids, true)
    }

    fn decode_with(&self, ids: &[u32], skip_control: bool) -> String {
        let mut bytes = Vec::new();
        let mut first = true;
        for &id in ids {
            if skip_control && self.is_control(id) {
                continue;
            }
            let p = self.token_bytes(id);
            bytes.extend_from_slice(self.strip_first(p, first, id));
            first = false;
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// SentencePiece models drop the space they prefixed from the first normal piece.
    fn strip_first<'p>(&self, p: &'p [u8], first: bool, id: u32) -> &'p [u8] {
        let normal = self.vocab.attrs.get(id as usize).is_some_and(|&a| a & NORMAL != 0);
        if first && self.model == Model::Spm && self.add_space_prefix && normal && p.first() == Some(&b' ') {
            &p[1..]
        } else {
            p
        }
    }

    /// A decoder that turns ids into text as they arrive, holding back split UTF-8 characters.
    pub fn stream(&self) -> StreamDecoder<'_> {
        StreamDecoder::new(self)
    }
}

enum Frag<'t> {
    Text(&'t str),
    Token(u32),
}
