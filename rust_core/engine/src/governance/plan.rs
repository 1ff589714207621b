//! A tracking plan compiled for ingest: one JSON Schema validator per planned track event, and
//! optional ones for identify traits, group traits and every whole event (the common schema).
//! Checking an event finds its violations, each with the field, Segment's kind, the keyword
//! that failed and, when removing one top-level property or trait would cure it, which one.

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::LocationSegment;
use jsonschema::{ValidationError, Validator};
use rustc_hash::FxHashMap;
use serde_json::Value;

/// Most track events one plan may name (Segment's CSV import allows 2,000 rules).
pub const MAX_PLANNED_EVENTS: usize = 2_000;
/// Longest example value kept with a violation, in bytes of JSON.
const MAX_EXAMPLE_BYTES: usize = 200;

pub struct CompiledPlan {
    pub name: String,
    pub version: u32,
    events: FxHashMap<String, Validator>,
    /// The document has an `events` part: track events it does not name are unplanned. (A plan
    /// of only a common schema, or of traits, leaves track events unchecked.)
    plans_events: bool,
    identify: Option<Validator>,
    group: Option<Validator>,
    common: Option<Validator>,
}

/// Which part of an event a violation lies in, for omitting the offending key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Properties,
    Traits,
    Context,
}

impl Part {
    /// The event's field it is, as paths name it (`properties.total`).
    pub fn name(self) -> &'static str {
        match self {
            Part::Properties => "properties",
            Part::Traits => "traits",
            Part::Context => "context",
        }
    }
}

/// One broken rule in one event.
#[derive(Clone, Debug, PartialEq)]
pub struct Found {
    /// `properties.total`, `traits.email`, `context.ip`; `event` for an unplanned event.
    pub field: String,
    /// Segment's kind: Required, Invalid Type, Invalid Value, Unplanned Property,
    /// Unplanned Event, Common Schema.
    pub kind: &'static str,
    /// The JSON Schema keyword (`plan` for an unplanned event).
    pub rule: String,
    pub description: String,
    /// The offending value as JSON, shortened (none for a missing property).
    pub example: Option<String>,
    /// The top-level key whose removal would cure it.
    pub omit: Option<(Part, String)>,
}

/// What the plan says about an event's own object.
pub enum Planned<'a> {
    /// The plan has a schema for it.
    Schema(&'a Validator, Part),
    /// A track event the plan does not name.
    Unplanned,
    /// The plan says nothing about this kind of call.
    Unchecked,
}

impl CompiledPlan {
    /// Compiles a plan document (see `governance.proto`); the error names the part at fault.
    pub fn compile(name: &str, version: u32, document: &str) -> Result<Self, String> {
        let document: Value =
            serde_json::from_str(document).map_err(|e| format!("the plan document is not JSON: {e}"))?;
        let Value::Object(parts) = document else {
            return Err("the plan document must be a JSON object".into());
        };
        let mut plan = CompiledPlan {
            name: name.to_owned(),
            version,
            events: FxHashMap::default(),
            plans_events: false,
            identify: None,
            group: None,
            common: None,
        };
        for (key, value) in &parts {
            match key.as_str() {
                "events" => {
                    let Value::Object(events) = value else {
                        return Err("events must be an object of event name → JSON Schema".into());
                    };
                    plan.plans_events = true;
                    if events.len() > MAX_PLANNED_EVENTS {
                        return Err(format!(
                            "events names {} events; the limit is {MAX_PLANNED_EVENTS}",
                            events.len()
                        ));
                    }
                    for (event, schema) in events {
                        if event.is_empty() {
                            return Err("events: an event name is empty".into());
                        }
                        let validator = compile_schema(schema).map_err(|e| format!("events.{event:?}: {e}"))?;
                        plan.events.insert(event.clone(), validator);
                    }
                }
                "identify" => plan.identify = Some(compile_schema(value).map_err(|e| format!("identify: {e}"))?),
                "group" => plan.group = Some(compile_schema(value).map_err(|e| format!("group: {e}"))?),
                "common" => plan.common = Some(compile_schema(value).map_err(|e| format!("common: {e}"))?),
                // Informational: a plan file may carry its own name and a description.
                "name" | "description" => {}
                other => {
                    return Err(format!(
                        "unknown key {other:?} in the plan document (expected events, identify, group, common)"
                    ))
                }
            }
        }
        Ok(plan)
    }

    pub fn event_count(&self) -> usize {
        self.events.len()
    }

    pub fn has_common(&self) -> bool {
        self.common.is_some()
    }

    /// The schema for the object a call of `kind` carries: a track's properties, an identify's or
    /// a group's traits.
    pub fn planned(&self, kind: crate::proto::EventType, event_name: &str) -> Planned<'_> {
        use crate::proto::EventType;
        let (validator, part) = match kind {
            EventType::Track => match self.events.get(event_name) {
                Some(validator) => (Some(validator), Part::Properties),
                None if self.plans_events => return Planned::Unplanned,
                None => (None, Part::Properties),
            },
            EventType::Identify => (self.identify.as_ref(), Part::Traits),
            EventType::Group => (self.group.as_ref(), Part::Traits),
            _ => (None, Part::Properties),
        };
        validator.map_or(Planned::Unchecked, |v| Planned::Schema(v, part))
    }

    /// The common schema's violations of a whole event (in its Segment JSON form).
    pub fn check_common(&self, event: &Value, out: &mut Vec<Found>) {
        if let Some(common) = &self.common {
            check(common, event, None, out);
        }
    }
}

fn compile_schema(schema: &Value) -> Result<Validator, String> {
    if !matches!(schema, Value::Object(_) | Value::Bool(_)) {
        return Err("a JSON Schema must be an object or a boolean".into());
    }
    // Formats (date-time, email, …) are checked: Segment's `date-time` data type is one.
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| format!("invalid JSON Schema: {e}"))
}

/// Appends the violations of `instance` against `validator`. `part`: the object checked is a
/// call's properties or traits (paths are prefixed with its name); `None`: the whole event
/// (the common schema).
pub fn check(validator: &Validator, instance: &Value, part: Option<Part>, out: &mut Vec<Found>) {
    if validator.is_valid(instance) {
        return;
    }
    for error in validator.iter_errors(instance) {
        describe(&error, part, out);
    }
}

/// The dotted field of an instance path (array items as `$`, as Segment writes them), and the
/// top-level key that holds it.
fn field_of(error: &ValidationError<'_>, part: Option<Part>, extra: Option<&str>) -> (String, Option<(Part, String)>) {
    let mut segments: Vec<String> = error
        .instance_path()
        .segments()
        .map(|segment| match segment {
            LocationSegment::Property(name) => name.into_owned(),
            LocationSegment::Index(_) => "$".to_owned(),
        })
        .collect();
    if let Some(extra) = extra {
        segments.push(extra.to_owned());
    }
    let (part, path) = match part {
        Some(part) => (Some(part), &segments[..]),
        // The common schema sees the whole event: its first segment says which object.
        None => {
            let part = match segments.first().map(String::as_str) {
                Some("properties") => Some(Part::Properties),
                Some("traits") => Some(Part::Traits),
                Some("context") => Some(Part::Context),
                _ => None,
            };
            (part, if part.is_some() { &segments[1..] } else { &segments[..] })
        }
    };
    let mut field = part.map(Part::name).unwrap_or_default().to_owned();
    for segment in path {
        if !field.is_empty() {
            field.push('.');
        }
        field.push_str(segment);
    }
    let omit = part.zip(path.first().cloned());
    (field, omit)
}

fn describe(error: &ValidationError<'_>, part: Option<Part>, out: &mut Vec<Found>) {
    let rule = error.kind().keyword().to_owned();
    let common = part.is_none();
    let kind_of = |kind: &'static str| if common { "Common Schema" } else { kind };
    match error.kind() {
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().map_or_else(|| property.to_string(), str::to_owned);
            let (field, _) = field_of(error, part, Some(&name));
            out.push(Found {
                description: format!("{field} is required"),
                field,
                kind: kind_of("Required"),
                rule,
                example: None,
                // Nothing to remove: a missing property cannot be omitted away.
                omit: None,
            });
        }
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            for name in unexpected {
                let (field, omit) = field_of(error, part, Some(name));
                let example = error.instance().get(name).map(example_of);
                out.push(Found {
                    description: format!("{field} is not in the tracking plan"),
                    field,
                    kind: kind_of("Unplanned Property"),
                    rule: rule.clone(),
                    example,
                    omit,
                });
            }
        }
        other => {
            let (field, omit) = field_of(error, part, None);
            let kind = match other {
                ValidationErrorKind::Type { .. } => "Invalid Type",
                _ => "Invalid Value",
            };
            let where_ = if field.is_empty() {
                "the event".to_owned()
            } else {
                field.clone()
            };
            out.push(Found {
                description: format!("{where_}: {}", error.masked()),
                field,
                kind: kind_of(kind),
                rule,
                example: Some(example_of(error.instance())),
                omit,
            });
        }
    }
}

/// A value as JSON, cut to `MAX_EXAMPLE_BYTES` on a character boundary.
fn example_of(value: &Value) -> String {
    let mut text = value.to_string();
    if text.len() > MAX_EXAMPLE_BYTES {
        let mut cut = MAX_EXAMPLE_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}
