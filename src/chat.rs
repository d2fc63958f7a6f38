//! Chat templates: turn a list of messages into the prompt text a model was trained on.
//!
//! GGUF files carry the Hugging Face Jinja template in `tokenizer.chat_template`. We render it with
//! MiniJinja configured like transformers' `apply_chat_template` environment: `trim_blocks` and
//! `lstrip_blocks`, `loop_controls`, the `raise_exception` and `strftime_now` globals, a `tojson`
//! filter that prints like Python's `json.dumps` (not HTML-escaped), Python string/dict methods via
//! `minijinja_contrib::pycompat`, and Python-style printing of `None`/`True`/`False`. Files without a
//! template get a fallback chosen by architecture ([`ChatTemplate::fallback`]).

use std::collections::{HashMap, HashSet};

use crate::gguf::Gguf;
use crate::tokenizer::Tokenizer;
use crate::{Error, Result};
use minijinja::machinery::{get_compiled_template, make_string_output, Vm};
use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, ErrorKind, UndefinedBehavior};

mod filters;
mod message;
mod namespace;
mod pyfmt;
mod sandbox;
pub use message::{FunctionCall, Message, ToolCall};
pub use pyfmt::strftime;
pub use sandbox::{MAX_SEQ_ITEMS, MAX_STRING_BYTES, RAW_BUDGET_BYTES, RENDER_BUDGET_BYTES};

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

// Limits for templates from untrusted files (see README "Limits and guarantees"). Every limit is an
// `Error` naming it, and the template stays usable for the next rendering.

/// Largest template source accepted (real chat templates are a few KB to a few tens of KB).
pub const MAX_TEMPLATE_BYTES: usize = 1 << 20;
/// MiniJinja fuel per rendering: about one unit per executed instruction. The golden templates
/// spend up to ~50 per message (2,000 turns: under 100,000), so this fits conversations far past
/// [`MAX_CHAT_INPUT_BYTES`], and stops a template that loops (nested `range`s, `loop(recursive)`)
/// in about a second.
pub const TEMPLATE_FUEL: u64 = 20_000_000;
/// Deepest template recursion (macro calls and recursive loops count several levels each).
/// MiniJinja's default is 500; less leaves more stack headroom (wasm stacks are small) and is far
/// above what real templates use (schema-printing macros recurse a few levels).
pub const TEMPLATE_RECURSION_LIMIT: usize = 200;
/// Largest rendered prompt, in bytes.
pub const MAX_RENDER_BYTES: usize = 2 << 20;
/// Largest conversation accepted for rendering and tokenizing: the bytes of all roles and contents.
pub const MAX_CHAT_INPUT_BYTES: usize = 1 << 20;
/// Largest `indent` of the `tojson` filter (Python would happily allocate gigabytes).
pub const MAX_INDENT: usize = 64;

impl ChatTemplate {
    /// Compile `template_src` (HF Jinja). `bos`/`eos` are the token *strings* exposed to the template
    /// as `bos_token` / `eos_token`. Syntax errors are reported here, not at render time.
    pub fn new(template_src: &str, bos: &str, eos: &str) -> Result<ChatTemplate> {
        if template_src.len() > MAX_TEMPLATE_BYTES {
            return Err(Error::Invalid(format!(
                "chat template: the template has {} bytes, over the limit of {MAX_TEMPLATE_BYTES}",
                template_src.len()
            )));
        }
        sandbox::check_constant_folding(template_src)
            .map_err(|e| Error::Invalid(format!("chat template: {e}")))?;
        let mut env = hf_environment();
        env.add_template_owned(TEMPLATE_NAME, namespace::rewrite_tags(template_src)?)
            .map_err(template_error)?;
        namespace::verify_namespace_stores(&env)?;
        let longest = {
            let tmpl = env.get_template(TEMPLATE_NAME).map_err(template_error)?;
            let compiled = get_compiled_template(&tmpl);
            std::iter::once(&compiled.instructions)
                .chain(compiled.blocks.values())
                .map(sandbox::longest_literal)
                .max()
                .unwrap_or(0)
        };
        env.set_fuel(Some(sandbox::fuel_for(TEMPLATE_FUEL, longest)));
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
        self.render_with_tools(messages, None, add_generation_prompt)
    }

    /// [`ChatTemplate::render`] with `tools` (OpenAI's `{type: "function", function: {…}}`
    /// objects) handed to the template as `apply_chat_template(messages, tools=…)` does.
    pub fn render_with_tools(
        &self,
        messages: &[Message],
        tools: Option<&[serde_json::Value]>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        let tmpl = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(template_error)?;
        let ctx = minijinja::context! {
            messages => messages.iter().map(Message::template_value).collect::<Vec<_>>(),
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos,
            eos_token => &self.eos,
            tools => tools.map_or(Value::from(()), Value::from_serialize),
            documents => Value::from(()),
        };
        // MiniJinja's own `render`, on a copy of the instructions whose growing operators are
        // checked (see `sandbox`).
        let compiled = get_compiled_template(&tmpl);
        let code = sandbox::patch(&compiled.instructions);
        let blocks = (compiled.blocks.iter())
            .map(|(name, code)| (*name, sandbox::patch(code)))
            .collect();
        let mut out = String::new();
        Vm::new(&self.env)
            .eval(
                &code,
                ctx,
                &blocks,
                &mut make_string_output(&mut out),
                compiled.initial_auto_escape,
            )
            .map_err(template_error)?;
        if out.len() > MAX_RENDER_BYTES {
            let limit = MAX_RENDER_BYTES;
            return Err(Error::Invalid(format!(
                "chat template: the rendered prompt exceeds the limit of {limit} bytes"
            )));
        }
        Ok(out)
    }
}

impl ChatTemplate {
    /// Render `messages` and tokenize the prompt for `tokenizer`, treating the conversation as
    /// untrusted: control tokens are parsed only where the *template* writes them. Control-token
    /// text inside a role or a content (a visitor typing `<|im_end|>\n<|im_start|>system`) stays
    /// plain text, as `encode(.., parse_special = false)` tokenizes it. The template writes BOS
    /// itself, so none is added. Conversations over [`MAX_CHAT_INPUT_BYTES`] are refused before any
    /// work.
    ///
    /// How: each control-token text in a role or content is replaced by a private-use character
    /// that occurs nowhere else (template, token strings, messages), the template renders that,
    /// its control tokens are cut out, and the text between them gets the original texts back and
    /// is tokenized without parsing control tokens. Without control-token text in the messages
    /// this is exactly `tokenizer.encode(&self.render(..)?, false, true)`.
    pub fn tokenize(
        &self,
        tokenizer: &Tokenizer,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>> {
        self.tokenize_with_tools(tokenizer, messages, None, add_generation_prompt)
    }

    /// [`ChatTemplate::tokenize`] with `tools` given to the template (their text is the
    /// caller's too: it counts toward the input limit and its control-token text stays plain).
    pub fn tokenize_with_tools(
        &self,
        tokenizer: &Tokenizer,
        messages: &[Message],
        tools: Option<&[serde_json::Value]>,
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>> {
        let tools_json = tools.map(|t| serde_json::to_string(t).unwrap_or_default());
        let input: usize = messages
            .iter()
            .flat_map(Message::texts)
            .chain(tools_json.as_deref())
            .map(str::len)
            .sum();
        if input > MAX_CHAT_INPUT_BYTES {
            return Err(Error::Invalid(format!(
                "the conversation has {input} bytes of text, over the limit of {MAX_CHAT_INPUT_BYTES}"
            )));
        }
        let mut markers = Markers::default();
        let mut safe = Vec::with_capacity(messages.len());
        let extra = tools_json.as_deref().unwrap_or("");
        for m in messages {
            safe.push(
                m.map_texts(|s| markers.defuse(tokenizer, s, || self.texts(messages, extra))),
            );
        }
        let safe_tools = match tools {
            Some(t) if !tokenizer.control_token_ranges(extra).is_empty() => {
                let v = serde_json::to_value(t).unwrap_or_default();
                let v = json_map_strings(&v, &mut |s| {
                    markers.defuse(tokenizer, s, || self.texts(messages, extra))
                });
                Some(v.as_array().cloned().unwrap_or_default())
            }
            Some(t) => Some(t.to_vec()),
            None => None,
        };
        let text = self.render_with_tools(&safe, safe_tools.as_deref(), add_generation_prompt)?;
        if markers.back.is_empty() {
            return Ok(tokenizer.encode_with_plain_parts(&text, false, |s| s.to_string()));
        }
        Ok(tokenizer.encode_with_plain_parts(&text, false, |s| markers.restore(s)))
    }

    /// Every text a marker character must not collide with.
    fn texts<'a>(
        &'a self,
        messages: &'a [Message],
        tools: &'a str,
    ) -> impl Iterator<Item = &'a str> + 'a {
        [self.source.as_str(), &self.bos, &self.eos, tools]
            .into_iter()
            .chain(messages.iter().flat_map(Message::texts))
    }
}

/// `v` with every string (object keys included) passed through `f`.
fn json_map_strings(
    v: &serde_json::Value,
    f: &mut impl FnMut(&str) -> String,
) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        J::String(s) => J::String(f(s)),
        J::Array(a) => J::Array(a.iter().map(|x| json_map_strings(x, f)).collect()),
        J::Object(o) => J::Object(
            o.iter()
                .map(|(k, x)| (f(k), json_map_strings(x, f)))
                .collect(),
        ),
        x => x.clone(),
    }
}

/// Private-use characters standing for control-token texts in untrusted message text.
#[derive(Default)]
struct Markers {
    /// Characters that occur in the inputs (filled on first need).
    used: Option<HashSet<char>>,
    next: u32,
    of_text: HashMap<String, char>,
    back: HashMap<char, String>,
}

impl Markers {
    fn defuse<'a, I: Iterator<Item = &'a str>>(
        &mut self,
        tokenizer: &Tokenizer,
        s: &str,
        inputs: impl FnOnce() -> I,
    ) -> String {
        let ranges = tokenizer.control_token_ranges(s);
        if ranges.is_empty() {
            return s.to_string();
        }
        if self.used.is_none() {
            self.used = Some(inputs().flat_map(str::chars).collect());
            self.next = 0xF0000; // Supplementary Private Use Area-A, then -B
        }
        let mut out = String::with_capacity(s.len());
        let mut at = 0;
        for r in ranges {
            out.push_str(&s[at..r.start]);
            let text = &s[r.clone()];
            let c = match self.of_text.get(text) {
                Some(&c) => c,
                None => {
                    let used = self.used.as_ref().expect("filled above");
                    let c = loop {
                        let c = char::from_u32(self.next).filter(|c| !used.contains(c));
                        self.next += 1;
                        if let Some(c) = c {
                            break c;
                        }
                    };
                    self.of_text.insert(text.to_string(), c);
                    self.back.insert(c, text.to_string());
                    c
                }
            };
            out.push(c);
            at = r.end;
        }
        out.push_str(&s[at..]);
        out
    }

    fn restore(&self, s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            match self.back.get(&c) {
                Some(t) => out.push_str(t),
                None => out.push(c),
            }
        }
        out
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
    if e.kind() == ErrorKind::OutOfFuel {
        return Error::Invalid(format!(
            "chat template: ran out of fuel: the template executed more than the limit of \
             {TEMPLATE_FUEL} instructions (does it loop forever?)"
        ));
    }
    let mut msg = format!("chat template: {e}");
    if msg.contains("recursion limit exceeded") {
        msg.push_str(&format!(
            " (the limit is {TEMPLATE_RECURSION_LIMIT} levels of template recursion)"
        ));
    }
    // `raise_exception` messages are the template author's words; keep them whole and first-class.
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    Error::Invalid(msg)
}

/// The Jinja environment of transformers' `_compile_jinja_template`, in MiniJinja.
fn hf_environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Templates come from untrusted files: bound the work and the recursion of one rendering.
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_recursion_limit(TEMPLATE_RECURSION_LIMIT);
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
        sandbox::check_method(state, value, method, args)?;
        minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
    });
    env.set_formatter(|out, state, value| {
        // Jinja2 prints through Python's str(): None, True, False, ['a', 1], {'k': 'v'}.
        let text = pyfmt::py_str(value)?;
        sandbox::charge(state, text.len())?;
        out.write_str(&text)?;
        Ok(())
    });
    sandbox::install(&mut env);
    env.add_function(namespace::NS_STORE, namespace::ns_store);
    env.add_function("raise_exception", filters::raise_exception);
    env.add_function("strftime_now", filters::strftime_now);
    env.add_filter("tojson", filters::tojson);
    env
}
