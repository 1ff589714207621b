//! Properties of the ingest requests' bytes, as `Engine::send` and `Engine::submit_stream` read
//! them before anything is queued: whatever the bytes, decoding gives a request or
//! `InvalidRequest`, and preparing a decoded request answers each of its events once (prepared
//! or rejected) with a timestamp a protobuf `Timestamp` can hold. Never a panic.

use proptest::prelude::*;
use prost::Message;

use super::*;
use crate::event::tests::ctx;
use crate::proto::{send_request, stream_request, Event, JsonBatch};

/// What `submit_payload` does short of queueing, with the checks every outcome must pass.
fn prepare_payload(payload: Option<Payload>) -> std::result::Result<(), TestCaseError> {
    let ctx = ctx();
    let (events, rejections, messages) = match payload {
        None => return Ok(()),
        Some(Payload::Batch(batch)) => {
            let messages = batch.events.len();
            let (events, rejections) = prepare_batch(batch, &ctx);
            (events, rejections, messages)
        }
        Some(Payload::Json(json)) => {
            let options = JsonOptions {
                content_message_ids: json.content_message_ids,
                ignore_sent_at: json.ignore_sent_at,
                first_line: json.first_line,
                route_type: None,
            };
            let Ok(mut decoded) = segment_json::decode(&json.data, &options, ctx.max_event_bytes) else {
                return Ok(());
            };
            let (mut events, mut rejections) = prepare_batch(std::mem::take(&mut decoded.batch), &ctx);
            decoded.number(&mut events, &mut rejections);
            (events, rejections, decoded.messages())
        }
    };
    let mut answered: Vec<u32> = events
        .iter()
        .map(|e| e.index)
        .chain(rejections.iter().map(|r| r.index))
        .collect();
    answered.sort_unstable();
    prop_assert_eq!(answered, (0..messages as u32).collect::<Vec<_>>());
    for event in &events {
        prop_assert!(
            time::is_valid(&time::from_ms(event.timestamp_ms)),
            "event time {} ms is outside 0001..=9999",
            event.timestamp_ms
        );
        let stored = Event::decode(event.encoded.as_slice());
        prop_assert!(stored.is_ok(), "a prepared event does not decode: {:?}", stored.err());
    }
    Ok(())
}

fn decode_both(bytes: &[u8]) -> std::result::Result<(), TestCaseError> {
    match proto::decode_request::<SendRequest>(bytes) {
        Ok(request) => prepare_payload(request.payload.map(Payload::from))?,
        Err(err) => prop_assert!(matches!(err, EngineError::InvalidRequest(_)), "{err}"),
    }
    match proto::decode_request::<StreamRequest>(bytes) {
        Ok(request) => prepare_payload(request.payload.map(Payload::from))?,
        Err(err) => prop_assert!(matches!(err, EngineError::InvalidRequest(_)), "{err}"),
    }
    Ok(())
}

fn timestamp() -> impl Strategy<Value = Option<prost_types::Timestamp>> {
    let seconds = prop_oneof![
        Just(0i64),
        -62_135_596_800i64..=253_402_300_799,
        Just(-62_135_596_801),
        Just(253_402_300_800),
        any::<i64>()
    ];
    let nanos = prop_oneof![0..1_000_000_000i32, any::<i32>()];
    proptest::option::of((seconds, nanos).prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos }))
}

fn json_object() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        Just(Vec::new()),
        Just(b"{}".to_vec()),
        Just(br#"{"plan":"pro","n":1}"#.to_vec()),
        Just(b"[1]".to_vec()),
        Just(b"null".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..20),
    ]
}

/// Events with every field free: any call number, ids of any text, objects that may not be
/// JSON, timestamps in and far out of range.
fn event() -> impl Strategy<Value = Event> {
    let text = prop_oneof![Just(String::new()), "[a-z0-9@.]{1,8}", "\\PC{0,12}"];
    (
        (
            -1..8i32,
            text.clone(),
            text.clone(),
            text.clone(),
            text.clone(),
            text.clone(),
        ),
        (json_object(), json_object(), json_object()),
        (timestamp(), timestamp(), timestamp()),
    )
        .prop_map(
            |(
                (kind, message_id, user_id, anonymous_id, group_id, name),
                (properties, traits, context),
                (timestamp, sent_at, original_timestamp),
            )| Event {
                r#type: kind,
                message_id,
                user_id,
                anonymous_id,
                previous_id: group_id.clone(),
                group_id,
                event: name.clone(),
                name,
                properties,
                traits,
                context,
                timestamp,
                sent_at,
                original_timestamp,
                ..Event::default()
            },
        )
}

fn batch() -> impl Strategy<Value = Batch> {
    (
        proptest::collection::vec(event(), 0..6),
        json_object(),
        json_object(),
        timestamp(),
    )
        .prop_map(|(events, context, integrations, sent_at)| Batch {
            events,
            context,
            integrations,
            sent_at,
        })
}

proptest! {
    #[test]
    fn arbitrary_bytes_are_a_request_or_invalid_never_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        decode_both(&bytes)?;
    }

    /// Well-formed requests with free field values, whole and read short.
    #[test]
    fn any_encoded_request_is_answered_event_by_event(
        batch in batch(),
        json in proptest::option::of("\\PC{0,200}"),
        sequence in any::<u64>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let send = match json {
            Some(data) => send_request::Payload::Json(JsonBatch { data: data.into_bytes(), ..JsonBatch::default() }),
            None => send_request::Payload::Batch(batch.clone()),
        };
        let bytes = SendRequest { payload: Some(send) }.encode_to_vec();
        decode_both(&bytes)?;
        decode_both(&bytes[..cut.index(bytes.len() + 1)])?;
        let stream = StreamRequest { sequence, payload: Some(stream_request::Payload::Batch(batch)) };
        decode_both(&stream.encode_to_vec())?;
    }
}
