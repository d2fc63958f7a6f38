//! When to stop generating and what text to release while streaming: stop strings across token
//! boundaries, end-of-generation tokens, the token limit. (The OpenAI-shaped objects live in
//! [`crate::openai`].)

pub use crate::openai::FinishReason;

/// What one pushed token (or text piece) releases to the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopStep {
    /// Text that is now certain to be part of the answer (may be empty).
    pub text: String,
    /// Set once generation must end; nothing more will be released after it.
    pub finish: Option<FinishReason>,
}

/// Streaming stop detection. Stop strings may span token boundaries, so text that could still grow
/// into a stop string is held back until it either completes one (the answer is truncated right
/// before it) or cannot anymore (it is released). The first stop string to *complete* wins, so the
/// result does not depend on how the text was split into tokens.
#[derive(Debug, Clone)]
pub struct StopChecker {
    stops: Vec<String>,
    eog: Vec<u32>,
    max_tokens: Option<usize>,
    held: String,
    tokens: usize,
    finish: Option<FinishReason>,
}

impl StopChecker {
    /// A checker for these stop strings (empty ones are ignored). Add end-of-generation ids and a
    /// token limit with [`StopChecker::with_eog`] / [`StopChecker::with_max_tokens`] to have
    /// [`StopChecker::push_token`] decide the finish reason too.
    pub fn new<S: AsRef<str>>(stops: &[S]) -> Self {
        StopChecker {
            stops: stops
                .iter()
                .map(|s| s.as_ref().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            eog: Vec::new(),
            max_tokens: None,
            held: String::new(),
            tokens: 0,
            finish: None,
        }
    }

    /// End-of-generation token ids (EOS, `<end_of_turn>`, `<|im_end|>`, …) for `push_token`.
    pub fn with_eog(mut self, eog_ids: &[u32]) -> Self {
        self.eog = eog_ids.to_vec();
        self
    }

    /// Limit on tokens fed through `push_token`; 0 is finished from the start.
    pub fn with_max_tokens(mut self, max_tokens: usize) -> Self {
        self.max_tokens = Some(max_tokens);
        if max_tokens == 0 && self.finish.is_none() {
            self.finish = Some(FinishReason::Length);
        }
        self
    }

    /// Feed decoded text (not counted as a token). Returns the text now safe to show and whether a
    /// stop string matched (the text then ends right before it). After a stop, returns ("", true).
    pub fn push(&mut self, piece: &str) -> (String, bool) {
        if self.finish.is_some() {
            return (String::new(), true);
        }
        let step = self.scan(piece);
        (step.text, step.finish.is_some())
    }

    /// Feed one generated token and its decoded text: stop strings, EOG ids (which contribute no
    /// text) and the token limit, with the finish reason once generation must end.
    pub fn push_token(&mut self, token: u32, piece: &str) -> StopStep {
        if self.finish.is_some() {
            return StopStep {
                text: String::new(),
                finish: self.finish,
            };
        }
        self.tokens += 1;
        let mut step = if self.eog.contains(&token) {
            self.finish = Some(FinishReason::Stop);
            StopStep {
                text: std::mem::take(&mut self.held),
                finish: self.finish,
            }
        } else {
            self.scan(piece)
        };
        if step.finish.is_none() && self.max_tokens.is_some_and(|m| self.tokens >= m) {
            self.finish = Some(FinishReason::Length);
            step.text.push_str(&std::mem::take(&mut self.held));
            step.finish = self.finish;
        }
        step
    }

    /// The stream ended without a stop string (EOG, length, cancel): release the held-back text.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish
    }
    pub fn is_finished(&self) -> bool {
        self.finish.is_some()
    }
    /// Tokens pushed so far (the usage's `completion_tokens`).
    pub fn tokens(&self) -> usize {
        self.tokens
    }
    /// Text currently held back as a possible stop-string start.
    pub fn held(&self) -> &str {
        &self.held
    }

    fn scan(&mut self, piece: &str) -> StopStep {
        self.held.push_str(piece);
        // The earliest-ending match; among those ending together, the longest (earliest start).
        let mut best: Option<(usize, usize)> = None; // (end, start)
        for s in &self.stops {
            if let Some(start) = self.held.find(s.as_str()) {
                let cand = (start + s.len(), start);
                if best.is_none_or(|b| (cand.0, cand.1) < b) {
                    best = Some(cand);
                }
            }
        }
        if let Some((_, start)) = best {
            self.held.truncate(start);
            self.finish = Some(FinishReason::Stop);
            return StopStep {
                text: std::mem::take(&mut self.held),
                finish: self.finish,
            };
        }
        let keep = self.longest_partial_suffix();
        let text = self.held[..self.held.len() - keep].to_string();
        self.held.drain(..self.held.len() - keep);
        StopStep { text, finish: None }
    }

    /// Length in bytes of the longest suffix of `held` that is a proper prefix of a stop string.
    fn longest_partial_suffix(&self) -> usize {
        let h = &self.held;
        let mut best = 0;
        for s in &self.stops {
            let max = (s.len() - 1).min(h.len());
            for k in (best + 1..=max).rev() {
                if s.is_char_boundary(k) && h.is_char_boundary(h.len() - k) && h.ends_with(&s[..k])
                {
                    best = k;
                    break;
                }
            }
        }
        best
    }
}
