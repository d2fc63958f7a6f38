//! Namespace assignments in chat templates: the one mutable value a template has, guarded so a
//! namespace can never hold a namespace (MiniJinja's printing of such a cycle recurses until the
//! stack overflows, which aborts the process). Also rewrites transformers' `{% generation %}` tag.

use super::{pyfmt, sandbox, template_error, TEMPLATE_NAME};
use crate::{Error, Result};
use minijinja::machinery::get_compiled_template;
use minijinja::value::{Value, ValueKind};
use minijinja::{Environment, ErrorKind};

/// The function every namespace assignment goes through (see [`rewrite_tags`]); templates may not
/// use the name themselves.
pub(super) const NS_STORE: &str = "__attend_ns_store"; // starts with sandbox::RESERVED_PREFIX

/// Rewrites block tags before compiling, with a scanner that skips comments, `{% raw %}` blocks and
/// string literals inside tags as MiniJinja's lexer does:
/// - transformers' `{% generation %}…{% endgeneration %}` (assistant-mask tracking) renders its
///   body unchanged; it becomes an always-true `if`, so whitespace control (`-`, `+`, trim/lstrip)
///   works exactly as on the original tag;
/// - `{% set ns.attr = value %}` becomes `{% set ns.attr = __attend_ns_store((value), ns) %}`:
///   a namespace is the one mutable value in a template, and one that holds another namespace (or
///   itself: `{% set ns.me = ns %}`) makes MiniJinja's own printing (`|string`, `~`, `.items()`)
///   recurse until the stack overflows, which aborts the process (no panic to catch). The guard
///   refuses values that contain a namespace. [`verify_namespace_stores`] then checks the compiled
///   template: every namespace assignment must go through the guard, so anything this scanner
///   misreads fails closed.
pub(super) fn rewrite_tags(src: &str) -> Result<String> {
    if src.contains(sandbox::RESERVED_PREFIX) {
        return Err(Error::Invalid(format!(
            "chat template: names starting with `{}` are reserved",
            sandbox::RESERVED_PREFIX
        )));
    }
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len() + 64);
    let (mut i, mut copied) = (0, 0);
    while i + 1 < b.len() {
        if b[i] != b'{' {
            i += 1;
            continue;
        }
        match b[i + 1] {
            b'#' => i = src[i + 2..].find("#}").map_or(b.len(), |e| i + 2 + e + 2),
            b'{' => i = tag_end(b, i + 2, b'}'),
            b'%' => {
                let end = tag_end(b, i + 2, b'%');
                if end > b.len() {
                    break; // unterminated: MiniJinja reports it
                }
                let inner = &src[i + 2..end - 2];
                let (lead, body) = split_marker(inner, true);
                let (body, trail) = split_marker(body, false);
                let replacement = match body.trim() {
                    "generation" => Some("if true".to_string()),
                    "endgeneration" => Some("endif".to_string()),
                    "raw" => {
                        i = raw_end(src, end);
                        continue;
                    }
                    _ => rewrite_set(body),
                };
                if let Some(r) = replacement {
                    out.push_str(&src[copied..i]);
                    out.push_str(&format!("{{%{lead} {r} {trail}%}}"));
                    copied = end;
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    out.push_str(&src[copied.min(src.len())..]);
    Ok(out)
}

/// The index after the `%}` (or `}}`) closing a tag whose body starts at `from`, skipping string
/// literals; `b.len() + 1` when there is none. The search starts after the opening `{%`: in `{%}`
/// the two overlap, and the old rewrite sliced the body as `[2..1]` and panicked (issue #8).
fn tag_end(b: &[u8], from: usize, close: u8) -> usize {
    let mut j = from;
    while j < b.len() {
        match b[j] {
            q @ (b'\'' | b'"') => {
                j += 1;
                while j < b.len() && b[j] != q {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                j += 1;
            }
            c if c == close && b.get(j + 1) == Some(&b'}') => return j + 2,
            _ => j += 1,
        }
    }
    b.len() + 1
}

/// The index after the `{% endraw %}` tag that ends a raw block whose content starts at `from`.
fn raw_end(src: &str, from: usize) -> usize {
    let mut k = from;
    while let Some(p) = src.get(k..).and_then(|s| s.find("{%")) {
        let at = k + p;
        let rest = &src[at + 2..];
        let rest = rest.strip_prefix(['-', '+']).unwrap_or(rest).trim_start();
        if let Some(rest) = rest.strip_prefix("endraw") {
            let rest = rest.trim_start();
            let rest = rest.strip_prefix(['-', '+']).unwrap_or(rest);
            if rest.starts_with("%}") {
                return src.len() - rest.len() + 2;
            }
        }
        k = at + 2;
    }
    src.len()
}

/// `set NAME.ATTR = VALUE` → `set NAME.ATTR = __attend_ns_store((VALUE), NAME)`; `None` for any
/// other tag body (other assignment forms are left for [`verify_namespace_stores`] to judge).
fn rewrite_set(body: &str) -> Option<String> {
    let rest = body.trim().strip_prefix("set")?;
    if !rest.starts_with(char::is_whitespace) {
        return None;
    }
    // The first `=` outside strings that is not part of `==`, `!=`, `<=`, `>=`.
    let b = rest.as_bytes();
    let mut j = 0;
    let eq = loop {
        match *b.get(j)? {
            q @ (b'\'' | b'"') => {
                j += 1;
                while j < b.len() && b[j] != q {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
                j += 1;
            }
            b'=' if b.get(j + 1) != Some(&b'=')
                && !matches!(
                    j.checked_sub(1).map(|p| b[p]),
                    Some(b'=' | b'!' | b'<' | b'>')
                ) =>
            {
                break j;
            }
            _ => j += 1,
        }
    };
    let target: String = rest[..eq].chars().filter(|c| !c.is_whitespace()).collect();
    let (ns, attr) = target.split_once('.')?;
    let ident = |s: &str| {
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !ident(ns) || !ident(attr) {
        return None;
    }
    let value = rest[eq + 1..].trim();
    Some(format!("set {ns}.{attr} = {NS_STORE}(({value}), {ns})"))
}

/// Every `SetAttr` (namespace assignment) in the compiled template must be a rewritten
/// `set ns.attr = __attend_ns_store(value, ns)` or a `{% set ns.attr %}…{% endset %}` block (which
/// stores a string). Anything else (tuple targets, `ns.a.b`, a filtered set block) is refused.
pub(super) fn verify_namespace_stores(env: &Environment<'static>) -> Result<()> {
    use minijinja::machinery::Instruction as I;
    let tmpl = env.get_template(TEMPLATE_NAME).map_err(template_error)?;
    let compiled = get_compiled_template(&tmpl);
    for code in std::iter::once(&compiled.instructions).chain(compiled.blocks.values()) {
        let at = |i: usize, back: usize| i.checked_sub(back).and_then(|j| code.get(j as u32));
        for i in 0..code.len() {
            let Some(I::SetAttr(attr)) = code.get(i as u32) else {
                continue;
            };
            let guarded = match (at(i, 3), at(i, 2), at(i, 1)) {
                (Some(I::Lookup(a)), Some(I::CallFunction(f, _)), Some(I::Lookup(b))) => {
                    a == b && *f == NS_STORE
                }
                (_, Some(I::EndCapture), Some(I::Lookup(_))) => true,
                _ => false,
            };
            if !guarded {
                return Err(Error::Invalid(format!(
                    "chat template: unsupported assignment to namespace attribute `{attr}`: use \
                     `{{% set name.attr = value %}}` or `{{% set name.attr %}}…{{% endset %}}`"
                )));
            }
        }
    }
    Ok(())
}

/// Whether `v` is a MiniJinja namespace. The type is private to MiniJinja; its derived `Debug`
/// starts with its name, and only that prefix is formatted (a test pins this down).
fn is_namespace(v: &Value) -> bool {
    struct Prefix(String);
    impl std::fmt::Write for Prefix {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let room = 16usize.saturating_sub(self.0.len());
            self.0.extend(s.chars().take(room));
            if self.0.len() >= 16 {
                return Err(std::fmt::Error); // enough: stop formatting right here
            }
            Ok(())
        }
    }
    let Some(obj) = v.as_object() else {
        return false;
    };
    let mut p = Prefix(String::new());
    let _ = std::fmt::Write::write_fmt(&mut p, format_args!("{obj:?}"));
    p.0.starts_with("Namespace {")
}

/// Values a rendering's namespace guards may inspect in total.
pub const NAMESPACE_CHECK_BUDGET: usize = 5_000_000;

#[derive(Debug)]
struct NsBudget(std::sync::atomic::AtomicUsize);
impl minijinja::value::Object for NsBudget {}

/// The guard of `{% set ns.attr = value %}`: the value, unless it holds a namespace.
pub(super) fn ns_store(
    state: &minijinja::State,
    value: Value,
    _ns: Value,
) -> std::result::Result<Value, minijinja::Error> {
    let budget = state.get_or_set_temp_object("attend_ns_budget", || {
        NsBudget(std::sync::atomic::AtomicUsize::new(NAMESPACE_CHECK_BUDGET))
    });
    no_namespace_in(&value, 0, &budget.0)?;
    Ok(value)
}

fn no_namespace_in(
    v: &Value,
    depth: usize,
    budget: &std::sync::atomic::AtomicUsize,
) -> std::result::Result<(), minijinja::Error> {
    use std::sync::atomic::Ordering::Relaxed;
    if !matches!(
        v.kind(),
        ValueKind::Map | ValueKind::Seq | ValueKind::Iterable
    ) {
        return Ok(());
    }
    let err = |m: String| minijinja::Error::new(ErrorKind::InvalidOperation, m);
    if budget
        .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1))
        .is_err()
    {
        return Err(err(format!(
            "namespace assignments inspected more than the limit of {NAMESPACE_CHECK_BUDGET} values"
        )));
    }
    if is_namespace(v) {
        return Err(err(
            "a namespace cannot hold a namespace (it could end up containing itself)".into(),
        ));
    }
    if depth >= pyfmt::MAX_DEPTH {
        return Err(err(format!(
            "value stored in a namespace is nested deeper than the limit of {} levels",
            pyfmt::MAX_DEPTH
        )));
    }
    let map = v.kind() == ValueKind::Map;
    for item in v.try_iter()? {
        no_namespace_in(&item, depth + 1, budget)?;
        if map {
            no_namespace_in(&v.get_item(&item)?, depth + 1, budget)?;
        }
    }
    Ok(())
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
