//! Segment-Spec JSON → events: the one entry point for every JSON surface (the gRPC `JsonBatch`
//! that the client library and `cdp import` send, and the HTTP Tracking API).
//!
//! It accepts one message, a batch object (`{"batch": [...], "context": …, "integrations": …,
//! "sentAt": …}`), a JSON array of messages, or JSON lines, and turns each message into the
//! `Event` the protobuf path would carry for the same call. Validation, limits, clock-skew
//! correction and the rejection messages are then `event::prepare_batch`'s, shared by both paths.
//!
//! Invariants:
//! - a message that cannot be read (a broken line, not an object, a field of the wrong JSON type)
//!   is rejected alone, with its index and the line it starts on; only a body that cannot be
//!   split into messages (a broken array or batch object) fails the whole request;
//! - no `serde_json::Value` is built for a message: its fields are borrowed slices of the input
//!   (`RawValue`), and the free-form objects are copied once, as they came;
//! - messages are numbered 0, 1, … in input order, and every event and rejection keeps its
//!   message's number, whatever was rejected before it.
//!
//! The parser is serde_json: it borrows raw sub-documents without building them (`RawValue`),
//! which is what this decoder needs; see Cargo.toml for why not simd-json or sonic-rs.

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::{EngineError, Refused, Rejection, Result};
use crate::event::PreparedEvent;
use crate::proto::{Batch, Event, EventType};
use crate::time;

/// How a JSON body is read.
#[derive(Clone, Debug, Default)]
pub struct JsonOptions {
    /// A message without a messageId gets one derived from its content (`content-…`, see
    /// `event::content_message_id`), so a resend or a second import of the same data deduplicates.
    pub content_message_ids: bool,
    /// History: `sentAt` is ignored (no clock-skew correction against today's arrival).
    pub ignore_sent_at: bool,
    /// Line number of the data's first line (0 is read as 1).
    pub first_line: u64,
    /// The call of a typed route (HTTP `/v1/track`): it wins over the message's own `type`.
    pub route_type: Option<EventType>,
}

/// The messages of a body, as a `Batch` for `prepare_batch`, with what is needed to give every
/// event and rejection its message number and line.
pub struct DecodedJson<'a> {
    pub batch: Batch,
    /// Message number of each event of `batch`.
    numbers: Vec<u32>,
    /// Byte offset in `data` at which each message starts, by message number.
    offsets: Vec<usize>,
    /// Messages that could not be read.
    unreadable: Vec<Rejection>,
    data: &'a [u8],
    first_line: u64,
}

/// The fields of a message (and of a batch object) that Tributary reads; others are ignored,
/// as are `receivedAt` (the server's to set) and `writeKey` (the transport's).
#[derive(Deserialize, Default)]
struct Message<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<&'a RawValue>,
    #[serde(borrow, rename = "messageId")]
    message_id: Option<&'a RawValue>,
    #[serde(borrow, rename = "anonymousId")]
    anonymous_id: Option<&'a RawValue>,
    #[serde(borrow, rename = "userId")]
    user_id: Option<&'a RawValue>,
    #[serde(borrow, rename = "groupId")]
    group_id: Option<&'a RawValue>,
    #[serde(borrow, rename = "previousId")]
    previous_id: Option<&'a RawValue>,
    #[serde(borrow)]
    event: Option<&'a RawValue>,
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    category: Option<&'a RawValue>,
    #[serde(borrow)]
    timestamp: Option<&'a RawValue>,
    #[serde(borrow, rename = "sentAt")]
    sent_at: Option<&'a RawValue>,
    #[serde(borrow, rename = "originalTimestamp")]
    original_timestamp: Option<&'a RawValue>,
    #[serde(borrow)]
    properties: Option<&'a RawValue>,
    #[serde(borrow)]
    traits: Option<&'a RawValue>,
    #[serde(borrow)]
    context: Option<&'a RawValue>,
    #[serde(borrow)]
    integrations: Option<&'a RawValue>,
    /// Only in a batch object.
    #[serde(borrow)]
    batch: Option<&'a RawValue>,
}

const BOM: &[u8] = b"\xef\xbb\xbf";

/// Splits a body into messages and reads each. `Err` only when the body as a whole is unusable.
pub fn decode<'a>(data: &'a [u8], options: &JsonOptions, max_event_bytes: usize) -> Result<DecodedJson<'a>> {
    let data = data.strip_prefix(BOM).unwrap_or(data);
    let mut decoded = DecodedJson {
        batch: Batch::default(),
        numbers: Vec::new(),
        offsets: Vec::new(),
        unreadable: Vec::new(),
        data,
        first_line: options.first_line.max(1),
    };
    let reader = Reader {
        options,
        max_event_bytes,
    };
    match data.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Err(invalid_body("is empty")),
        Some(b'[') => {
            let messages: Vec<&RawValue> = serde_json::from_slice(data).map_err(|e| invalid_json(&e))?;
            for message in messages {
                decoded.push(&reader, message.get());
            }
        }
        Some(_) => match serde_json::from_slice::<Message<'_>>(data) {
            Ok(message) => match message.batch {
                Some(batch) => decoded.envelope(&reader, &message, batch)?,
                None => decoded.push_read(&reader, whole_text(data)?, Ok(message)),
            },
            // Several lines that are not one document: JSON lines, each read on its own.
            Err(_) if several_lines(data) => decoded.lines(&reader),
            Err(err) => return Err(invalid_json(&err)),
        },
    }
    Ok(decoded)
}

impl<'a> DecodedJson<'a> {
    /// The number of messages in the body.
    pub fn messages(&self) -> usize {
        self.offsets.len()
    }

    /// Gives prepared events and rejections (numbered by their position in `batch`) their
    /// message numbers and lines, and adds the messages that could not be read. Rejections come
    /// out in message order.
    pub fn number(&self, events: &mut [PreparedEvent], rejections: &mut Vec<Rejection>) {
        for event in events.iter_mut() {
            event.index = self.numbers[event.index as usize];
        }
        for rejection in rejections.iter_mut() {
            rejection.index = self.numbers[rejection.index as usize];
        }
        rejections.extend(self.unreadable.iter().cloned());
        rejections.sort_by_key(|r| r.index);
        // One pass over the data for all lines: rejections and offsets both increase.
        let (mut line, mut counted_to) = (self.first_line, 0);
        for rejection in rejections.iter_mut() {
            let offset = self.offsets[rejection.index as usize];
            line += self.data[counted_to..offset].iter().filter(|b| **b == b'\n').count() as u64;
            counted_to = offset;
            rejection.line = line;
        }
    }

    /// A batch object: its messages, with its context, integrations and sentAt as the batch's.
    fn envelope(&mut self, reader: &Reader<'_>, envelope: &Message<'_>, batch: &'a RawValue) -> Result<()> {
        let messages: Vec<&'a RawValue> = serde_json::from_str(batch.get()).map_err(|_| {
            invalid_body(&format!(
                "has a batch that is not an array of messages: {:.40}",
                batch.get()
            ))
        })?;
        let object = |field: &'static str, raw| object_field(field, raw).map_err(|(_, reason)| invalid_body(&reason));
        self.batch.context = object("context", envelope.context)?;
        self.batch.integrations = object("integrations", envelope.integrations)?;
        if !reader.options.ignore_sent_at {
            self.batch.sent_at = time_field("sentAt", envelope.sent_at).map_err(|(_, reason)| invalid_body(&reason))?;
        }
        for message in messages {
            self.push(reader, message.get());
        }
        Ok(())
    }

    /// JSON lines: every line that is not blank is one message.
    fn lines(&mut self, reader: &Reader<'_>) {
        let data = self.data;
        let mut start = 0;
        for line in data.split(|b| *b == b'\n') {
            let offset = start;
            start += line.len() + 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match std::str::from_utf8(line) {
                Ok(text) => self.push(reader, text),
                Err(err) => {
                    let number = self.begin(offset);
                    let reason = format!("is not UTF-8: invalid byte at column {}", err.valid_up_to() + 1);
                    self.unreadable.push(unreadable(number, String::new(), reason));
                }
            }
        }
    }

    /// Reads one message given as JSON text inside `data`.
    fn push(&mut self, reader: &Reader<'_>, text: &'a str) {
        self.push_read(reader, text, serde_json::from_str::<Message<'_>>(text));
    }

    fn push_read(&mut self, reader: &Reader<'_>, text: &str, message: serde_json::Result<Message<'_>>) {
        let number = self.begin(text.as_ptr() as usize - self.data.as_ptr() as usize);
        let message = match message {
            Ok(message) => message,
            Err(err) => {
                let reason = match text.trim_start().as_bytes().first() {
                    Some(b'{') | None => format!("is not valid JSON: {err}"),
                    Some(_) => match serde_json::from_str::<&RawValue>(text) {
                        Ok(value) => format!("must be a JSON object, not {}", json_kind(value.get())),
                        Err(err) => format!("is not valid JSON: {err}"),
                    },
                };
                let mut rejection = unreadable(number, String::new(), reason);
                rejection.content = raw_of(text);
                self.unreadable.push(rejection);
                return;
            }
        };
        if text.len() > reader.max_event_bytes {
            let message_id = string_field("messageId", message.message_id).unwrap_or_default();
            let reason = format!(
                "event is {} bytes; the limit is {} bytes",
                text.len(),
                reader.max_event_bytes
            );
            self.unreadable.push(Rejection {
                index: number,
                message_id,
                field: "event",
                reason,
                line: 0,
                content: raw_of(text),
            });
            return;
        }
        match reader.event(&message) {
            Ok(event) => {
                self.numbers.push(number);
                self.batch.events.push(event);
            }
            Err((field, reason)) => {
                let message_id = string_field("messageId", message.message_id).unwrap_or_default();
                self.unreadable.push(Rejection {
                    index: number,
                    message_id,
                    field,
                    reason,
                    line: 0,
                    content: raw_of(text),
                });
            }
        }
    }

    /// Numbers the next message, which starts at `offset`.
    fn begin(&mut self, offset: usize) -> u32 {
        self.offsets.push(offset);
        (self.offsets.len() - 1) as u32
    }
}

type FieldError = (&'static str, String);

struct Reader<'o> {
    options: &'o JsonOptions,
    max_event_bytes: usize,
}

impl Reader<'_> {
    /// The `Event` of one message; the error names the first field of the wrong JSON type.
    fn event(&self, message: &Message<'_>) -> std::result::Result<Event, FieldError> {
        let kind = match self.options.route_type {
            Some(kind) => kind,
            None => event_type(message.kind)?,
        };
        let mut event = Event {
            r#type: kind as i32,
            message_id: identifier_field("messageId", message.message_id)?,
            anonymous_id: identifier_field("anonymousId", message.anonymous_id)?,
            user_id: identifier_field("userId", message.user_id)?,
            group_id: identifier_field("groupId", message.group_id)?,
            previous_id: identifier_field("previousId", message.previous_id)?,
            event: string_field("event", message.event)?,
            name: string_field("name", message.name)?,
            timestamp: time_field("timestamp", message.timestamp)?,
            original_timestamp: time_field("originalTimestamp", message.original_timestamp)?,
            properties: object_field("properties", message.properties)?,
            traits: object_field("traits", message.traits)?,
            context: object_field("context", message.context)?,
            integrations: object_field("integrations", message.integrations)?,
            ..Event::default()
        };
        if !self.options.ignore_sent_at {
            event.sent_at = time_field("sentAt", message.sent_at)?;
        }
        // Page and screen calls carry `category` at the top level; the Spec keeps it as a
        // property. The top-level value wins: it is the more explicit of the two.
        let category = string_field("category", message.category)?;
        if !category.is_empty() && matches!(kind, EventType::Page | EventType::Screen) {
            let mut properties = crate::json::parse_object(&event.properties)
                .map_err(|reason| ("properties", format!("properties {reason}")))?
                .unwrap_or_default();
            properties.insert("category".into(), category.into());
            event.properties = serde_json::to_vec(&properties).expect("a JSON map always serialises");
        }
        if event.message_id.is_empty() && self.options.content_message_ids {
            event.message_id = crate::event::content_message_id(&event);
        }
        Ok(event)
    }
}

const TYPES: [(&str, EventType); 6] = [
    ("identify", EventType::Identify),
    ("track", EventType::Track),
    ("page", EventType::Page),
    ("screen", EventType::Screen),
    ("group", EventType::Group),
    ("alias", EventType::Alias),
];

/// The call type; absent stays unspecified, for `prepare_batch` to refuse as every path does.
fn event_type(raw: Option<&RawValue>) -> std::result::Result<EventType, FieldError> {
    let name = string_field("type", raw)?;
    if name.is_empty() {
        return Ok(EventType::Unspecified);
    }
    TYPES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(&name))
        .map(|(_, kind)| *kind)
        .ok_or_else(|| {
            let reason = format!("type {name:?} is not a Segment call: identify, track, page, screen, group or alias");
            ("type", reason)
        })
}

/// A string field; `null` or absent is empty.
fn string_field(field: &'static str, raw: Option<&RawValue>) -> std::result::Result<String, FieldError> {
    match raw {
        None => Ok(String::new()),
        Some(raw) if raw.get().starts_with('"') => {
            serde_json::from_str(raw.get()).map_err(|e| (field, format!("{field} is not a valid string: {e}")))
        }
        Some(raw) => Err((field, format!("{field} must be a string, not {}", json_kind(raw.get())))),
    }
}

/// An identifier: a string, or an integer as SDKs of typed languages send them (`"userId": 42`).
fn identifier_field(field: &'static str, raw: Option<&RawValue>) -> std::result::Result<String, FieldError> {
    if let Some(raw) = raw {
        let text = raw.get();
        if text.bytes().all(|b| b.is_ascii_digit() || b == b'-') && text.parse::<i128>().is_ok() {
            return Ok(text.to_owned());
        }
        if !text.starts_with('"') {
            let reason = format!("{field} must be a string or an integer, not {}", json_kind(text));
            return Err((field, reason));
        }
    }
    string_field(field, raw)
}

fn time_field(
    field: &'static str,
    raw: Option<&RawValue>,
) -> std::result::Result<Option<prost_types::Timestamp>, FieldError> {
    let text = string_field(field, raw)?;
    if text.is_empty() {
        return Ok(None);
    }
    time::parse_iso8601(&text)
        .map(Some)
        .map_err(|reason| (field, format!("{field} {reason}")))
}

/// A free-form object, kept as the JSON text it came as; `null` or absent is empty.
fn object_field(field: &'static str, raw: Option<&RawValue>) -> std::result::Result<Vec<u8>, FieldError> {
    match raw {
        None => Ok(Vec::new()),
        Some(raw) if raw.get().starts_with('{') => Ok(raw.get().as_bytes().to_vec()),
        Some(raw) => Err((
            field,
            format!("{field} must be a JSON object, not {}", json_kind(raw.get())),
        )),
    }
}

/// What kind of JSON value a (valid) JSON text is, for messages.
fn json_kind(text: &str) -> &'static str {
    match text.trim_start().as_bytes().first() {
        Some(b'{') => "an object",
        Some(b'[') => "an array",
        Some(b'"') => "a string",
        Some(b't' | b'f') => "a boolean",
        Some(b'n') => "null",
        _ => "a number",
    }
}

fn unreadable(index: u32, message_id: String, reason: String) -> Rejection {
    Rejection {
        index,
        message_id,
        field: "message",
        reason: format!("the message {reason}"),
        line: 0,
        content: Refused::Nothing,
    }
}

/// Most bytes of a refused message's text the rejected store keeps.
const MAX_RAW_KEPT: usize = 16 * 1024;

/// A refused message's text, cut at a character boundary past `MAX_RAW_KEPT`.
fn raw_of(text: &str) -> Refused {
    let mut end = text.len().min(MAX_RAW_KEPT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Refused::Raw(text.as_bytes()[..end].to_vec())
}

fn invalid_json(err: &serde_json::Error) -> EngineError {
    invalid_body(&format!("is not valid JSON: {err}"))
}

fn invalid_body(reason: &str) -> EngineError {
    EngineError::InvalidRequest(format!("the JSON body {reason}"))
}

/// The whole body as text. serde_json skips the strings of fields it ignores without checking
/// that they are UTF-8, so accepting the body as a message does not prove it is.
fn whole_text(data: &[u8]) -> Result<&str> {
    std::str::from_utf8(data)
        .map_err(|e| invalid_body(&format!("is not UTF-8: invalid byte at offset {}", e.valid_up_to())))
}

/// More than one line with content.
fn several_lines(data: &[u8]) -> bool {
    data.split(|b| *b == b'\n')
        .filter(|line| !line.iter().all(u8::is_ascii_whitespace))
        .nth(1)
        .is_some()
}

#[cfg(test)]
mod tests;
