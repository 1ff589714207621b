//! The free-form JSON fields (properties, traits, context, integrations): parsed once, checked
//! for shape and depth, and merged with batch-level defaults.

use serde_json::{Map, Value};

/// Deepest nesting accepted in one JSON field.
pub const MAX_DEPTH: usize = 32;

/// Parses a JSON field that must be an object (empty bytes mean "absent").
pub fn parse_object(bytes: &[u8]) -> Result<Option<Map<String, Value>>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let value: Value =
        serde_json::from_slice(bytes).map_err(|e| format!("is not valid JSON: {e}"))?;
    match value {
        Value::Object(map) => {
            let depth = object_depth(&map);
            if depth > MAX_DEPTH {
                return Err(format!(
                    "is nested {depth} levels deep; the limit is {MAX_DEPTH}"
                ));
            }
            Ok(Some(map))
        }
        Value::Null => Ok(None),
        other => Err(format!("must be a JSON object, not {}", kind(&other))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn object_depth(map: &Map<String, Value>) -> usize {
    1 + map.values().map(value_depth).max().unwrap_or(0)
}

fn value_depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => object_depth(map),
        Value::Array(items) => 1 + items.iter().map(value_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Adds each key of `defaults` that `target` does not set itself (Segment's batch merge).
pub fn merge_defaults(target: &mut Map<String, Value>, defaults: &Map<String, Value>) {
    for (key, value) in defaults {
        if !target.contains_key(key) {
            target.insert(key.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_pass_and_other_shapes_are_named() {
        assert!(parse_object(br#"{"a":1}"#).unwrap().is_some());
        assert_eq!(parse_object(b"").unwrap(), None);
        assert_eq!(parse_object(b"null").unwrap(), None);
        assert!(parse_object(b"[1]").unwrap_err().contains("an array"));
        assert!(parse_object(b"{").unwrap_err().contains("not valid JSON"));
    }

    #[test]
    fn depth_limit_counts_objects_and_arrays() {
        let nested =
            |n: usize| format!("{}{}", "{\"a\":".repeat(n), "1".to_owned() + &"}".repeat(n));
        assert!(parse_object(nested(MAX_DEPTH).as_bytes()).is_ok());
        assert!(parse_object(nested(MAX_DEPTH + 1).as_bytes())
            .unwrap_err()
            .contains("33 levels"));
    }

    #[test]
    fn event_keys_win_over_batch_defaults() {
        let mut event = parse_object(br#"{"ip":"1.1.1.1"}"#).unwrap().unwrap();
        let batch = parse_object(br#"{"ip":"2.2.2.2","locale":"nl"}"#)
            .unwrap()
            .unwrap();
        merge_defaults(&mut event, &batch);
        assert_eq!(event["ip"], "1.1.1.1");
        assert_eq!(event["locale"], "nl");
    }
}
