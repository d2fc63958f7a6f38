//! Tokenizers built from GGUF metadata, matching llama.cpp's `llama-vocab.cpp` token for token.
//!
//! - `tokenizer.ggml.model = gpt2`: byte-level BPE with merge ranks, pre-tokenized by the regexes
//!   `tokenizer.ggml.pre` names (`pretokenize`); `gemma4`: the same BPE on raw UTF-8 with `▁`.
//! - `tokenizer.ggml.model = llama`: SentencePiece-style BPE over scores with `<0xXX>` byte fallback.
//!
//! Special tokens (control, user-defined, unknown) are cut out of the text first, longest first, as
//! llama.cpp's `tokenizer_st_partition`; user-defined ones always, control ones only with
//! `parse_special`. End-of-generation ids are found by token text like llama.cpp does.
//!
//! This is an own compact implementation rather than the `tokenizers` crate: the pre-tokenizer
//! regexes run on a ~350-line backtracking engine (`regex`) with llama.cpp's own Unicode category
//! table (~9 KB), so the wasm bundle stays small and classification agrees with llama.cpp exactly.

mod bpe;
mod load;
mod pretokenize;
mod regex;
mod special;
mod spm;
mod stream;
mod unicode;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

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
    /// Finds the texts of `specials` (by index) in a prompt in one pass.
    special_matcher: special::Matcher,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    eog: HashSet<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    byte_chars: [char; 256],
}

impl Tokenizer {
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
        self.vocab
            .attrs
            .get(id as usize)
            .is_some_and(|&a| a & (CONTROL | UNKNOWN) != 0)
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
        self.pieces
            .get(id as usize)
            .map(|p| p.as_slice())
            .unwrap_or(&[])
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
        let mut frags = Vec::new();
        let mut at = 0;
        for r in self.special_regions(text, parse_special) {
            if r.start > at {
                frags.push(Frag::Text(&text[at..r.start]));
            }
            frags.push(Frag::Token(r.id));
            at = r.skip_to;
        }
        if at < text.len() {
            frags.push(Frag::Text(&text[at..]));
        }
        frags
    }

    /// The special tokens [`Tokenizer::partition`] cuts out of `text`, in text order.
    ///
    /// Same result as llama.cpp's loop (for each special token, longest first: split every text
    /// fragment left at each non-overlapping occurrence, left to right), computed from all
    /// occurrences at once: an occurrence is taken when it overlaps no region taken before it in
    /// that order (tokens and the whitespace RSTRIP tokens swallow).
    ///
    /// Occurrences are kept as runs of evenly spaced starts per token, so nested tokens over a long
    /// repetition (Gemma's user-defined "\n" … "\n"×31 over a megabyte of newlines: 31 million
    /// occurrences) take a few runs of memory, and a run is walked by jumping over the regions
    /// already taken. Time: the automaton's pass (text plus occurrences), then the taken regions
    /// and skips (times a log for the region map), instead of text × special tokens.
    fn special_regions(&self, text: &str, parse_special: bool) -> Vec<Region> {
        /// Starts `start + i * step` for `i < count` of the token `rank`.
        struct Run {
            rank: usize,
            start: usize,
            step: usize,
            count: usize,
        }
        let mut runs: Vec<Run> = Vec::new();
        // Index in `runs` of each token's last run + 1 (0: none yet); allocated on the first hit.
        let mut last_run: Vec<usize> = Vec::new();
        self.special_matcher
            .find_all(text.as_bytes(), |start, rank| {
                let attr = self.vocab.attrs[self.specials[rank] as usize];
                if !parse_special && attr & (CONTROL | UNKNOWN) != 0 {
                    return;
                }
                if last_run.is_empty() {
                    last_run = vec![0; self.specials.len()];
                }
                if let Some(r) = last_run[rank].checked_sub(1) {
                    let run = &mut runs[r];
                    if run.count == 1 {
                        run.step = start - run.start;
                        run.count = 2;
                        return;
                    }
                    if start == run.start + run.step * run.count {
                        run.count += 1;
                        return;
                    }
                }
                last_run[rank] = runs.len() + 1;
                runs.push(Run {
                    rank,
                    start,
                    step: 1,
                    count: 1,
                });
            });
        if runs.is_empty() {
            return Vec::new();
        }
        // By token priority; a token's runs stay in text order (the sort is stable).
        runs.sort_by_key(|r| r.rank);
        let bytes = text.as_bytes();
        // Taken regions by start: (end including swallowed whitespace, end of the token, id).
        let mut taken: BTreeMap<usize, (usize, usize, u32)> = BTreeMap::new();
        let mut r = 0;
        while r < runs.len() {
            let rank = runs[r].rank;
            let id = self.specials[rank];
            let len = self.vocab.texts[id as usize].len();
            let rstrip = self.vocab.attrs[id as usize] & RSTRIP != 0;
            let mut searched_to = 0; // `rest.find(tok)` resumes after the previous occurrence
            while r < runs.len() && runs[r].rank == rank {
                let run = &runs[r];
                r += 1;
                // The first candidate of the run starting at or after `at`.
                let first_from = |at: usize| -> usize {
                    if at <= run.start {
                        0
                    } else {
                        (at - run.start).div_ceil(run.step)
                    }
                };
                let mut i = first_from(searched_to);
                while i < run.count {
                    let start = run.start + i * run.step;
                    let end = start + len;
                    // Regions are disjoint, so only the last one starting before `end` can
                    // overlap; every candidate of this token starting before its end does too.
                    if let Some((_, &(e, _, _))) = taken.range(..end).next_back() {
                        if e > start {
                            i = first_from(e).max(i + 1);
                            continue;
                        }
                    }
                    let mut skip_to = end;
                    if rstrip {
                        // Whitespace up to the end of this text fragment (the next taken region).
                        let limit = taken.range(end..).next().map_or(bytes.len(), |(&s, _)| s);
                        while skip_to < limit
                            && matches!(bytes[skip_to], b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
                        {
                            skip_to += 1;
                        }
                    }
                    taken.insert(start, (skip_to, end, id));
                    searched_to = skip_to;
                    i = first_from(searched_to).max(i + 1);
                }
            }
        }
        taken
            .into_iter()
            .map(|(start, (skip_to, end, id))| Region {
                start,
                end,
                skip_to,
                id,
            })
            .collect()
    }

    /// Byte ranges of the control (and unknown) tokens `encode(text, _, true)` turns into token ids:
    /// the text `encode(text, _, false)` would tokenize as plain text instead.
    pub fn control_token_ranges(&self, text: &str) -> Vec<Range<usize>> {
        self.special_regions(text, true)
            .into_iter()
            .filter(|r| self.is_control(r.id))
            .map(|r| r.start..r.end)
            .collect()
    }

    /// `encode(text, add_special, true)`, except that every stretch of text between control tokens
    /// is first passed through `plain` and then tokenized with control tokens *not* parsed. For
    /// text built from a trusted template with untrusted parts that were replaced by markers:
    /// `plain` puts the parts back, and control-token text in them stays text. With
    /// `plain = |s| s.to_string()` this is exactly `encode(text, add_special, true)`.
    pub fn encode_with_plain_parts(
        &self,
        text: &str,
        add_special: bool,
        mut plain: impl FnMut(&str) -> String,
    ) -> Vec<u32> {
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.bos);
        }
        let mut at = 0;
        for r in self.special_regions(text, true) {
            if !self.is_control(r.id) {
                continue; // user-defined tokens: found again below, in the plain text
            }
            if r.start > at {
                out.extend(self.encode(&plain(&text[at..r.start]), false, false));
            }
            out.push(r.id);
            at = r.skip_to;
        }
        if at < text.len() {
            out.extend(self.encode(&plain(&text[at..]), false, false));
        }
        if add_special && self.add_eos {
            out.extend(self.eos);
        }
        out
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
            // Like llama_detokenize, only the very first token may lose its prefixed space, even
            // when it is a hidden control token.
            let was_first = std::mem::replace(&mut first, false);
            if skip_control && self.is_control(id) {
                continue;
            }
            bytes.extend_from_slice(self.strip_first(self.token_bytes(id), was_first, id));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// SentencePiece models drop the space they prefixed from the first normal piece.
    fn strip_first<'p>(&self, p: &'p [u8], first: bool, id: u32) -> &'p [u8] {
        let normal = self
            .vocab
            .attrs
            .get(id as usize)
            .is_some_and(|&a| a & NORMAL != 0);
        if first
            && self.model == Model::Spm
            && self.add_space_prefix
            && normal
            && p.first() == Some(&b' ')
        {
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

/// A special token found in a text: its bytes `start..end`, then whitespace it swallows up to
/// `skip_to` (RSTRIP tokens), and its id.
struct Region {
    start: usize,
    end: usize,
    skip_to: usize,
    id: u32,
}

#[cfg(test)]
mod tests;
