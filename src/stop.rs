//! When to stop generating, what text to release while streaming, and the OpenAI-shaped objects
//! (`chat.completion`, `chat.completion.chunk`) the CLI prints as JSON and the browser receives
//! through serde-wasm-bindgen.

use crate::chat::Message;
use crate::sampler::SamplerConfig;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};

/// Why generation ended, as OpenAI spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens` reached.
    Length,
}

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

/// OpenAI's `stop`: one string or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StopSequences {
    One(String),
    Many(Vec<String>),
}

/// The body of `POST /v1/chat/completions` (the fields attend uses; others are ignored). `top_k`,
/// `min_p` and `repetition_penalty` are the usual llama.cpp / vLLM extensions.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatCompletionRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub messages: Vec<Message>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repetition_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopSequences>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    pub stream: bool,
    pub logprobs: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<u32>,
}

impl ChatCompletionRequest {
    /// Sampler settings, with OpenAI's defaults for whatever the request leaves out.
    pub fn sampler_config(&self) -> SamplerConfig {
        let d = SamplerConfig::default();
        SamplerConfig {
            temperature: self.temperature.unwrap_or(d.temperature),
            top_k: self.top_k.map_or(d.top_k, |k| k as usize),
            top_p: self.top_p.unwrap_or(d.top_p),
            min_p: self.min_p.unwrap_or(d.min_p),
            repetition_penalty: self.repetition_penalty.unwrap_or(d.repetition_penalty),
            presence_penalty: self.presence_penalty.unwrap_or(d.presence_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(d.frequency_penalty),
            seed: self.seed,
        }
    }

    pub fn stop_strings(&self) -> Vec<String> {
        match &self.stop {
            None => Vec::new(),
            Some(StopSequences::One(s)) => vec![s.clone()],
            Some(StopSequences::Many(v)) => v.clone(),
        }
    }

    /// `max_completion_tokens` (the newer name) or `max_tokens`.
    pub fn max_tokens(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// Reject values no sampler can honour, with a message naming the field.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: &str| Err(Error::Invalid(format!("chat completion request: {what}")));
        if self.messages.is_empty() {
            return bad("`messages` must not be empty");
        }
        let in_range = |v: Option<f32>, lo: f32, hi: f32| v.is_none_or(|v| v >= lo && v <= hi);
        if !in_range(self.temperature, 0.0, f32::MAX) {
            return bad("`temperature` must be a number >= 0");
        }
        if !in_range(self.top_p, 0.0, 1.0) {
            return bad("`top_p` must be between 0 and 1");
        }
        if !in_range(self.min_p, 0.0, 1.0) {
            return bad("`min_p` must be between 0 and 1");
        }
        if !in_range(self.repetition_penalty, f32::MIN_POSITIVE, f32::MAX) {
            return bad("`repetition_penalty` must be > 0");
        }
        if !in_range(self.presence_penalty, -2.0, 2.0)
            || !in_range(self.frequency_penalty, -2.0, 2.0)
        {
            return bad("`presence_penalty` and `frequency_penalty` must be between -2 and 2");
        }
        if self.top_logprobs.is_some_and(|k| k > 20) {
            return bad("`top_logprobs` must be at most 20");
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
    /// attend's extension: measured speeds of this answer (absent in OpenAI's objects).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefill_tokens_per_second: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decode_tokens_per_second: Option<f32>,
}

impl Usage {
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
            ..Default::default()
        }
    }
}

/// One alternative in OpenAI's `logprobs.content[].top_logprobs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Option<Vec<u8>>,
}

/// Log-probability of one generated token, with the most likely alternatives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenLogprob {
    pub token: String,
    pub logprob: f32,
    pub bytes: Option<Vec<u8>>,
    pub top_logprobs: Vec<TopLogprob>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChoiceLogprobs {
    pub content: Vec<TokenLogprob>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub index: u32,
    pub message: Message,
    pub finish_reason: Option<FinishReason>,
    pub logprobs: Option<ChoiceLogprobs>,
}

/// A whole (non-streamed) answer: `object` is `"chat.completion"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletion {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<Choice>,
    pub usage: Usage,
}

impl ChatCompletion {
    pub const OBJECT: &'static str = "chat.completion";

    /// A one-choice completion holding the assistant's `content`.
    pub fn new(
        id: impl Into<String>,
        created: u64,
        model: impl Into<String>,
        content: impl Into<String>,
        finish_reason: FinishReason,
        usage: Usage,
        logprobs: Option<ChoiceLogprobs>,
    ) -> Self {
        ChatCompletion {
            id: id.into(),
            object: Self::OBJECT.into(),
            created,
            model: model.into(),
            choices: vec![Choice {
                index: 0,
                message: Message::assistant(content),
                finish_reason: Some(finish_reason),
                logprobs,
            }],
            usage,
        }
    }
}

/// A streamed message fragment; absent fields are left out of the JSON, as OpenAI does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    pub index: u32,
    pub delta: Delta,
    pub finish_reason: Option<FinishReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<ChoiceLogprobs>,
}

/// One server-sent event of a streamed answer: `object` is `"chat.completion.chunk"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatCompletionChunk {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<ChunkChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl ChatCompletionChunk {
    pub const OBJECT: &'static str = "chat.completion.chunk";
}

/// Builds the chunks of one streamed answer: the first carries `role: "assistant"`, then content
/// deltas, then a final chunk with the finish reason (and usage, when given).
#[derive(Debug, Clone)]
pub struct ChunkStream {
    id: String,
    created: u64,
    model: String,
    sent_role: bool,
}

impl ChunkStream {
    pub fn new(id: impl Into<String>, created: u64, model: impl Into<String>) -> Self {
        ChunkStream {
            id: id.into(),
            created,
            model: model.into(),
            sent_role: false,
        }
    }

    fn chunk(
        &mut self,
        content: Option<String>,
        finish: Option<FinishReason>,
        usage: Option<Usage>,
    ) -> ChatCompletionChunk {
        let role = (!self.sent_role).then(|| "assistant".to_string());
        self.sent_role = true;
        ChatCompletionChunk {
            id: self.id.clone(),
            object: ChatCompletionChunk::OBJECT.into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta: Delta { role, content },
                finish_reason: finish,
                logprobs: None,
            }],
            usage,
        }
    }

    /// A content delta; `None` for empty text once the role has been sent (nothing to say).
    pub fn content(&mut self, text: &str) -> Option<ChatCompletionChunk> {
        if text.is_empty() && self.sent_role {
            return None;
        }
        Some(self.chunk(Some(text.to_string()), None, None))
    }

    /// A content delta with its tokens' log-probabilities.
    pub fn content_with_logprobs(
        &mut self,
        text: &str,
        logprobs: ChoiceLogprobs,
    ) -> ChatCompletionChunk {
        let mut c = self.chunk(Some(text.to_string()), None, None);
        c.choices[0].logprobs = Some(logprobs);
        c
    }

    /// The last chunk: empty delta, the finish reason, optional usage.
    pub fn finish(&mut self, reason: FinishReason, usage: Option<Usage>) -> ChatCompletionChunk {
        self.chunk(None, Some(reason), usage)
    }
}
