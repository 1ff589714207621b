//! Engage: the indexes audiences and computed traits are evaluated on (`docs/engage.md`).

pub mod events;

pub use events::EventIndex;

use crate::proto::{Event, EventType};

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
