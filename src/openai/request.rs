//! Request bodies of `POST /v1/chat/completions` and `POST /v1/completions`, how they are read
//! (unknown fields are ignored, as OpenAI does, but listed so the caller can warn) and checked
//! (a value attend cannot honour is an [`Error::BadRequest`] naming the field, never a panic and
//! never silently replaced).

use crate::chat::Message;
use crate::sampler::SamplerConfig;
use crate::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// At most this many stop strings, each at most [`MAX_STOP_BYTES`] long.
pub const MAX_STOPS: usize = 16;
pub const MAX_STOP_BYTES: usize = 1024;
/// At most this many `logit_bias` entries.
pub const MAX_LOGIT_BIAS: usize = 4096;
/// `top_logprobs` (chat) and `logprobs` (completions) go up to this, as in OpenAI's API.
pub const MAX_TOP_LOGPROBS: u32 = 20;

/// OpenAI's `stop`: one string or a list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StopSequences {
    One(String),
    Many(Vec<String>),
}

/// `stream_options`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamOptions {
    /// Send `usage` on the last chunk of a streamed answer.
    pub include_usage: bool,
}

/// The sampling and stopping fields both endpoints share. `top_k`, `min_p` and
/// `repetition_penalty` are the usual llama.cpp / vLLM extensions. Integers are read as `i64` so
/// that a negative value is reported as such (naming the field) rather than as a type error.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Sampling {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repetition_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f32>,
    /// Token id (as a string, as JSON object keys are) → bias added to its logit, -100..=100.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logit_bias: Option<BTreeMap<String, f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopSequences>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<i64>,
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
}

/// Fields of [`Sampling`] (each request type lists them among its known fields).
const SAMPLING_FIELDS: &[&str] = &[
    "max_tokens",
    "temperature",
    "top_p",
    "top_k",
    "min_p",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "stop",
    "seed",
    "n",
    "stream",
    "stream_options",
];

/// OpenAI fields attend accepts but that change nothing here (listed as ignored, like unknown
/// ones). `model` is not among them: OpenAI's clients always send it, and the loaded model answers.
const NO_EFFECT: &[&str] = &[
    "user",
    "store",
    "metadata",
    "service_tier",
    "parallel_tool_calls",
];

fn bad<T>(param: &str, message: impl Into<String>) -> Result<T> {
    Err(Error::bad_request(param, message))
}

impl Sampling {
    /// Sampler settings, with OpenAI's defaults for whatever the request leaves out.
    pub fn sampler_config(&self) -> SamplerConfig {
        let d = SamplerConfig::default();
        let mut logit_bias: Vec<(u32, f32)> = self
            .logit_bias
            .iter()
            .flatten()
            .filter_map(|(k, &v)| Some((k.trim().parse().ok()?, v)))
            .collect();
        logit_bias.sort_by_key(|b| b.0);
        SamplerConfig {
            temperature: self.temperature.unwrap_or(d.temperature),
            top_k: self.top_k.map_or(d.top_k, |k| k.max(0) as usize),
            top_p: self.top_p.unwrap_or(d.top_p),
            min_p: self.min_p.unwrap_or(d.min_p),
            repetition_penalty: self.repetition_penalty.unwrap_or(d.repetition_penalty),
            presence_penalty: self.presence_penalty.unwrap_or(d.presence_penalty),
            frequency_penalty: self.frequency_penalty.unwrap_or(d.frequency_penalty),
            seed: self.seed.map(|s| s as u64),
            logit_bias,
        }
    }

    pub fn stop_strings(&self) -> Vec<String> {
        match &self.stop {
            None => Vec::new(),
            Some(StopSequences::One(s)) => vec![s.clone()],
            Some(StopSequences::Many(v)) => v.clone(),
        }
    }

    /// Whether a streamed answer ends with a chunk carrying `usage`.
    pub fn include_usage(&self) -> bool {
        self.stream_options.is_some_and(|o| o.include_usage)
    }

    /// Reject values no sampler can honour, naming the field.
    pub fn validate(&self) -> Result<()> {
        let finite_in = |v: Option<f32>, lo: f32, hi: f32| {
            v.is_none_or(|v| v.is_finite() && v >= lo && v <= hi)
        };
        if self.max_tokens.is_some_and(|m| m < 0) {
            return bad("max_tokens", "`max_tokens` must be >= 0");
        }
        if !finite_in(self.temperature, 0.0, f32::MAX) {
            return bad("temperature", "`temperature` must be a finite number >= 0");
        }
        if self
            .top_p
            .is_some_and(|p| !(p.is_finite() && p > 0.0 && p <= 1.0))
        {
            return bad("top_p", "`top_p` must be in (0, 1]");
        }
        if self.top_k.is_some_and(|k| k < 0) {
            return bad("top_k", "`top_k` must be >= 0 (0 turns it off)");
        }
        if !finite_in(self.min_p, 0.0, 1.0) {
            return bad("min_p", "`min_p` must be between 0 and 1");
        }
        if !finite_in(self.repetition_penalty, f32::MIN_POSITIVE, f32::MAX) {
            return bad("repetition_penalty", "`repetition_penalty` must be > 0");
        }
        for (name, v) in [
            ("presence_penalty", self.presence_penalty),
            ("frequency_penalty", self.frequency_penalty),
        ] {
            if !finite_in(v, -2.0, 2.0) {
                return bad(name, format!("`{name}` must be between -2 and 2"));
            }
        }
        let stops = self.stop_strings();
        if stops.len() > MAX_STOPS {
            return bad(
                "stop",
                format!("`stop` has {} strings, more than {MAX_STOPS}", stops.len()),
            );
        }
        if stops.iter().any(|s| s.len() > MAX_STOP_BYTES) {
            return bad(
                "stop",
                format!("a `stop` string is longer than {MAX_STOP_BYTES} bytes"),
            );
        }
        if let Some(bias) = &self.logit_bias {
            if bias.len() > MAX_LOGIT_BIAS {
                return bad(
                    "logit_bias",
                    format!("`logit_bias` has more than {MAX_LOGIT_BIAS} entries"),
                );
            }
            for (k, &v) in bias {
                if k.trim().parse::<u32>().is_err() {
                    return bad(
                        "logit_bias",
                        format!("`logit_bias` key '{k}' is not a token id"),
                    );
                }
                if !(v.is_finite() && (-100.0..=100.0).contains(&v)) {
                    return bad(
                        "logit_bias",
                        format!("`logit_bias` value for token {k} must be between -100 and 100"),
                    );
                }
            }
        }
        if self.n.is_some_and(|n| n != 1) {
            return bad("n", "`n` must be 1 (one choice per request)");
        }
        Ok(())
    }

    /// Token ids in `logit_bias` must exist in the model's vocabulary.
    pub fn check_vocab(&self, vocab: u32) -> Result<()> {
        let bias = self.sampler_config().logit_bias;
        if let Some(&(id, _)) = bias.iter().find(|b| b.0 >= vocab) {
            return bad(
                "logit_bias",
                format!("`logit_bias` token {id} is outside the vocabulary ({vocab})"),
            );
        }
        Ok(())
    }
}

/// A request body: which fields it knows, and its checks.
pub trait Request: serde::de::DeserializeOwned + Default {
    /// Every field the type reads (the flattened [`Sampling`] ones included).
    fn known(field: &str) -> bool;
    fn validate(&self) -> Result<()>;
}

/// Fields of a request that attend ignores: unknown to it, or OpenAI's that have no effect here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IgnoredFields(pub Vec<String>);

impl IgnoredFields {
    /// Sorted, from the keys of a request object.
    pub fn of<'k, R: Request>(keys: impl IntoIterator<Item = &'k str>) -> IgnoredFields {
        let mut v: Vec<String> = keys
            .into_iter()
            .filter(|k| !R::known(k) || NO_EFFECT.contains(k))
            .map(str::to_string)
            .collect();
        v.sort();
        IgnoredFields(v)
    }
    /// The warning to print, if any field was ignored.
    pub fn warning(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| {
            format!(
                "attend: ignoring request fields it does not use: {}",
                self.0.join(", ")
            )
        })
    }
}

/// Read a request from JSON: unknown fields are listed (not an error; the warning goes to
/// [`crate::log_line`]); a field of the wrong type is a [`Error::BadRequest`] naming it; the
/// values are then validated.
pub fn parse_json<R: Request>(v: &serde_json::Value) -> Result<(R, IgnoredFields)> {
    let Some(obj) = v.as_object() else {
        return bad("body", "the request must be a JSON object");
    };
    let ignored = IgnoredFields::of::<R>(obj.keys().map(String::as_str));
    let r: R = match serde_json::from_value(v.clone()) {
        Ok(r) => r,
        Err(e) => {
            // Find the field: the first one that fails on its own.
            for (k, val) in obj {
                let one =
                    serde_json::Value::Object([(k.clone(), val.clone())].into_iter().collect());
                if let Err(e) = serde_json::from_value::<R>(one) {
                    return bad(k, format!("`{k}`: {e}"));
                }
            }
            return bad("body", e.to_string());
        }
    };
    r.validate()?;
    if let Some(w) = ignored.warning() {
        crate::log_line(&w);
    }
    Ok((r, ignored))
}

/// The body of `POST /v1/chat/completions`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatCompletionRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub messages: Vec<Message>,
    /// The newer name of `max_tokens` (wins when both are given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<i64>,
    pub logprobs: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<i64>,
    /// `{"type": "text"}`, `{"type": "json_object"}` or `{"type": "json_schema", "json_schema":
    /// {name, schema, strict}}` (structured output, see [`super::format`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<serde_json::Value>,
    /// Functions the model may call (see [`super::tools`]): shown to the model through its chat
    /// template, its calls returned in `message.tool_calls`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<serde_json::Value>>,
    /// `"none"`, `"auto"`, `"required"` or `{type: "function", function: {name}}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<serde_json::Value>,
    #[serde(flatten)]
    pub sampling: Sampling,
}

impl ChatCompletionRequest {
    /// `max_completion_tokens` (the newer name) or `max_tokens`.
    pub fn max_tokens(&self) -> Option<u32> {
        self.max_completion_tokens
            .or(self.sampling.max_tokens)
            .map(|m| m.clamp(0, u32::MAX as i64) as u32)
    }
    pub fn sampler_config(&self) -> SamplerConfig {
        self.sampling.sampler_config()
    }
    pub fn stop_strings(&self) -> Vec<String> {
        self.sampling.stop_strings()
    }
    /// How many alternatives per token to return (0 without `logprobs`).
    pub fn top_logprobs(&self) -> usize {
        if self.logprobs {
            self.top_logprobs.unwrap_or(0).max(0) as usize
        } else {
            0
        }
    }
}

impl Request for ChatCompletionRequest {
    fn known(field: &str) -> bool {
        SAMPLING_FIELDS.contains(&field)
            || [
                "model",
                "messages",
                "max_completion_tokens",
                "logprobs",
                "top_logprobs",
                "response_format",
                "tools",
                "tool_choice",
            ]
            .contains(&field)
    }

    fn validate(&self) -> Result<()> {
        if self.messages.is_empty() {
            return bad("messages", "`messages` must not be empty");
        }
        if self.max_completion_tokens.is_some_and(|m| m < 0) {
            return bad(
                "max_completion_tokens",
                "`max_completion_tokens` must be >= 0",
            );
        }
        self.sampling.validate()?;
        if let Some(k) = self.top_logprobs {
            if !(0..=MAX_TOP_LOGPROBS as i64).contains(&k) {
                return bad(
                    "top_logprobs",
                    format!("`top_logprobs` must be between 0 and {MAX_TOP_LOGPROBS}"),
                );
            }
            if k > 0 && !self.logprobs {
                return bad("top_logprobs", "`top_logprobs` needs `logprobs: true`");
            }
        }
        super::format::constraint(self.response_format.as_ref())?;
        let tools = super::tools::tools(self.tools.as_deref())?;
        let choice = super::tools::choice(self.tool_choice.as_ref(), &tools)?;
        let forced = super::tools::forced(&tools, &choice)?;
        let json_format = (self.response_format.as_ref())
            .is_some_and(|f| f.get("type").and_then(|t| t.as_str()) != Some("text"));
        if !forced.is_empty() && json_format {
            return bad(
                "response_format",
                "`response_format` cannot be combined with a `tool_choice` that forces a call",
            );
        }
        for (i, m) in self.messages.iter().enumerate() {
            if m.role == "tool" && m.tool_call_id.as_deref().is_none_or(str::is_empty) {
                let p = format!("messages[{i}].tool_call_id");
                return bad(&p, format!("`{p}` is needed in a `role: \"tool\"` message"));
            }
            for (j, c) in m.tool_calls.iter().flatten().enumerate() {
                if c.kind != "function" {
                    let p = format!("messages[{i}].tool_calls[{j}].type");
                    return bad(&p, format!("`{p}` must be \"function\""));
                }
            }
        }
        Ok(())
    }
}

/// OpenAI's completions `prompt`: text, a list holding one text, or token ids.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Prompt {
    Text(String),
    Ids(Vec<u32>),
    Texts(Vec<String>),
}

impl Default for Prompt {
    fn default() -> Self {
        Prompt::Text(String::new())
    }
}

/// The body of `POST /v1/completions`: plain text continued, no chat template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompletionRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub prompt: Prompt,
    /// Alternatives per token to return with each token's logprob (0..=20); absent: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<i64>,
    /// Prepend the prompt to the returned text.
    pub echo: bool,
    /// attend's extension: read special-token text (`<|im_start|>`) in the prompt as those
    /// tokens, as transformers' tokenizer and llama.cpp do (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parse_special: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_of: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suffix: Option<String>,
    /// attend's extension: structured output as in chat completions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<serde_json::Value>,
    #[serde(flatten)]
    pub sampling: Sampling,
}

impl CompletionRequest {
    /// OpenAI's default for completions is 16 tokens.
    pub const DEFAULT_MAX_TOKENS: u32 = 16;

    pub fn max_tokens(&self) -> u32 {
        self.sampling
            .max_tokens
            .map_or(Self::DEFAULT_MAX_TOKENS, |m| {
                m.clamp(0, u32::MAX as i64) as u32
            })
    }
    pub fn parse_special(&self) -> bool {
        self.parse_special.unwrap_or(true)
    }
    /// How many alternatives per token to return, and whether logprobs were asked for at all.
    pub fn logprobs(&self) -> Option<usize> {
        self.logprobs.map(|k| k.max(0) as usize)
    }
}

impl Request for CompletionRequest {
    fn known(field: &str) -> bool {
        SAMPLING_FIELDS.contains(&field)
            || [
                "model",
                "prompt",
                "logprobs",
                "echo",
                "parse_special",
                "best_of",
                "suffix",
                "response_format",
            ]
            .contains(&field)
    }

    fn validate(&self) -> Result<()> {
        match &self.prompt {
            Prompt::Text(t) if t.is_empty() => return bad("prompt", "`prompt` must not be empty"),
            Prompt::Ids(ids) if ids.is_empty() => {
                return bad("prompt", "`prompt` must not be empty")
            }
            Prompt::Texts(t) if t.len() != 1 || t[0].is_empty() => {
                return bad(
                    "prompt",
                    "`prompt` must be one non-empty text (batches are not supported)",
                )
            }
            _ => {}
        }
        self.sampling.validate()?;
        if self
            .logprobs
            .is_some_and(|k| !(0..=MAX_TOP_LOGPROBS as i64).contains(&k))
        {
            return bad(
                "logprobs",
                format!("`logprobs` must be between 0 and {MAX_TOP_LOGPROBS}"),
            );
        }
        if self.best_of.is_some_and(|b| b != 1) {
            return bad("best_of", "`best_of` must be 1");
        }
        if self.suffix.as_ref().is_some_and(|s| !s.is_empty()) {
            return bad("suffix", "`suffix` (insertion) is not supported");
        }
        super::format::constraint(self.response_format.as_ref())?;
        Ok(())
    }
}
