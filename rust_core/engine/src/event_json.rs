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
}
