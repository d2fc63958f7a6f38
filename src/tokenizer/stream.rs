//! Incremental detokenization: text comes out only once whole UTF-8 characters are available.

use super::Tokenizer;

/// Turns token ids into text one at a time. A character split across tokens (e.g. byte-fallback
/// `<0xE4><0xB8><0xAD>`) is emitted once its last byte arrives; bytes that can never form a
/// character become U+FFFD right away, and an unfinished character at the end on `finish`.
pub struct StreamDecoder<'t> {
    tok: &'t Tokenizer,
    pending: Vec<u8>,
    first: bool,
    skip_control: bool,
}

impl<'t> StreamDecoder<'t> {
    pub(super) fn new(tok: &'t Tokenizer) -> Self {
        StreamDecoder {
            tok,
            pending: Vec::new(),
            first: true,
            skip_control: false,
        }
    }

    /// Leave control tokens (`<|im_end|>`, `<eos>`, ...) out of the text.
    pub fn skip_control(mut self, skip: bool) -> Self {
        self.skip_control = skip;
        self
    }

    /// Adds one token; returns the text that became complete (often empty).
    pub fn push(&mut self, id: u32) -> String {
        let first = std::mem::replace(&mut self.first, false);
        if self.skip_control && self.tok.is_control(id) {
            return String::new();
        }
        let piece = self.tok.strip_first(self.tok.token_bytes(id), first, id);
        self.pending.extend_from_slice(piece);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    out.push_str(s);
                    self.pending.clear();
                    break;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(std::str::from_utf8(&self.pending[..valid]).unwrap_or_default());
                    match e.error_len() {
                        // Bytes that no continuation can repair.
                        Some(bad) => {
                            out.push('\u{FFFD}');
                            self.pending.drain(..valid + bad);
                        }
                        // An unfinished character: wait for the next token.
                        None => {
                            self.pending.drain(..valid);
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    /// Flushes what is left (an unfinished character becomes U+FFFD) and resets.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        self.first = true;
        out
    }
}
