//! Chat templates: turn a list of messages into the prompt text a model was trained on.
//!
//! GGUF files carry the Hugging Face Jinja template in `tokenizer.chat_template`. We render it with
//! MiniJinja configured like transformers' `apply_chat_template` environment: `trim_blocks` and
//! `lstrip_blocks`, `loop_controls`, the `raise_exception` and `strftime_now` globals, a `tojson`
//! filter that prints like Python's `json.dumps` (not HTML-escaped), Python string/dict methods via
//! `minijinja_contrib::pycompat`, and Python-style printing of `None`/`True`/`False`. Files without a
//! template get a fallback chosen by architecture ([`ChatTemplate::fallback`]).

use crate::gguf::Gguf;
use crate::{Error, Result};
use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};
use serde::{Deserialize, Serialize};

mod pyfmt;
pub use pyfmt::strftime;

/// One chat turn, as in OpenAI's API and HF's `messages` list. When read from JSON, `content` may
/// also be `null` (empty) or OpenAI's list of parts, whose `text` parts are joined with newlines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    #[serde(default, deserialize_with = "content_text")]
    pub content: String,
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

impl Message {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Message {
            role: role.into(),
            content: content.into(),
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
}

/// ChatML (`<|im_start|>role\n…<|im_end|>\n`), used by SmolLM, Qwen2 and many fine-tunes. No default
/// system prompt: a model that wants one ships its own template.
pub const CHATML_TEMPLATE: &str = include_str!("chat/templates/chatml.jinja");

/// Gemma's turn format: roles `user`/`model`, a system message is folded into the first user turn,
/// contents are trimmed, and roles must alternate (as Google's Gemma 3 template demands).
pub const GEMMA_TEMPLATE: &str = include_str!("chat/templates/gemma.jinja");

/// A compiled chat template plus the special-token strings it may reference.
pub struct ChatTemplate {
    env: Environment<'static>,
    source: String,
    bos: String,
    eos: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("source", &self.source)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish()
    }
}

const TEMPLATE_NAME: &str = "chat_template";

impl ChatTemplate {
    /// Compile `template_src` (HF Jinja). `bos`/`eos` are the token *strings* exposed to the template
    /// as `bos_token` / `eos_token`. Syntax errors are reported here, not at render time.
    pub fn new(template_src: &str, bos: &str, eos: &str) -> Result<ChatTemplate> {
        let mut env = hf_environment();
        env.add_template_owned(TEMPLATE_NAME, rewrite_generation_tags(template_src))
            .map_err(template_error)?;
        Ok(ChatTemplate {
            env,
            source: template_src.to_string(),
            bos: bos.into(),
            eos: eos.into(),
        })
    }

    /// The template to use when a GGUF carries none: Gemma's format for the gemma family, ChatML for
    /// everything else (llama/SmolLM, qwen2, …), with that family's usual special tokens. (Built-in
    /// templates always compile; the `Result` keeps call sites uniform with [`ChatTemplate::new`].)
    pub fn fallback(arch: &str) -> Result<ChatTemplate> {
        let (bos, eos) = fallback_tokens(arch);
        ChatTemplate::new(Self::fallback_source(arch), bos, eos)
    }

    /// Source text of [`ChatTemplate::fallback`], for callers that have their own token strings.
    pub fn fallback_source(arch: &str) -> &'static str {
        if is_gemma(arch) {
            GEMMA_TEMPLATE
        } else {
            CHATML_TEMPLATE
        }
    }

    /// The GGUF's own template (`tokenizer.chat_template`) with its BOS/EOS token strings, or the
    /// architecture's fallback when the file has no template.
    pub fn from_gguf(gguf: &Gguf) -> Result<ChatTemplate> {
        let arch = gguf.architecture()?;
        let token = |key: &str| -> Option<String> {
            let id = gguf.get(key)?.as_u64()? as usize;
            gguf.get("tokenizer.ggml.tokens")?
                .as_array()?
                .get(id)?
                .as_str()
                .map(str::to_string)
        };
        let (fb_bos, fb_eos) = fallback_tokens(arch);
        let bos = token("tokenizer.ggml.bos_token_id").unwrap_or_else(|| fb_bos.to_string());
        let eos = token("tokenizer.ggml.eos_token_id").unwrap_or_else(|| fb_eos.to_string());
        match gguf.get("tokenizer.chat_template").and_then(|v| v.as_str()) {
            Some(src) => ChatTemplate::new(src, &bos, &eos),
            None => ChatTemplate::new(Self::fallback_source(arch), &bos, &eos),
        }
    }

    pub fn source(&self) -> &str {
        &self.source
    }
    pub fn bos_token(&self) -> &str {
        &self.bos
    }
    pub fn eos_token(&self) -> &str {
        &self.eos
    }

    /// Render the conversation exactly as `tokenizer.apply_chat_template(messages, tokenize=False,
    /// add_generation_prompt=…)` does. The result still contains the BOS text if the template emits
    /// it; the tokenizer must then not add another BOS.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let tmpl = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(template_error)?;
        let ctx = minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos,
            eos_token => &self.eos,
            tools => Value::from(()),
            documents => Value::from(()),
        };
        tmpl.render(ctx).map_err(template_error)
    }
}

fn is_gemma(arch: &str) -> bool {
    arch.starts_with("gemma")
}

fn fallback_tokens(arch: &str) -> (&'static str, &'static str) {
    if is_gemma(arch) {
        ("<bos>", "<eos>")
    } else {
        ("", "<|im_end|>")
    }
}

fn template_error(e: minijinja::Error) -> Error {
    let mut msg = format!("chat template: {e}");
    // `raise_exception` messages are the template author's words; keep them whole and first-class.
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    Error::Invalid(msg)
}

/// transformers' `{% generation %}…{% endgeneration %}` (assistant-mask tracking) renders its body
/// unchanged; turn it into an always-true `if` so whitespace control (`-`, `+`, trim/lstrip) works
/// exactly as it does on the original block tag.
fn rewrite_generation_tags(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(start) = rest.find("{%") {
        out.push_str(&rest[..start]);
        let tag = &rest[start..];
        let Some(end) = tag.find("%}") else {
            out.push_str(tag);
            return out;
        };
        let inner = &tag[2..end];
        let (lead, body) = split_marker(inner, true);
        let (body, trail) = split_marker(body, false);
        let replacement = match body.trim() {
            "generation" => Some("if true"),
            "endgeneration" => Some("endif"),
            _ => None,
        };
        match replacement {
            Some(r) => out.push_str(&format!("{{%{lead} {r} {trail}%}}")),
            None => out.push_str(&tag[..end + 2]),
        }
        rest = &tag[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Split a leading (or trailing) whitespace-control marker `-`/`+` off a tag body.
fn split_marker(s: &str, leading: bool) -> (&str, &str) {
    if leading {
        match s.chars().next() {
            Some('-' | '+') => (&s[..1], &s[1..]),
            _ => ("", s),
        }
    } else {
        match s.chars().last() {
            Some('-' | '+') => (&s[..s.len() - 1], &s[s.len() - 1..]),
            _ => (s, ""),
        }
    }
}

/// The Jinja environment of transformers' `_compile_jinja_template`, in MiniJinja.
fn hf_environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_keep_trailing_newline(false); // Jinja2's default: one trailing newline is dropped
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.set_unknown_method_callback(|state, value, method, args| {
        // pycompat's str.title() treats only punctuation/whitespace as word breaks; Python's breaks
        // after every uncased character.
        if method == "title" && args.is_empty() {
            if let Some(s) = value.as_str() {
                return Ok(Value::from(pyfmt::py_title(s)));
            }
        }
        minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
    });
    env.set_formatter(|out, _state, value| {
        // Jinja2 prints through Python's str(): None, True, False, ['a', 1], {'k': 'v'}.
        out.write_str(&pyfmt::py_str(value))?;
        Ok(())
    });
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_filter("tojson", tojson);
    env
}

fn raise_exception(message: Value) -> std::result::Result<Value, minijinja::Error> {
    let text = message
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| pyfmt::py_str(&message));
    Err(minijinja::Error::new(
        ErrorKind::InvalidOperation,
        format!("raise_exception: {text}"),
    ))
}

fn strftime_now(format: &str) -> std::result::Result<Value, minijinja::Error> {
    Ok(Value::from(strftime(format, unix_now_seconds())))
}

/// Seconds since the Unix epoch (UTC). `std::time::SystemTime` panics on wasm32-unknown-unknown,
/// so the browser asks JavaScript's clock instead.
fn unix_now_seconds() -> i64 {
    #[cfg(target_arch = "wasm32")]
    {
        (js_sys::Date::now() / 1000.0).floor() as i64
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// HF's `tojson`: `json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
fn tojson(value: Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false);
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    let indent = match kwargs.get::<Option<Value>>("indent")? {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match v.kind() {
            ValueKind::Number => {
                Some(" ".repeat(i64::try_from(v.clone()).unwrap_or(0).max(0) as usize))
            }
            ValueKind::String => Some(v.as_str().unwrap_or("").to_string()),
            _ => {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: bad indent",
                ))
            }
        },
    };
    let separators = match kwargs.get::<Option<Value>>("separators")? {
        Some(v) if !v.is_none() => {
            let parts: Vec<String> = v
                .try_iter()?
                .map(|p| p.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    minijinja::Error::new(ErrorKind::InvalidOperation, "tojson: bad separators")
                })?;
            match parts.as_slice() {
                [a, b] => Some((a.clone(), b.clone())),
                _ => {
                    return Err(minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: bad separators",
                    ))
                }
            }
        }
        _ => None,
    };
    kwargs.assert_all_used()?;
    let (item_sep, key_sep) = separators.unwrap_or_else(|| {
        // Python: (', ', ': ') without indent, (',', ': ') with it.
        (
            if indent.is_some() { "," } else { ", " }.to_string(),
            ": ".to_string(),
        )
    });
    let opts = pyfmt::JsonOpts {
        ensure_ascii,
        sort_keys,
        indent,
        item_sep,
        key_sep,
    };
    let mut out = String::new();
    pyfmt::json_dumps(&value, &opts, 0, &mut out)?;
    Ok(Value::from(out))
}
