//! A JSON Schema compiled into the node graph the incremental validator walks
//! ([`super::state`]). The supported subset: `type` (one or a list, `"null"` included), objects
//! (`properties` — written in any order, each at most once: the model picks the order —,
//! `required`, `additionalProperties` — used only when there are no `properties`), arrays (`items`, `minItems`, `maxItems`), strings (`minLength`, `maxLength`),
//! `number`, `integer`, `boolean`, `null`, `enum`, `const`, `anyOf` / `oneOf` (alternatives),
//! and local `$ref`s to `#/$defs/...` or `#/definitions/...` (recursion allowed). Annotations
//! (`title`, `description`, `default`, `examples`, `$schema`, `$id`, `format`, ...) are ignored;
//! assertion keywords outside the subset (`pattern`, `minimum`, `allOf`, ...) are refused, so that
//! every output the validator lets through really validates.

use serde_json::{Map, Value};
use std::collections::HashMap;

/// Index of a [`Node`] in [`Schema::nodes`].
pub type NodeId = usize;

/// One schema position.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Any JSON value.
    Any,
    /// An object with its properties (each written at most once, in any order; `required` flags
    /// beside them; at most 64), or, when `props` is empty, any keys with values of `extra` (`None`: no keys at all).
    Object {
        props: Vec<(String, NodeId, bool)>,
        extra: Option<NodeId>,
    },
    Array {
        items: NodeId,
        min: u32,
        max: Option<u32>,
    },
    String {
        min: u32,
        max: Option<u32>,
    },
    Number,
    Integer,
    Boolean,
    Null,
    /// One of these exact values, as compact JSON text.
    Literals(Vec<String>),
    /// Any of these alternatives.
    AnyOf(Vec<NodeId>),
    /// A `$ref` not resolved yet (only while compiling).
    Pending,
}

/// A compiled schema; the root is node 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    pub nodes: Vec<Node>,
}

/// Keywords that assert something the validator cannot guarantee: refused.
const UNSUPPORTED: &[&str] = &[
    "pattern",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "allOf",
    "not",
    "if",
    "then",
    "else",
    "patternProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "uniqueItems",
    "prefixItems",
    "contains",
    "minContains",
    "maxContains",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedProperties",
    "unevaluatedItems",
    "$dynamicRef",
];

const TYPES: &[&str] = &[
    "object", "array", "string", "number", "integer", "boolean", "null",
];

impl Schema {
    /// Any JSON object (`response_format: {type: "json_object"}`).
    pub fn any_object() -> Schema {
        Schema {
            nodes: vec![
                Node::Object {
                    props: Vec::new(),
                    extra: Some(1),
                },
                Node::Any,
            ],
        }
    }

    /// Compile `schema`; the error says what is wrong (and where, as a JSON pointer).
    pub fn compile(schema: &Value) -> Result<Schema, String> {
        let mut c = Compiler {
            root: schema,
            nodes: Vec::new(),
            refs: HashMap::new(),
        };
        c.node(schema, "#")?;
        Ok(Schema { nodes: c.nodes })
    }
}

struct Compiler<'a> {
    root: &'a Value,
    nodes: Vec<Node>,
    refs: HashMap<String, NodeId>,
}

impl Compiler<'_> {
    fn push(&mut self, n: Node) -> NodeId {
        self.nodes.push(n);
        self.nodes.len() - 1
    }

    fn node(&mut self, s: &Value, at: &str) -> Result<NodeId, String> {
        let id = self.push(Node::Pending);
        let n = self.build(s, at)?;
        self.nodes[id] = n;
        Ok(id)
    }

    fn build(&mut self, s: &Value, at: &str) -> Result<Node, String> {
        let obj = match s {
            Value::Bool(true) => return Ok(Node::Any),
            Value::Bool(false) => return Err(format!("{at}: the schema `false` allows nothing")),
            Value::Object(o) => o,
            _ => return Err(format!("{at}: a schema must be an object or a boolean")),
        };
        if let Some(k) = UNSUPPORTED.iter().find(|k| obj.contains_key(**k)) {
            return Err(format!("{at}: `{k}` is not supported"));
        }
        if let Some(r) = obj.get("$ref") {
            let r = r.as_str().ok_or(format!("{at}/$ref: must be a string"))?;
            return self.reference(r, at);
        }
        if let Some(c) = obj.get("const") {
            return Ok(Node::Literals(vec![c.to_string()]));
        }
        if let Some(e) = obj.get("enum") {
            let e = e.as_array().filter(|e| !e.is_empty());
            let e = e.ok_or(format!("{at}/enum: must be a non-empty array"))?;
            return Ok(Node::Literals(e.iter().map(Value::to_string).collect()));
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(alts) = obj.get(key) {
                let alts = alts.as_array().filter(|a| !a.is_empty());
                let alts = alts.ok_or(format!("{at}/{key}: must be a non-empty array"))?;
                let mut ids = Vec::new();
                for (i, a) in alts.iter().enumerate() {
                    ids.push(self.node(a, &format!("{at}/{key}/{i}"))?);
                }
                return Ok(Node::AnyOf(ids));
            }
        }
        let types: Vec<&str> = match obj.get("type") {
            None if obj.contains_key("properties") => vec!["object"],
            None if obj.contains_key("items") => vec!["array"],
            None => return Ok(Node::Any),
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) if !ts.is_empty() => {
                let ts: Option<Vec<&str>> = ts.iter().map(Value::as_str).collect();
                ts.ok_or(format!("{at}/type: must list type names"))?
            }
            Some(_) => return Err(format!("{at}/type: must be a type name or a list of them")),
        };
        if let Some(t) = types.iter().find(|t| !TYPES.contains(t)) {
            return Err(format!("{at}/type: unknown type \"{t}\""));
        }
        if types.len() == 1 {
            return self.typed(types[0], obj, at);
        }
        let mut ids = Vec::new();
        for t in types {
            let n = self.typed(t, obj, at)?;
            ids.push(self.push(n));
        }
        Ok(Node::AnyOf(ids))
    }

    fn count(obj: &Map<String, Value>, key: &str, at: &str) -> Result<Option<u32>, String> {
        match obj.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64().or_else(|| {
                let f = v.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0)?;
                Some(f as u64)
            }) {
                Some(n) if n <= u32::MAX as u64 => Ok(Some(n as u32)),
                _ => Err(format!("{at}/{key}: must be a non-negative integer")),
            },
        }
    }

    fn typed(&mut self, t: &str, obj: &Map<String, Value>, at: &str) -> Result<Node, String> {
        Ok(match t {
            "string" => {
                let min = Self::count(obj, "minLength", at)?.unwrap_or(0);
                let max = Self::count(obj, "maxLength", at)?;
                if max.is_some_and(|m| m < min) {
                    return Err(format!("{at}: `maxLength` is below `minLength`"));
                }
                Node::String { min, max }
            }
            "number" => Node::Number,
            "integer" => Node::Integer,
            "boolean" => Node::Boolean,
            "null" => Node::Null,
            "array" => {
                let items = match obj.get("items") {
                    None => self.push(Node::Any),
                    Some(i) => self.node(i, &format!("{at}/items"))?,
                };
                let min = Self::count(obj, "minItems", at)?.unwrap_or(0);
                let max = Self::count(obj, "maxItems", at)?;
                if max.is_some_and(|m| m < min) {
                    return Err(format!("{at}: `maxItems` is below `minItems`"));
                }
                Node::Array { items, min, max }
            }
            _ => self.object(obj, at)?,
        })
    }

    fn object(&mut self, obj: &Map<String, Value>, at: &str) -> Result<Node, String> {
        let required: Vec<&str> = match obj.get("required") {
            None => Vec::new(),
            Some(Value::Array(r)) => {
                let r: Option<Vec<&str>> = r.iter().map(Value::as_str).collect();
                r.ok_or(format!("{at}/required: must be a list of names"))?
            }
            Some(_) => return Err(format!("{at}/required: must be a list of names")),
        };
        let props = match obj.get("properties") {
            None => Map::new(),
            Some(Value::Object(p)) => p.clone(),
            Some(_) => return Err(format!("{at}/properties: must be an object")),
        };
        if let Some(r) = required.iter().find(|r| !props.contains_key(**r)) {
            if !props.is_empty() || obj.get("additionalProperties") == Some(&Value::Bool(false)) {
                return Err(format!(
                    "{at}/required: \"{r}\" is not among the `properties`"
                ));
            }
            return Err(format!(
                "{at}/required: \"{r}\" needs a schema in `properties`"
            ));
        }
        if props.is_empty() {
            let extra = match obj.get("additionalProperties") {
                None | Some(Value::Bool(true)) => Some(self.push(Node::Any)),
                Some(Value::Bool(false)) => None,
                Some(s) => Some(self.node(s, &format!("{at}/additionalProperties"))?),
            };
            return Ok(Node::Object {
                props: Vec::new(),
                extra,
            });
        }
        if props.len() > 64 {
            return Err(format!("{at}/properties: more than 64 properties"));
        }
        let mut out = Vec::new();
        for (name, s) in &props {
            let id = self.node(s, &format!("{at}/properties/{name}"))?;
            out.push((name.clone(), id, required.contains(&name.as_str())));
        }
        Ok(Node::Object {
            props: out,
            extra: None,
        })
    }

    /// A local `$ref`: compiled once (recursive schemas point back at the same node).
    fn reference(&mut self, r: &str, at: &str) -> Result<Node, String> {
        if let Some(&id) = self.refs.get(r) {
            return Ok(Node::AnyOf(vec![id]));
        }
        let Some(path) = r.strip_prefix("#") else {
            return Err(format!(
                "{at}/$ref: only local references (\"#/...\") are supported"
            ));
        };
        let mut target = self.root;
        for part in path.split('/').skip(1) {
            let part = part.replace("~1", "/").replace("~0", "~");
            target = target
                .get(&part)
                .ok_or(format!("{at}/$ref: \"{r}\" does not resolve"))?;
        }
        let id = self.push(Node::Pending);
        self.refs.insert(r.to_string(), id);
        let n = self.build(target, r)?;
        self.nodes[id] = n;
        Ok(Node::AnyOf(vec![id]))
    }
}
