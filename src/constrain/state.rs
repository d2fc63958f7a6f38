//! The incremental validator: compact JSON fed byte by byte against a [`Schema`]. The state is a
//! small set of alternatives (for `anyOf`, `enum`, which property comes next), each a stack of
//! frames; a byte is accepted when at least one alternative accepts it. No whitespace is allowed
//! anywhere (compact JSON), so the model cannot spend its tokens on spaces.

use super::schema::{Node, NodeId, Schema};
use std::sync::Arc;

/// Nesting deeper than this is refused (values of `Any`; schemas nest as they are written).
const MAX_DEPTH: usize = 32;
/// Digits in a number's integer part, fraction and exponent (keeps numbers exact in f64 and
/// stops a model from looping on digits).
const MAX_DIGITS: u8 = 15;
/// Alternatives kept at once (more are dropped, the earliest first kept).
const MAX_ALTS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Num {
    Start,
    Minus,
    Zero,
    Int(u8),
    Dot,
    Frac(u8),
    E,
    ESign,
    Exp(u8),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Frame {
    /// A value of this node starts with the next byte.
    Value(NodeId),
    /// These exact bytes next (a literal value, or `"key":` of a property).
    Lit {
        text: Arc<str>,
        pos: usize,
    },
    /// Inside a string, after the opening quote.
    Str {
        min: u32,
        max: Option<u32>,
        len: u32,
        /// 0: plain; 1: after `\`; 2..=5 and 13: reading the hex digits of `\u`.
        esc: u8,
        /// UTF-8 continuation bytes still expected.
        cont: u8,
    },
    Num {
        int: bool,
        s: Num,
    },
    /// A schema object: `seen` has bit i set once property i was written (each comes at most
    /// once, in any order); `open` is true just after `{` (no comma needed), `comma` true just
    /// after `,` (a key must come).
    Obj {
        node: NodeId,
        seen: u64,
        open: bool,
        comma: bool,
    },
    /// Any keys: `state` 0 after `{`, 1 after a value, 2 after `,`.
    Map {
        values: NodeId,
        state: u8,
    },
    /// After a free key: `:` then a value.
    Colon(NodeId),
    Arr {
        items: NodeId,
        min: u32,
        max: Option<u32>,
        count: u32,
        comma: bool,
    },
}

/// Where a value is in its schema: the alternatives still possible.
#[derive(Debug, Clone)]
pub struct JsonState {
    schema: Arc<Schema>,
    alts: Vec<Vec<Frame>>,
}

impl JsonState {
    pub fn new(schema: Arc<Schema>) -> JsonState {
        JsonState {
            schema,
            alts: vec![vec![Frame::Value(0)]],
        }
    }

    /// Whether the alternatives could take `bytes` next (the state is unchanged).
    pub fn allows(&self, bytes: &[u8]) -> bool {
        if bytes.is_empty() {
            return false;
        }
        let mut s = self.clone();
        s.advance(bytes)
    }

    /// Take `bytes`; `false` (and an empty state) when no alternative can.
    pub fn advance(&mut self, bytes: &[u8]) -> bool {
        bytes.iter().all(|&b| self.feed(b))
    }

    /// Take one byte.
    pub fn feed(&mut self, b: u8) -> bool {
        let alts = std::mem::take(&mut self.alts);
        let mut out: Vec<Vec<Frame>> = Vec::new();
        for stack in alts {
            let mut fork = Vec::new();
            feed_stack(&self.schema, stack, b, &mut fork);
            for s in fork {
                if out.len() < MAX_ALTS && !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        self.alts = out;
        !self.alts.is_empty()
    }

    /// Whether what was fed is a whole value (the end of generation may come now).
    pub fn is_complete(&self) -> bool {
        self.alts.iter().any(|s| match s.as_slice() {
            [] => true,
            [Frame::Num { s, .. }] => num_final(s),
            _ => false,
        })
    }

    /// Whether the value is complete and nothing more can follow it.
    pub fn is_done(&self) -> bool {
        !self.alts.is_empty() && self.alts.iter().all(Vec::is_empty)
    }
}

fn num_final(s: &Num) -> bool {
    matches!(s, Num::Zero | Num::Int(_) | Num::Frac(_) | Num::Exp(_))
}

fn lit(text: &str) -> Frame {
    Frame::Lit {
        text: text.into(),
        pos: 0,
    }
}

/// Quote a property name as compact JSON writes it, with the colon.
fn key(name: &str) -> String {
    format!("{}:", serde_json::Value::from(name))
}

/// Feed `b` to one alternative; the stacks that survive go to `out` (several when `b` starts a
/// choice).
fn feed_stack(schema: &Schema, mut stack: Vec<Frame>, b: u8, out: &mut Vec<Vec<Frame>>) {
    if stack.len() > MAX_DEPTH * 3 {
        return;
    }
    let Some(top) = stack.pop() else {
        return; // the value is over: nothing may follow
    };
    let push = |mut stack: Vec<Frame>, frames: Vec<Frame>, out: &mut Vec<Vec<Frame>>| {
        stack.extend(frames);
        out.push(stack);
    };
    match top {
        Frame::Value(id) => {
            let depth = stack.len();
            for s in value_start(schema, id, b, depth) {
                let mut st = stack.clone();
                st.extend(s);
                out.push(st);
            }
        }
        Frame::Lit { text, pos } => {
            if text.as_bytes().get(pos) == Some(&b) {
                if pos + 1 < text.len() {
                    stack.push(Frame::Lit { text, pos: pos + 1 });
                }
                out.push(stack);
            }
        }
        Frame::Str {
            min,
            max,
            len,
            esc,
            cont,
        } => {
            let (mut esc, mut cont, mut len) = (esc, cont, len);
            if cont > 0 {
                if b & 0xC0 != 0x80 {
                    return;
                }
                cont -= 1;
            } else if esc == 1 {
                match b {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => esc = 0,
                    b'u' => esc = 2,
                    _ => return,
                }
            } else if esc >= 2 {
                // Hex digits of `\u`: 2, 3 (13 after a `d`), 4, 5. No surrogates
                // (`\uD800`–`\uDFFF`): a lone one does not parse.
                if !b.is_ascii_hexdigit() || (esc == 13 && !matches!(b, b'0'..=b'7')) {
                    return;
                }
                esc = match esc {
                    2 if b == b'd' || b == b'D' => 13,
                    2 => 3,
                    3 | 13 => 4,
                    4 => 5,
                    _ => 0,
                };
            } else if b == b'"' {
                if len >= min {
                    out.push(stack);
                }
                return;
            } else if b == b'\\' {
                esc = 1;
                len += 1;
            } else if b < 0x20 {
                return;
            } else if b < 0x80 {
                len += 1;
            } else {
                cont = match b {
                    0xC2..=0xDF => 1,
                    0xE0..=0xEF => 2,
                    0xF0..=0xF4 => 3,
                    _ => return,
                };
                len += 1;
            }
            if max.is_some_and(|m| len > m) {
                return;
            }
            push(
                stack,
                vec![Frame::Str {
                    min,
                    max,
                    len,
                    esc,
                    cont,
                }],
                out,
            );
        }
        Frame::Num { int, s } => {
            let next = match (&s, b) {
                (Num::Start, b'-') => Some(Num::Minus),
                (Num::Start | Num::Minus, b'0') => Some(Num::Zero),
                (Num::Start | Num::Minus, b'1'..=b'9') => Some(Num::Int(1)),
                (Num::Int(n), b'0'..=b'9') if *n < MAX_DIGITS => Some(Num::Int(n + 1)),
                (Num::Zero | Num::Int(_), b'.') if !int => Some(Num::Dot),
                (Num::Dot, b'0'..=b'9') => Some(Num::Frac(1)),
                (Num::Frac(n), b'0'..=b'9') if *n < MAX_DIGITS => Some(Num::Frac(n + 1)),
                (Num::Zero | Num::Int(_) | Num::Frac(_), b'e' | b'E') if !int => Some(Num::E),
                (Num::E, b'+' | b'-') => Some(Num::ESign),
                (Num::E | Num::ESign, b'0'..=b'9') => Some(Num::Exp(1)),
                (Num::Exp(n), b'0'..=b'9') if *n < 2 => Some(Num::Exp(n + 1)),
                _ => None,
            };
            match next {
                Some(s) => push(stack, vec![Frame::Num { int, s }], out),
                // The number ended before `b`: `b` belongs to whatever holds it.
                None if num_final(&s) => feed_stack(schema, stack, b, out),
                None => {}
            }
        }
        Frame::Obj {
            node,
            seen,
            open,
            comma,
        } => {
            let Node::Object { props, .. } = &schema.nodes[node] else {
                return;
            };
            let unseen = |i: usize| seen & (1 << i) == 0;
            let missing = props.iter().enumerate().any(|(i, p)| p.2 && unseen(i));
            if !comma && b == b'}' && !missing {
                out.push(stack);
                return;
            }
            if !open && !comma {
                if b == b',' && (0..props.len()).any(unseen) {
                    let obj = Frame::Obj {
                        node,
                        seen,
                        open,
                        comma: true,
                    };
                    push(stack, vec![obj], out);
                }
                return;
            }
            // A key: any property not written yet.
            for (i, (name, id, _)) in props.iter().enumerate().filter(|p| unseen(p.0)) {
                let obj = Frame::Obj {
                    node,
                    seen: seen | 1 << i,
                    open: false,
                    comma: false,
                };
                let mut st = stack.clone();
                st.extend([obj, Frame::Value(*id), lit(&key(name))]);
                feed_stack(schema, st, b, out);
            }
        }
        Frame::Map { values, state } => match (state, b) {
            (0 | 1, b'}') => out.push(stack),
            (1, b',') => push(stack, vec![Frame::Map { values, state: 2 }], out),
            (0 | 2, b'"') => {
                let key = Frame::Str {
                    min: 0,
                    max: None,
                    len: 0,
                    esc: 0,
                    cont: 0,
                };
                let map = Frame::Map { values, state: 1 };
                push(stack, vec![map, Frame::Colon(values), key], out);
            }
            _ => {}
        },
        Frame::Colon(values) => {
            if b == b':' {
                push(stack, vec![Frame::Value(values)], out);
            }
        }
        Frame::Arr {
            items,
            min,
            max,
            count,
            comma,
        } => {
            let room = max.is_none_or(|m| count < m);
            if !comma && b == b']' && count >= min {
                out.push(stack);
            } else if !comma && count > 0 && b == b',' && room {
                let arr = Frame::Arr {
                    items,
                    min,
                    max,
                    count,
                    comma: true,
                };
                push(stack, vec![arr], out);
            } else if (comma || count == 0) && room {
                let arr = Frame::Arr {
                    items,
                    min,
                    max,
                    count: count + 1,
                    comma: false,
                };
                let st = [stack, vec![arr, Frame::Value(items)]].concat();
                feed_stack(schema, st, b, out);
            }
        }
    }
}

/// The stacks a value of node `id` can start as with byte `b` (already fed).
fn value_start(schema: &Schema, id: NodeId, b: u8, depth: usize) -> Vec<Vec<Frame>> {
    let mut out = Vec::new();
    let open = |frame: Frame, out: &mut Vec<Vec<Frame>>| {
        if depth < MAX_DEPTH * 3 {
            out.push(vec![frame]);
        }
    };
    let string = |min, max| Frame::Str {
        min,
        max,
        len: 0,
        esc: 0,
        cont: 0,
    };
    let number = |int, out: &mut Vec<Vec<Frame>>| {
        feed_stack(schema, vec![Frame::Num { int, s: Num::Start }], b, out)
    };
    let literal =
        |text: &str, out: &mut Vec<Vec<Frame>>| feed_stack(schema, vec![lit(text)], b, out);
    match &schema.nodes[id] {
        Node::Pending => {}
        Node::Any => match b {
            b'{' => open(
                Frame::Map {
                    values: id,
                    state: 0,
                },
                &mut out,
            ),
            b'[' => open(
                Frame::Arr {
                    items: id,
                    min: 0,
                    max: None,
                    count: 0,
                    comma: false,
                },
                &mut out,
            ),
            b'"' => out.push(vec![string(0, None)]),
            b't' => literal("true", &mut out),
            b'f' => literal("false", &mut out),
            b'n' => literal("null", &mut out),
            _ => number(false, &mut out),
        },
        Node::Object { props, extra } => {
            if b == b'{' {
                if props.is_empty() {
                    match extra {
                        Some(v) => open(
                            Frame::Map {
                                values: *v,
                                state: 0,
                            },
                            &mut out,
                        ),
                        None => out.push(vec![lit("}")]),
                    }
                } else {
                    open(
                        Frame::Obj {
                            node: id,
                            seen: 0,
                            open: true,
                            comma: false,
                        },
                        &mut out,
                    );
                }
            }
        }
        Node::Array { items, min, max } => {
            if b == b'[' {
                open(
                    Frame::Arr {
                        items: *items,
                        min: *min,
                        max: *max,
                        count: 0,
                        comma: false,
                    },
                    &mut out,
                );
            }
        }
        Node::String { min, max } => {
            if b == b'"' {
                out.push(vec![string(*min, *max)]);
            }
        }
        Node::Number => number(false, &mut out),
        Node::Integer => number(true, &mut out),
        Node::Boolean => {
            literal("true", &mut out);
            literal("false", &mut out);
        }
        Node::Null => literal("null", &mut out),
        Node::Literals(values) => {
            for v in values {
                literal(v, &mut out);
            }
        }
        Node::AnyOf(alts) => {
            for &a in alts {
                out.extend(value_start(schema, a, b, depth));
            }
        }
    }
    out
}
