//! Output contracts written as a JSON-shaped description instead of a JSON Schema.
//!
//! The shape mirrors the answer: an object's keys are its fields, a one-element
//! array is a list of that element, and a leaf is a type name or a
//! `[type, description]` pair. Every field is required and non-null unless its type
//! ends with `?`.
//!
//! ```
//! use agentry::contract_from_shape;
//! use serde_json::json;
//! let schema = contract_from_shape(&json!({
//!     "title": ["string", "A short title"],
//!     "tips": [["string", "One practical tip"]],
//!     "rating": ["integer?", "1 to 5, if known"],
//!     "author": {"name": "string", "url": "string?"}
//! })).unwrap();
//! assert_eq!(schema["required"], json!(["title", "tips", "author"]));
//! assert_eq!(schema["properties"]["tips"]["items"]["description"], "One practical tip");
//! assert_eq!(schema["properties"]["rating"]["type"], json!(["integer", "null"]));
//! ```
use serde_json::{Map, Value, json};

use crate::error::AgentryError;

const TYPES: &[&str] = &[
    "string", "integer", "number", "boolean", "object", "array", "null",
];

/// Turns a JSON-shaped description into a JSON Schema (see the module docs).
pub fn contract_from_shape(shape: &Value) -> Result<Value, AgentryError> {
    node(shape, "$").map(|(schema, _)| schema)
}

fn bad(at: &str, why: &str) -> AgentryError {
    AgentryError::Config(format!("output contract at `{at}`: {why}"))
}

/// Returns the schema and whether the value is optional.
fn node(shape: &Value, at: &str) -> Result<(Value, bool), AgentryError> {
    match shape {
        Value::String(t) => leaf(t, None, at),
        Value::Array(items) => match items.as_slice() {
            [Value::String(t), Value::String(desc)] if is_type(t) => leaf(t, Some(desc), at),
            [element] => {
                let (items, _) = node(element, &format!("{at}[*]"))?;
                Ok((json!({"type": "array", "items": items}), false))
            }
            _ => Err(bad(
                at,
                "an array is either [type, description] or a one-element list shape",
            )),
        },
        Value::Object(fields) => {
            let mut properties = Map::new();
            let mut required = Vec::new();
            for (key, field) in fields {
                let (schema, optional) = node(field, &format!("{at}.{key}"))?;
                if !optional {
                    required.push(Value::String(key.clone()));
                }
                properties.insert(key.clone(), schema);
            }
            Ok((
                json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false}),
                false,
            ))
        }
        _ => Err(bad(
            at,
            "expected a type name, [type, description], a list or an object",
        )),
    }
}

fn is_type(t: &str) -> bool {
    TYPES.contains(&t.trim_end_matches('?'))
}

fn leaf(t: &str, description: Option<&String>, at: &str) -> Result<(Value, bool), AgentryError> {
    let optional = t.ends_with('?');
    let base = t.trim_end_matches('?');
    if !TYPES.contains(&base) {
        return Err(bad(
            at,
            &format!("unknown type `{t}` (use one of {})", TYPES.join(", ")),
        ));
    }
    let mut schema = Map::new();
    schema.insert(
        "type".into(),
        if optional {
            json!([base, "null"])
        } else {
            json!(base)
        },
    );
    if let Some(d) = description {
        schema.insert("description".into(), Value::String(d.clone()));
    }
    Ok((Value::Object(schema), optional))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_lists_of_objects() {
        let s = contract_from_shape(
            &json!({"steps": [{"name": ["string", "step"], "minutes": "number?"}]}),
        )
        .unwrap();
        let step = &s["properties"]["steps"]["items"];
        assert_eq!(step["required"], json!(["name"]));
        assert_eq!(
            step["properties"]["minutes"]["type"],
            json!(["number", "null"])
        );
        jsonschema::validator_for(&s).unwrap();
    }

    #[test]
    fn mistakes_are_located() {
        let err = contract_from_shape(&json!({"a": {"b": "strng"}}))
            .unwrap_err()
            .to_string();
        assert!(err.contains("$.a.b") && err.contains("strng"), "{err}");
        assert!(contract_from_shape(&json!({"a": [1, 2, 3]})).is_err());
        assert!(contract_from_shape(&json!(5)).is_err());
    }
}
