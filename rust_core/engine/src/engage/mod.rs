//! Engage: the indexes audiences and computed traits are evaluated on, and their evaluation
//! (`docs/engage.md`).

pub mod clock;
pub mod evaluate;
pub mod events;
pub mod plan;
pub mod realtime;
pub mod traits;
pub mod value;

pub use events::EventIndex;
pub use traits::TraitIndex;

use rustc_hash::FxHashMap;
use serde_json::{Map, Value};

use crate::error::Result;
use crate::ingest::Shared;
use crate::proto::{Event, EventType};
use crate::query::Definition;

/// Runs `work` over the current state evaluated at `at_ms`, with `saved` as the saved
/// definitions: the sources' names are read first (`sources(exclude: 'name')`), then the graph
/// is locked and one read transaction opened for the run.
pub(crate) fn with_run<T>(
    shared: &Shared,
    saved: &FxHashMap<String, Definition>,
    at_ms: i64,
    work: impl FnOnce(&plan::Run<'_>) -> Result<T>,
) -> Result<T> {
    let store = &shared.store;
    let sources = {
        let txn = store.log.read()?;
        let mut sources = FxHashMap::default();
        for entry in store.log_dbs.sources.iter(&txn.txn)? {
            let (id, value) = entry?;
            let source: crate::proto::Source = crate::proto::decode_record(value, "a source record")?;
            sources.insert(id, source.name);
        }
        sources
    };
    let state = shared.profiles.lock();
    let log = evaluate::LogReader::new(store)?;
    let ev = evaluate::Evaluator {
        graph: &state.graph,
        engage: &state.engage,
        log: &log,
        sources: &sources,
        saved,
        now_ms: at_ms,
    };
    let result = work(&plan::Run::new(ev, &state.links));
    // Handed straight to a waiting ingest, not kept by a caller that comes back for it at once
    // (Predictions take it chunk after chunk over a million profiles).
    parking_lot::MutexGuard::unlock_fair(state);
    result
}

/// The indexes, kept with the identity graph (same lock, same snapshot), keyed by its nodes.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Engage {
    pub events: EventIndex,
    pub traits: TraitIndex,
    /// How far in time the log had got at each event (Predictions' point-in-time features).
    pub clock: clock::LogClock,
}

/// What Engage records of one accepted event.
pub struct EngageFacts<'a> {
    /// Its name for `event('…')`.
    pub name: Option<&'a str>,
    /// The traits an identify call set.
    pub traits: Option<&'a Map<String, Value>>,
    /// A named event's revenue (`revenue_of`).
    pub revenue: Option<f64>,
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
            self.events.record(node, name, ms, seq, facts.revenue);
        }
        if let Some(traits) = facts.traits {
            self.traits.record(node, traits, ms, seq, message_id, message_id_of);
        }
    }

    /// Forgets what was recorded under `nodes` (see `EventIndex::forget_nodes`).
    pub fn forget_nodes(&mut self, nodes: &rustc_hash::FxHashSet<u32>) {
        self.events.forget_nodes(nodes);
        self.traits.forget_nodes(nodes);
    }

    /// After a snapshot load.
    pub fn restore(&mut self) {
        self.traits.restore();
    }

    pub fn memory(&self) -> Vec<(&'static str, usize)> {
        vec![
            ("engage_events", self.events.memory()),
            ("engage_traits", self.traits.memory()),
            ("engage_clock", self.clock.memory()),
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

/// The revenue a named event carries: its `revenue` property (Segment's field for the money an
/// event brought), else its `total` (the e-commerce spec's order total); a number or a numeric
/// string. The properties are parsed only when one of those keys appears in them.
pub fn revenue_of(properties: &[u8]) -> Option<f64> {
    let finder = |key: &str| memchr::memmem::find(properties, key.as_bytes()).is_some();
    if !finder("\"revenue\"") && !finder("\"total\"") {
        return None;
    }
    let object = crate::json::parse_object(properties).ok().flatten()?;
    let number = |key: &str| match object.get(key)? {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse::<f64>().ok(),
        _ => None,
    };
    number("revenue")
        .or_else(|| number("total"))
        .filter(|value| value.is_finite())
}

/// The traits object of an identify call that sets traits (other objects and calls: none).
pub fn identify_traits(event: &Event) -> Option<Map<String, Value>> {
    if !crate::profiles::sets_traits(event) {
        return None;
    }
    crate::json::parse_object(&event.traits).ok().flatten()
}
