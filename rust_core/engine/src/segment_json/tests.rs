use proptest::prelude::*;

use super::*;
use crate::event::tests::ctx;
use crate::event::{prepare_batch, BatchContext};

/// Decodes and prepares as `Engine::submit_json` does.
fn prepare_json(data: &str, options: &JsonOptions) -> (Vec<PreparedEvent>, Vec<Rejection>) {
    let mut decoded = decode(data.as_bytes(), options, ctx().max_event_bytes).unwrap();
    let (mut events, mut rejections) = prepare_batch(std::mem::take(&mut decoded.batch), &ctx());
    decoded.number(&mut events, &mut rejections);
    (events, rejections)
}

fn stored(event: &PreparedEvent) -> Event {
    prost::Message::decode(event.encoded.as_slice()).unwrap()
}

#[test]
fn a_message_becomes_the_event_the_protobuf_path_stores() {
    let json = r#"{"type":"track","messageId":"m1","userId":"u1","event":"Order Completed",
        "properties":{"revenue":9.5},"context":{"ip":"1.2.3.4"},"timestamp":"2024-05-01T12:00:00Z",
        "receivedAt":"2000-01-01T00:00:00Z","writeKey":"k","version":2}"#;
    let (events, rejections) = prepare_json(json, &JsonOptions::default());
    assert!(rejections.is_empty(), "{rejections:?}");
    let proto = Event {
        r#type: EventType::Track as i32,
        message_id: "m1".into(),
        user_id: "u1".into(),
        event: "Order Completed".into(),
        properties: br#"{"revenue":9.5}"#.to_vec(),
        context: br#"{"ip":"1.2.3.4"}"#.to_vec(),
        timestamp: Some(time::parse_iso8601("2024-05-01T12:00:00Z").unwrap()),
        ..Default::default()
    };
    let (expected, _) = prepare_batch(
        Batch {
            events: vec![proto],
            ..Default::default()
        },
        &ctx(),
    );
    assert_eq!(events[0].encoded, expected[0].encoded);
    assert_eq!(events[0].fingerprint, expected[0].fingerprint);
    assert_eq!(events[0].dedupe_key, expected[0].dedupe_key);
}

#[test]
fn a_batch_object_shares_its_context_integrations_and_sent_at() {
    let json = r#"{"batch":[
        {"type":"identify","userId":"u1","traits":{"plan":"pro"},"messageId":"a","originalTimestamp":"2024-05-01T11:59:50Z"},
        {"type":"track","userId":"u1","event":"E","context":{"ip":"1.1.1.1"},"messageId":"b"}
      ],"context":{"ip":"9.9.9.9","locale":"nl"},"integrations":{"All":false},
      "sentAt":"2024-05-01T12:00:00Z","writeKey":"w"}"#;
    let (events, rejections) = prepare_json(json, &JsonOptions::default());
    assert!(rejections.is_empty(), "{rejections:?}");
    let first = stored(&events[0]);
    // Clock skew: received − (sentAt − originalTimestamp) = received − 10 s.
    assert_eq!(
        time::to_ms(first.timestamp.as_ref().unwrap()),
        ctx().received_ms - 10_000
    );
    let second: serde_json::Value = serde_json::from_slice(&stored(&events[1]).context).unwrap();
    assert_eq!(second["ip"], "1.1.1.1");
    assert_eq!(second["locale"], "nl");
    assert_eq!(stored(&events[1]).integrations, br#"{"All":false}"#);
}

#[test]
fn json_lines_reject_broken_lines_alone_with_their_numbers() {
    let data = concat!(
        r#"{"type":"track","userId":"u","event":"A","messageId":"1"}"#,
        "\n\n",
        r#"{"type":"track","userId":"u","event":"B","#,
        "\n",
        r#"{"type":"track","event":"C","messageId":"3"}"#,
        "\r\n",
        r#"[1,2]"#,
        "\n",
        r#"{"type":"bogus","userId":"u","messageId":"5"}"#,
        "\n",
        r#"{"type":"page","userId":"u","name":"Home","messageId":"6"}"#,
    );
    let options = JsonOptions {
        first_line: 10,
        ..Default::default()
    };
    let (events, rejections) = prepare_json(data, &options);
    assert_eq!(events.iter().map(|e| e.index).collect::<Vec<_>>(), vec![0, 5]);
    let seen: Vec<(u32, u64, &str, &str)> = rejections
        .iter()
        .map(|r| (r.index, r.line, r.field, r.message_id.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, 12, "message", ""),
            (2, 13, "userId", "3"),
            (3, 14, "message", ""),
            (4, 15, "type", "5"),
        ]
    );
    assert!(
        rejections[0].reason.contains("not valid JSON"),
        "{}",
        rejections[0].reason
    );
    assert!(rejections[2].reason.contains("must be a JSON object, not an array"));
    assert!(rejections[3].reason.contains("\"bogus\" is not a Segment call"));
}

#[test]
fn an_array_numbers_its_elements_and_their_lines() {
    let data = "[\n{\"type\":\"track\",\"userId\":\"u\",\"event\":\"A\"},\n\"text\",\n{\"type\":\"alias\",\"userId\":\"u\"}\n]";
    let (events, rejections) = prepare_json(data, &JsonOptions::default());
    assert_eq!(events.len(), 1);
    assert_eq!(
        rejections
            .iter()
            .map(|r| (r.index, r.line, r.field))
            .collect::<Vec<_>>(),
        vec![(1, 3, "message"), (2, 4, "previousId")]
    );
}

#[test]
fn fields_of_the_wrong_json_type_are_named() {
    let field = |message: &str| {
        let (events, rejections) = prepare_json(message, &JsonOptions::default());
        assert!(events.is_empty(), "{message}");
        (rejections[0].field, rejections[0].reason.clone())
    };
    let base = r#""type":"track","event":"E","userId":"u""#;
    assert_eq!(field(&format!(r#"{{{base},"properties":[1]}}"#)).0, "properties");
    assert_eq!(field(&format!(r#"{{{base},"traits":"x"}}"#)).0, "traits");
    assert_eq!(field(r#"{"type":"track","event":"E","userId":true}"#).0, "userId");
    assert_eq!(field(r#"{"type":"track","event":7,"userId":"u"}"#).0, "event");
    assert_eq!(field(r#"{"type":"track","event":"E","userId":4.5}"#).0, "userId");
    let (name, reason) = field(&format!(r#"{{{base},"timestamp":"2024-05-01T12:00:00"}}"#));
    assert_eq!(name, "timestamp");
    assert!(reason.contains("no time zone"), "{reason}");
    assert_eq!(field(&format!(r#"{{{base},"sentAt":12}}"#)).0, "sentAt");
    assert_eq!(field(r#"{"type":3,"userId":"u"}"#).0, "type");
    // The path's own rules, as for protobuf input.
    assert_eq!(field(r#"{"event":"E","userId":"u"}"#).0, "type");
    assert_eq!(field(r#"{"type":"Track","userId":"u"}"#).0, "event");
}

#[test]
fn integer_ids_null_fields_and_category_are_read_as_segment_does() {
    let data = r#"{"type":"PAGE","userId":42,"anonymousId":null,"name":"Pricing","category":"Docs",
        "properties":{"category":"old","url":"/p"},"messageId":-7}"#;
    let (events, rejections) = prepare_json(data, &JsonOptions::default());
    assert!(rejections.is_empty(), "{rejections:?}");
    let event = stored(&events[0]);
    assert_eq!((event.user_id.as_str(), event.message_id.as_str()), ("42", "-7"));
    assert_eq!(event.r#type, EventType::Page as i32);
    let properties: serde_json::Value = serde_json::from_slice(&event.properties).unwrap();
    assert_eq!(properties["category"], "Docs");
    assert_eq!(properties["url"], "/p");
}

#[test]
fn content_message_ids_are_stable_and_sent_at_can_be_ignored() {
    let line = r#"{"type":"track","userId":"u","event":"E","timestamp":"2024-05-01T12:00:00Z","sentAt":"2030-01-01T00:00:00Z"}"#;
    let options = JsonOptions {
        content_message_ids: true,
        ignore_sent_at: true,
        ..Default::default()
    };
    let (first, _) = prepare_json(line, &options);
    // The same content, however spelled and whenever sent, gets the same id; other content not.
    let respelled = r#"{ "event":"E", "sentAt":"2040-01-01T00:00:00Z", "userId":"u","timestamp":"2024-05-01T12:00:00.000Z","type":"track"}"#;
    let (again, _) = prepare_json(respelled, &options);
    let (other, _) = prepare_json(&line.replace(r#""E""#, r#""F""#), &options);
    assert!(first[0].message_id.starts_with("content-"));
    assert_eq!(first[0].message_id, again[0].message_id);
    assert_ne!(first[0].message_id, other[0].message_id);
    assert!(first[0].dedupe_key.is_some(), "content ids are deduplicated");
    let event = stored(&first[0]);
    assert_eq!(event.timestamp, time::parse_iso8601("2024-05-01T12:00:00Z").ok());
    assert_eq!(event.sent_at, None);
    // Without the options: a generated id (not deduplicated), and skew correction by sentAt.
    let (plain, _) = prepare_json(line, &JsonOptions::default());
    assert!(plain[0].dedupe_key.is_none());
    assert!(stored(&plain[0]).sent_at.is_some());
}

#[test]
fn a_typed_route_decides_the_call() {
    let options = JsonOptions {
        route_type: Some(EventType::Identify),
        ..Default::default()
    };
    let (events, _) = prepare_json(r#"{"userId":"u","traits":{"a":1},"type":"track"}"#, &options);
    assert_eq!(stored(&events[0]).r#type, EventType::Identify as i32);
}

#[test]
fn oversized_messages_are_refused_alone() {
    let big = format!(
        r#"{{"type":"track","userId":"u","event":"E","properties":{{"x":"{}"}}}}"#,
        "a".repeat(40_000)
    );
    let small = r#"{"type":"track","userId":"u","event":"E"}"#;
    let (events, rejections) = prepare_json(&format!("{small}\n{big}\n{small}"), &JsonOptions::default());
    assert_eq!(events.len(), 2);
    assert_eq!((rejections[0].index, rejections[0].field), (1, "event"));
}

#[test]
fn bodies_that_cannot_be_split_into_messages_fail_whole() {
    let options = JsonOptions::default();
    for body in [
        "",
        "  \n ",
        "[{\"type\":\"track\"}",
        "{\"type\":",
        "{\"batch\":{}}",
        "{\"batch\":[],\"context\":[]}",
    ] {
        let err = decode(body.as_bytes(), &options, 1 << 15).err();
        assert!(
            matches!(err, Some(EngineError::InvalidRequest(ref m)) if m.starts_with("the JSON body")),
            "{body:?}: {err:?}"
        );
    }
    // Bytes that are not UTF-8, even in a field that is ignored, are refused, never a panic.
    for body in [
        &b"{\"type\":\"track\",\"junk\":\"\xff\"}"[..],
        b"{\"type\":\"tr\xffack\"}",
        b"[{\"x\":\"\xfe\"}]",
    ] {
        let outcome = decode(body, &options, 1 << 15);
        assert!(
            matches!(outcome, Err(EngineError::InvalidRequest(_))) || outcome.is_ok_and(|d| !d.unreadable.is_empty()),
            "{body:?}"
        );
    }
    // A byte-order mark is tolerated.
    assert!(decode(b"\xef\xbb\xbf{\"type\":\"track\"}", &options, 1 << 15).is_ok());
}

/// An event as both paths can carry it.
#[derive(Clone, Debug)]
struct Call {
    kind: usize,
    message_id: String,
    user_id: String,
    anonymous_id: String,
    name: String,
    properties: Option<Vec<(String, i64)>>,
    timestamp_ms: Option<i64>,
}

fn call() -> impl Strategy<Value = Call> {
    let text = "[a-zA-Z0-9 é\"\\\\/-]{0,12}";
    (
        0..7usize,
        text,
        text,
        text,
        text,
        proptest::option::of(proptest::collection::vec(("[a-z]{1,4}", any::<i64>()), 0..4)),
        proptest::option::of(-62_135_596_800_000i64..253_402_300_799_000),
    )
        .prop_map(
            |(kind, message_id, user_id, anonymous_id, name, properties, timestamp_ms)| Call {
                kind,
                message_id,
                user_id,
                anonymous_id,
                name,
                properties,
                timestamp_ms,
            },
        )
}

const KINDS: [&str; 7] = ["", "identify", "track", "page", "screen", "group", "alias"];

impl Call {
    fn properties_json(&self) -> Option<String> {
        self.properties.as_ref().map(|pairs| {
            let map: serde_json::Map<String, serde_json::Value> =
                pairs.iter().map(|(k, v)| (k.clone(), (*v).into())).collect();
            serde_json::to_string(&map).unwrap()
        })
    }

    fn json(&self) -> String {
        let mut map = serde_json::Map::new();
        let mut put = |key: &str, value: &str| {
            if !value.is_empty() {
                map.insert(key.into(), value.into());
            }
        };
        put("type", KINDS[self.kind]);
        put("messageId", &self.message_id);
        put("userId", &self.user_id);
        put("anonymousId", &self.anonymous_id);
        put("event", &self.name);
        put("groupId", &self.name);
        put("previousId", &self.name);
        if let Some(ms) = self.timestamp_ms {
            let at = chrono::DateTime::from_timestamp_millis(ms).unwrap();
            map.insert(
                "timestamp".into(),
                at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string().into(),
            );
        }
        let mut text = serde_json::to_string(&map).unwrap();
        if let Some(properties) = self.properties_json() {
            text.pop();
            text.push_str(&format!(
                r#"{}"properties":{properties}}}"#,
                if map.is_empty() { "" } else { "," }
            ));
        }
        text
    }

    fn proto(&self) -> Event {
        Event {
            r#type: self.kind as i32,
            message_id: self.message_id.clone(),
            user_id: self.user_id.clone(),
            anonymous_id: self.anonymous_id.clone(),
            event: self.name.clone(),
            group_id: self.name.clone(),
            previous_id: self.name.clone(),
            properties: self.properties_json().unwrap_or_default().into_bytes(),
            timestamp: self.timestamp_ms.map(time::from_ms),
            ..Default::default()
        }
    }
}

proptest! {
    /// JSON lines and protobuf batches of the same calls are stored alike and refused alike.
    #[test]
    fn json_and_protobuf_paths_agree(calls in proptest::collection::vec(call(), 1..12)) {
        let lines: Vec<String> = calls.iter().map(Call::json).collect();
        let (json_events, json_rejections) = prepare_json(&lines.join("\n"), &JsonOptions::default());
        let batch = Batch { events: calls.iter().map(Call::proto).collect(), ..Default::default() };
        let (proto_events, proto_rejections) = prepare_batch(batch, &ctx());
        prop_assert_eq!(json_events.len(), proto_events.len());
        for (json, proto) in json_events.iter().zip(&proto_events) {
            prop_assert_eq!(json.index, proto.index);
            if json.dedupe_key.is_some() {
                prop_assert_eq!(&json.encoded, &proto.encoded);
                prop_assert_eq!(json.fingerprint, proto.fingerprint);
            }
        }
        let describe = |r: &Rejection| (r.index, r.field, r.reason.clone());
        prop_assert_eq!(
            json_rejections.iter().map(describe).collect::<Vec<_>>(),
            proto_rejections.iter().map(describe).collect::<Vec<_>>()
        );
        for rejection in &json_rejections {
            prop_assert_eq!(rejection.line, u64::from(rejection.index) + 1);
        }
    }
}

/// Decodes `data` as `Engine::submit_json` does and checks what every body must give: `Ok` with
/// each message answered once (an event or a rejection, numbered inside the body, rejections
/// on a line of the body), or the body's one error. Never a panic.
fn decode_any(data: &[u8], options: &JsonOptions) -> std::result::Result<(), TestCaseError> {
    let max_event_bytes = 4 * 1024;
    let Ok(mut decoded) = decode(data, options, max_event_bytes) else {
        return Ok(());
    };
    let messages = decoded.messages();
    let context = BatchContext {
        max_event_bytes,
        ..ctx()
    };
    let (mut events, mut rejections) = prepare_batch(std::mem::take(&mut decoded.batch), &context);
    decoded.number(&mut events, &mut rejections);
    let mut answered: Vec<u32> = events
        .iter()
        .map(|e| e.index)
        .chain(rejections.iter().map(|r| r.index))
        .collect();
    answered.sort_unstable();
    prop_assert_eq!(answered, (0..messages as u32).collect::<Vec<_>>());
    let lines = data.iter().filter(|b| **b == b'\n').count() as u64 + 1;
    for rejection in &rejections {
        prop_assert!(
            (1..=lines).contains(&rejection.line),
            "line {} of {}",
            rejection.line,
            lines
        );
        prop_assert!(!rejection.reason.is_empty());
    }
    Ok(())
}

fn options() -> impl Strategy<Value = JsonOptions> {
    (any::<bool>(), any::<bool>(), 0..7i32).prop_map(|(content_message_ids, ignore_sent_at, route)| JsonOptions {
        content_message_ids,
        ignore_sent_at,
        first_line: 0,
        route_type: EventType::try_from(route).ok().filter(|t| *t != EventType::Unspecified),
    })
}

/// Pieces of Segment-Spec JSON: joined at random they make bodies that are nearly right, which
/// reach further into the decoder than random bytes do.
const JSON_PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\n",
    " ",
    "\"type\"",
    "\"track\"",
    "\"identify\"",
    "\"page\"",
    "\"group\"",
    "\"alias\"",
    "\"userId\"",
    "\"anonymousId\"",
    "\"groupId\"",
    "\"previousId\"",
    "\"event\"",
    "\"name\"",
    "\"category\"",
    "\"messageId\"",
    "\"timestamp\"",
    "\"sentAt\"",
    "\"originalTimestamp\"",
    "\"properties\"",
    "\"traits\"",
    "\"context\"",
    "\"integrations\"",
    "\"batch\"",
    "\"u\"",
    "42",
    "-1",
    "1e999",
    "4.5",
    "null",
    "true",
    "\"2024-05-01T12:00:00Z\"",
    "\"2024-05-01T12:00:00.5+14:00\"",
    "\"0000-01-01T00:00:00Z\"",
    "\"\\ud800\"",
    "\"é\"",
    "{\"a\":{\"b\":[1,{}]}}",
    "\u{feff}",
    "\u{1}",
    "\"",
    "\\",
];

proptest! {
    #[test]
    fn arbitrary_bytes_decode_or_fail_whole_never_panic(
        data in proptest::collection::vec(any::<u8>(), 0..300),
        options in options(),
    ) {
        decode_any(&data, &options)?;
    }

    #[test]
    fn json_piece_soups_decode_or_fail_whole_never_panic(
        pieces in proptest::collection::vec(proptest::sample::select(JSON_PIECES), 0..60),
        options in options(),
    ) {
        decode_any(pieces.concat().as_bytes(), &options)?;
    }

    /// Every cut of a valid batch (a request read short) and every byte changed in one.
    #[test]
    fn damaged_batches_decode_or_fail_whole_never_panic(
        calls in proptest::collection::vec(call(), 1..6),
        cut in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        options in options(),
    ) {
        let messages: Vec<String> = calls.iter().map(Call::json).collect();
        let body = format!(r#"{{"batch":[{}],"context":{{"ip":"1.2.3.4"}}}}"#, messages.join(","));
        let at = cut.index(body.len() + 1);
        decode_any(&body.as_bytes()[..at], &options)?;
        let mut changed = body.clone().into_bytes();
        if at < changed.len() {
            changed[at] = byte;
        }
        decode_any(&changed, &options)?;
        decode_any(messages.join("\n").as_bytes(), &options)?;
    }
}
