//! JSON Schema validation for the tests that check generated JSON (structured output, tool-call
//! arguments), with `boon`, a real validator (draft 2020-12).

use serde_json::Value;

/// Whether `value` validates under `schema`.
pub fn valid(schema: &Value, value: &Value) -> Result<(), String> {
    let mut schemas = boon::Schemas::new();
    let mut c = boon::Compiler::new();
    c.add_resource("urn:attend:schema", schema.clone())
        .map_err(|e| e.to_string())?;
    let id = c
        .compile("urn:attend:schema", &mut schemas)
        .map_err(|e| e.to_string())?;
    schemas.validate(value, id).map_err(|e| e.to_string())
}
