//! Engage: the indexes audiences and computed traits are evaluated on, and their evaluation
//! (`docs/engage.md`).

pub mod evaluate;
pub mod events;
pub mod plan;
pub mod realtime;
pub mod traits;
pub mod value;

pub use events::EventIndex;
pub use traits::TraitIndex;

use serde_json::{Map, Value};

use crate::proto::{Event, EventType};

/// The indexes, kept with the identity graph (same lock, same snapshot), keyed by its nodes.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Engage {
    pub events: EventIndex,
    pub traits: TraitIndex,
}

/// What Engage records of one accepted event.
pub struct EngageFacts<'a> {
    /// Its name for `event('…')`.
    pub name: Option<&'a str>,
    /// The traits an identify call set.
    pub traits: Option<&'a Map<String, Value>>,
}

impl Engage {
    /// Records an event under `node` (its primary identifier's node).
    pub fn record(
        &mut self,
        node: u32,
        facts: EngageFacts<'_>,
        (seq, ms, message_id): (u64, i64, &str),
        message_id_of: &mut dyn FnMut(u64) -> Option<String>,
    ) {
        if let Some(name) = facts.name {
            self.events.record(node, name, ms, seq);
        }
        if let Some(traits) = facts.traits {
            self.traits.record(node, traits, ms, seq, message_id, message_id_of);
        }
    }

    /// After a snapshot load.
    pub fn restore(&mut self) {
        self.traits.restore();
    }

    pub fn memory(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("engage_events", self.events.memory()),
            ("engage_traits", self.traits.memory()),
        ]
    }
}

/// The name an event has for `event('…')`: a track call's event, and for page and screen calls
/// the names Engage gives them (Segment's "Page Viewed", "Screen Viewed"). Other calls have none.
pub fn event_name(event: &Event) -> Option<&str> {
    match EventType::try_from(event.r#type).unwrap_or(EventType::Unspecified) {
        EventType::Track if !event.event.is_empty() => Some(&event.event),
        EventType::Page => Some("Page Viewed"),
        EventType::Screen => Some("Screen Viewed"),
        _ => None,
    }
}

/// The traits object of an identify call that sets traits (other objects and calls: none).
pub fn identify_traits(event: &Event) -> Option<Map<String, Value>> {
    if !crate::profiles::sets_traits(event) {
        return None;
    }
    crate::json::parse_object(&event.traits).ok().flatten()
}
