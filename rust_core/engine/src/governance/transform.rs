//! Source-scoped transformations (Segment's): rename a track event, rename (or move) a track
//! property or an identify/group trait by a dotted path of up to four levels. They run after
//! the tracking plan, as Segment's pipeline orders them, and what they produce is what is stored.

use serde::Deserialize;
use serde_json::{Map, Value};

/// Deepest path a rename may take or make (Segment's limit).
const MAX_DEPTH: usize = 4;
/// Most transformations one source may have.
const MAX_TRANSFORMATIONS: usize = 500;

#[derive(Clone, Debug, PartialEq)]
pub enum Transformation {
    RenameEvent {
        from: String,
        to: String,
    },
    /// Of a track event's properties (`event`: only of that event).
    RenameProperty {
        event: Option<String>,
        from: Vec<String>,
        to: Vec<String>,
    },
    /// Of an identify's or a group's traits.
    RenameTrait {
        from: Vec<String>,
        to: Vec<String>,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rename {
    from: String,
    to: String,
    #[serde(default)]
    event: Option<String>,
}

/// As written in JSON: `{"rename_event": {…}}` and so on (the names are the format's).
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
#[allow(clippy::enum_variant_names)]
enum Written {
    RenameEvent(Rename),
    RenameProperty(Rename),
    RenameTrait(Rename),
}

/// Reads a source's transformations (JSON list; empty text: none); the error names the entry.
pub fn parse(text: &str) -> Result<Vec<Transformation>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let written: Vec<serde_json::Value> =
        serde_json::from_str(text).map_err(|e| format!("transformations: {e} (expected a JSON list)"))?;
    if written.len() > MAX_TRANSFORMATIONS {
        return Err(format!(
            "transformations: {} given; the limit is {MAX_TRANSFORMATIONS}",
            written.len()
        ));
    }
    written
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let at = |message: String| format!("transformations[{i}]: {message}");
            let entry: Written = serde_json::from_value(entry).map_err(|e| {
                at(format!(
                    "{e} (expected {{\"rename_event\"|\"rename_property\"|\"rename_trait\": {{\"from\", \"to\"}}}})"
                ))
            })?;
            match entry {
                Written::RenameEvent(rename) => {
                    if rename.event.is_some() {
                        return Err(at("rename_event takes no \"event\" (its \"from\" is the event)".into()));
                    }
                    if rename.from.is_empty() || rename.to.is_empty() || rename.from == rename.to {
                        return Err(at("rename_event needs a \"from\" and a different \"to\"".into()));
                    }
                    Ok(Transformation::RenameEvent {
                        from: rename.from,
                        to: rename.to,
                    })
                }
                Written::RenameProperty(rename) => {
                    let (from, to) = paths(&rename).map_err(at)?;
                    Ok(Transformation::RenameProperty {
                        event: rename.event.filter(|e| !e.is_empty()),
                        from,
                        to,
                    })
                }
                Written::RenameTrait(rename) => {
                    if rename.event.is_some() {
                        return Err(at("rename_trait takes no \"event\"".into()));
                    }
                    let (from, to) = paths(&rename).map_err(at)?;
                    Ok(Transformation::RenameTrait { from, to })
                }
            }
        })
        .collect()
}

fn paths(rename: &Rename) -> Result<(Vec<String>, Vec<String>), String> {
    let split = |path: &str, which: &str| -> Result<Vec<String>, String> {
        let parts: Vec<String> = path.split('.').map(str::to_owned).collect();
        if parts.iter().any(String::is_empty) {
            return Err(format!("{which} {path:?} is not a dotted path of names"));
        }
        if parts.len() > MAX_DEPTH {
            return Err(format!(
                "{which} {path:?} is {} levels deep; the limit is {MAX_DEPTH}",
                parts.len()
            ));
        }
        Ok(parts)
    };
    let from = split(&rename.from, "from")?;
    let to = split(&rename.to, "to")?;
    if from == to {
        return Err("\"from\" and \"to\" are the same".into());
    }
    if to.starts_with(&from) || from.starts_with(&to) {
        return Err("one of \"from\" and \"to\" lies inside the other".into());
    }
    Ok((from, to))
}

/// Moves the value at `from` to `to` in `object`; true when something moved. Nothing moves when
/// a value that is not an object stands where `to` needs one (it is never overwritten).
pub fn move_path(object: &mut Map<String, Value>, from: &[String], to: &[String]) -> bool {
    let (last, parents) = to.split_last().expect("paths are never empty");
    let mut probe = &*object;
    for name in parents {
        match probe.get(name) {
            None => break,
            Some(Value::Object(inner)) => probe = inner,
            Some(_) => return false,
        }
    }
    let Some(value) = take(object, from) else {
        return false;
    };
    let mut target = object;
    for name in parents {
        let slot = target.entry(name.clone()).or_insert_with(|| Value::Object(Map::new()));
        target = slot.as_object_mut().expect("checked to be an object, or made one");
    }
    target.insert(last.clone(), value);
    true
}

fn take(object: &mut Map<String, Value>, path: &[String]) -> Option<Value> {
    let (last, parents) = path.split_last()?;
    let mut current = object;
    for name in parents {
        current = current.get_mut(name)?.as_object_mut()?;
    }
    current.remove(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transformations_are_read_with_errors_naming_the_entry() {
        let parsed = parse(
            r#"[{"rename_event": {"from": "Order Done", "to": "Order Completed"}},
                {"rename_property": {"event": "Order Completed", "from": "total_price", "to": "order.total"}},
                {"rename_trait": {"from": "mail", "to": "email"}}]"#,
        )
        .unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(
            parsed[1],
            Transformation::RenameProperty {
                event: Some("Order Completed".into()),
                from: vec!["total_price".into()],
                to: vec!["order".into(), "total".into()],
            }
        );
        assert!(parse("").unwrap().is_empty());
        let err =
            parse(r#"[{"rename_event": {"from": "a", "to": "b"}}, {"rename_property": {"from": "a..b", "to": "c"}}]"#)
                .unwrap_err();
        assert!(err.starts_with("transformations[1]:"), "{err}");
        assert!(parse(r#"[{"rename_property": {"from": "a.b.c.d.e", "to": "c"}}]"#)
            .unwrap_err()
            .contains("limit is 4"));
        assert!(parse(r#"[{"rename_property": {"from": "a", "to": "a.b"}}]"#).is_err());
        assert!(parse(r#"[{"drop": {}}]"#)
            .unwrap_err()
            .starts_with("transformations[0]: unknown variant"));
        assert!(parse(r#"{"rename_event": {}}"#).is_err());
    }

    #[test]
    fn a_move_takes_the_value_and_makes_the_objects_it_needs() {
        let mut object = json!({"a": {"b": 1, "keep": 2}, "x": 3}).as_object().unwrap().clone();
        assert!(move_path(
            &mut object,
            &["a".into(), "b".into()],
            &["c".into(), "d".into()]
        ));
        assert_eq!(
            Value::Object(object.clone()),
            json!({"a": {"keep": 2}, "x": 3, "c": {"d": 1}})
        );
        assert!(!move_path(&mut object, &["missing".into()], &["y".into()]));
        // A scalar where the target path needs an object is never overwritten: nothing moves.
        assert!(!move_path(
            &mut object,
            &["x".into()],
            &["a".into(), "keep".into(), "z".into()]
        ));
        assert_eq!(Value::Object(object), json!({"a": {"keep": 2}, "x": 3, "c": {"d": 1}}));
    }
}
