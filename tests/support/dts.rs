//! A small reader of `www/attend-llm/index.d.ts` and a checker of JSON values against its types,
//! shared by tests/dts.rs (natively) and tests/wasm_engine.rs (on the objects the browser gets).
//! It reads what the file uses: `export interface` (with `extends`) and `export type`, object
//! literals, `?` fields, unions, intersections, arrays, tuples, string literals, `Record<K, V>`,
//! function types. A value fails on a field its type does not declare, a required field it lacks,
//! or a value of another kind (a finish_reason outside the declared literals, a string for a
//! number, ...).

use serde_json::Value;
use std::collections::HashMap;

#[derive(Clone, Debug)]
pub enum Ty {
    /// `unknown`, `any`, function types: anything goes.
    Any,
    String,
    Number,
    Boolean,
    Null,
    Lit(String),
    Named(String),
    Array(Box<Ty>),
    Tuple(Vec<Ty>),
    Record(Box<Ty>),
    Object(Vec<Field>),
    Union(Vec<Ty>),
    Inter(Vec<Ty>),
}

#[derive(Clone, Debug)]
pub struct Field {
    pub name: String,
    pub optional: bool,
    pub ty: Ty,
}

/// The declarations of a .d.ts file: interfaces (their `extends` folded in as intersections)
/// and type aliases, by name.
pub struct Dts {
    pub types: HashMap<String, Ty>,
}

fn tokenize(src: &str) -> Vec<String> {
    let b = src.as_bytes();
    let (mut out, mut i) = (Vec::new(), 0);
    while i < b.len() {
        let c = b[i];
        if src[i..].starts_with("//") {
            i += src[i..].find('\n').unwrap_or(src.len() - i);
        } else if src[i..].starts_with("/*") {
            i += src[i..].find("*/").expect("closed comment") + 2;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'"' {
            let end = i + 1 + src[i + 1..].find('"').expect("closed string");
            out.push(src[i..=end].to_string());
            i = end + 1;
        } else if src[i..].starts_with("=>") {
            out.push("=>".into());
            i += 2;
        } else if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$') {
                i += 1;
            }
            out.push(src[start..i].to_string());
        } else {
            out.push((c as char).to_string());
            i += 1;
        }
    }
    out
}

struct Parser {
    toks: Vec<String>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> &str {
        self.toks.get(self.at).map_or("", |s| s.as_str())
    }
    fn next(&mut self) -> String {
        self.at += 1;
        self.toks[self.at - 1].clone()
    }
    fn eat(&mut self, t: &str) -> bool {
        let hit = self.peek() == t;
        self.at += hit as usize;
        hit
    }
    fn expect(&mut self, t: &str) {
        assert!(
            self.eat(t),
            "index.d.ts: expected {t:?}, found {:?}",
            self.peek()
        );
    }

    /// A union of intersections of postfix types, with an optional leading `|`.
    fn ty(&mut self) -> Ty {
        self.eat("|");
        let mut alts = vec![self.inter()];
        while self.eat("|") {
            alts.push(self.inter());
        }
        if alts.len() == 1 {
            alts.pop().unwrap()
        } else {
            Ty::Union(alts)
        }
    }
    fn inter(&mut self) -> Ty {
        let mut parts = vec![self.postfix()];
        while self.eat("&") {
            parts.push(self.postfix());
        }
        if parts.len() == 1 {
            parts.pop().unwrap()
        } else {
            Ty::Inter(parts)
        }
    }
    fn postfix(&mut self) -> Ty {
        let mut t = self.primary();
        while self.peek() == "[" && self.toks.get(self.at + 1).map(String::as_str) == Some("]") {
            self.at += 2;
            t = Ty::Array(Box::new(t));
        }
        t
    }
    fn primary(&mut self) -> Ty {
        let t = self.next();
        match t.as_str() {
            "{" => Ty::Object(self.members("}")),
            "[" => {
                let mut items = Vec::new();
                while !self.eat("]") {
                    items.push(self.ty());
                    self.eat(",");
                }
                Ty::Tuple(items)
            }
            "(" => {
                // A function type's parameters, or a parenthesised type.
                let start = self.at;
                let mut depth = 1;
                while depth > 0 {
                    match self.next().as_str() {
                        "(" => depth += 1,
                        ")" => depth -= 1,
                        _ => {}
                    }
                }
                if self.eat("=>") {
                    self.ty();
                    return Ty::Any;
                }
                self.at = start;
                let inner = self.ty();
                self.expect(")");
                inner
            }
            "string" => Ty::String,
            "number" => Ty::Number,
            "boolean" => Ty::Boolean,
            "null" => Ty::Null,
            "unknown" | "any" | "void" => Ty::Any,
            "Record" => {
                self.expect("<");
                self.ty();
                self.expect(",");
                let v = self.ty();
                self.expect(">");
                Ty::Record(Box::new(v))
            }
            s if s.starts_with('"') => Ty::Lit(s.trim_matches('"').to_string()),
            s if s.bytes().all(|b| b.is_ascii_digit()) => Ty::Lit(s.to_string()),
            s => {
                if self.peek() == "<" {
                    // Generic types of the class declarations (Promise<...>) are not checked.
                    let mut depth = 0;
                    loop {
                        match self.next().as_str() {
                            "<" => depth += 1,
                            ">" => depth -= 1,
                            _ => {}
                        }
                        if depth == 0 {
                            break;
                        }
                    }
                    return Ty::Any;
                }
                Ty::Named(s.to_string())
            }
        }
    }
    /// `name?: type;` members up to `close`; index signatures (`[k: string]: T`) become a record.
    fn members(&mut self, close: &str) -> Vec<Field> {
        let mut fields = Vec::new();
        while !self.eat(close) {
            if self.eat("[") {
                self.next();
                self.expect(":");
                self.ty();
                self.expect("]");
                self.expect(":");
                let v = self.ty();
                fields.push(Field {
                    name: "[*]".into(),
                    optional: true,
                    ty: v,
                });
            } else {
                let name = self.next();
                let optional = self.eat("?");
                self.expect(":");
                let ty = self.ty();
                fields.push(Field { name, optional, ty });
            }
            if !self.eat(";") {
                self.eat(",");
            }
        }
        fields
    }
}

impl Dts {
    pub fn parse(src: &str) -> Dts {
        let mut p = Parser {
            toks: tokenize(src),
            at: 0,
        };
        let mut types = HashMap::new();
        while p.at < p.toks.len() {
            if p.peek() != "export" {
                p.next();
                continue;
            }
            p.next();
            match p.peek() {
                "interface" => {
                    p.next();
                    let name = p.next();
                    let mut parts = Vec::new();
                    if p.eat("extends") {
                        loop {
                            parts.push(Ty::Named(p.next()));
                            if !p.eat(",") {
                                break;
                            }
                        }
                    }
                    p.expect("{");
                    parts.push(Ty::Object(p.members("}")));
                    let ty = if parts.len() == 1 {
                        parts.pop().unwrap()
                    } else {
                        Ty::Inter(parts)
                    };
                    types.insert(name, ty);
                }
                "type" => {
                    p.next();
                    let name = p.next();
                    p.expect("=");
                    let ty = p.ty();
                    p.expect(";");
                    types.insert(name, ty);
                }
                _ => {}
            }
        }
        Dts { types }
    }

    /// Errors of `v` against the declared type `name` (empty: it conforms), as `path: problem`.
    pub fn check(&self, name: &str, v: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        self.check_ty(&Ty::Named(name.into()), v, name, &mut errs);
        errs
    }

    /// An object type's fields with intersections and names resolved; `None`: not an object type.
    fn fields(&self, t: &Ty) -> Option<Vec<Field>> {
        match t {
            Ty::Object(f) => Some(f.clone()),
            Ty::Named(n) => self.fields(self.resolve(n)?),
            Ty::Inter(parts) => {
                let mut all = Vec::new();
                for p in parts {
                    all.extend(self.fields(p)?);
                }
                Some(all)
            }
            _ => None,
        }
    }

    fn resolve(&self, name: &str) -> Option<&Ty> {
        // `Error` (BadRequestError's base) is the one built-in interface the file extends.
        static ERROR: Ty = Ty::Any;
        match name {
            "Error" => Some(&ERROR),
            n => self.types.get(n),
        }
    }

    fn check_ty(&self, t: &Ty, v: &Value, path: &str, errs: &mut Vec<String>) {
        let kind = |ok: bool, errs: &mut Vec<String>| {
            if !ok {
                errs.push(format!("{path}: {v} is not {t:?}"));
            }
        };
        match t {
            Ty::Any => {}
            Ty::String => kind(v.is_string(), errs),
            Ty::Number => kind(v.is_number(), errs),
            Ty::Boolean => kind(v.is_boolean(), errs),
            Ty::Null => kind(v.is_null(), errs),
            // A string literal's text, or a number or boolean literal parsed as JSON.
            Ty::Lit(s) => kind(
                v.as_str() == Some(s) || serde_json::from_str::<Value>(s).ok().as_ref() == Some(v),
                errs,
            ),
            Ty::Array(e) => match v.as_array() {
                Some(items) => {
                    for (i, x) in items.iter().enumerate() {
                        self.check_ty(e, x, &format!("{path}[{i}]"), errs);
                    }
                }
                None => kind(false, errs),
            },
            Ty::Tuple(ts) => match v.as_array() {
                Some(items) if items.len() == ts.len() => {
                    for (i, (x, t)) in items.iter().zip(ts).enumerate() {
                        self.check_ty(t, x, &format!("{path}[{i}]"), errs);
                    }
                }
                _ => kind(false, errs),
            },
            Ty::Record(e) => match v.as_object() {
                Some(m) => {
                    for (k, x) in m {
                        self.check_ty(e, x, &format!("{path}.{k}"), errs);
                    }
                }
                None => kind(false, errs),
            },
            Ty::Union(alts) => {
                let mut best: Option<Vec<String>> = None;
                for a in alts {
                    let mut e = Vec::new();
                    self.check_ty(a, v, path, &mut e);
                    if e.is_empty() {
                        return;
                    }
                    if best.as_ref().is_none_or(|b| e.len() < b.len()) {
                        best = Some(e);
                    }
                }
                errs.extend(best.unwrap_or_default());
            }
            Ty::Named(n) => match self.resolve(n) {
                Some(t) => self.check_ty(t, v, path, errs),
                None => errs.push(format!("{path}: type {n} is not declared in index.d.ts")),
            },
            Ty::Object(_) | Ty::Inter(_) => {
                let Some(fields) = self.fields(t) else {
                    return errs.push(format!("{path}: {t:?} is not an object type"));
                };
                let Some(m) = v.as_object() else {
                    return kind(false, errs);
                };
                let index = fields.iter().find(|f| f.name == "[*]");
                for (k, x) in m {
                    match fields.iter().find(|f| f.name == *k).or(index) {
                        Some(f) => self.check_ty(&f.ty, x, &format!("{path}.{k}"), errs),
                        None => errs.push(format!("{path}.{k}: not declared in index.d.ts")),
                    }
                }
                for f in fields.iter().filter(|f| !f.optional) {
                    if !m.contains_key(&f.name) {
                        errs.push(format!("{path}.{}: declared required, missing", f.name));
                    }
                }
            }
        }
    }
}
