//! Bounds on the text a chat template can build (issue #8).
//!
//! MiniJinja's fuel counts instructions, not bytes: `{% set s = s ~ s %}` doubles a string per
//! instruction, so sixty of them ask for 2^60 bytes long before the fuel runs out, and MiniJinja
//! offers no hook on its operators. So the compiled instructions are copied before each rendering
//! with the three operators that can grow a value (`~`, `+`, `*`) replaced one for one by calls to
//! checked functions ([`patch`]); jump targets stay valid because no instruction is added or
//! removed. The filters and string methods that amplify their input (`replace`, `join`, `indent`,
//! `format`) check the size of their result before building it. Every string those build, and
//! every value printed (also into `{% set x %}…{% endset %}` captures and macro bodies), is charged
//! to a per-rendering budget of [`RENDER_BUDGET_BYTES`]; template literal text, printed without a
//! hook, is bounded by lowering the fuel of templates with long literals ([`fuel_for`]).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use minijinja::machinery::{Instruction, Instructions};
use minijinja::value::{from_args, Kwargs, Rest, StringInput, Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State};

/// Largest string one template operation may build (`~`, `+`, `*`, `replace`, `join`, …): the
/// size of the largest rendered prompt.
pub const MAX_STRING_BYTES: usize = super::MAX_RENDER_BYTES;
/// Longest sequence `+` or `*` may build (MiniJinja builds them lazily, but `|list` and
/// friends materialize them).
pub const MAX_SEQ_ITEMS: usize = 1_000_000;
/// Bytes of strings built by operators and amplifying filters plus bytes printed, per rendering.
/// Real templates print the conversation (at most 1 MiB) a few times over.
pub const RENDER_BUDGET_BYTES: usize = 128 << 20;
/// Bytes of template literal text one rendering may print: fuel × the longest literal.
pub const RAW_BUDGET_BYTES: usize = 64 << 20;

/// Prefix of the names of the checked operators; templates may not use it.
pub const RESERVED_PREFIX: &str = "__attend_";
const CONCAT: &str = "__attend_concat";
const ADD: &str = "__attend_add";
const MUL: &str = "__attend_mul";

fn err(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

fn too_long(what: &str) -> Error {
    err(format!(
        "{what} would build a string of more than {MAX_STRING_BYTES} bytes, the limit of one \
         template value"
    ))
}

/// Register the checked operators and the bounded filters.
pub fn install(env: &mut Environment<'static>) {
    env.add_function(CONCAT, concat);
    env.add_function(ADD, add);
    env.add_function(MUL, mul);
    env.add_filter("replace", replace_filter);
    env.add_filter("join", join_filter);
    env.add_filter("indent", indent_filter);
    env.add_filter("format", format_filter);
}

/// A copy of `code` with `~`, `+` and `*` calling the checked functions.
pub fn patch<'s>(code: &Instructions<'s>) -> Instructions<'s> {
    let mut out = Instructions::new(code.name(), code.source());
    for i in 0..code.len() as u32 {
        let Some(instr) = code.get(i) else { break };
        let instr = match instr {
            Instruction::StringConcat => Instruction::CallFunction(CONCAT, Some(2)),
            Instruction::Add => Instruction::CallFunction(ADD, Some(2)),
            Instruction::Mul => Instruction::CallFunction(MUL, Some(2)),
            other => other.clone(),
        };
        match code.get_span(i) {
            Some(span) => out.add_with_span(instr, span),
            None => out.add_with_line(instr, code.get_line(i).unwrap_or(0) as u16),
        };
    }
    out
}

/// The longest literal text in `code`.
pub fn longest_literal(code: &Instructions<'_>) -> usize {
    (0..code.len() as u32)
        .filter_map(|i| match code.get(i) {
            Some(Instruction::EmitRaw(s)) => Some(s.len()),
            _ => None,
        })
        .max()
        .unwrap_or(0)
}

/// The fuel of a template whose longest literal has `longest` bytes: `fuel`, lowered so that
/// printing that literal once per instruction stays within [`RAW_BUDGET_BYTES`].
pub fn fuel_for(fuel: u64, longest: usize) -> u64 {
    fuel.min((RAW_BUDGET_BYTES / longest.max(1)) as u64).max(1)
}

#[derive(Debug)]
struct Budget(AtomicUsize);
impl minijinja::value::Object for Budget {}

/// Charge `bytes` to the rendering's budget.
pub fn charge(state: &State, bytes: usize) -> Result<(), Error> {
    let budget = state.get_or_set_temp_object("attend_render_budget", || {
        Budget(AtomicUsize::new(RENDER_BUDGET_BYTES))
    });
    if budget
        .0
        .fetch_update(Relaxed, Relaxed, |n| n.checked_sub(bytes))
        .is_err()
    {
        budget.0.store(0, Relaxed);
        return Err(err(format!(
            "the template built more than {RENDER_BUDGET_BYTES} bytes of text in one rendering \
             (the limit of one rendering)"
        )));
    }
    Ok(())
}

/// A string that refuses to grow past `cap` bytes.
struct Capped {
    s: String,
    cap: usize,
}

impl std::fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.s.len() + s.len() > self.cap {
            return Err(std::fmt::Error);
        }
        self.s.push_str(s);
        Ok(())
    }
}

/// Bytes `v` prints as (MiniJinja's `Display`), or `None` past `cap`.
fn display_len(v: &Value, cap: usize) -> Option<usize> {
    if let Some(s) = v.as_str() {
        return (s.len() <= cap).then_some(s.len());
    }
    struct Count(usize, usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            if self.0 > self.1 {
                return Err(std::fmt::Error);
            }
            Ok(())
        }
    }
    let mut c = Count(0, cap);
    write!(c, "{v}").ok()?;
    Some(c.0)
}

/// `a ~ b`, as MiniJinja concatenates (both printed with `Display`), at most [`MAX_STRING_BYTES`].
fn concat(state: &State, a: Value, b: Value) -> Result<Value, Error> {
    let mut out = Capped {
        s: String::new(),
        cap: MAX_STRING_BYTES,
    };
    write!(out, "{a}{b}").map_err(|_| too_long("`~`"))?;
    charge(state, out.s.len())?;
    Ok(Value::from(out.s))
}

fn seq_len(v: &Value) -> Option<usize> {
    matches!(v.kind(), ValueKind::Seq | ValueKind::Iterable)
        .then(|| v.len())
        .flatten()
}

/// MiniJinja's own operator, for operands the checks have let through.
fn builtin(state: &State, expr: &'static str, a: Value, b: Value) -> Result<Value, Error> {
    state
        .env()
        .compile_expression(expr)?
        .eval(minijinja::context! { a => a, b => b })
}

fn add(state: &State, a: Value, b: Value) -> Result<Value, Error> {
    if a.is_integer() && b.is_integer() {
        if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
            if let Some(z) = x.checked_add(y) {
                return Ok(Value::from(z));
            }
        }
    }
    if let (Some(x), Some(y)) = (a.as_str(), b.as_str()) {
        if x.len() + y.len() > MAX_STRING_BYTES {
            return Err(too_long("`+`"));
        }
        charge(state, x.len() + y.len())?;
        return Ok(Value::from([x, y].concat()));
    }
    if let (Some(x), Some(y)) = (seq_len(&a), seq_len(&b)) {
        if x.saturating_add(y) > MAX_SEQ_ITEMS {
            return Err(err(format!(
                "`+` would build a list of more than {MAX_SEQ_ITEMS} items"
            )));
        }
    }
    builtin(state, "a + b", a, b)
}

fn mul(state: &State, a: Value, b: Value) -> Result<Value, Error> {
    if a.is_integer() && b.is_integer() {
        if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
            if let Some(z) = x.checked_mul(y) {
                return Ok(Value::from(z));
            }
        }
    }
    let (s, n) = if a.is_integer() { (&b, &a) } else { (&a, &b) };
    if let Some(n) = n.as_usize() {
        if let Some(text) = s.as_str() {
            let len = text.len().checked_mul(n).filter(|&l| l <= MAX_STRING_BYTES);
            charge(state, len.ok_or_else(|| too_long("`*`"))?)?;
        } else if let Some(len) = seq_len(s) {
            if len.checked_mul(n).is_none_or(|l| l > MAX_SEQ_ITEMS) {
                return Err(err(format!(
                    "`*` would build a list of more than {MAX_SEQ_ITEMS} items"
                )));
            }
        }
    }
    builtin(state, "a * b", a, b)
}

/// The size of `s` with `count` (all when `None`) of the `from`s replaced by `to`, or an error.
fn check_replace(s: &str, from: &str, to: &str, count: Option<usize>) -> Result<usize, Error> {
    if to.len() <= from.len() && !from.is_empty() {
        return Ok(s.len());
    }
    let mut n = if from.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(from).count()
    };
    if let Some(c) = count {
        n = n.min(c);
    }
    // Matches do not overlap, so `n * from.len() <= s.len()`.
    n.checked_mul(to.len())
        .and_then(|grow| (s.len() - n * from.len()).checked_add(grow))
        .filter(|&l| l <= MAX_STRING_BYTES)
        .ok_or_else(|| too_long("`replace`"))
}

fn replace_filter(
    state: &State,
    value: StringInput<'_>,
    from: StringInput<'_>,
    to: StringInput<'_>,
) -> Result<Value, Error> {
    let len = check_replace(value.as_str(), from.as_str(), to.as_str(), None)?;
    charge(state, len)?;
    minijinja::filters::replace(state, value, from, to)
}

/// Bytes `sep.join(items)` prints as, or an error past [`MAX_STRING_BYTES`].
fn check_join(items: &Value, sep: &str) -> Result<usize, Error> {
    let mut total = 0usize;
    for (i, item) in items.try_iter()?.enumerate() {
        let room = MAX_STRING_BYTES.saturating_sub(total);
        let sep_len = if i > 0 { sep.len() } else { 0 };
        total = display_len(&item, room)
            .and_then(|l| l.checked_add(sep_len))
            .and_then(|l| total.checked_add(l))
            .filter(|&t| t <= MAX_STRING_BYTES)
            .ok_or_else(|| too_long("`join`"))?;
    }
    Ok(total)
}

fn join_filter(
    state: &State,
    value: &Value,
    joiner: Option<StringInput<'_>>,
) -> Result<Value, Error> {
    if !value.is_undefined() && !value.is_none() && value.as_str().is_none() {
        let sep = joiner.as_ref().map_or("", |j| j.as_str());
        charge(state, check_join(value, sep)?)?;
    }
    minijinja::filters::join(state, value, joiner)
}

fn indent_filter(state: &State, args: Rest<Value>) -> Result<Value, Error> {
    type Args<'a> = (
        StringInput<'a>,
        Option<usize>,
        Option<bool>,
        Option<bool>,
        Kwargs,
    );
    let (value, width, first, blank, kwargs): Args = from_args(&args)?;
    let w = match width {
        Some(w) => w,
        None => kwargs.peek::<Option<usize>>("width")?.unwrap_or(4),
    };
    let lines = value.as_str().split('\n').count();
    let len = w
        .checked_mul(lines)
        .and_then(|pad| pad.checked_add(value.as_str().len()))
        .filter(|&l| l <= MAX_STRING_BYTES)
        .ok_or_else(|| too_long("`indent`"))?;
    charge(state, len)?;
    minijinja::filters::indent(value, width, first, blank, kwargs)
}

/// The most a format string and its arguments can print: the string, every argument printed
/// and every number in the string taken as a padding width or precision (`%*d`-style widths
/// taken from the arguments count as well).
fn check_format(fmt: &str, args: &[Value]) -> Result<usize, Error> {
    let mut total = fmt.len();
    let mut digits = 0usize;
    for c in fmt.chars().chain(std::iter::once(' ')) {
        match c.to_digit(10) {
            Some(d) => {
                digits = digits
                    .checked_mul(10)
                    .and_then(|x| x.checked_add(d as usize))
                    .filter(|&x| x <= MAX_STRING_BYTES)
                    .ok_or_else(|| too_long("`format`"))?;
            }
            None => {
                total = total.saturating_add(digits);
                digits = 0;
            }
        }
    }
    for a in args {
        let room = MAX_STRING_BYTES.saturating_sub(total);
        total += display_len(a, room).ok_or_else(|| too_long("`format`"))?;
        if fmt.contains('*') {
            total = total.saturating_add(a.as_usize().unwrap_or(0));
        }
    }
    if total > MAX_STRING_BYTES {
        return Err(too_long("`format`"));
    }
    Ok(total)
}

fn format_filter(state: &State, fmt: &Value, args: Rest<Value>) -> Result<Value, Error> {
    if let Some(s) = fmt.as_str() {
        charge(state, check_format(s, &args)?)?;
    }
    minijinja::filters::format(state, fmt, args)
}

/// Checks the string methods that amplify their input (`replace`, `join`, `format`) before
/// pycompat runs them; other methods pass.
pub fn check_method(
    state: &State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<(), Error> {
    let Some(s) = value.as_str() else {
        return Ok(());
    };
    let len = match (method, args) {
        ("replace", [from, to, rest @ ..]) => {
            let count = rest.first().and_then(|c| i64::try_from(c.clone()).ok());
            let count = count.filter(|&c| c >= 0).map(|c| c as usize);
            match (from.as_str(), to.as_str()) {
                (Some(f), Some(t)) => check_replace(s, f, t, count)?,
                _ => return Ok(()),
            }
        }
        ("join", [items]) => check_join(items, s)?,
        ("format", args) => check_format(s, args)?,
        _ => return Ok(()),
    };
    charge(state, len)
}

/// MiniJinja folds constant expressions while compiling (`'x' * 99999999` becomes a 100 MB
/// string inside the compiled template, before any rendering and outside the fuel), so the
/// checked operators never see them. Every tag holding `*` is bounded before compiling: its
/// constants can fold to at most (its literal bytes and tokens) × Π max(|integer literal|, 2)
/// bytes or items, which must stay within [`MAX_STRING_BYTES`]; `**` next to a `*` could raise
/// that product without bound and is refused.
pub fn check_constant_folding(src: &str) -> Result<(), String> {
    use minijinja::machinery::{tokenize, Token, WhitespaceConfig};
    let mut tokens = tokenize(src, false, Default::default(), WhitespaceConfig::default());
    let (mut bytes, mut product, mut mul, mut pow) = (1u128, 1u128, false, false);
    let cap = MAX_STRING_BYTES as u128;
    while let Some(Ok((token, _))) = tokens.next() {
        match token {
            Token::VariableEnd | Token::BlockEnd => {
                if mul && (pow || bytes.saturating_mul(product) > cap) {
                    return Err(format!(
                        "a constant expression with `*` could fold to more than \
                         {MAX_STRING_BYTES} bytes while compiling, the limit of one template value"
                    ));
                }
                (bytes, product, mul, pow) = (1, 1, false, false);
            }
            Token::Str(s) => bytes += s.len() as u128 + 1,
            Token::String(s) => bytes += s.len() as u128 + 1,
            Token::Int(n) => product = product.saturating_mul(n.max(2) as u128),
            Token::Int128(n) => product = product.saturating_mul((*n).max(2)),
            Token::Mul => mul = true,
            Token::Pow => pow = true,
            _ => bytes += 1,
        }
    }
    Ok(())
}
