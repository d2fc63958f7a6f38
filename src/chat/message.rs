//! Chat turns as OpenAI's API and HF's `messages` list carry them, tool calls and tool results
//! included, and the shape a chat template sees them in.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::{json, Value};

/// One chat turn, as in OpenAI's API and HF's `messages` list. When read from JSON, `content` may
/// also be `null` (empty) or OpenAI's list of parts, whose `text` parts are joined with newlines.
/// An assistant turn may carry `tool_calls`; a `role: "tool"` turn answers one by `tool_call_id`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default, deserialize_with = "content_text")]
    pub content: String,
    #[serde(default)]
    pub tool_calls: Option<Vec<ToolCall>>,
    #[serde(default)]
    pub tool_call_id: Option<String>,
}

/// A call the assistant made: OpenAI's `{id, type: "function", function: {name, arguments}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolCall {
    #[serde(default)]
    pub id: String,
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    pub function: FunctionCall,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// JSON text, as OpenAI sends it; read from an object too (HF's convention).
    #[serde(default, deserialize_with = "arguments_text")]
    pub arguments: String,
}

fn function_type() -> String {
    "function".into()
}

fn arguments_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => s,
        Value::Null => String::new(),
        v => v.to_string(),
    })
}

fn content_text<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<String, D::Error> {
    #[derive(Deserialize)]
    struct Part {
        #[serde(default)]
        text: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Content {
        Text(String),
        Parts(Vec<Part>),
        Null(()),
    }
    Ok(match Content::deserialize(d)? {
        Content::Text(s) => s,
        Content::Parts(parts) => parts
            .into_iter()
            .filter_map(|p| p.text)
            .collect::<Vec<_>>()
            .join("\n"),
        Content::Null(()) => String::new(),
    })
}

/// OpenAI's shape: `content` is `null` beside tool calls when there is no text; absent fields
/// are left out.
impl Serialize for Message {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("role", &self.role)?;
        match (&self.tool_calls, self.content.is_empty()) {
            (Some(_), true) => m.serialize_entry("content", &())?,
            _ => m.serialize_entry("content", &self.content)?,
        }
        if let Some(calls) = &self.tool_calls {
            m.serialize_entry("tool_calls", calls)?;
        }
        if let Some(id) = &self.tool_call_id {
            m.serialize_entry("tool_call_id", id)?;
        }
        m.end()
    }
}

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
            tool_calls: None,
            tool_call_id: None,
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
    /// A `role: "tool"` turn: the result of the call `tool_call_id`.
    pub fn tool(tool_call_id: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            tool_call_id: Some(tool_call_id.into()),
            ..Self::new("tool", content)
        }
    }

    /// Every text of the turn a visitor wrote (role, content, call names and arguments, ids).
    pub fn texts(&self) -> impl Iterator<Item = &str> + '_ {
        let calls = self.tool_calls.iter().flatten();
        [self.role.as_str(), &self.content]
            .into_iter()
            .chain(self.tool_call_id.as_deref())
            .chain(calls.flat_map(|c| [c.id.as_str(), &c.function.name, &c.function.arguments]))
    }

    /// The same turn with every text of [`Message::texts`] passed through `f`.
    pub fn map_texts(&self, mut f: impl FnMut(&str) -> String) -> Message {
        Message {
            role: f(&self.role),
            content: f(&self.content),
            tool_calls: self.tool_calls.as_ref().map(|calls| {
                calls
                    .iter()
                    .map(|c| ToolCall {
                        id: f(&c.id),
                        kind: c.kind.clone(),
                        function: FunctionCall {
                            name: f(&c.function.name),
                            arguments: f(&c.function.arguments),
                        },
                    })
                    .collect()
            }),
            tool_call_id: self.tool_call_id.as_deref().map(f),
        }
    }

    /// The turn as HF templates read it: `{role, content}`, plus `tool_calls` (each
    /// `{id, type, function: {name, arguments}}`, `arguments` as a JSON value when it parses, as
    /// llama.cpp and vLLM pass it: Qwen2.5's and Llama 3's templates print it with `tojson`) and
    /// `tool_call_id` only when present (Llama 3's template tests `'tool_calls' in message`).
    pub fn template_value(&self) -> Value {
        let mut v = json!({"role": self.role, "content": self.content});
        if let Some(calls) = &self.tool_calls {
            let calls: Vec<Value> = calls
                .iter()
                .map(|c| {
                    let args = serde_json::from_str::<Value>(&c.function.arguments)
                        .unwrap_or_else(|_| Value::String(c.function.arguments.clone()));
                    json!({"id": c.id, "type": c.kind,
                           "function": {"name": c.function.name, "arguments": args}})
                })
                .collect();
            v["tool_calls"] = Value::Array(calls);
        }
        if let Some(id) = &self.tool_call_id {
            v["tool_call_id"] = Value::String(id.clone());
        }
        v
    }
}
