//! From a decoded batch to events ready to store: validation by Segment's rules, batch-level
//! merge of context/integrations, clock-skew correction, a generated messageId when absent, and
//! the dedupe key and payload fingerprint. Runs on the caller's thread (no lock held), so
//! decoding of concurrent streams proceeds in parallel with the writer.

use prost::Message;
use serde_json::{Map, Value};
use xxhash_rust::xxh3::Xxh3;

use crate::error::{Refused, Rejection};
use crate::identifiers::{self, IdentKey, Identifier};
use crate::json;
use crate::proto::{Batch, Event, EventType};
use crate::time;

/// Segment's limits that are not configurable.
pub const MAX_MESSAGE_ID_CHARS: usize = 100;
pub const MAX_GROUP_ID_CHARS: usize = 500;
pub const MAX_BATCH_EVENTS: usize = 2_500;
/// An identify with this many traits or more is refused (Segment's Engage limit).
pub const MAX_IDENTIFY_TRAITS: usize = 300;

/// An event that passed validation, normalised and encoded for the store.
#[derive(Debug)]
pub struct PreparedEvent {
    /// Position in the caller's batch.
    pub index: u32,
    pub message_id: String,
    /// 128-bit hash of (source, messageId); `None` when the id was generated here.
    pub dedupe_key: Option<[u8; 16]>,
    /// Hash of the payload without its arrival-dependent fields, to tell retries from conflicts.
    pub fingerprint: u64,
    /// The stored form: an encoded `Event` with message id, timestamps and merged objects set.
    pub encoded: Vec<u8>,
    /// Storage keys of the event's identifiers (see `Identifier::key`).
    pub identifier_keys: Vec<IdentKey>,
    /// The identifiers that may link it to a profile (see `profiles::profile_identifiers`).
    pub profile_identifiers: Vec<Identifier>,
    /// When it happened (after clock-skew correction), Unix ms.
    pub timestamp_ms: i64,
    /// An identify with traits: it sets profile traits.
    pub sets_traits: bool,
    /// A group call's account (`groupId`): the event links its user to that account.
    pub account: Option<String>,
    /// Its name for Engage's `event('…')`.
    pub engage_name: Option<String>,
    /// The traits an identify call sets, for Engage's trait index.
    pub engage_traits: Option<serde_json::Map<String, serde_json::Value>>,
    /// A named event's revenue (`engage::revenue_of`).
    pub revenue: Option<f64>,
    /// When it arrived, Unix ms (the log's clock, `engage::clock`).
    pub received_ms: i64,
}

/// Per-batch facts shared by its events.
pub struct BatchContext {
    pub source_id: u32,
    /// The workspace's custom identifier types.
    pub custom: std::sync::Arc<identifiers::CustomIdentifiers>,
    pub received_ms: i64,
    pub max_event_bytes: usize,
    /// The source's tracking plan and transformations, if it has any.
    pub policy: Option<std::sync::Arc<crate::governance::enforce::Policy>>,
    /// The violations its events were found with, for the writer to count.
    pub violations: parking_lot::Mutex<crate::governance::store::Tally>,
    /// The suppression list, if any identifier is suppressed.
    pub suppressed: Option<std::sync::Arc<crate::governance::regulations::Suppressed>>,
}

/// The field a rejection names when its event carries a suppressed identifier.
pub const SUPPRESSED: &str = "suppressed";

/// Validates and normalises every event of a batch. Invalid events become rejections; the
/// others are returned in batch order.
pub fn prepare_batch(batch: Batch, ctx: &BatchContext) -> (Vec<PreparedEvent>, Vec<Rejection>) {
    let mut prepared = Vec::with_capacity(batch.events.len());
    let mut rejections = Vec::new();
    if batch.events.len() > MAX_BATCH_EVENTS {
        let reason = format!("has {} events; the limit is {MAX_BATCH_EVENTS}", batch.events.len());
        return (prepared, reject_all(&batch.events, "batch", &reason));
    }
    // A broken batch-level object is every event's problem: reject them all, naming the field.
    let defaults = match (
        json::parse_object(&batch.context),
        json::parse_object(&batch.integrations),
    ) {
        (Ok(context), Ok(integrations)) => Some((context, integrations)),
        (Err(reason), _) => {
            rejections.extend(reject_all(&batch.events, "batch.context", &reason));
            None
        }
        (_, Err(reason)) => {
            rejections.extend(reject_all(&batch.events, "batch.integrations", &reason));
            None
        }
    };
    let Some((batch_context, batch_integrations)) = defaults else {
        return (prepared, rejections);
    };
    // The events' own timestamps are checked one by one (`check_fields`); the batch's is theirs
    // too when they have none.
    if batch.sent_at.as_ref().is_some_and(|ts| !time::is_valid(ts)) {
        return (
            prepared,
            reject_all(&batch.events, "batch.sentAt", "is not a valid timestamp"),
        );
    }
    let batch_sent_at = batch.sent_at;
    for (index, event) in batch.events.into_iter().enumerate() {
        let index = index as u32;
        let defaults = Defaults {
            context: batch_context.as_ref(),
            integrations: batch_integrations.as_ref(),
            sent_at: batch_sent_at.as_ref(),
        };
        match prepare_event(index, event, &defaults, ctx) {
            Ok(event) => prepared.push(event),
            Err(rejection) => rejections.push(rejection),
        }
    }
    (prepared, rejections)
}

fn reject_all(events: &[Event], field: &'static str, reason: &str) -> Vec<Rejection> {
    let reason = format!("{field} {reason}");
    (0..events.len())
        .map(|i| Rejection {
            index: i as u32,
            message_id: events[i].message_id.clone(),
            field,
            reason: reason.clone(),
            line: 0,
            content: Refused::Event(Box::new(events[i].clone())),
        })
        .collect()
}

struct Defaults<'a> {
    context: Option<&'a Map<String, Value>>,
    integrations: Option<&'a Map<String, Value>>,
    sent_at: Option<&'a prost_types::Timestamp>,
}

/// The `traits` object of a context, when it has a non-empty one.
fn context_traits(context: &[u8]) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Context<'a> {
        #[serde(borrow, default)]
        traits: Option<&'a serde_json::value::RawValue>,
    }
    let context: Context<'_> = serde_json::from_slice(context).ok()?;
    let traits = context.traits?.get();
    let is_object = traits.starts_with('{') && !traits[1..].trim_start().starts_with('}');
    is_object.then(|| traits.as_bytes().to_vec())
}

/// Segment's rules for one event: its size, required fields, JSON objects and trait count.
fn check_event(event: &Event, ctx: &BatchContext) -> Result<(), (&'static str, String)> {
    let size = event.encoded_len();
    if size > ctx.max_event_bytes {
        let reason = format!("event is {size} bytes; the limit is {} bytes", ctx.max_event_bytes);
        return Err(("event", reason));
    }
    check_fields(event)?;
    for (field, bytes) in [
        ("properties", &event.properties),
        ("traits", &event.traits),
        ("context", &event.context),
        ("integrations", &event.integrations),
    ] {
        let keys = json::check_object(bytes).map_err(|reason| (field, format!("{field} {reason}")))?;
        // Segment (Engage) refuses identify calls with 300 traits or more.
        if field == "traits" && keys >= MAX_IDENTIFY_TRAITS && event.r#type == EventType::Identify as i32 {
            let reason = format!("identify has {keys} traits; the limit is {}", MAX_IDENTIFY_TRAITS - 1);
            return Err((field, reason));
        }
    }
    Ok(())
}

fn prepare_event(
    index: u32,
    mut event: Event,
    defaults: &Defaults<'_>,
    ctx: &BatchContext,
) -> Result<PreparedEvent, Rejection> {
    let checked = check_event(&event, ctx).and_then(|()| event_time_ms(&event, defaults, ctx));
    let timestamp_ms = match checked {
        Ok(timestamp_ms) => timestamp_ms,
        Err((field, reason)) => {
            if field == "event" {
                // Too large to keep whole: the rejected store keeps its envelope.
                for bulky in [
                    &mut event.properties,
                    &mut event.traits,
                    &mut event.context,
                    &mut event.integrations,
                ] {
                    bulky.clear();
                }
            }
            return Err(Rejection {
                index,
                message_id: event.message_id.clone(),
                field,
                reason,
                line: 0,
                content: Refused::Event(Box::new(event)),
            });
        }
    };
    // Batch-level defaults are rare: only then are the objects built and re-serialised.
    if let Some(batch_context) = defaults.context {
        event.context = merged(&event.context, batch_context);
    }
    if let Some(batch_integrations) = defaults.integrations {
        event.integrations = merged(&event.integrations, batch_integrations);
    }
    // RudderStack's SDKs send an identify's traits only in `context.traits`: they are its traits.
    if event.r#type == EventType::Identify as i32 && event.traits.is_empty() {
        if let Some(traits) = context_traits(&event.context) {
            event.traits = traits;
        }
    }

    let generated_id = event.message_id.is_empty();
    if generated_id {
        event.message_id = format!("tributary-{}", uuid::Uuid::new_v4());
    }

    let sent_at = event.sent_at.take().or_else(|| defaults.sent_at.cloned());
    let client_timestamp = event.timestamp.take();
    if event.original_timestamp.is_none() {
        event.original_timestamp = client_timestamp;
    }
    // Of what the client sent, before the source's policy changes it: a retry after a plan
    // change is still a retry.
    let fingerprint = fingerprint(&event);
    if let Some(policy) = &ctx.policy {
        govern(index, &mut event, policy, ctx)?;
    }
    let identifiers = identifiers::of_event(&event, &ctx.custom);
    if let Some(regulation) = ctx
        .suppressed
        .as_deref()
        .and_then(|set| crate::governance::regulations::suppressed_by(set, &identifiers))
    {
        // Nothing of the event is kept, not even in the rejected store: only that it came.
        return Err(Rejection {
            index,
            message_id: event.message_id,
            field: SUPPRESSED,
            reason: format!("suppressed by regulation {regulation}: this person's data is not collected"),
            line: 0,
            content: Refused::Nothing,
        });
    }
    event.timestamp = Some(time::from_ms(timestamp_ms));
    event.sent_at = sent_at;
    event.received_at = Some(time::from_ms(ctx.received_ms));

    let dedupe_key = (!generated_id).then(|| dedupe_key(ctx.source_id, &event.message_id));
    let sets_traits = crate::profiles::sets_traits(&event);
    let account = crate::profiles::account_of(&event).map(str::to_owned);
    let engage_name = crate::engage::event_name(&event).map(str::to_owned);
    let engage_traits = crate::engage::identify_traits(&event);
    let revenue = engage_name
        .as_ref()
        .and_then(|_| crate::engage::revenue_of(&event.properties));
    let encoded = event.encode_to_vec();
    Ok(PreparedEvent {
        index,
        message_id: event.message_id, // moved: the event itself is no longer needed
        dedupe_key,
        fingerprint,
        encoded,
        identifier_keys: identifiers.iter().map(|i| IdentKey::new(i.key())).collect(),
        profile_identifiers: crate::profiles::profile_identifiers(identifiers),
        timestamp_ms,
        sets_traits,
        account,
        engage_name,
        engage_traits,
        revenue,
        received_ms: ctx.received_ms,
    })
}

/// Applies the source's tracking plan and transformations: the event may change, or be refused.
fn govern(
    index: u32,
    event: &mut Event,
    policy: &crate::governance::enforce::Policy,
    ctx: &BatchContext,
) -> Result<(), Rejection> {
    use crate::governance::enforce::Verdict;
    // Violations are counted under the name the client sent (before any rename).
    let label = if event.r#type == EventType::Track as i32 {
        event.event.clone()
    } else {
        crate::event_json::type_name(event.r#type).to_owned()
    };
    match policy.apply(event) {
        Verdict::Keep { found } => {
            if !found.is_empty() {
                ctx.violations.lock().add(ctx.source_id, &label, found);
            }
            Ok(())
        }
        Verdict::Block { field, reason, found } => {
            ctx.violations.lock().add(ctx.source_id, &label, found);
            Err(Rejection {
                index,
                message_id: event.message_id.clone(),
                field,
                reason,
                line: 0,
                content: Refused::Event(Box::new(std::mem::take(event))),
            })
        }
    }
}

/// When the event happened, Unix ms (`time::event_timestamp_ms`: the batch's `sentAt` stands in
/// for the event's own). Its timestamps are valid (checked before), so the sums cannot overflow;
/// `Err` when the clock-skew correction lands outside the years 0001..=9999 that a stored
/// timestamp may hold (a `sentAt` thousands of years from the `originalTimestamp`).
fn event_time_ms(event: &Event, defaults: &Defaults<'_>, ctx: &BatchContext) -> Result<i64, (&'static str, String)> {
    let sent_ms = event.sent_at.as_ref().or(defaults.sent_at).map(time::to_ms);
    let original_ms = event.original_timestamp.as_ref().map(time::to_ms);
    let explicit_ms = event.timestamp.as_ref().map(time::to_ms);
    let timestamp_ms = time::event_timestamp_ms(ctx.received_ms, sent_ms, original_ms, explicit_ms);
    if time::is_valid(&time::from_ms(timestamp_ms)) {
        Ok(timestamp_ms)
    } else {
        let reason = "sentAt is so far from originalTimestamp (or timestamp) that the clock-skew corrected time \
                      is outside the years 0001 to 9999";
        Err(("sentAt", reason.into()))
    }
}

fn merged(own: &[u8], defaults: &Map<String, Value>) -> Vec<u8> {
    // Already checked to be an object or absent.
    let mut target = json::parse_object(own).ok().flatten().unwrap_or_default();
    json::merge_defaults(&mut target, defaults);
    serde_json::to_vec(&target).expect("a JSON map always serialises")
}

/// Hash of what the client said, not of when it was sent or received: retries of the same
/// event match, a different payload under the same id does not.
fn fingerprint(event: &Event) -> u64 {
    let mut hasher = Xxh3::new();
    hash_content(&mut hasher, event);
    let original = event.original_timestamp.as_ref().map_or(i64::MIN, time::to_ms);
    hasher.update(&original.to_le_bytes());
    hasher.digest()
}

/// A messageId derived from what the client said (not from when it sent it), for events that
/// come without one: the same event sent again, by a retry or a second import of a file, gets
/// the same id and is deduplicated. 128 bits, as dedupe keys are.
pub fn content_message_id(event: &Event) -> String {
    let mut hasher = Xxh3::new();
    hash_content(&mut hasher, event);
    for at in [&event.timestamp, &event.original_timestamp] {
        let ms = at.as_ref().map_or(i64::MIN, time::to_ms);
        hasher.update(&ms.to_le_bytes());
    }
    format!("content-{:032x}", hasher.digest128())
}

/// The client's own fields, each length-prefixed so that no two events hash the same bytes.
fn hash_content(hasher: &mut Xxh3, event: &Event) {
    hasher.update(&event.r#type.to_le_bytes());
    for text in [
        &event.message_id,
        &event.anonymous_id,
        &event.user_id,
        &event.event,
        &event.name,
        &event.group_id,
        &event.previous_id,
    ] {
        hasher.update(&(text.len() as u64).to_le_bytes());
        hasher.update(text.as_bytes());
    }
    for bytes in [&event.properties, &event.traits, &event.context, &event.integrations] {
        hasher.update(&(bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
}

/// The typed-field rules (Segment's): returns the offending field and why.
fn check_fields(event: &Event) -> Result<(), (&'static str, String)> {
    let kind = EventType::try_from(event.r#type).unwrap_or(EventType::Unspecified);
    if kind == EventType::Unspecified {
        return Err((
            "type",
            "type is required: identify, track, page, screen, group or alias".into(),
        ));
    }
    let chars = event.message_id.chars().count();
    if chars > MAX_MESSAGE_ID_CHARS {
        return Err((
            "messageId",
            format!("messageId is {chars} characters; the limit is {MAX_MESSAGE_ID_CHARS}"),
        ));
    }
    if event.user_id.is_empty() && event.anonymous_id.is_empty() {
        return Err(("userId", "userId or anonymousId is required".into()));
    }
    match kind {
        EventType::Track if event.event.is_empty() => {
            return Err(("event", "event is required for track calls".into()));
        }
        EventType::Group if event.group_id.is_empty() => {
            return Err(("groupId", "groupId is required for group calls".into()));
        }
        EventType::Alias if event.previous_id.is_empty() => {
            return Err(("previousId", "previousId is required for alias calls".into()));
        }
        _ => {}
    }
    let group_chars = event.group_id.chars().count();
    if group_chars > MAX_GROUP_ID_CHARS {
        return Err((
            "groupId",
            format!("groupId is {group_chars} characters; the limit is {MAX_GROUP_ID_CHARS}"),
        ));
    }
    for (field, ts) in [
        ("timestamp", &event.timestamp),
        ("sentAt", &event.sent_at),
        ("originalTimestamp", &event.original_timestamp),
    ] {
        if ts.as_ref().is_some_and(|ts| !time::is_valid(ts)) {
            return Err((field, format!("{field} is not a valid timestamp")));
        }
    }
    Ok(())
}

/// Fixed-size key of a (source, messageId) pair in the dedupe table.
/// The hash of the source id (big-endian) followed by the id's bytes, streamed: no buffer.
pub fn dedupe_key(source_id: u32, message_id: &str) -> [u8; 16] {
    let mut hasher = Xxh3::new();
    hasher.update(&source_id.to_be_bytes());
    hasher.update(message_id.as_bytes());
    hasher.digest128().to_be_bytes()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use xxhash_rust::xxh3::xxh3_128;

    /// The batch context of the engine's unit tests.
    pub(crate) fn ctx() -> BatchContext {
        BatchContext {
            custom: Default::default(),
            source_id: 1,
            received_ms: 1_700_000_000_000,
            max_event_bytes: 32 * 1024,
            policy: None,
            violations: Default::default(),
            suppressed: None,
        }
    }

    fn track(id: &str) -> Event {
        Event {
            r#type: EventType::Track as i32,
            message_id: id.into(),
            user_id: "u1".into(),
            event: "Order Completed".into(),
            ..Default::default()
        }
    }

    fn field_of(event: Event) -> &'static str {
        let (ok, rejected) = prepare_batch(
            Batch {
                events: vec![event],
                ..Default::default()
            },
            &ctx(),
        );
        assert!(ok.is_empty());
        rejected[0].field
    }

    #[test]
    fn validation_matrix_names_the_field() {
        assert_eq!(
            field_of(Event {
                r#type: 0,
                ..track("a")
            }),
            "type"
        );
        assert_eq!(
            field_of(Event {
                user_id: String::new(),
                ..track("a")
            }),
            "userId"
        );
        assert_eq!(
            field_of(Event {
                event: String::new(),
                ..track("a")
            }),
            "event"
        );
        assert_eq!(field_of(track(&"x".repeat(101))), "messageId");
        assert_eq!(
            field_of(Event {
                r#type: EventType::Group as i32,
                ..track("a")
            }),
            "groupId"
        );
        assert_eq!(
            field_of(Event {
                r#type: EventType::Alias as i32,
                ..track("a")
            }),
            "previousId"
        );
        assert_eq!(
            field_of(Event {
                properties: b"[]".to_vec(),
                ..track("a")
            }),
            "properties"
        );
        assert_eq!(
            field_of(Event {
                context: b"{".to_vec(),
                ..track("a")
            }),
            "context"
        );
        assert_eq!(
            field_of(Event {
                properties: vec![b' '; 40_000],
                ..track("a")
            }),
            "event"
        );
    }

    #[test]
    fn identify_with_300_traits_or_more_is_refused() {
        let traits = |n: usize| {
            let pairs: Vec<String> = (0..n).map(|i| format!("\"t{i}\":1")).collect();
            format!("{{{}}}", pairs.join(",")).into_bytes()
        };
        let identify = |n| Event {
            r#type: EventType::Identify as i32,
            traits: traits(n),
            ..track("a")
        };
        assert_eq!(field_of(identify(300)), "traits");
        let (ok, _) = prepare_batch(
            Batch {
                events: vec![identify(299)],
                ..Default::default()
            },
            &ctx(),
        );
        assert_eq!(ok.len(), 1);
        // Only identify is limited: a group may carry more account traits.
        let group = Event {
            r#type: EventType::Group as i32,
            group_id: "g".into(),
            traits: traits(400),
            ..track("a")
        };
        let (ok, _) = prepare_batch(
            Batch {
                events: vec![group],
                ..Default::default()
            },
            &ctx(),
        );
        assert_eq!(ok.len(), 1);
    }

    #[test]
    fn valid_events_of_a_mixed_batch_survive() {
        let batch = Batch {
            events: vec![
                track("a"),
                Event {
                    user_id: String::new(),
                    ..track("b")
                },
                track("c"),
            ],
            ..Default::default()
        };
        let (ok, rejected) = prepare_batch(batch, &ctx());
        assert_eq!(ok.iter().map(|e| e.index).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(rejected[0].index, 1);
    }

    #[test]
    fn oversized_batches_are_refused_whole() {
        let batch = Batch {
            events: (0..2_501).map(|i| track(&i.to_string())).collect(),
            ..Default::default()
        };
        let (ok, rejected) = prepare_batch(batch, &ctx());
        assert!(ok.is_empty());
        assert_eq!(rejected.len(), 2_501);
        assert_eq!(rejected[0].field, "batch");
    }

    #[test]
    fn batch_context_fills_in_and_fingerprint_ignores_sent_at() {
        let batch = |sent: i64| Batch {
            events: vec![Event {
                context: br#"{"ip":"1.1.1.1"}"#.to_vec(),
                ..track("a")
            }],
            context: br#"{"ip":"9.9.9.9","locale":"nl"}"#.to_vec(),
            sent_at: Some(time::from_ms(sent)),
            ..Default::default()
        };
        let (first, _) = prepare_batch(batch(1), &ctx());
        let (second, _) = prepare_batch(batch(2), &ctx());
        assert_eq!(first[0].fingerprint, second[0].fingerprint);
        let stored = Event::decode(first[0].encoded.as_slice()).unwrap();
        let context: Value = serde_json::from_slice(&stored.context).unwrap();
        assert_eq!(context["ip"], "1.1.1.1");
        assert_eq!(context["locale"], "nl");
    }

    #[test]
    fn dedupe_keys_are_the_hash_of_source_and_id_as_stored_before() {
        // Stored keys must not change: the one-shot hash of the concatenation, as written by
        // earlier versions.
        let mut concatenated = 7u32.to_be_bytes().to_vec();
        concatenated.extend_from_slice("msg-é".as_bytes());
        assert_eq!(dedupe_key(7, "msg-é"), xxh3_128(&concatenated).to_be_bytes());
    }

    #[test]
    fn missing_message_id_is_generated_and_not_deduplicated() {
        let (ok, _) = prepare_batch(
            Batch {
                events: vec![track("")],
                ..Default::default()
            },
            &ctx(),
        );
        assert!(ok[0].message_id.starts_with("tributary-"));
        assert!(ok[0].dedupe_key.is_none());
    }

    #[test]
    fn an_identify_with_traits_only_in_its_context_takes_them_as_rudderstack_sends_them() {
        let identify = |traits: &str, context: &str| Event {
            r#type: EventType::Identify as i32,
            message_id: "i1".into(),
            user_id: "u1".into(),
            traits: traits.as_bytes().to_vec(),
            context: context.as_bytes().to_vec(),
            ..Default::default()
        };
        let prepared = |event: Event| {
            let (ok, rejected) = prepare_batch(
                Batch {
                    events: vec![event],
                    ..Default::default()
                },
                &ctx(),
            );
            assert!(rejected.is_empty(), "{rejected:?}");
            let stored: Event = prost::Message::decode(ok[0].encoded.as_slice()).unwrap();
            (String::from_utf8(stored.traits).unwrap(), ok[0].sets_traits)
        };
        let rudder = r#"{"traits":{"plan":"pro"},"library":{"name":"rudder"}}"#;
        assert_eq!(prepared(identify("", rudder)), (r#"{"plan":"pro"}"#.into(), true));
        // Its own traits win; an empty context object gives none.
        assert_eq!(prepared(identify(r#"{"plan":"free"}"#, rudder)).0, r#"{"plan":"free"}"#);
        assert_eq!(prepared(identify("", r#"{"traits":{ }}"#)), (String::new(), false));
    }
    /// Found by the request properties (ingest/request_properties.rs): a batch's own `sentAt`
    /// was never checked, and the clock-skew correction of valid but far-apart times could land
    /// outside the years a timestamp holds (or overflow, for a `sentAt` near `i64::MAX` seconds).
    #[test]
    fn a_batch_sent_at_out_of_range_or_a_correction_past_year_9999_is_refused_not_stored() {
        let at = |seconds: i64| Some(prost_types::Timestamp { seconds, nanos: 0 });
        for seconds in [253_402_300_800, i64::MAX, -62_135_596_801, i64::MIN] {
            let batch = Batch {
                events: vec![track("a"), track("b")],
                sent_at: at(seconds),
                ..Default::default()
            };
            let (ok, rejected) = prepare_batch(batch, &ctx());
            assert!(ok.is_empty());
            assert_eq!(
                rejected.iter().map(|r| (r.index, r.field)).collect::<Vec<_>>(),
                [(0, "batch.sentAt"), (1, "batch.sentAt")]
            );
            assert_eq!(rejected[0].reason, "batch.sentAt is not a valid timestamp");
        }
        // Each time valid, 8,000 years apart: the corrected time would be about year -6000.
        let far_apart = |sent: i64, original: i64| {
            let event = Event {
                sent_at: at(sent),
                original_timestamp: at(original),
                ..track("c")
            };
            prepare_batch(
                Batch {
                    events: vec![event],
                    ..Default::default()
                },
                &ctx(),
            )
        };
        let (ok, rejected) = far_apart(253_402_300_799, 0);
        assert!(ok.is_empty());
        assert_eq!(rejected[0].field, "sentAt");
        assert!(rejected[0].reason.contains("0001 to 9999"), "{}", rejected[0].reason);
        // The same skew correction within the range is kept.
        let (ok, rejected) = far_apart(1_700_000_100, 1_700_000_000);
        assert!(rejected.is_empty(), "{rejected:?}");
        assert_eq!(ok[0].timestamp_ms, ctx().received_ms - 100_000);
    }
}
