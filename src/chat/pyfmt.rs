//! Python's way of printing values, for the places where HF templates show it: `{{ x }}` goes through
//! `str()`, the `tojson` filter through `json.dumps`, and `strftime_now` through `datetime.strftime`.

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind};

/// Deepest nesting of lists/maps that `str()` and `tojson` print. A namespace can hold itself
/// (`{% set ns.me = ns %}`), so without a bound printing it would recurse until the stack overflows.
pub const MAX_DEPTH: usize = 64;

/// Most bytes one `str()`/`tojson` call may produce (the whole rendering has its own, larger bound).
pub const MAX_OUTPUT: usize = 1 << 20;

fn limit_error(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

fn check_depth(depth: usize, what: &str) -> Result<(), Error> {
    if depth > MAX_DEPTH {
        return Err(limit_error(format!(
            "{what}: value nested deeper than the limit of {MAX_DEPTH} levels (does it contain itself?)"
        )));
    }
    Ok(())
}

fn check_size(out: &str, what: &str) -> Result<(), Error> {
    if out.len() > MAX_OUTPUT {
        return Err(limit_error(format!(
            "{what}: output exceeds the limit of {MAX_OUTPUT} bytes"
        )));
    }
    Ok(())
}

/// `str(value)` as Python prints it (strings verbatim, `None`, `True`, containers as `repr`).
/// Errors on values nested deeper than [`MAX_DEPTH`] or longer than [`MAX_OUTPUT`] bytes.
pub fn py_str(value: &Value) -> Result<String, Error> {
    Ok(match value.kind() {
        ValueKind::Undefined => String::new(),
        ValueKind::String => value.as_str().unwrap_or_default().to_string(),
        _ => {
            let mut out = String::new();
            py_repr(value, 0, &mut out)?;
            out
        }
    })
}

fn py_repr(value: &Value, depth: usize, out: &mut String) -> Result<(), Error> {
    check_depth(depth, "str()")?;
    match value.kind() {
        ValueKind::Undefined => {}
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number => out.push_str(&number_repr(value, false)),
        ValueKind::String => out.push_str(&string_repr(value.as_str().unwrap_or_default())),
        // A concatenated list (`a + [b]`) is a lazy iterable in MiniJinja, a list in Python.
        ValueKind::Seq | ValueKind::Iterable => {
            let Ok(it) = value.try_iter() else {
                out.push_str(&value.to_string());
                return check_size(out, "str()");
            };
            out.push('[');
            for (i, v) in it.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_repr(&v, depth + 1, out)?;
                check_size(out, "str()")?;
            }
            out.push(']');
        }
        ValueKind::Map => {
            let Ok(keys) = value.try_iter() else {
                out.push_str(&value.to_string());
                return check_size(out, "str()");
            };
            out.push('{');
            for (i, k) in keys.enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let v = value.get_item(&k).unwrap_or_default();
                py_repr(&k, depth + 1, out)?;
                out.push_str(": ");
                py_repr(&v, depth + 1, out)?;
                check_size(out, "str()")?;
            }
            out.push('}');
        }
        _ => out.push_str(&value.to_string()),
    }
    check_size(out, "str()")
}

/// Python's `str.title()`: a cased character after an uncased one starts a word.
pub fn py_title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut previous_cased = false;
    for c in s.chars() {
        if previous_cased {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        previous_cased = c.is_lowercase() || c.is_uppercase();
    }
    out
}

/// Python's `repr(str)`: single quotes unless the text has `'` and no `"`.
fn string_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Integers print as digits; floats as Python's `repr(float)` (or JSON's `NaN`/`Infinity`).
fn number_repr(value: &Value, json: bool) -> String {
    if value.is_integer() {
        return value.to_string();
    }
    match f64::try_from(value.clone()) {
        Ok(f) => float_repr(f, json),
        Err(_) => value.to_string(),
    }
}

/// Python's `repr(float)`: shortest round-trip digits, positional for 1e-4 <= |x| < 1e16, else
/// `d.ddde+XX`.
pub fn float_repr(f: f64, json: bool) -> String {
    if f.is_nan() {
        return if json { "NaN" } else { "nan" }.into();
    }
    if f.is_infinite() {
        let s = if json { "Infinity" } else { "inf" };
        return if f < 0.0 { format!("-{s}") } else { s.into() };
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // `{:e}` gives the shortest round-trip mantissa, e.g. "-1.25e-7".
    let sci = format!("{f:e}");
    let (mant, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mant) = mant.strip_prefix('-').map_or(("", mant), |m| ("-", m));
    let digits: String = mant.chars().filter(|c| c.is_ascii_digit()).collect();
    if (-4..16).contains(&exp) {
        let body = if exp >= 0 {
            let int_len = exp as usize + 1;
            let padded = format!("{digits:0<int_len$}");
            let (int_part, frac) = padded.split_at(int_len);
            format!("{int_part}.{}", if frac.is_empty() { "0" } else { frac })
        } else {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        };
        format!("{sign}{body}")
    } else {
        let (first, rest) = digits.split_at(1);
        let frac = if rest.is_empty() {
            String::new()
        } else {
            format!(".{rest}")
        };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{first}{frac}e{esign}{:02}", exp.abs())
    }
}

pub struct JsonOpts {
    pub ensure_ascii: bool,
    pub sort_keys: bool,
    pub indent: Option<String>,
    pub item_sep: String,
    pub key_sep: String,
}

fn json_error(msg: String) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg)
}

/// Python's `json.dumps` over a template value.
pub fn json_dumps(
    value: &Value,
    opts: &JsonOpts,
    level: usize,
    out: &mut String,
) -> Result<(), Error> {
    check_depth(level, "tojson")?;
    match value.kind() {
        ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if value.is_true() { "true" } else { "false" }),
        ValueKind::Number => out.push_str(&number_repr(value, true)),
        ValueKind::String => {
            json_string(value.as_str().unwrap_or_default(), opts.ensure_ascii, out)
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = value.try_iter()?.collect();
            json_container(out, opts, level, '[', ']', &items, |item, out| {
                json_dumps(item, opts, level + 1, out)
            })?;
        }
        ValueKind::Map => {
            let mut entries: Vec<(String, Value)> = Vec::new();
            for key in value.try_iter()? {
                let name = match key.kind() {
                    ValueKind::String => key.as_str().unwrap_or_default().to_string(),
                    ValueKind::None => "null".into(),
                    ValueKind::Bool => if key.is_true() { "true" } else { "false" }.into(),
                    ValueKind::Number => number_repr(&key, true),
                    k => return Err(json_error(format!("tojson: keys must be str, not {k}"))),
                };
                entries.push((name, value.get_item(&key)?));
            }
            if opts.sort_keys {
                entries.sort_by(|a, b| a.0.cmp(&b.0));
            }
            json_container(out, opts, level, '{', '}', &entries, |(k, v), out| {
                json_string(k, opts.ensure_ascii, out);
                out.push_str(&opts.key_sep);
                json_dumps(v, opts, level + 1, out)
            })?;
        }
        k => {
            return Err(json_error(format!(
                "tojson: object of type {k} is not JSON serializable"
            )))
        }
    }
    check_size(out, "tojson")
}

fn json_container<T>(
    out: &mut String,
    opts: &JsonOpts,
    level: usize,
    open: char,
    close: char,
    items: &[T],
    mut write_item: impl FnMut(&T, &mut String) -> Result<(), Error>,
) -> Result<(), Error> {
    out.push(open);
    if items.is_empty() {
        out.push(close);
        return Ok(());
    }
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(&opts.item_sep);
        }
        if let Some(ind) = &opts.indent {
            out.push('\n');
            for _ in 0..=level {
                out.push_str(ind);
            }
        }
        write_item(item, out)?;
        check_size(out, "tojson")?;
    }
    if let Some(ind) = &opts.indent {
        out.push('\n');
        for _ in 0..level {
            out.push_str(ind);
        }
    }
    out.push(close);
    Ok(())
}

fn json_string(s: &str, ensure_ascii: bool, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if ensure_ascii && (c as u32) > 0x7f => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

const DAY_NAMES: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTH_NAMES: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// Proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's civil_from_days).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// `time.strftime(format)` for a UTC timestamp, with the C/glibc directives templates use
/// (`%d %b %Y`, `%B`, `%A`, `%H:%M`, …) and glibc's `%-d` (no padding). Unknown directives stay
/// as written, as glibc leaves them.
pub fn strftime(format: &str, unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second) = (secs / 3600, secs / 60 % 60, secs % 60);
    let weekday = (days + 4).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    const CUM: [u32; 12] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334];
    let yday = CUM[month as usize - 1] + day + u32::from(month > 2 && is_leap(year));
    let hour12 = if hour % 12 == 0 { 12 } else { hour % 12 };

    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let no_pad = chars.peek() == Some(&'-');
        if no_pad {
            chars.next();
        }
        let num = |v: i64, width: usize| {
            if no_pad {
                v.to_string()
            } else {
                format!("{v:0width$}")
            }
        };
        let Some(d) = chars.next() else {
            out.push('%');
            break;
        };
        let text = match d {
            'Y' => year.to_string(),
            'y' => num(year.rem_euclid(100), 2),
            'm' => num(month.into(), 2),
            'd' => num(day.into(), 2),
            'e' => {
                if no_pad {
                    day.to_string()
                } else {
                    format!("{day:2}")
                }
            }
            'H' => num(hour, 2),
            'I' => num(hour12, 2),
            'M' => num(minute, 2),
            'S' => num(second, 2),
            'j' => num(yday.into(), 3),
            'p' => if hour < 12 { "AM" } else { "PM" }.into(),
            'A' => DAY_NAMES[weekday].into(),
            'a' => DAY_NAMES[weekday][..3].into(),
            'B' => MONTH_NAMES[month as usize - 1].into(),
            'b' | 'h' => MONTH_NAMES[month as usize - 1][..3].into(),
            'u' => (if weekday == 0 { 7 } else { weekday }).to_string(),
            'w' => weekday.to_string(),
            'F' => format!("{year}-{month:02}-{day:02}"),
            'D' => format!("{month:02}/{day:02}/{:02}", year.rem_euclid(100)),
            'T' => format!("{hour:02}:{minute:02}:{second:02}"),
            'R' => format!("{hour:02}:{minute:02}"),
            'Z' => "UTC".into(),
            'z' => "+0000".into(),
            'n' => "\n".into(),
            't' => "\t".into(),
            '%' => "%".into(),
            other => format!("%{}{other}", if no_pad { "-" } else { "" }),
        };
        out.push_str(&text);
    }
    out
}
