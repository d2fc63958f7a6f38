//! The globals and filters transformers gives chat templates: `raise_exception`, `strftime_now`
//! and a `tojson` that prints like Python's `json.dumps`.

use super::{pyfmt, strftime, MAX_INDENT};
use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::ErrorKind;

pub(super) fn raise_exception(message: Value) -> std::result::Result<Value, minijinja::Error> {
    let text = match message.as_str() {
        Some(s) => s.to_string(),
        None => pyfmt::py_str(&message)?,
    };
    Err(minijinja::Error::new(
        ErrorKind::InvalidOperation,
        format!("raise_exception: {text}"),
    ))
}

pub(super) fn strftime_now(format: &str) -> std::result::Result<Value, minijinja::Error> {
    Ok(Value::from(strftime(format, unix_now_seconds())))
}

/// Seconds since the Unix epoch (UTC). `std::time::SystemTime` panics on wasm32-unknown-unknown,
/// so the browser asks JavaScript's clock instead.
fn unix_now_seconds() -> i64 {
    #[cfg(target_arch = "wasm32")]
    {
        (js_sys::Date::now() / 1000.0).floor() as i64
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0)
    }
}

/// HF's `tojson`: `json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)`.
pub(super) fn tojson(value: Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let ensure_ascii = kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false);
    let sort_keys = kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false);
    let indent = match kwargs.get::<Option<Value>>("indent")? {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match v.kind() {
            ValueKind::Number => {
                let n = i64::try_from(v.clone()).unwrap_or(i64::MAX).max(0);
                if n > MAX_INDENT as i64 {
                    return Err(minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        format!("tojson: indent {n} exceeds the limit of {MAX_INDENT}"),
                    ));
                }
                Some(" ".repeat(n as usize))
            }
            ValueKind::String => {
                let s = v.as_str().unwrap_or("");
                if s.len() > MAX_INDENT {
                    return Err(minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        format!(
                            "tojson: indent string longer than the limit of {MAX_INDENT} bytes"
                        ),
                    ));
                }
                Some(s.to_string())
            }
            _ => {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    "tojson: bad indent",
                ))
            }
        },
    };
    let separators = match kwargs.get::<Option<Value>>("separators")? {
        Some(v) if !v.is_none() => {
            let parts: Vec<String> = v
                .try_iter()?
                .map(|p| p.as_str().map(str::to_string))
                .collect::<Option<_>>()
                .ok_or_else(|| {
                    minijinja::Error::new(ErrorKind::InvalidOperation, "tojson: bad separators")
                })?;
            match parts.as_slice() {
                [a, b] => Some((a.clone(), b.clone())),
                _ => {
                    return Err(minijinja::Error::new(
                        ErrorKind::InvalidOperation,
                        "tojson: bad separators",
                    ))
                }
            }
        }
        _ => None,
    };
    kwargs.assert_all_used()?;
    let (item_sep, key_sep) = separators.unwrap_or_else(|| {
        // Python: (', ', ': ') without indent, (',', ': ') with it.
        (
            if indent.is_some() { "," } else { ", " }.to_string(),
            ": ".to_string(),
        )
    });
    let opts = pyfmt::JsonOpts {
        ensure_ascii,
        sort_keys,
        indent,
        item_sep,
        key_sep,
    };
    let mut out = String::new();
    pyfmt::json_dumps(&value, &opts, 0, &mut out)?;
    Ok(Value::from(out))
}
