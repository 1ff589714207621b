//! A source's policy applied to one event on the ingest path (the caller's thread): validate it
//! against the tracking plan, act on what is found as the source is configured (allow, flag,
//! omit, block), then run the source's transformations. An event's objects are parsed only when
//! a rule needs them, and written back only when changed.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::pii::{self, Class, Classifier};
use super::plan::{check, CompiledPlan, Found, Part, Planned};
use super::transform::{move_path, Transformation};
use crate::event_json;
use crate::proto::{Event, EventType, OnViolation, PiiAction, UnplannedEvents};

/// What a source enforces, compiled.
pub struct Policy {
    pub source_id: u32,
    pub plan: Option<Arc<CompiledPlan>>,
    pub unplanned: UnplannedEvents,
    pub on_violation: OnViolation,
    pub transformations: Vec<Transformation>,
    /// Classes of personal data hashed or dropped before storage.
    pub pii: Vec<(Class, PiiAction)>,
    pub classifier: Arc<Classifier>,
}

/// The verdict on one event.
pub enum Verdict {
    /// Store it (possibly changed); `found` are its violations, for the counts.
    Keep { found: Vec<Found> },
    /// Refuse it: the field and reason for the rejected store, and its violations.
    Block {
        field: &'static str,
        reason: String,
        found: Vec<Found>,
    },
}

/// An event's JSON objects (properties, traits, context), parsed on first change and written
/// back at the end: an event nothing changes keeps its bytes as sent.
#[derive(Default)]
struct Objects([Option<Map<String, Value>>; 3]);

impl Objects {
    /// The object of `part`, to change.
    fn change(&mut self, event: &Event, part: Part) -> &mut Map<String, Value> {
        let bytes = part_bytes(event, part);
        // Already checked to be an object or empty by the ingest rules.
        self.0[part as usize].get_or_insert_with(|| crate::json::parse_object(bytes).ok().flatten().unwrap_or_default())
    }

    /// True when `key` may be a top-level key of the object: the parsed object when there is
    /// one, else a cheap look at the bytes (a key written with escapes counts as maybe there).
    fn has(&self, event: &Event, part: Part, key: &str) -> bool {
        if let Some(map) = &self.0[part as usize] {
            return map.contains_key(key);
        }
        let bytes = part_bytes(event, part);
        let quoted = serde_json::to_string(key).expect("a string always serialises");
        bytes.contains(&b'\\') || bytes.windows(quoted.len()).any(|window| window == quoted.as_bytes())
    }

    fn store(self, event: &mut Event) {
        let [properties, traits, context] = self.0;
        for (map, bytes) in [
            (properties, &mut event.properties),
            (traits, &mut event.traits),
            (context, &mut event.context),
        ] {
            if let Some(map) = map {
                *bytes = serde_json::to_vec(&map).expect("a JSON map always serialises");
            }
        }
    }
}

impl Policy {
    pub fn apply(&self, event: &mut Event) -> Verdict {
        let mut objects = Objects::default();
        let kind = EventType::try_from(event.r#type).unwrap_or(EventType::Unspecified);
        let mut found = Vec::new();
        let mut flag = false;
        if let Some(plan) = &self.plan {
            match plan.planned(kind, &event.event) {
                Planned::Unplanned => {
                    found.push(Found {
                        field: "event".into(),
                        kind: "Unplanned Event",
                        rule: "plan".into(),
                        description: format!("{:?} is not in the tracking plan", event.event),
                        example: Some(Value::String(event.event.clone()).to_string()),
                        omit: None,
                    });
                    match self.unplanned {
                        UnplannedEvents::Block => return self.block("event", found),
                        UnplannedEvents::Flag => flag = true,
                        UnplannedEvents::Allow => {}
                    }
                }
                Planned::Schema(validator, part) => {
                    // Parsed from the bytes rather than through `objects`: most events are
                    // valid, and then nothing is written back.
                    let bytes = if part == Part::Traits {
                        &event.traits
                    } else {
                        &event.properties
                    };
                    let instance = parse_value(bytes);
                    check(validator, &instance, Some(part), &mut found);
                }
                Planned::Unchecked => {}
            }
            if plan.has_common() {
                let whole = Value::Object(event_json::event_json(event));
                plan.check_common(&whole, &mut found);
            }
            let violations = found.iter().filter(|f| f.kind != "Unplanned Event").count();
            if violations > 0 {
                match self.on_violation {
                    OnViolation::Block => {
                        let field = found
                            .iter()
                            .find(|f| f.kind != "Unplanned Event")
                            .map_or("event", |f| object_of(&f.field));
                        return self.block(field, found);
                    }
                    OnViolation::Omit => {
                        let mut omitted = Vec::new();
                        for (part, key) in found.iter().filter_map(|f| f.omit.as_ref()) {
                            // (A property that is absent needs no change: only look then.)
                            if objects.has(event, *part, key) && objects.change(event, *part).remove(key).is_some() {
                                omitted.push(Value::String(format!("{}.{key}", part.name())));
                            }
                        }
                        let protocols = self.protocols(objects.change(event, Part::Context), &found);
                        protocols.insert("omitted_on_violation".into(), Value::Array(omitted));
                    }
                    OnViolation::Flag => flag = true,
                    OnViolation::Allow => {}
                }
            }
            if flag {
                self.protocols(objects.change(event, Part::Context), &found);
            }
        }
        self.transform(event, kind, &mut objects);
        if !self.pii.is_empty() {
            for part in [Part::Properties, Part::Traits, Part::Context] {
                if !part_bytes(event, part).is_empty() {
                    pii::redact(objects.change(event, part), &self.classifier, &self.pii);
                }
            }
        }
        objects.store(event);
        Verdict::Keep { found }
    }

    fn block(&self, field: &'static str, found: Vec<Found>) -> Verdict {
        let plan = self.plan.as_ref().expect("only a plan blocks");
        let first = found.iter().find(|f| f.kind != "Unplanned Event").unwrap_or(&found[0]);
        let more = match found.len() {
            1 => String::new(),
            n => format!(" (and {} more)", n - 1),
        };
        let reason = format!(
            "blocked by tracking plan {:?} v{}: {}{more}",
            plan.name, plan.version, first.description
        );
        Verdict::Block { field, reason, found }
    }

    /// `context.protocols`, as Segment writes it: the client's own keys (its event_version) kept,
    /// `sourceId` and the violations added.
    fn protocols<'a>(&self, context: &'a mut Map<String, Value>, found: &[Found]) -> &'a mut Map<String, Value> {
        let protocols = context
            .entry("protocols")
            .and_modify(|v| {
                if !v.is_object() {
                    *v = Value::Object(Map::new());
                }
            })
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .expect("made an object just above");
        protocols.insert("sourceId".into(), Value::String(self.source_id.to_string()));
        let violations = found
            .iter()
            .map(|f| {
                let mut v = Map::new();
                v.insert("type".into(), Value::String(f.kind.into()));
                v.insert("field".into(), Value::String(f.field.clone()));
                v.insert("description".into(), Value::String(f.description.clone()));
                Value::Object(v)
            })
            .collect();
        protocols.insert("violations".into(), Value::Array(violations));
        protocols
    }

    fn transform(&self, event: &mut Event, kind: EventType, objects: &mut Objects) {
        for transformation in &self.transformations {
            match transformation {
                Transformation::RenameEvent { from, to } => {
                    if kind == EventType::Track && event.event == *from {
                        event.event.clone_from(to);
                    }
                }
                Transformation::RenameProperty { event: only, from, to } => {
                    let applies = kind == EventType::Track && only.as_ref().is_none_or(|name| *name == event.event);
                    if applies && objects.has(event, Part::Properties, &from[0]) {
                        move_path(objects.change(event, Part::Properties), from, to);
                    }
                }
                Transformation::RenameTrait { from, to } => {
                    let applies = matches!(kind, EventType::Identify | EventType::Group);
                    if applies && objects.has(event, Part::Traits, &from[0]) {
                        move_path(objects.change(event, Part::Traits), from, to);
                    }
                }
            }
        }
    }
}

fn part_bytes(event: &Event, part: Part) -> &[u8] {
    match part {
        Part::Properties => &event.properties,
        Part::Traits => &event.traits,
        Part::Context => &event.context,
    }
}

/// The object a violation's field lies in, as the rejected store names fields.
fn object_of(field: &str) -> &'static str {
    match field.split('.').next() {
        Some("properties") => "properties",
        Some("traits") => "traits",
        Some("context") => "context",
        _ => "event",
    }
}

/// An event's object as a JSON value: `{}` when absent (a plan's `required` then reports what
/// is missing).
fn parse_value(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Object(Map::new());
    }
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::Object(Map::new()))
}
