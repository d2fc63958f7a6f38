//! The validator state on its own: valid prefixes pass, invalid ones fail, completion comes
//! exactly at the end.

use super::*;
use serde_json::json;

fn c(schema: serde_json::Value) -> JsonConstraint {
    JsonConstraint::from_schema(&schema).unwrap()
}

/// Feed `text` byte by byte: every prefix is accepted, the whole is complete and no shorter
/// prefix is.
fn accepts(mut s: JsonConstraint, text: &str) {
    for (i, b) in text.bytes().enumerate() {
        assert!(!s.is_complete(), "complete early at {i} in {text}");
        assert!(s.allows(&[b]), "byte {i} ({}) of {text} refused", b as char);
        assert!(s.advance(&[b]));
    }
    assert!(s.is_complete(), "{text} is not complete");
}

fn rejects(s: &JsonConstraint, text: &str) {
    assert!(!s.allows(text.as_bytes()), "{text} accepted");
}

fn person() -> JsonConstraint {
    c(json!({
        "type": "object",
        "properties": {
            "age": {"type": "integer"},
            "name": {"type": "string", "maxLength": 5},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "maxItems": 2},
        },
        "required": ["age", "name"],
    }))
}

#[test]
fn objects_with_optional_fields() {
    accepts(person(), r#"{"age":3,"name":"Bo"}"#);
    accepts(person(), r#"{"age":-30,"name":"","tags":["a","b"]}"#);
    accepts(person(), r#"{"age":0,"name":"a\"\u00e9","tags":[]}"#);
    let p = person();
    accepts(person(), r#"{"tags":["b"],"name":"Bo","age":1}"#);
    rejects(&p, r#"{"age":1,"age""#); // once each
    rejects(&p, r#"{ "#); // no whitespace
    rejects(&p, r#"{"age":3}"#); // `name` missing
    rejects(&p, r#"{"age":3.5"#); // integer
    rejects(&p, r#"{"age":03"#);
    rejects(&p, r#"{"age":3,"name":"abcdef""#); // maxLength
    rejects(&p, r#"{"age":3,"name":"x","tags":["c"#);
    rejects(&p, r#"{"age":3,"name":"x","tags":["a","b","a"#); // maxItems
    rejects(&p, r#"{"age":3,"name":"x","other""#);
    rejects(&p, r#"{"age":3,"name":"x"},"#);
    rejects(&p, "{\"age\":3,\"name\":\"\n");
    rejects(&p, r#"{"age":3,"name":"\ud800"#);
}

#[test]
fn done_only_after_the_last_byte() {
    let mut s = person();
    assert!(s.advance(br#"{"age":3,"name":"x""#));
    assert!(!s.is_complete() && !s.is_done());
    assert!(s.advance(b"}"));
    assert!(s.is_complete() && s.is_done());
    assert!(!s.allows(b" "));
}

#[test]
fn numbers_complete_but_may_go_on() {
    let mut s = c(json!({"type": "number"}));
    assert!(s.advance(b"-12.5"));
    assert!(s.is_complete() && !s.is_done());
    assert!(s.allows(b"e3"));
    assert!(!s.allows(b"."));
    rejects(&c(json!({"type": "number"})), "--");
    rejects(&c(json!({"type": "number"})), "1.e");
    let mut s = c(json!({"type": "number"}));
    assert!(s.advance(b"1.5e+") && !s.is_complete());
    assert!(s.advance(b"10") && s.is_complete());
}

#[test]
fn any_object_for_json_object() {
    let s = JsonConstraint::any_object();
    accepts(s.clone(), r#"{}"#);
    accepts(
        s.clone(),
        r#"{"a":[1,{"b":null}],"c":"d","e":true,"f":-0.5}"#,
    );
    rejects(&s, "[");
    rejects(&s, r#""a""#);
    rejects(&s, r#"{"a":tru "#);
    rejects(&s, r#"{"a"}"#);
    rejects(&s, r#"{"a":1,}"#);
    rejects(&s, r#"{"a":[1,]"#);
}

#[test]
fn refs_anyof_nullable_and_const() {
    let tree = json!({
        "$defs": {"node": {"type": "object", "properties": {
            "v": {"type": ["integer", "null"]},
            "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}},
        }, "required": ["v"]}},
        "$ref": "#/$defs/node",
    });
    accepts(
        c(tree.clone()),
        r#"{"v":null,"kids":[{"v":1},{"v":2,"kids":[]}]}"#,
    );
    rejects(&c(tree), r#"{"v":"x"#);
    let any = json!({"anyOf": [{"type": "string"}, {"const": {"k": 1}}, {"type": "boolean"}]});
    accepts(c(any.clone()), r#"{"k":1}"#);
    accepts(c(any.clone()), r#"false"#);
    accepts(c(any.clone()), r#""s""#);
    rejects(&c(any), r#"{"k":2"#);
    let defs = json!({"definitions": {"c": {"enum": ["red", "green"]}},
        "type": "object", "properties": {"c": {"$ref": "#/definitions/c"}}, "required": ["c"]});
    accepts(c(defs.clone()), r#"{"c":"green"}"#);
    rejects(&c(defs), r#"{"c":"blue"#);
}

#[test]
fn arrays_with_bounds() {
    let s = c(json!({"type": "array", "items": {"type": "boolean"}, "minItems": 1, "maxItems": 2}));
    accepts(s.clone(), "[true]");
    accepts(s.clone(), "[true,false]");
    rejects(&s, "[]");
    rejects(&s, "[true,false,");
}

#[test]
fn malformed_schemas_are_refused() {
    for bad in [
        json!({"type": "strin"}),
        json!({"type": "string", "pattern": "a+"}),
        json!({"$ref": "#/$defs/missing"}),
        json!({"$ref": "https://example.com/s.json"}),
        json!({"type": "object", "properties": {"a": {}}, "required": ["b"]}),
        json!({"enum": []}),
        json!({"type": "array", "minItems": 3, "maxItems": 2}),
        json!(3),
    ] {
        assert!(JsonConstraint::from_schema(&bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn multibyte_text_in_strings() {
    let s = c(json!({"type": "string", "maxLength": 2}));
    accepts(s.clone(), "\"é€\"");
    rejects(&s, "\"é€x");
    assert!(!s.allows(&[b'"', 0x80]));
    assert!(!s.allows(&[b'"', 0xC3, b'a']));
}
