//! Which events a destination gets, and what of them: Segment's rules before a destination
//! (its §5.2 step 4: the destination's filters, the `integrations` object, consent), plus
//! Engage connections: an audience's or computed trait's events go only to the destinations
//! connected to it, and carry only the traits of the computations connected there.
//!
//! Order: source, Engage connection, consent, `integrations` (not on a replay, which Segment
//! sends as `{All: false, <destination>: true}`), then the filters in Segment's order: sample,
//! drop (types, names), properties.

use rustc_hash::FxHashSet;
use serde_json::{Map, Value};

use crate::event_json::{event_json, type_name};
use crate::proto::{Destination, Event, EventType, Source};

/// A destination's routing, compiled from its definition.
pub struct Route {
    integration_name: String,
    /// Source ids allowed (None: every source but Engage's own, which `computations` decides).
    sources: Option<FxHashSet<u32>>,
    engage_source: Option<u32>,
    computations: Computations,
    consent: Vec<String>,
    types: Vec<&'static str>,
    events: FxHashSet<String>,
    drop_events: FxHashSet<String>,
    /// Kept when xxh3(messageId) < this (None: all).
    sample_below: Option<u64>,
    drop_properties: Vec<String>,
    allow_properties: Option<FxHashSet<String>>,
}

enum Computations {
    All,
    Keys(FxHashSet<String>),
}

/// Why an event did not go to a destination (Segment's "Filtered at destination" reasons).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Filtered {
    Source,
    NotConnected,
    Consent,
    Integrations,
    Sampled,
    Type,
    EventName,
}

impl Filtered {
    pub fn reason(self) -> &'static str {
        match self {
            Filtered::Source => "the event's source is not one of the destination's sources",
            Filtered::NotConnected => "an Engage event of a computation not connected to the destination",
            Filtered::Consent => "end-user consent: a category of the destination is not granted",
            Filtered::Integrations => "the event's integrations object turns the destination off",
            Filtered::Sampled => "left out by the destination's sample",
            Filtered::Type => "the event's type is not one the destination takes",
            Filtered::EventName => "the event's name is filtered out by the destination",
        }
    }
}

impl Route {
    pub fn compile(destination: &Destination, sources: &[Source], engage_source: Option<u32>) -> Route {
        let filters = destination.filters.clone().unwrap_or_default();
        let source_ids = (!destination.sources.is_empty()).then(|| {
            sources
                .iter()
                .filter(|s| destination.sources.contains(&s.name))
                .map(|s| s.id)
                .collect()
        });
        let computations = if destination.computations.iter().any(|k| k == "*") {
            Computations::All
        } else {
            Computations::Keys(destination.computations.iter().cloned().collect())
        };
        let sample_below = filters
            .sample_percent
            .filter(|p| *p < 100.0)
            .map(|p| ((p.max(0.0) / 100.0) * u64::MAX as f64) as u64);
        Route {
            integration_name: if destination.integration_name.is_empty() {
                destination.name.clone()
            } else {
                destination.integration_name.clone()
            },
            sources: source_ids,
            engage_source,
            computations,
            consent: destination.consent_categories.clone(),
            types: filters
                .types
                .iter()
                .filter_map(|t| TYPES.iter().copied().find(|known| known == t))
                .collect(),
            events: filters.events.into_iter().collect(),
            drop_events: filters.drop_events.into_iter().collect(),
            sample_below,
            drop_properties: filters.drop_properties,
            allow_properties: (!filters.allow_properties.is_empty())
                .then(|| filters.allow_properties.into_iter().collect()),
        }
    }

    /// Whether the event goes to the destination and in what shape, or why it does not.
    pub fn decide(&self, source_id: u32, event: &Event, replay: bool) -> Result<Routed, Filtered> {
        let engage = Some(source_id) == self.engage_source;
        if !engage && self.sources.as_ref().is_some_and(|ids| !ids.contains(&source_id)) {
            return Err(Filtered::Source);
        }
        let context = (engage || !self.consent.is_empty()).then(|| object(&event.context));
        let connected = if engage {
            let keys = computation_keys(context.as_ref());
            let connected: Vec<String> = keys.into_iter().filter(|k| self.connects(k)).collect();
            if connected.is_empty() {
                return Err(Filtered::NotConnected);
            }
            Some(connected)
        } else {
            None
        };
        if !self.consent.is_empty() && !self.consented(context.as_ref()) {
            return Err(Filtered::Consent);
        }
        if !replay && !self.integrations_allow(&event.integrations) {
            return Err(Filtered::Integrations);
        }
        if let Some(below) = self.sample_below {
            if xxhash_rust::xxh3::xxh3_64(event.message_id.as_bytes()) >= below {
                return Err(Filtered::Sampled);
            }
        }
        let kind = type_name(event.r#type);
        if !self.types.is_empty() && !self.types.contains(&kind) {
            return Err(Filtered::Type);
        }
        if event.r#type == EventType::Track as i32
            && ((!self.events.is_empty() && !self.events.contains(&event.event))
                || self.drop_events.contains(&event.event))
        {
            return Err(Filtered::EventName);
        }
        let trims_engage = connected.is_some() && matches!(self.computations, Computations::Keys(_));
        if !replay && !trims_engage && self.drop_properties.is_empty() && self.allow_properties.is_none() {
            return Ok(Routed::AsStored);
        }
        let mut message = event_json(event);
        if replay {
            message.insert(
                "integrations".into(),
                serde_json::json!({ "All": false, self.integration_name.as_str(): true }),
            );
        }
        if let (Some(connected), Computations::Keys(_)) = (&connected, &self.computations) {
            // An identify or group call of Engage sets every changed computation's trait at
            // once: this destination gets the ones connected to it.
            if let Some(Value::Object(traits)) = message.get_mut("traits") {
                traits.retain(|key, _| connected.iter().any(|k| crate::predict::writes_trait(k, key)));
            }
            // Nor does it learn of the others from the context.
            let listed = message
                .get_mut("context")
                .and_then(|c| c.get_mut("personas"))
                .and_then(|p| p.get_mut("computations"))
                .and_then(Value::as_array_mut);
            if let Some(listed) = listed {
                listed.retain(|c| {
                    c.get("computation_key")
                        .and_then(Value::as_str)
                        .is_some_and(|key| connected.iter().any(|k| k == key))
                });
            }
        }
        for field in ["properties", "traits"] {
            if let Some(Value::Object(fields)) = message.get_mut(field) {
                for key in &self.drop_properties {
                    fields.remove(key);
                }
                if let Some(allowed) = &self.allow_properties {
                    fields.retain(|key, _| allowed.contains(key));
                }
            }
        }
        Ok(Routed::Shaped(message))
    }

    fn connects(&self, key: &str) -> bool {
        match &self.computations {
            Computations::All => true,
            Computations::Keys(keys) => keys.contains(key),
        }
    }

    /// Segment's rule: no consent object, or an empty one, means no enforcement; otherwise
    /// every category of the destination must be granted (a missing one is not).
    fn consented(&self, context: Option<&Value>) -> bool {
        let Some(consent) = context.and_then(|c| c.get("consent")).and_then(Value::as_object) else {
            return true;
        };
        if consent.is_empty() {
            return true;
        }
        let preferences = consent.get("categoryPreferences").and_then(Value::as_object);
        self.consent
            .iter()
            .all(|category| preferences.and_then(|p| p.get(category)) == Some(&Value::Bool(true)))
    }

    /// Opt-out routing: the destination's own key decides when present (false: off; true or
    /// an options object: on), else `All` (default true).
    fn integrations_allow(&self, integrations: &[u8]) -> bool {
        if integrations.is_empty() {
            return true;
        }
        let Value::Object(map) = object(integrations) else {
            return true;
        };
        match map.get(&self.integration_name) {
            Some(Value::Bool(on)) => *on,
            Some(Value::Null) => false,
            Some(_) => true,
            None => map.get("All").and_then(Value::as_bool).unwrap_or(true),
        }
    }
}

/// How a routed event goes out.
#[derive(Debug)]
pub enum Routed {
    /// As it is stored (no filter or replay changes it): written straight from the record.
    AsStored,
    /// Changed by the destination's filters, a replay or Engage's connections.
    Shaped(Map<String, Value>),
}

impl Routed {
    /// Appends the event's JSON to `out`.
    pub fn write(&self, event: &Event, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self {
            Routed::AsStored => {
                crate::event_json::write_event_json(event, out);
                Ok(())
            }
            Routed::Shaped(message) => serde_json::to_writer(out, message),
        }
    }

    /// The event's JSON as a map.
    pub fn into_map(self, event: &Event) -> Map<String, Value> {
        match self {
            Routed::AsStored => event_json(event),
            Routed::Shaped(message) => message,
        }
    }
}

const TYPES: [&str; 6] = ["identify", "track", "page", "screen", "group", "alias"];

/// The known call types, for checking a destination's filters.
pub fn is_type(name: &str) -> bool {
    TYPES.contains(&name)
}

fn object(bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

/// The computations an Engage event writes: `context.personas.computation_key`, or each of
/// `context.personas.computations` when one call carries several.
fn computation_keys(context: Option<&Value>) -> Vec<String> {
    let Some(personas) = context.and_then(|c| c.get("personas")) else {
        return Vec::new();
    };
    let key = |p: &Value| p.get("computation_key").and_then(Value::as_str).map(str::to_owned);
    match personas.get("computations").and_then(Value::as_array) {
        Some(all) => all.iter().filter_map(key).collect(),
        None => key(personas).into_iter().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::DestinationFilters;

    fn destination() -> Destination {
        Destination {
            name: "hook".into(),
            kind: "webhook".into(),
            ..Default::default()
        }
    }

    fn track(name: &str) -> Event {
        Event {
            r#type: EventType::Track as i32,
            message_id: format!("m-{name}"),
            user_id: "u1".into(),
            event: name.into(),
            properties: br#"{"total":5,"email":"a@b.c"}"#.to_vec(),
            ..Default::default()
        }
    }

    fn route(destination: &Destination) -> Route {
        let sources = [
            Source {
                id: 1,
                name: "web".into(),
                ..Default::default()
            },
            Source {
                id: 2,
                name: "ios".into(),
                ..Default::default()
            },
        ];
        Route::compile(destination, &sources, Some(9))
    }

    #[test]
    fn integrations_are_opt_out_and_the_destinations_own_key_wins() {
        let r = route(&destination());
        let mut event = track("A");
        assert!(r.decide(1, &event, false).is_ok(), "no integrations object: delivered");
        for (integrations, delivered) in [
            (r#"{"All":false}"#, false),
            (r#"{"All":false,"hook":true}"#, true),
            (r#"{"All":false,"hook":{"option":1}}"#, true),
            (r#"{"hook":false}"#, false),
            (r#"{"Other":false}"#, true),
        ] {
            event.integrations = integrations.as_bytes().to_vec();
            assert_eq!(r.decide(1, &event, false).is_ok(), delivered, "{integrations}");
        }
        event.integrations = br#"{"All":false}"#.to_vec();
        let replayed = r.decide(1, &event, true).unwrap().into_map(&event);
        assert_eq!(
            replayed["integrations"],
            serde_json::json!({"All": false, "hook": true})
        );
    }

    #[test]
    fn consent_follows_segments_rules() {
        let mut d = destination();
        d.consent_categories = vec!["Advertising".into(), "Analytics".into()];
        let r = route(&d);
        let mut event = track("A");
        for (context, delivered) in [
            ("", true),
            (r#"{"consent":{}}"#, true),
            (r#"{"consent":{"categoryPreferences":{}}}"#, false),
            (r#"{"consent":{"categoryPreferences":{"Advertising":true}}}"#, false),
            (
                r#"{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":true}}}"#,
                true,
            ),
            (
                r#"{"consent":{"categoryPreferences":{"Advertising":true,"Analytics":false}}}"#,
                false,
            ),
        ] {
            event.context = context.as_bytes().to_vec();
            assert_eq!(r.decide(1, &event, false).is_ok(), delivered, "{context}");
        }
        // A destination with no categories is not blocked by consent.
        event.context = br#"{"consent":{"categoryPreferences":{}}}"#.to_vec();
        assert!(route(&destination()).decide(1, &event, false).is_ok());
    }

    #[test]
    fn filters_sample_drop_and_trim_properties() {
        let mut d = destination();
        d.filters = Some(DestinationFilters {
            types: vec!["track".into()],
            drop_events: vec!["Noise".into()],
            drop_properties: vec!["email".into()],
            ..Default::default()
        });
        let r = route(&d);
        assert_eq!(r.decide(1, &track("Noise"), false).unwrap_err(), Filtered::EventName);
        let order = track("Order");
        let kept = r.decide(1, &order, false).unwrap().into_map(&order);
        assert_eq!(kept["properties"], serde_json::json!({"total": 5}));
        let page = Event {
            r#type: EventType::Page as i32,
            ..track("x")
        };
        assert_eq!(r.decide(1, &page, false).unwrap_err(), Filtered::Type);

        d.filters = Some(DestinationFilters {
            allow_properties: vec!["total".into()],
            sample_percent: Some(30.0),
            ..Default::default()
        });
        let r = route(&d);
        let kept: Vec<bool> = (0..2000)
            .map(|i| r.decide(1, &track(&format!("e{i}")), false).is_ok())
            .collect();
        let share = kept.iter().filter(|k| **k).count() as f64 / 2000.0;
        assert!((0.25..0.35).contains(&share), "sampled {share}");
        let again: Vec<bool> = (0..2000)
            .map(|i| r.decide(1, &track(&format!("e{i}")), false).is_ok())
            .collect();
        assert_eq!(kept, again, "the same events are kept every time");
        let one = (0..2000)
            .find_map(|i| {
                let event = track(&format!("e{i}"));
                r.decide(1, &event, false).ok().map(|routed| routed.into_map(&event))
            })
            .unwrap();
        assert_eq!(one["properties"], serde_json::json!({"total": 5}));
    }

    #[test]
    fn sources_and_engage_connections() {
        let mut d = destination();
        d.sources = vec!["ios".into()];
        let r = route(&d);
        assert_eq!(r.decide(1, &track("A"), false).unwrap_err(), Filtered::Source);
        assert!(r.decide(2, &track("A"), false).is_ok());

        let engage = Event {
            r#type: EventType::Identify as i32,
            message_id: "engage-traits-x".into(),
            user_id: "u1".into(),
            traits: br#"{"vip":true,"ltv":12}"#.to_vec(),
            context: br#"{"personas":{"computations":[{"computation_key":"vip"},{"computation_key":"ltv"}]}}"#.to_vec(),
            ..Default::default()
        };
        assert_eq!(
            route(&destination()).decide(9, &engage, false).unwrap_err(),
            Filtered::NotConnected,
            "Engage events go only where connected"
        );
        d.computations = vec!["vip".into()];
        let only_vip = route(&d).decide(9, &engage, false).unwrap().into_map(&engage);
        assert_eq!(only_vip["traits"], serde_json::json!({"vip": true}));
        assert_eq!(
            only_vip["context"]["personas"]["computations"],
            serde_json::json!([{"computation_key": "vip"}]),
            "nor the other computations' keys"
        );
        d.computations = vec!["*".into()];
        let all = route(&d).decide(9, &engage, false).unwrap().into_map(&engage);
        assert_eq!(all["traits"], serde_json::json!({"vip": true, "ltv": 12}));
    }

    #[test]
    fn a_prediction_connected_by_its_key_sends_its_score_traits() {
        let scores = Event {
            r#type: EventType::Identify as i32,
            message_id: "predict-buy-x".into(),
            user_id: "u1".into(),
            traits: br#"{"buy_probability":0.5,"buy_percentile":0.9,"buy_decile":10,"buy_extra":1}"#.to_vec(),
            context: br#"{"personas":{"computation_class":"prediction","computation_key":"buy"}}"#.to_vec(),
            ..Default::default()
        };
        let mut d = destination();
        d.computations = vec!["buy".into()];
        let sent = route(&d).decide(9, &scores, false).unwrap().into_map(&scores);
        assert_eq!(
            sent["traits"],
            serde_json::json!({"buy_probability": 0.5, "buy_percentile": 0.9, "buy_decile": 10})
        );
    }
}
