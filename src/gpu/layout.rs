//! Explicit bind group layouts, read from the WGSL: for each entry point, the `@group(0)` bindings
//! it uses (through the functions it calls) and their address spaces, which is what an automatic
//! layout would hold. Explicit layouts let a browser compile pipelines ahead of time: Dawn reuses
//! a pipeline created before with an equal descriptor, but an automatic layout is never equal to
//! another (each gets its own compatibility token), so only an explicit one can be found again
//! (see `prewarm.rs`). Natively the same layouts are used, so every test exercises them.

use std::collections::{HashMap, HashSet};

/// How a binding is declared: `var<uniform>`, `var<storage, read>` or `var<storage, read_write>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Uniform,
    ReadOnly,
    ReadWrite,
}

impl Kind {
    fn wgpu(self) -> wgpu::BufferBindingType {
        match self {
            Kind::Uniform => wgpu::BufferBindingType::Uniform,
            Kind::ReadOnly => wgpu::BufferBindingType::Storage { read_only: true },
            Kind::ReadWrite => wgpu::BufferBindingType::Storage { read_only: false },
        }
    }

    /// The name WebGPU's `GPUBufferBindingType` gives it.
    pub fn webgpu_name(self) -> &'static str {
        match self {
            Kind::Uniform => "uniform",
            Kind::ReadOnly => "read-only-storage",
            Kind::ReadWrite => "storage",
        }
    }
}

/// A WGSL module's top level, as far as layouts need it.
#[derive(Debug, Default)]
pub struct Module {
    /// Global name → (binding, kind), for `@group(0)` variables.
    globals: HashMap<String, (u32, Kind)>,
    /// Function name → every identifier in its body.
    functions: HashMap<String, HashSet<String>>,
    /// Functions marked `@compute`, in source order.
    pub entries: Vec<String>,
}

#[derive(Debug, PartialEq)]
enum Token<'a> {
    Ident(&'a str),
    Number(&'a str),
    Punct(char),
}

/// Identifiers, numbers and single-character punctuation; comments dropped (WGSL block comments
/// nest).
fn tokens(src: &str) -> Vec<Token<'_>> {
    let b = src.as_bytes();
    let (mut i, mut out) = (0, Vec::new());
    while i < b.len() {
        let c = b[i];
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c.is_ascii_alphabetic() || c == b'_' || c.is_ascii_digit() {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'.') {
                // A '.' continues a number (1.5) but ends an identifier (a.b).
                if b[i] == b'.' && !c.is_ascii_digit() {
                    break;
                }
                i += 1;
            }
            let word = &src[start..i];
            out.push(if c.is_ascii_digit() {
                Token::Number(word)
            } else {
                Token::Ident(word)
            });
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else {
            // Multi-byte UTF-8 only appears in comments, which are skipped above.
            out.push(Token::Punct(c as char));
            i += 1;
        }
    }
    out
}

fn number(t: Option<&Token>) -> Option<u32> {
    match t {
        Some(Token::Number(n)) => n.trim_end_matches(['u', 'i']).parse().ok(),
        _ => None,
    }
}

impl Module {
    /// Reads the top level of `src`: bindings, functions, entry points.
    pub fn parse(src: &str) -> Result<Module, String> {
        let t = tokens(src);
        let mut m = Module::default();
        let (mut depth, mut i) = (0usize, 0usize);
        // Attributes seen since the last top-level declaration: @group(g), @binding(b), @compute.
        let (mut group, mut binding, mut compute) = (None, None, false);
        // The function whose body is open: its name, the names it uses, and the names declared in
        // each enclosing block (parameters first), which hide globals of the same name.
        let mut open: Option<(String, HashSet<String>)> = None;
        let mut scopes: Vec<HashSet<&str>> = Vec::new();
        // Depths of the `for` statements open: their own scope (the loop variable's) ends with
        // their body.
        let mut fors: Vec<usize> = Vec::new();
        while i < t.len() {
            match (&t[i], depth) {
                (Token::Punct('{'), _) => {
                    depth += 1;
                    scopes.push(HashSet::new());
                }
                (Token::Punct('}'), _) => {
                    depth = depth.checked_sub(1).ok_or("unbalanced '}'")?;
                    scopes.pop();
                    if fors.last() == Some(&depth) {
                        fors.pop();
                        scopes.pop();
                    }
                    if depth == 0 {
                        if let Some((name, idents)) = open.take() {
                            m.functions.insert(name, idents);
                        }
                        scopes.clear();
                        fors.clear();
                    }
                }
                (Token::Ident("for"), d) if d > 0 => {
                    fors.push(d);
                    scopes.push(HashSet::new());
                }
                // `let x`, `var x`, `var<function> x`, `const x` in a body: a local from here on.
                (Token::Ident("let" | "var" | "const"), d) if d > 0 => {
                    let mut j = i + 1;
                    if t.get(j) == Some(&Token::Punct('<')) {
                        while j < t.len() && t[j] != Token::Punct('>') {
                            j += 1;
                        }
                        j += 1;
                    }
                    if let (Some(Token::Ident(name)), Some(scope)) = (t.get(j), scopes.last_mut()) {
                        scope.insert(name);
                    }
                    i = j;
                }
                // A name after '.' is a member or a swizzle (`v.x`), never a global or a call.
                (Token::Ident(id), d) if d > 0 && t[i - 1] != Token::Punct('.') => {
                    let local = scopes.iter().any(|s| s.contains(id));
                    if let (Some((_, idents)), false) = (&mut open, local) {
                        idents.insert(id.to_string());
                    }
                }
                (Token::Punct('@'), 0) => {
                    let attr = match t.get(i + 1) {
                        Some(Token::Ident(a)) => *a,
                        _ => return Err("an attribute without a name".into()),
                    };
                    match attr {
                        "group" => group = number(t.get(i + 3)),
                        "binding" => binding = number(t.get(i + 3)),
                        "compute" => compute = true,
                        _ => {}
                    }
                    i += 1;
                }
                (Token::Ident("fn"), 0) => {
                    let Some(Token::Ident(name)) = t.get(i + 1) else {
                        return Err("`fn` without a name".into());
                    };
                    if compute {
                        m.entries.push(name.to_string());
                    }
                    open = Some((name.to_string(), HashSet::new()));
                    // Parameters (a name then ':', up to the body) are the outermost locals.
                    let mut params = HashSet::new();
                    let mut j = i + 2;
                    while j + 1 < t.len() && t[j] != Token::Punct('{') {
                        if let (Token::Ident(p), Token::Punct(':')) = (&t[j], &t[j + 1]) {
                            params.insert(*p);
                        }
                        j += 1;
                    }
                    scopes = vec![params];
                    (group, binding, compute) = (None, None, false);
                    i += 1;
                }
                (Token::Ident("var"), 0) => {
                    let (name, kind) = var_decl(&t[i + 1..])?;
                    if let (Some(0), Some(b), Some(kind)) = (group, binding, kind) {
                        m.globals.insert(name.to_string(), (b, kind));
                    }
                    (group, binding, compute) = (None, None, false);
                }
                (Token::Punct(';'), 0) => (group, binding, compute) = (None, None, false),
                _ => {}
            }
            i += 1;
        }
        if depth != 0 {
            return Err("unbalanced '{'".into());
        }
        Ok(m)
    }

    /// The `@group(0)` bindings `entry` uses, directly or through the functions it calls, sorted
    /// by binding. Two globals may share a binding number when no entry point uses both; one
    /// that does is an error here, as it is in WGSL.
    pub fn bindings(&self, entry: &str) -> Result<Vec<(u32, Kind)>, String> {
        if !self.functions.contains_key(entry) {
            return Err(format!("no function `{entry}`"));
        }
        let (mut seen, mut todo) = (HashSet::from([entry]), vec![entry]);
        let mut used: HashMap<u32, (&str, Kind)> = HashMap::new();
        while let Some(f) = todo.pop() {
            for id in &self.functions[f] {
                if let Some(&(b, kind)) = self.globals.get(id) {
                    if let Some((other, _)) = used.insert(b, (id, kind)) {
                        if other != id {
                            return Err(format!(
                                "`{entry}` uses `{other}` and `{id}`, both binding {b}"
                            ));
                        }
                    }
                }
                if self.functions.contains_key(id.as_str()) && seen.insert(id) {
                    todo.push(id);
                }
            }
        }
        let mut out: Vec<(u32, Kind)> = used.into_iter().map(|(b, (_, k))| (b, k)).collect();
        out.sort_by_key(|&(b, _)| b);
        Ok(out)
    }
}

/// After `var`: `<space[, access]> name`; the kind is None for spaces that are not buffers.
fn var_decl<'a>(t: &[Token<'a>]) -> Result<(&'a str, Option<Kind>), String> {
    let words: Vec<&str> = t
        .iter()
        .take_while(|t| **t != Token::Punct(':') && **t != Token::Punct(';'))
        .filter_map(|t| match t {
            Token::Ident(w) => Some(*w),
            _ => None,
        })
        .collect();
    let Some((&name, qualifiers)) = words.split_last() else {
        return Err("`var` without a name".into());
    };
    let kind = match qualifiers {
        ["uniform"] => Some(Kind::Uniform),
        ["storage"] | ["storage", "read"] => Some(Kind::ReadOnly),
        ["storage", "read_write"] => Some(Kind::ReadWrite),
        _ => None,
    };
    Ok((name, kind))
}

/// The wgpu layout entries for `bindings` (no minimum sizes: checked when dispatched).
pub fn entries(bindings: &[(u32, Kind)]) -> Vec<wgpu::BindGroupLayoutEntry> {
    bindings
        .iter()
        .map(|&(binding, kind)| wgpu::BindGroupLayoutEntry {
            binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: kind.wgpu(),
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "
        // @group(0) @binding(9) var<storage, read_write> commented: array<u32>;
        struct P { n: u32, }
        @group(0) @binding(0) var<uniform> p: P;
        @group(0) @binding(1) var<storage, read> a: array<f32>;
        @group(0) @binding(1) var<uniform> au: array<vec4<f32>, 16>;
        @group(0)
        @binding(2) var<storage, read_write> out: array<f32>;
        @group(0) @binding(3) var<storage> plain: array<f32>;
        var<workgroup> shared_x: array<f32, 64>;
        /* nested /* block */ comment: fn ghost() { out[0] = 1.0; } */
        fn load(i: u32) -> f32 { if i > 0u { return a[i]; } return 1.5 + vec2(p.n, 0.5).x; }
        fn load_u(i: u32) -> f32 { return au[i / 4u][i % 4u]; }
        @compute @workgroup_size(64)
        fn main(@builtin(global_invocation_id) g: vec3<u32>) { out[g.x] = load(g.x) * f32(p.n); }
        @compute @workgroup_size(64)
        fn main_u(@builtin(global_invocation_id) g: vec3<u32>) { out[g.x] = load_u(g.x) + plain[0]; }
        @compute @workgroup_size(1) fn both() { out[0] = load(0u) + load_u(0u); }
        @compute @workgroup_size(1) fn member() { let s = P(1u); out[0] = f32(s.p + s.plain); }
        @compute @workgroup_size(1) fn shadow(a: u32) {
            for (var out = 0u; out < 2u; out++) { let plain = 1.0; for (var i = 0u; i < 1u; i++) {} }
            { var<function> p = 2u; }
            out[a] = f32(p.n);
        }
    ";

    #[test]
    fn bindings_follow_the_calls() {
        let m = Module::parse(SRC).unwrap();
        assert_eq!(m.entries, ["main", "main_u", "both", "member", "shadow"]);
        use Kind::*;
        assert_eq!(
            m.bindings("main").unwrap(),
            [(0, Uniform), (1, ReadOnly), (2, ReadWrite)]
        );
        assert_eq!(
            m.bindings("main_u").unwrap(),
            [(1, Uniform), (2, ReadWrite), (3, ReadOnly)]
        );
        assert_eq!(m.bindings("load").unwrap(), [(0, Uniform), (1, ReadOnly)]);
        assert_eq!(m.bindings("member").unwrap(), [(2, ReadWrite)]);
        // A parameter `a` hides the global; the loop's `out` and `plain` end with the loop, the
        // block's `p` with the block.
        assert_eq!(
            m.bindings("shadow").unwrap(),
            [(0, Uniform), (2, ReadWrite)]
        );
        let err = m.bindings("both").unwrap_err();
        assert!(err.contains("both binding 1"), "{err}");
        assert!(m.bindings("ghost").is_err());
    }

    #[test]
    fn broken_text_is_an_error() {
        assert!(Module::parse("fn f() { {").is_err());
        assert!(Module::parse("fn f() } ").is_err());
        assert!(Module::parse("@(0) fn f() {}").is_err());
        assert!(Module::parse("fn").is_err());
    }
}
