//! Properties of whole batches against a simple oracle: the rows each event makes, the columns
//! tracks shares with an event's table, and every property value read back from the COPY
//! payload as the casting rules say it goes in.

use proptest::prelude::*;
use serde_json::{json, Map, Value as Json};

use super::super::plan::plan_batch;
use super::super::schema::ColumnType;
use super::{field, loaded, Field};

const KEYS: [&str; 5] = ["alpha", "beta", "gamma", "count", "flag"];
const STRINGS: [&str; 5] = ["abc", "42", "true", "2024-05-01T12:00:00Z", " -7 "];
const EVENT_NAMES: [&str; 4] = ["Order Completed", "Signed Up", "users", "Order Completed"];

/// A property value the oracle can cast by hand.
#[derive(Clone, Debug)]
enum Simple {
    Int(i64),
    Half(i64), // n + 0.5
    Str(&'static str),
    Bool(bool),
}

impl Simple {
    fn json(&self) -> Json {
        match self {
            Simple::Int(n) => json!(n),
            Simple::Half(n) => json!(*n as f64 + 0.5),
            Simple::Str(s) => json!(s),
            Simple::Bool(b) => json!(b),
        }
    }

    /// What goes into a column of `column_type` (Null: did not cast).
    fn loaded_as(&self, column_type: ColumnType) -> Field {
        const NOON: i64 = (1_714_564_800 - 946_684_800) * 1_000_000;
        match (self, column_type) {
            (Simple::Int(n), ColumnType::Text) => Field::Text(n.to_string()),
            (Simple::Half(n), ColumnType::Text) => Field::Text(format!("{}", *n as f64 + 0.5)),
            (Simple::Str(s), ColumnType::Text) => Field::Text((*s).to_owned()),
            (Simple::Bool(b), ColumnType::Text) => Field::Text(b.to_string()),
            (Simple::Int(n), ColumnType::Bigint) => Field::Bigint(*n),
            (Simple::Str(s), ColumnType::Bigint) => s.trim().parse().map_or(Field::Null, Field::Bigint),
            (Simple::Int(n), ColumnType::Double) => Field::Double(*n as f64),
            (Simple::Half(n), ColumnType::Double) => Field::Double(*n as f64 + 0.5),
            (Simple::Str(s), ColumnType::Double) => s.trim().parse().map_or(Field::Null, Field::Double),
            (Simple::Bool(b), ColumnType::Boolean) => Field::Boolean(*b),
            (Simple::Str("true"), ColumnType::Boolean) => Field::Boolean(true),
            (Simple::Str("2024-05-01T12:00:00Z"), ColumnType::Timestamp) => Field::Timestamp(NOON),
            _ => Field::Null,
        }
    }
}

#[derive(Clone, Debug)]
struct Call {
    call_type: &'static str,
    event: &'static str,
    user: Option<u8>,
    properties: Vec<(&'static str, Simple)>,
}

fn simple() -> impl Strategy<Value = Simple> {
    prop_oneof![
        (-1000i64..1000).prop_map(Simple::Int),
        (-1000i64..1000).prop_map(Simple::Half),
        proptest::sample::select(STRINGS.to_vec()).prop_map(Simple::Str),
        any::<bool>().prop_map(Simple::Bool),
    ]
}

fn call() -> impl Strategy<Value = Call> {
    (
        proptest::sample::select(vec!["track", "track", "identify", "page", "group", "alias", "other"]),
        proptest::sample::select(EVENT_NAMES.to_vec()),
        proptest::option::of(0u8..4),
        proptest::collection::vec((proptest::sample::select(KEYS.to_vec()), simple()), 0..5),
    )
        .prop_map(|(call_type, event, user, properties)| Call {
            call_type,
            event,
            user,
            properties,
        })
}

impl Call {
    fn json(&self, index: usize) -> Json {
        let custom: Map<String, Json> = self
            .properties
            .iter()
            .map(|(key, value)| ((*key).to_owned(), value.json()))
            .collect();
        let mut event = json!({
            "type": self.call_type,
            "messageId": format!("m{index}"),
            "event": self.event,
            "timestamp": format!("2024-05-01T12:00:{:02}Z", index % 60),
            "context": {"library": {"name": "analytics.js"}, "ip": "203.0.113.7"},
            "properties": custom.clone(),
            "traits": custom,
        });
        if let Some(user) = self.user {
            event["userId"] = json!(format!("u{user}"));
        }
        event
    }

    /// Each key once, its last value (as the JSON object holds them).
    fn properties(&self) -> Vec<(&'static str, Simple)> {
        let mut unique: Vec<(&'static str, Simple)> = Vec::new();
        for (key, value) in &self.properties {
            match unique.iter_mut().find(|(kept, _)| kept == key) {
                Some(kept) => kept.1 = value.clone(),
                None => unique.push((key, value.clone())),
            }
        }
        unique
    }
}

fn event_table(name: &str) -> &'static str {
    match name {
        "Order Completed" => "order_completed",
        "Signed Up" => "signed_up",
        _ => "_users",
    }
}

const CALL_COLUMNS: [&str; 8] = [
    "id",
    "timestamp",
    "user_id",
    "context_library_name",
    "context_ip",
    "event",
    "event_text",
    "received_at",
];

proptest! {
    #[test]
    fn every_event_makes_its_rows_and_every_value_reads_back_as_the_rules_say(
        calls in proptest::collection::vec(call(), 1..40)
    ) {
        let events: Vec<Json> = calls.iter().enumerate().map(|(i, c)| c.json(i)).collect();
        let raw = serde_json::to_vec(&events).unwrap();
        let ids: Vec<String> = (0..calls.len()).map(|i| format!("m{i}")).collect();
        let plan = plan_batch(&raw, &ids).unwrap();
        prop_assert_eq!(plan.skipped_events(), calls.iter().filter(|c| c.call_type == "other").count() as u64);

        for table in 0..plan.tables().len() {
            let columns = plan.columns(table);
            prop_assert!(columns.windows(2).all(|pair| pair[0].0 < pair[1].0), "sorted, unique");
            prop_assert!(columns.iter().all(|(name, _)| *name != "uuid_ts"));
        }

        // tracks: one row per track event, in order; its event's table: the same call columns.
        let tracks: Vec<(usize, &Call)> =
            calls.iter().enumerate().filter(|(_, c)| c.call_type == "track").collect();
        let tracks_rows = if tracks.is_empty() { Vec::new() } else { loaded(&plan, "tracks", &[]).0 };
        prop_assert_eq!(tracks_rows.len(), tracks.len());
        for name in ["order_completed", "signed_up", "_users"] {
            let mine: Vec<&(usize, &Call)> = tracks.iter().filter(|(_, c)| event_table(c.event) == name).collect();
            if mine.is_empty() {
                prop_assert!(plan.tables().iter().all(|t| t.name() != name));
                continue;
            }
            let table = plan.tables().iter().position(|t| t.name() == name).unwrap();
            let types = plan.columns(table);
            let (rows, encoded) = loaded(&plan, name, &[]);
            prop_assert_eq!(rows.len(), mine.len());
            let mut nulled = 0;
            for (row, (index, call)) in rows.iter().zip(&mine) {
                let position = tracks.iter().position(|(i, _)| i == index).unwrap();
                for column in CALL_COLUMNS {
                    prop_assert_eq!(field(row, column), field(&tracks_rows[position], column), "{}", column);
                }
                prop_assert_eq!(field(row, "id"), &Field::Text(format!("m{index}")));
                for (key, value) in call.properties() {
                    let (_, column_type) = types.iter().find(|(c, _)| *c == key).unwrap();
                    let expected = value.loaded_as(*column_type);
                    if expected == Field::Null {
                        nulled += 1;
                    }
                    prop_assert_eq!(field(row, key), &expected, "{} of {:?}", key, value);
                }
            }
            let counted: u64 = encoded.nulled.iter().map(|(_, n)| n).sum();
            prop_assert_eq!(counted, nulled);
        }

        // users: one row per distinct userId of the identify calls.
        let mut users: Vec<u8> = calls.iter().filter(|c| c.call_type == "identify").filter_map(|c| c.user).collect();
        users.sort_unstable();
        users.dedup();
        let user_rows = if users.is_empty() { Vec::new() } else { loaded(&plan, "users", &[]).0 };
        prop_assert_eq!(user_rows.len(), users.len());

        // Every other call: one row in its table.
        for (call_type, table) in [("identify", "identifies"), ("page", "pages"), ("group", "groups"), ("alias", "aliases")] {
            let count = calls.iter().filter(|c| c.call_type == call_type).count();
            let rows = plan.tables().iter().find(|t| t.name() == table).map_or(0, |t| t.len());
            prop_assert_eq!(rows, count, "{}", table);
        }
    }
}
