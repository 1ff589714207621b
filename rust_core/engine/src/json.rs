//! The free-form JSON fields (properties, traits, context, integrations): parsed once, checked
//! for shape and depth, and merged with batch-level defaults.

use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Deepest nesting accepted in one JSON field.
pub const MAX_DEPTH: usize = 32;

/// Parses a JSON field that must be an object (empty bytes mean "absent").
pub fn parse_object(bytes: &[u8]) -> Result<Option<Map<String, Value>>, String> {
    if bytes.is_empty() {
        return Ok(None);
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("is not valid JSON: {e}"))?;
    match value {
        Value::Object(map) => {
            let depth = object_depth(&map);
            if depth > MAX_DEPTH {
                return Err(format!("is nested {depth} levels deep; the limit is {MAX_DEPTH}"));
            }
            Ok(Some(map))
        }
        Value::Null => Ok(None),
        other => Err(format!("must be a JSON object, not {}", kind(&other))),
    }
}

/// Checks that a JSON field is an object (or absent) nested at most `MAX_DEPTH` deep, without
/// building it: the hot path only needs the verdict.
/// Returns the number of top-level keys (0 when absent).
pub fn check_object(bytes: &[u8]) -> Result<usize, String> {
    if bytes.is_empty() {
        return Ok(0);
    }
    match bytes.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => {}
        _ => {
            // Not an object: let the full parser name what it is (or why it is not JSON).
            return parse_object(bytes).map(|_| 0);
        }
    }
    let Depth(depth, keys) = serde_json::from_slice(bytes).map_err(|e| {
        if e.to_string().contains("recursion limit") {
            format!("is nested more than {MAX_DEPTH} levels deep")
        } else {
            format!("is not valid JSON: {e}")
        }
    })?;
    if depth > MAX_DEPTH {
        return Err(format!("is nested {depth} levels deep; the limit is {MAX_DEPTH}"));
    }
    Ok(keys)
}

/// Nesting depth of a JSON value and, for an object, its number of keys; computed while
/// parsing and allocating nothing.
struct Depth(usize, usize);

impl<'de> Deserialize<'de> for Depth {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(DepthVisitor)
    }
}

struct DepthVisitor;

impl<'de> Visitor<'de> for DepthVisitor {
    type Value = Depth;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Depth, E> {
        Ok(Depth(0, 0))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Depth, E> {
        Ok(Depth(0, 0))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Depth, E> {
        Ok(Depth(0, 0))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Depth, E> {
        Ok(Depth(0, 0))
    }

    fn visit_str<E>(self, _: &str) -> Result<Depth, E> {
        Ok(Depth(0, 0))
    }

    fn visit_unit<E>(self) -> Result<Depth, E> {
        Ok(Depth(0, 0))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Depth, A::Error> {
        let mut deepest = 0;
        while let Some(Depth(depth, _)) = seq.next_element()? {
            deepest = deepest.max(depth);
        }
        Ok(Depth(deepest + 1, 0))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Depth, A::Error> {
        let (mut deepest, mut keys) = (0, 0);
        while map.next_key::<IgnoredAny>()?.is_some() {
            let Depth(depth, _) = map.next_value()?;
            deepest = deepest.max(depth);
            keys += 1;
        }
        Ok(Depth(deepest + 1, keys))
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
        let nested = |n: usize| format!("{}{}", "{\"a\":".repeat(n), "1".to_owned() + &"}".repeat(n));
        assert!(parse_object(nested(MAX_DEPTH).as_bytes()).is_ok());
        assert!(parse_object(nested(MAX_DEPTH + 1).as_bytes())
            .unwrap_err()
            .contains("33 levels"));
    }

    #[test]
    fn check_object_agrees_with_the_full_parser() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n - 1), "]".repeat(n - 1));
        for text in [
            r#"{"a":[1,{"b":null}],"c":"x"}"#.to_owned(),
            String::new(),
            "  ".to_owned(),
            "null".to_owned(),
            "[1]".to_owned(),
            "3".to_owned(),
            "{".to_owned(),
            r#"{"a":1} x"#.to_owned(),
            format!(r#"{{"a":{}}}"#, nested(MAX_DEPTH)),
            format!(r#"{{"a":{}}}"#, nested(MAX_DEPTH - 1)),
            format!(r#"{{"a":{}}}"#, nested(200)),
        ] {
            let full = parse_object(text.as_bytes()).map(|_| ());
            assert_eq!(check_object(text.as_bytes()).is_ok(), full.is_ok(), "{text:.60}");
        }
    }

    #[test]
    fn event_keys_win_over_batch_defaults() {
        let mut event = parse_object(br#"{"ip":"1.1.1.1"}"#).unwrap().unwrap();
        let batch = parse_object(br#"{"ip":"2.2.2.2","locale":"nl"}"#).unwrap().unwrap();
        merge_defaults(&mut event, &batch);
        assert_eq!(event["ip"], "1.1.1.1");
        assert_eq!(event["locale"], "nl");
    }
}
