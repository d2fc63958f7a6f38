//! The OpenAI-shaped API: request bodies ([`request`]), the objects that answer them
//! (`chat.completion`, `chat.completion.chunk`, `text_completion`, usage, logprobs) and the code
//! that runs a request on an [`crate::engine::Engine`] ([`run`]). The CLI prints these objects as
//! JSON; the browser receives them through serde-wasm-bindgen. The same code runs in both places.

pub mod format;
pub mod request;
pub mod run;
pub mod toolparse;
pub mod tools;

use crate::chat::{Message, ToolCall};
use serde::{Deserialize, Serialize};

pub use request::{
    ChatCompletionRequest, CompletionRequest, IgnoredFields, Prompt, Sampling, StopSequences,
    StreamOptions,
};

/// Why generation ended. OpenAI's objects only know `stop` and `length`: a cancelled answer is
/// reported there as `stop` (what was said so far stands, see [`FinishReason::openai`]); the CLI's
/// JSON lines say `cancelled`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-generation token or a stop string.
    Stop,
    /// `max_tokens` reached (or the context is full).
    Length,
    /// The caller stopped the answer (a `false` from the token callback, Ctrl-C, an abort).
    Cancelled,
    /// The answer holds at least one tool call (`message.tool_calls`).
    ToolCalls,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
            FinishReason::ToolCalls => "tool_calls",
        }
    }

    /// The reason as OpenAI's objects carry it (`Cancelled` becomes `Stop`).
    pub fn openai(self) -> FinishReason {
        match self {
            FinishReason::Cancelled => FinishReason::Stop,
            r => r,
        }
    }
}

/// `usage.prompt_tokens_details`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens whose keys and values were reused from the previous request's KV cache
    /// (the common prefix of the two prompts), so they were not computed again.
    pub cached_tokens: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
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

    /// With `prompt_tokens_details.cached_tokens`.
    pub fn with_cached(mut self, cached_tokens: u32) -> Self {
        self.prompt_tokens_details = Some(PromptTokensDetails { cached_tokens });
        self
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
                finish_reason: Some(finish_reason.openai()),
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCallDelta>>,
}

/// A tool call in a streamed answer: sent whole, in one delta, once it has closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCallDelta {
    /// Position of the call in `message.tool_calls`.
    pub index: u32,
    #[serde(flatten)]
    pub call: ToolCall,
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
                delta: Delta {
                    role,
                    content,
                    tool_calls: None,
                },
                finish_reason: finish.map(FinishReason::openai),
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

    /// A delta holding one whole tool call.
    pub fn tool_call(&mut self, index: u32, call: ToolCall) -> ChatCompletionChunk {
        let mut c = self.chunk(None, None, None);
        c.choices[0].delta.tool_calls = Some(vec![ToolCallDelta { index, call }]);
        c
    }

    /// The last chunk: empty delta, the finish reason, optional usage.
    pub fn finish(&mut self, reason: FinishReason, usage: Option<Usage>) -> ChatCompletionChunk {
        self.chunk(None, Some(reason), usage)
    }
}

/// OpenAI's legacy completions `logprobs`: parallel lists, one entry per generated token.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CompletionLogprobs {
    pub tokens: Vec<String>,
    pub token_logprobs: Vec<f32>,
    /// The most likely alternatives of each step, token text → logprob.
    pub top_logprobs: Vec<serde_json::Map<String, serde_json::Value>>,
    /// Byte offset of each token's text in the completion.
    pub text_offset: Vec<u32>,
}

impl CompletionLogprobs {
    pub fn push(&mut self, lp: &TokenLogprob, offset: u32) {
        self.tokens.push(lp.token.clone());
        self.token_logprobs.push(lp.logprob);
        self.top_logprobs.push(
            lp.top_logprobs
                .iter()
                .map(|t| (t.token.clone(), serde_json::json!(t.logprob)))
                .collect(),
        );
        self.text_offset.push(offset);
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompletionChoice {
    pub index: u32,
    pub text: String,
    pub finish_reason: Option<FinishReason>,
    pub logprobs: Option<CompletionLogprobs>,
}

/// The answer to `POST /v1/completions` (plain text in, plain text out, no chat template), and
/// each chunk of a streamed one: `object` is `"text_completion"` in both, as OpenAI sends them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TextCompletion {
    pub id: String,
    pub object: String,
    pub created: u64,
    pub model: String,
    pub choices: Vec<CompletionChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

impl TextCompletion {
    pub const OBJECT: &'static str = "text_completion";

    pub fn new(
        id: impl Into<String>,
        created: u64,
        model: impl Into<String>,
        choice: CompletionChoice,
        usage: Option<Usage>,
    ) -> Self {
        TextCompletion {
            id: id.into(),
            object: Self::OBJECT.into(),
            created,
            model: model.into(),
            choices: vec![choice],
            usage,
        }
    }
}
