//! Reading tool calls out of a model's output, incrementally: the same parser serves streamed and
//! whole answers, so the streamed deltas always add up to the whole answer. Text that could still
//! become a call is held back (like a stop string in [`crate::stop`]); a call is released when it
//! closes and parses; a malformed or unfinished call is released as plain content.

use super::tools::ToolSyntax;
use serde_json::Value;

const OPEN: &str = "<tool_call>";
const CLOSE: &str = "</tool_call>";
const PYTHON_TAG: &str = "<|python_tag|>";

/// What the parser releases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolEvent {
    /// Text of the answer (`message.content`).
    Content(String),
    /// A whole call; `arguments` is JSON text.
    Call { name: String, arguments: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Plain text, watching for a call.
    Text,
    /// Inside `<tool_call>…` (Hermes) or a JSON reply (Llama 3).
    Call,
    /// Llama 3: the reply is plain text; nothing more to watch for.
    Plain,
}

/// The incremental parser. Feed text with [`ToolParser::push`], then call [`ToolParser::finish`].
#[derive(Debug, Clone)]
pub struct ToolParser {
    syntax: ToolSyntax,
    phase: Phase,
    /// Text not released yet.
    held: String,
    /// Whitespace dropped before the current call (given back if the call turns out malformed).
    dropped: String,
    calls: usize,
}

/// The parsed body of a call: `{"name": "...", "arguments"|"parameters": {...}}`.
fn parse_call(body: &str, args_key: &str) -> Option<ToolEvent> {
    let v: Value = serde_json::from_str(body.trim()).ok()?;
    let name = v.get("name")?.as_str()?.to_string();
    let arguments = match v.get(args_key) {
        None => "{}".to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(a @ Value::Object(_)) => a.to_string(),
        Some(_) => return None,
    };
    Some(ToolEvent::Call { name, arguments })
}

/// Length of the longest end of `s` that starts `pat` (without being all of it).
fn partial_suffix(s: &str, pat: &str) -> usize {
    (1..pat.len().min(s.len() + 1))
        .rev()
        .find(|&k| s.is_char_boundary(s.len() - k) && s.ends_with(&pat[..k]))
        .unwrap_or(0)
}

impl ToolParser {
    pub fn new(syntax: ToolSyntax) -> ToolParser {
        ToolParser {
            syntax,
            phase: Phase::Text,
            held: String::new(),
            dropped: String::new(),
            calls: 0,
        }
    }

    /// How many calls were released.
    pub fn calls(&self) -> usize {
        self.calls
    }

    /// Take the next piece of output; returns what can be released now.
    pub fn push(&mut self, text: &str) -> Vec<ToolEvent> {
        self.held.push_str(text);
        let mut out = Vec::new();
        match self.syntax {
            ToolSyntax::Hermes => self.hermes(&mut out),
            ToolSyntax::Llama3 => self.llama3(&mut out),
        }
        out
    }

    /// The end of the output: whatever is held is released (a call that never closed, or does
    /// not parse, as content). Whitespace after the last call is dropped.
    pub fn finish(&mut self) -> Vec<ToolEvent> {
        let mut out = Vec::new();
        let held = std::mem::take(&mut self.held);
        match (&self.phase, self.syntax) {
            (Phase::Call, ToolSyntax::Llama3) => {
                let body = held.trim_start();
                let body = body.strip_prefix(PYTHON_TAG).unwrap_or(body);
                match parse_call(body, "parameters").or_else(|| parse_call(body, "arguments")) {
                    Some(call) => {
                        self.calls += 1;
                        out.push(call);
                    }
                    None => out.push(ToolEvent::Content(held)),
                }
            }
            (Phase::Call, ToolSyntax::Hermes) => {
                let dropped = std::mem::take(&mut self.dropped);
                out.push(ToolEvent::Content(format!("{dropped}{OPEN}{held}")));
            }
            _ if self.calls > 0 && held.trim().is_empty() => {}
            _ if !held.is_empty() => out.push(ToolEvent::Content(held)),
            _ => {}
        }
        self.phase = Phase::Text;
        out
    }

    fn hermes(&mut self, out: &mut Vec<ToolEvent>) {
        loop {
            match self.phase {
                Phase::Call => {
                    let Some(end) = self.held.find(CLOSE) else {
                        return;
                    };
                    let body = self.held[..end].to_string();
                    let rest = self.held[end + CLOSE.len()..].to_string();
                    let dropped = std::mem::take(&mut self.dropped);
                    match parse_call(&body, "arguments") {
                        Some(call) => {
                            self.calls += 1;
                            out.push(call);
                        }
                        None => {
                            out.push(ToolEvent::Content(format!("{dropped}{OPEN}{body}{CLOSE}")))
                        }
                    }
                    self.held = rest;
                    self.phase = Phase::Text;
                }
                _ => {
                    if let Some(at) = self.held.find(OPEN) {
                        // Text before the call is content; the whitespace just before it is not.
                        let before = &self.held[..at];
                        let text = before.trim_end();
                        if !text.is_empty() {
                            out.push(ToolEvent::Content(text.to_string()));
                        }
                        self.dropped = before[text.len()..].to_string();
                        self.held = self.held[at + OPEN.len()..].to_string();
                        self.phase = Phase::Call;
                        continue;
                    }
                    // Hold what may still start a call: trailing whitespace and a partial `<tool_call>`.
                    let k = partial_suffix(&self.held, OPEN);
                    let keep_from = self.held[..self.held.len() - k].trim_end().len();
                    if keep_from > 0 {
                        let text: String = self.held.drain(..keep_from).collect();
                        out.push(ToolEvent::Content(text));
                    }
                    return;
                }
            }
        }
    }

    fn llama3(&mut self, out: &mut Vec<ToolEvent>) {
        if self.phase != Phase::Text {
            if self.phase == Phase::Plain && !self.held.is_empty() {
                out.push(ToolEvent::Content(std::mem::take(&mut self.held)));
            }
            return;
        }
        let t = self.held.trim_start();
        if t.is_empty() || PYTHON_TAG.starts_with(t) {
            return; // not decided yet
        }
        if t.starts_with('{') || t.starts_with(PYTHON_TAG) {
            self.phase = Phase::Call;
        } else {
            self.phase = Phase::Plain;
            out.push(ToolEvent::Content(std::mem::take(&mut self.held)));
        }
    }
}

/// The whole output parsed at once: the content (text outside calls) and the calls.
pub fn parse(syntax: ToolSyntax, text: &str) -> (String, Vec<(String, String)>) {
    let mut p = ToolParser::new(syntax);
    let mut events = p.push(text);
    events.extend(p.finish());
    let (mut content, mut calls) = (String::new(), Vec::new());
    for e in events {
        match e {
            ToolEvent::Content(t) => content.push_str(&t),
            ToolEvent::Call { name, arguments } => calls.push((name, arguments)),
        }
    }
    (content, calls)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ToolSyntax::*;

    fn call(name: &str, args: &str) -> (String, String) {
        (name.to_string(), args.to_string())
    }

    /// Every split of `text` into two pieces, and one byte at a time, gives `parse`'s result.
    fn same_when_streamed(syntax: ToolSyntax, text: &str) {
        let whole = parse(syntax, text);
        let mut splits: Vec<Vec<&str>> = (0..=text.len())
            .filter(|&i| text.is_char_boundary(i))
            .map(|i| vec![&text[..i], &text[i..]])
            .collect();
        splits.push(
            text.char_indices()
                .map(|(i, c)| &text[i..i + c.len_utf8()])
                .collect(),
        );
        for pieces in splits {
            let mut p = ToolParser::new(syntax);
            let mut events: Vec<ToolEvent> = pieces.iter().flat_map(|s| p.push(s)).collect();
            events.extend(p.finish());
            let mut content = String::new();
            let mut calls = Vec::new();
            for e in events {
                match e {
                    ToolEvent::Content(t) => content.push_str(&t),
                    ToolEvent::Call { name, arguments } => calls.push((name, arguments)),
                }
            }
            assert_eq!((content, calls), whole, "{pieces:?}");
        }
    }

    #[test]
    fn hermes_calls_with_text_before_and_several_calls() {
        let text = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": 1}}\n</tool_call>\n";
        assert_eq!(
            parse(Hermes, text),
            (
                "Let me check.".to_string(),
                vec![
                    call("get_weather", r#"{"city":"Paris"}"#),
                    call("add", r#"{"a":1}"#)
                ]
            )
        );
        same_when_streamed(Hermes, text);
        // Plain text (even with a `<` or trailing whitespace) is all content.
        for plain in ["a < b and <tool", "Hello!\n\n", "", "<tool_cal"] {
            assert_eq!(parse(Hermes, plain), (plain.to_string(), vec![]));
            same_when_streamed(Hermes, plain);
        }
    }

    #[test]
    fn malformed_or_unfinished_hermes_calls_are_content() {
        for text in [
            "Hi <tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": ",
            "<tool_call>not json</tool_call>",
            "x\n<tool_call>{\"arguments\": {}}</tool_call>",
            "<tool_call>{\"name\": 3}</tool_call> tail",
            "<tool_call>",
        ] {
            let (content, calls) = parse(Hermes, text);
            assert!(calls.is_empty(), "{text:?}");
            assert_eq!(content, text);
            same_when_streamed(Hermes, text);
        }
        // A good call next to a broken one: the good one is a call, the broken one content.
        let text = "<tool_call>{\"name\": \"f\"}</tool_call><tool_call>{oops</tool_call>";
        assert_eq!(
            parse(Hermes, text),
            (
                "<tool_call>{oops</tool_call>".to_string(),
                vec![call("f", "{}")]
            )
        );
        same_when_streamed(Hermes, text);
    }

    #[test]
    fn llama3_json_replies_are_calls() {
        let text = "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Paris\"}}";
        assert_eq!(
            parse(Llama3, text),
            (
                String::new(),
                vec![call("get_weather", r#"{"city":"Paris"}"#)]
            )
        );
        let tagged = format!("<|python_tag|>{text}");
        assert_eq!(parse(Llama3, &tagged).1.len(), 1);
        for t in [
            text,
            &tagged,
            "The weather is fine.",
            " {\"name\": ",
            "<|python_ta",
        ] {
            same_when_streamed(Llama3, t);
        }
        for t in [
            "The weather is {\"name\": \"x\"}",
            "{\"name\": \"f\", \"parameters\": ",
            "{}",
        ] {
            assert_eq!(parse(Llama3, t), (t.to_string(), vec![]), "{t:?}");
        }
    }
}
