//! Tool calls: `tools` and `tool_choice` read and checked, the tool-call syntax of a chat template,
//! and the constraint that forces a call when `tool_choice` is `"required"` or names a function.
//! The model's output is parsed into calls by [`super::toolparse`].
//!
//! How a call is forced: each allowed function is one branch `PREFIX JSON SUFFIX`, where PREFIX is
//! the template's call syntax up to the arguments with the name filled in (Qwen2.5/Hermes:
//! `<tool_call>\n{"name": "f", "arguments": `; Llama 3: `{"name": "f", "parameters": `), JSON is
//! the function's `parameters` schema under the same incremental validator as `response_format`
//! ([`crate::constrain`]), and SUFFIX closes the call. Literal prefixes keep the exact spacing the
//! template shows the model (the schema validator writes compact JSON, so an anyOf schema over
//! whole calls would not), and branches part at the first byte of the name, so "required" with
//! several tools is a choice of prefixes. A forced answer is exactly one call.

use crate::constrain::{Constraint, JsonState, Schema};
use crate::{Error, Result};
use serde_json::Value;
use std::sync::Arc;

fn bad<T>(param: &str, message: impl Into<String>) -> Result<T> {
    Err(Error::bad_request(param, message))
}

/// One entry of `tools`: `{type: "function", function: {name, description?, parameters?}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub parameters: Option<Value>,
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// Tools are not shown to the model and its output is never read as calls.
    None,
    /// Tools are shown; a call in the output is returned as one.
    Auto,
    /// One call to any of the tools is forced.
    Required,
    /// One call to this function is forced.
    Named(String),
}

/// OpenAI's rule for function names.
fn name_ok(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Read and check `tools`.
pub fn tools(v: Option<&[Value]>) -> Result<Vec<Tool>> {
    let mut out: Vec<Tool> = Vec::new();
    for (i, t) in v.unwrap_or_default().iter().enumerate() {
        let at = format!("tools[{i}]");
        let Some(obj) = t.as_object() else {
            return bad(&at, format!("`{at}` must be an object"));
        };
        if obj.get("type").and_then(Value::as_str) != Some("function") {
            return bad(
                &format!("{at}.type"),
                format!("`{at}.type` must be \"function\""),
            );
        }
        let Some(f) = obj.get("function").and_then(Value::as_object) else {
            let p = format!("{at}.function");
            return bad(&p, format!("`{p}` must be an object with a `name`"));
        };
        let name = f.get("name").and_then(Value::as_str).unwrap_or("");
        if !name_ok(name) {
            let p = format!("{at}.function.name");
            return bad(
                &p,
                format!("`{p}` must be 1-64 letters, digits, `_` or `-`"),
            );
        }
        if out.iter().any(|t| t.name == name) {
            let p = format!("{at}.function.name");
            return bad(&p, format!("`{p}`: two tools are named '{name}'"));
        }
        if f.get("description").is_some_and(|d| !d.is_string()) {
            let p = format!("{at}.function.description");
            return bad(&p, format!("`{p}` must be a string"));
        }
        let parameters = f.get("parameters").cloned();
        if parameters.as_ref().is_some_and(|p| !p.is_object()) {
            let p = format!("{at}.function.parameters");
            return bad(&p, format!("`{p}` must be a JSON Schema object"));
        }
        if f.get("strict").is_some_and(|s| !s.is_boolean()) {
            let p = format!("{at}.function.strict");
            return bad(&p, format!("`{p}` must be a boolean"));
        }
        out.push(Tool {
            name: name.to_string(),
            parameters,
        });
    }
    Ok(out)
}

/// Read and check `tool_choice` against the tools (absent: "auto" with tools, "none" without).
pub fn choice(v: Option<&Value>, tools: &[Tool]) -> Result<ToolChoice> {
    let c = match v {
        None | Some(Value::Null) if tools.is_empty() => ToolChoice::None,
        None | Some(Value::Null) => ToolChoice::Auto,
        Some(Value::String(s)) => match s.as_str() {
            "none" => ToolChoice::None,
            "auto" => ToolChoice::Auto,
            "required" => ToolChoice::Required,
            _ => return bad("tool_choice", "`tool_choice` must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": …}}"),
        },
        Some(o) => {
            let name = (o.get("type").and_then(Value::as_str) == Some("function"))
                .then(|| o.pointer("/function/name").and_then(Value::as_str))
                .flatten();
            match name {
                Some(n) => ToolChoice::Named(n.to_string()),
                None => return bad("tool_choice", "`tool_choice` as an object must be {\"type\": \"function\", \"function\": {\"name\": …}}"),
            }
        }
    };
    match &c {
        ToolChoice::Required if tools.is_empty() => {
            bad("tool_choice", "`tool_choice` \"required\" needs `tools`")
        }
        ToolChoice::Named(n) if !tools.iter().any(|t| &t.name == n) => bad(
            "tool_choice.function.name",
            format!("`tool_choice.function.name` '{n}' is not among `tools`"),
        ),
        _ => Ok(c),
    }
}

/// The tools a forced choice may call, each with its compiled `parameters` schema (absent: any
/// object). A schema outside [`crate::constrain::schema`]'s subset is an error naming it.
pub fn forced(tools: &[Tool], choice: &ToolChoice) -> Result<Vec<(String, Arc<Schema>)>> {
    let pick = |t: &Tool| match choice {
        ToolChoice::Required => true,
        ToolChoice::Named(n) => &t.name == n,
        _ => false,
    };
    let mut out = Vec::new();
    for (i, t) in tools.iter().enumerate().filter(|(_, t)| pick(t)) {
        let schema = match &t.parameters {
            None => Schema::any_object(),
            Some(p) => Schema::compile(p).or_else(|e| {
                let at = format!("tools[{i}].function.parameters");
                bad(&at, format!("`{at}` cannot be enforced: {e}"))
            })?,
        };
        out.push((t.name.clone(), Arc::new(schema)));
    }
    Ok(out)
}

/// How a template's model writes a call (chosen from the template's source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolSyntax {
    /// Qwen2.5 / Hermes: `<tool_call>\n{"name": …, "arguments": {…}}\n</tool_call>`, possibly
    /// several, after optional text.
    Hermes,
    /// Llama 3.x: the whole reply is `{"name": …, "parameters": {…}}`, optionally after
    /// `<|python_tag|>`.
    Llama3,
}

impl ToolSyntax {
    /// The syntax a template teaches, or `None` when it takes no tools or shows neither syntax.
    pub fn of_template(src: &str) -> Option<ToolSyntax> {
        if !src.contains("tools") {
            None
        } else if src.contains("<tool_call>") {
            Some(ToolSyntax::Hermes)
        } else if src.contains("\"parameters\"") || src.contains("<|python_tag|>") {
            Some(ToolSyntax::Llama3)
        } else {
            None
        }
    }

    /// The text around a call's arguments.
    fn frame(self, name: &str) -> (String, &'static str) {
        match self {
            ToolSyntax::Hermes => (
                format!("<tool_call>\n{{\"name\": \"{name}\", \"arguments\": "),
                "}\n</tool_call>",
            ),
            ToolSyntax::Llama3 => (format!("{{\"name\": \"{name}\", \"parameters\": "), "}"),
        }
    }
}

/// One call written in a template's syntax with schema-valid arguments (see the module docs).
#[derive(Debug, Clone)]
pub struct ToolCallConstraint {
    branches: Vec<Branch>,
}

#[derive(Debug, Clone)]
struct Branch {
    prefix: Vec<u8>,
    json: JsonState,
    suffix: &'static [u8],
    /// Bytes of prefix (then suffix) matched so far.
    at: usize,
    in_suffix: bool,
}

impl Branch {
    fn feed(&mut self, b: u8) -> bool {
        if !self.in_suffix && self.at < self.prefix.len() {
            self.at += 1;
            return self.prefix[self.at - 1] == b;
        }
        if !self.in_suffix {
            if !self.json.is_done() {
                let mut j = self.json.clone();
                if j.feed(b) {
                    self.json = j;
                    return true;
                }
            }
            if !self.json.is_complete() {
                return false;
            }
            self.in_suffix = true;
            self.at = 0;
        }
        let ok = self.suffix.get(self.at) == Some(&b);
        self.at += 1;
        ok
    }
    fn complete(&self) -> bool {
        self.in_suffix && self.at == self.suffix.len()
    }
}

impl ToolCallConstraint {
    /// A call to one of `tools` (name and compiled parameters) in `syntax`.
    pub fn new(syntax: ToolSyntax, tools: &[(String, Arc<Schema>)]) -> ToolCallConstraint {
        let branches = tools
            .iter()
            .map(|(name, schema)| {
                let (prefix, suffix) = syntax.frame(name);
                Branch {
                    prefix: prefix.into_bytes(),
                    json: JsonState::new(schema.clone()),
                    suffix: suffix.as_bytes(),
                    at: 0,
                    in_suffix: false,
                }
            })
            .collect();
        ToolCallConstraint { branches }
    }
}

impl Constraint for ToolCallConstraint {
    fn allows(&self, bytes: &[u8]) -> bool {
        self.branches.iter().any(|br| {
            let mut br = br.clone();
            bytes.iter().all(|&b| br.feed(b))
        })
    }
    fn advance(&mut self, bytes: &[u8]) -> bool {
        self.branches
            .retain_mut(|br| bytes.iter().all(|&b| br.feed(b)));
        !self.branches.is_empty()
    }
    fn is_complete(&self) -> bool {
        self.branches.iter().any(Branch::complete)
    }
    fn is_done(&self) -> bool {
        !self.branches.is_empty() && self.branches.iter().all(Branch::complete)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn weather() -> Vec<Value> {
        vec![
            json!({"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}}}),
        ]
    }

    #[test]
    fn tools_and_choices_are_checked_naming_the_field() {
        let t = tools(Some(&weather())).unwrap();
        assert_eq!(choice(None, &t).unwrap(), ToolChoice::Auto);
        assert_eq!(choice(None, &[]).unwrap(), ToolChoice::None);
        let named = json!({"type": "function", "function": {"name": "get_weather"}});
        assert_eq!(
            choice(Some(&named), &t).unwrap(),
            ToolChoice::Named("get_weather".into())
        );
        let param = |r: Result<ToolChoice>| match r.unwrap_err() {
            Error::BadRequest { param, .. } => param,
            e => panic!("{e}"),
        };
        let other = json!({"type": "function", "function": {"name": "nope"}});
        assert_eq!(param(choice(Some(&other), &t)), "tool_choice.function.name");
        assert_eq!(param(choice(Some(&json!("always")), &t)), "tool_choice");
        assert_eq!(param(choice(Some(&json!("required")), &[])), "tool_choice");
        for (bad_tool, field) in [
            (json!({"type": "code"}), "tools[0].type"),
            (json!({"type": "function"}), "tools[0].function"),
            (
                json!({"type": "function", "function": {"name": "a b"}}),
                "tools[0].function.name",
            ),
            (
                json!({"type": "function", "function": {"name": "f", "parameters": 3}}),
                "tools[0].function.parameters",
            ),
        ] {
            match tools(Some(&[bad_tool])).unwrap_err() {
                Error::BadRequest { param, .. } => assert_eq!(param, field),
                e => panic!("{e}"),
            }
        }
        let unsupported = vec![json!({"type": "function", "function": {"name": "f",
            "parameters": {"type": "object", "properties": {"x": {"type": "string", "pattern": "a+"}}}}})];
        let t = tools(Some(&unsupported)).unwrap();
        match forced(&t, &ToolChoice::Required).unwrap_err() {
            Error::BadRequest { param, .. } => assert_eq!(param, "tools[0].function.parameters"),
            e => panic!("{e}"),
        }
        // Under "auto" nothing is enforced, so the schema is not compiled.
        assert!(forced(&t, &ToolChoice::Auto).unwrap().is_empty());
    }

    #[test]
    fn the_constraint_writes_one_call_in_the_template_syntax() {
        let t = tools(Some(&weather())).unwrap();
        let f = forced(&t, &ToolChoice::Required).unwrap();
        let mut c = ToolCallConstraint::new(ToolSyntax::Hermes, &f);
        let text = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\":\"Paris\"}}\n</tool_call>";
        assert!(!c.allows(b"{"));
        for (i, b) in text.bytes().enumerate() {
            assert!(!c.is_complete(), "complete early at {i}");
            assert!(c.allows(&[b]), "refused byte {i} of {text:?}");
            c.advance(&[b]);
        }
        assert!(c.is_complete() && c.is_done());
        assert!(!c.allows(b"\n"));
        // Arguments that break the schema are refused: `city` is required.
        let mut c = ToolCallConstraint::new(ToolSyntax::Llama3, &f);
        assert!(c.advance(b"{\"name\": \"get_weather\", \"parameters\": {"));
        assert!(!c.allows(b"}"));
        assert!(c.advance(b"\"city\":\"x\"}"));
        assert!(!c.is_complete() && c.allows(b"}"));
        assert!(c.advance(b"}") && c.is_done());
    }
}
