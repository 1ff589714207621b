//! Stored events back into Segment-Spec JSON, for the HTTP surfaces (the Profile API's events,
//! the debugger): camelCase keys, ISO-8601 times in UTC with `Z`, empty fields left out. The
//! inverse of `segment_json`'s reading, as the Python client's `event_to_json` is.

use prost_types::Timestamp;
use serde_json::{Map, Value};

use crate::proto::{Event, EventType};

/// `2024-05-01T12:00:00.123Z` (fractions only as precise as the time is).
pub fn iso8601(ts: &Timestamp) -> String {
    match chrono::DateTime::from_timestamp(ts.seconds, ts.nanos.clamp(0, 999_999_999) as u32) {
        Some(at) => at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        None => String::new(),
    }
}

/// The ISO-8601 text of a time in milliseconds since the epoch.
pub fn iso8601_ms(ms: i64) -> String {
    iso8601(&crate::time::from_ms(ms))
}

/// Segment's name of a call type ("" when unspecified).
pub fn type_name(kind: i32) -> &'static str {
    match EventType::try_from(kind).unwrap_or(EventType::Unspecified) {
        EventType::Identify => "identify",
        EventType::Track => "track",
        EventType::Page => "page",
        EventType::Screen => "screen",
        EventType::Group => "group",
        EventType::Alias => "alias",
        EventType::Unspecified => "",
    }
}

/// A stored JSON object field as a value (bytes that are not JSON, which the engine never
/// stores, become their text rather than failing a read).
pub fn object_value(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// The Segment-Spec message of an event.
pub fn event_json(event: &Event) -> Map<String, Value> {
    let mut message = Map::new();
    let kind = type_name(event.r#type);
    if !kind.is_empty() {
        message.insert("type".into(), kind.into());
    }
    for (key, text) in [
        ("messageId", &event.message_id),
        ("anonymousId", &event.anonymous_id),
        ("userId", &event.user_id),
        ("event", &event.event),
        ("name", &event.name),
        ("groupId", &event.group_id),
        ("previousId", &event.previous_id),
    ] {
        if !text.is_empty() {
            message.insert(key.into(), text.as_str().into());
        }
    }
    for (key, at) in [
        ("timestamp", &event.timestamp),
        ("sentAt", &event.sent_at),
        ("originalTimestamp", &event.original_timestamp),
        ("receivedAt", &event.received_at),
    ] {
        if let Some(at) = at {
            message.insert(key.into(), iso8601(at).into());
        }
    }
    for (key, bytes) in [
        ("properties", &event.properties),
        ("traits", &event.traits),
        ("context", &event.context),
        ("integrations", &event.integrations),
    ] {
        if !bytes.is_empty() {
            message.insert(key.into(), object_value(bytes));
        }
    }
    message
}

/// `event_json(event)` written as JSON straight into `out`, without building the map: the same
/// keys in the same (sorted) order, and the stored JSON objects copied as they are (they were
/// checked when accepted), so a read for delivery costs no parse of them.
pub fn write_event_json(event: &Event, out: &mut Vec<u8>) {
    let mut first = true;
    let mut key = |out: &mut Vec<u8>, name: &str| {
        out.extend_from_slice(if first { b"{\"" } else { b",\"" });
        first = false;
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
    };
    let text = |out: &mut Vec<u8>, value: &str| {
        // Writing a &str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, value);
    };
    let kind = type_name(event.r#type);
    let time = |at: &Option<Timestamp>| at.as_ref().map(iso8601);
    let (timestamp, sent_at, original, received) = (
        time(&event.timestamp),
        time(&event.sent_at),
        time(&event.original_timestamp),
        time(&event.received_at),
    );
    // Sorted as serde_json's map sorts its keys.
    for (name, field) in [
        ("anonymousId", Field::Text(&event.anonymous_id)),
        ("context", Field::Object(&event.context)),
        ("event", Field::Text(&event.event)),
        ("groupId", Field::Text(&event.group_id)),
        ("integrations", Field::Object(&event.integrations)),
        ("messageId", Field::Text(&event.message_id)),
        ("name", Field::Text(&event.name)),
        ("originalTimestamp", Field::Time(original.as_deref())),
        ("previousId", Field::Text(&event.previous_id)),
        ("properties", Field::Object(&event.properties)),
        ("receivedAt", Field::Time(received.as_deref())),
        ("sentAt", Field::Time(sent_at.as_deref())),
        ("timestamp", Field::Time(timestamp.as_deref())),
        ("traits", Field::Object(&event.traits)),
        ("type", Field::Text(kind)),
        ("userId", Field::Text(&event.user_id)),
    ] {
        match field {
            Field::Text(value) if !value.is_empty() => {
                key(out, name);
                text(out, value);
            }
            Field::Time(Some(value)) => {
                key(out, name);
                text(out, value);
            }
            Field::Object(bytes) if !bytes.is_empty() => {
                key(out, name);
                if serde_json::from_slice::<&serde_json::value::RawValue>(bytes).is_ok() {
                    out.extend_from_slice(bytes);
                } else {
                    let _ = serde_json::to_writer(&mut *out, &object_value(bytes));
                }
            }
            _ => {}
        }
    }
    out.extend_from_slice(if first { b"{}" } else { b"}" });
}

enum Field<'a> {
    Text(&'a str),
    Time(Option<&'a str>),
    Object(&'a [u8]),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::segment_json::{self, JsonOptions};

    #[test]
    fn a_message_read_then_written_keeps_its_fields() {
        let text = r#"{"type":"track","messageId":"m1","userId":"u1","event":"Order Completed",
            "properties":{"revenue":12.5},"context":{"ip":"1.2.3.4"},
            "timestamp":"2024-05-01T12:00:00.123Z"}"#;
        let decoded = segment_json::decode(text.as_bytes(), &JsonOptions::default(), 32 * 1024).unwrap();
        let event = &decoded.batch.events[0];
        let json = event_json(event);
        assert_eq!(json["type"], "track");
        assert_eq!(json["messageId"], "m1");
        assert_eq!(json["userId"], "u1");
        assert_eq!(json["event"], "Order Completed");
        assert_eq!(json["properties"]["revenue"], 12.5);
        assert_eq!(json["context"]["ip"], "1.2.3.4");
        assert_eq!(json["timestamp"], "2024-05-01T12:00:00.123Z");
        assert!(!json.contains_key("anonymousId"), "empty fields are left out");
    }

    #[test]
    fn times_are_utc_with_z() {
        assert_eq!(iso8601_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601_ms(1_714_564_800_250), "2024-05-01T12:00:00.250Z");
    }

    fn json_object() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::from),
        ];
        let value = leaf.prop_recursive(3, 16, 4, |inner| {
            prop::collection::btree_map("\\PC{0,6}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect()))
        });
        prop_oneof![
            Just(Vec::new()),
            prop::collection::btree_map("\\PC{0,8}", value, 0..5)
                .prop_map(|m| serde_json::to_vec_pretty(&Value::Object(m.into_iter().collect())).unwrap()),
        ]
    }

    proptest::proptest! {
        /// The direct writer says what `event_json` says, whatever the text (escapes, unicode),
        /// the empty fields and the stored objects' layout.
        #[test]
        fn the_direct_writer_matches_the_map(
            kind in 0i32..7,
            texts in proptest::collection::vec("\\PC{0,10}|\"|\\\\|\u{1}", 7),
            seconds in proptest::option::of(0i64..4_000_000_000),
            objects in proptest::collection::vec(json_object(), 4),
        ) {
            let at = seconds.map(|s| Timestamp { seconds: s, nanos: 123_000_000 });
            let event = Event {
                r#type: kind,
                message_id: texts[0].clone(),
                anonymous_id: texts[1].clone(),
                user_id: texts[2].clone(),
                event: texts[3].clone(),
                name: texts[4].clone(),
                group_id: texts[5].clone(),
                previous_id: texts[6].clone(),
                timestamp: at,
                received_at: at,
                properties: objects[0].clone(),
                traits: objects[1].clone(),
                context: objects[2].clone(),
                integrations: objects[3].clone(),
                ..Default::default()
            };
            let mut written = Vec::new();
            write_event_json(&event, &mut written);
            let parsed: Value = serde_json::from_slice(&written).unwrap();
            proptest::prop_assert_eq!(parsed, Value::Object(event_json(&event)));
        }
    }
}
