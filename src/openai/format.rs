//! `response_format`: plain text, any JSON object, or JSON under a schema (structured output,
//! decoded under a [`JsonConstraint`]). Malformed values are [`Error::BadRequest`]s naming the
//! field (`response_format.json_schema.schema` for a schema attend cannot compile).

use crate::constrain::JsonConstraint;
use crate::{Error, Result};
use serde_json::Value;

fn bad<T>(param: &str, message: impl Into<String>) -> Result<T> {
    Err(Error::bad_request(param, message))
}

/// The constraint `response_format` asks for; `None` for plain text (or no field).
pub fn constraint(format: Option<&Value>) -> Result<Option<JsonConstraint>> {
    let Some(f) = format else {
        return Ok(None);
    };
    let Some(obj) = f.as_object() else {
        return bad(
            "response_format",
            "`response_format` must be an object with a `type`",
        );
    };
    match obj.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(JsonConstraint::any_object())),
        Some("json_schema") => json_schema(obj.get("json_schema")).map(Some),
        _ => bad(
            "response_format.type",
            "`response_format.type` must be \"text\", \"json_object\" or \"json_schema\"",
        ),
    }
}

fn json_schema(js: Option<&Value>) -> Result<JsonConstraint> {
    let Some(js) = js.and_then(Value::as_object) else {
        return bad(
            "response_format.json_schema",
            "`response_format.json_schema` must be an object with `name` and `schema`",
        );
    };
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.len() <= 64
            && n.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !js.get("name").and_then(Value::as_str).is_some_and(name_ok) {
        return bad(
            "response_format.json_schema.name",
            "`response_format.json_schema.name` must be 1-64 letters, digits, `_` or `-`",
        );
    }
    if js.get("strict").is_some_and(|s| !s.is_boolean()) {
        return bad(
            "response_format.json_schema.strict",
            "`response_format.json_schema.strict` must be a boolean",
        );
    }
    let Some(schema) = js.get("schema") else {
        return bad(
            "response_format.json_schema.schema",
            "`response_format.json_schema.schema` is missing",
        );
    };
    JsonConstraint::from_schema(schema).or_else(|e| {
        bad(
            "response_format.json_schema.schema",
            format!("`response_format.json_schema.schema`: {e}"),
        )
    })
}
