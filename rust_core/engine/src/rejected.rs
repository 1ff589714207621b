//! The rejected store: events refused by a rule after their request was accepted (Segment
//! answers 200 and drops them silently; Tributary keeps them with the reason). The writer
//! thread writes them in the same transaction as the accepted events of their group, so a
//! rejection is as durable as an acknowledgement. The latest `max_rejected_kept` records are
//! kept; the counts per (source, field, reason) are kept for ever.

use heed::types::Bytes;
use heed::{Database, PutFlags, RwTxn};
use prost::Message;

use crate::error::{EngineError, Refused, Rejection, Result};
use crate::ingest::Engine;
use crate::proto::{self, ListRejectedRequest, ListRejectedResponse, RejectedEvent, RejectionCount};
use crate::time;

/// Default and most records in one `ListRejected` page.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

use crate::store::BeU64;

pub type RejectedDb = Database<BeU64, Bytes>;
pub type CountsDb = Database<Bytes, BeU64>;

/// A rejection as the store keeps it (its id is given by the writer).
pub fn record(source_id: u32, received_ms: i64, rejection: &mut Rejection) -> RejectedEvent {
    let (event, raw) = match std::mem::take(&mut rejection.content) {
        Refused::Nothing => (None, Vec::new()),
        Refused::Event(event) => (Some(*event), Vec::new()),
        Refused::Raw(raw) => (None, raw),
    };
    RejectedEvent {
        id: 0,
        source_id,
        received_at: Some(time::from_ms(received_ms)),
        message_id: rejection.message_id.clone(),
        field: rejection.field.to_owned(),
        reason: rejection.reason.clone(),
        event,
        raw,
    }
}

/// The reason a rejection is counted under: its text with every run of digits read as "N".
pub fn reason_class(reason: &str) -> String {
    let mut class = String::with_capacity(reason.len());
    let mut in_number = false;
    for c in reason.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                class.push('N');
            }
            in_number = true;
        } else {
            class.push(c);
            in_number = false;
        }
    }
    class
}

/// Most bytes of a reason class in a counter key. LMDB refuses keys over 511 bytes, which failed
/// the whole group commit (every caller's batch in it), and a reason may quote the client's text
/// (`"…" is not an ISO-8601 date-time`); a longer class is cut at a character boundary and ends
/// in `…`.
const MAX_REASON_KEY_BYTES: usize = 400;

/// Counter key: source (big-endian), field, NUL, reason class (at most `MAX_REASON_KEY_BYTES`).
fn count_key(source_id: u32, field: &str, reason: &str) -> Vec<u8> {
    let mut key = source_id.to_be_bytes().to_vec();
    key.extend_from_slice(field.as_bytes());
    key.push(0);
    let class = reason_class(reason);
    if class.len() <= MAX_REASON_KEY_BYTES {
        key.extend_from_slice(class.as_bytes());
    } else {
        let mut end = MAX_REASON_KEY_BYTES - '…'.len_utf8();
        while !class.is_char_boundary(end) {
            end -= 1;
        }
        key.extend_from_slice(&class.as_bytes()[..end]);
        key.extend_from_slice("…".as_bytes());
    }
    key
}

fn parse_count_key(key: &[u8]) -> Option<(u32, String, String)> {
    let (source, rest) = key.split_at_checked(4)?;
    let nul = rest.iter().position(|b| *b == 0)?;
    let field = std::str::from_utf8(&rest[..nul]).ok()?;
    let reason = std::str::from_utf8(&rest[nul + 1..]).ok()?;
    Some((u32::from_be_bytes(source.try_into().ok()?), field.into(), reason.into()))
}

/// Appends `records` (giving each the next id), counts them, and drops the oldest records past
/// `keep`. Returns the last id given, if any.
pub(crate) fn write(
    txn: &mut RwTxn<'_>,
    records: &mut [&mut RejectedEvent],
    rejected: RejectedDb,
    counts: CountsDb,
    keep: usize,
) -> Result<Option<u64>> {
    if records.is_empty() {
        return Ok(None);
    }
    let mut next = rejected.last(txn)?.map_or(1, |(id, _)| id + 1);
    for record in records.iter_mut() {
        record.id = next;
        next += 1;
        rejected.put_with_flags(txn, PutFlags::APPEND, &record.id, &record.encode_to_vec())?;
        let key = count_key(record.source_id, &record.field, &record.reason);
        let count = counts.get(txn, &key)?.unwrap_or(0);
        counts.put(txn, &key, &(count + 1))?;
    }
    let excess = (rejected.len(txn)? as usize).saturating_sub(keep);
    if excess > 0 {
        let oldest: Vec<u64> = rejected
            .iter(txn)?
            .take(excess)
            .map(|entry| entry.map(|(id, _)| id))
            .collect::<std::result::Result<_, _>>()?;
        for id in oldest {
            rejected.delete(txn, &id)?;
        }
    }
    Ok(Some(next - 1))
}

impl Engine {
    /// Rejected records newest first: of one source (0: all), older than `before_id` (0: the
    /// newest), at most `limit` (0: the default page).
    pub fn rejected(&self, source_id: u32, before_id: u64, limit: usize) -> Result<(Vec<RejectedEvent>, u64)> {
        let limit = match limit {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let store = &self.shared.store;
        let txn = store.log.read()?;
        let upper = if before_id == 0 { u64::MAX } else { before_id };
        let mut events = Vec::new();
        for entry in store.log_dbs.rejected.rev_range(&txn.txn, &(..upper))? {
            let (id, value) = entry?;
            let record: RejectedEvent = proto::decode_record(value, format_args!("rejected record {id}"))?;
            if source_id != 0 && record.source_id != source_id {
                continue;
            }
            if events.len() == limit {
                let next = events.last().map_or(0, |last: &RejectedEvent| last.id);
                return Ok((events, next));
            }
            events.push(record);
        }
        Ok((events, 0))
    }

    /// How many events were refused, per source (0: all) and reason, most first.
    pub fn rejection_counts(&self, source_id: u32) -> Result<Vec<RejectionCount>> {
        let store = &self.shared.store;
        let txn = store.log.read()?;
        let mut counts = Vec::new();
        for entry in store.log_dbs.rejected_counts.iter(&txn.txn)? {
            let (key, count) = entry?;
            let (source, field, reason) =
                parse_count_key(key).ok_or_else(|| EngineError::Storage("corrupt rejection counter key".into()))?;
            if source_id == 0 || source == source_id {
                counts.push(RejectionCount {
                    source_id: source,
                    field,
                    reason,
                    count,
                });
            }
        }
        counts.sort_by(|a, b| b.count.cmp(&a.count).then(a.source_id.cmp(&b.source_id)));
        Ok(counts)
    }

    /// The id of the newest rejected record (0: none yet).
    pub fn last_rejected_id(&self) -> u64 {
        self.shared
            .stats
            .last_rejected_id
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// `AdminService.ListRejected` on encoded bytes.
    pub fn list_rejected(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: ListRejectedRequest = proto::decode_request(request)?;
        let (events, next_before_id) = self.rejected(request.source_id, request.before_id, request.limit as usize)?;
        let counts = self.rejection_counts(request.source_id)?;
        Ok(ListRejectedResponse {
            events,
            counts,
            next_before_id,
        }
        .encode_to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::{count_key, parse_count_key, reason_class, MAX_REASON_KEY_BYTES};

    #[test]
    fn reasons_count_together_whatever_their_numbers() {
        assert_eq!(
            reason_class("event is 40000 bytes; the limit is 32768 bytes"),
            "event is N bytes; the limit is N bytes"
        );
        assert_eq!(
            reason_class("userId or anonymousId is required"),
            "userId or anonymousId is required"
        );
        assert_eq!(reason_class("at line 1 column 12"), "at line N column N");
    }

    /// Found by fuzzing (fuzz/regressions/ingest_proto/): an identify whose sentAt was 500
    /// bytes of text was refused with a reason quoting it, and that reason's counter key was
    /// over LMDB's 511 bytes: MDB_BAD_VALSIZE failed the group commit of every batch with it.
    #[test]
    fn a_reason_quoting_long_client_text_makes_a_bounded_counter_key() {
        for text in ["y".repeat(503), "é".repeat(400), "x".repeat(399)] {
            let reason = format!("sentAt {text:?} is not an ISO-8601 date-time");
            let key = count_key(7, "sentAt", &reason);
            assert!(
                key.len() <= 4 + "sentAt".len() + 1 + MAX_REASON_KEY_BYTES,
                "{}",
                key.len()
            );
            let (source, field, class) = parse_count_key(&key).unwrap();
            assert_eq!((source, field.as_str()), (7, "sentAt"));
            assert!(reason_class(&reason).starts_with(class.trim_end_matches('…')));
        }
        let short = count_key(1, "userId", "userId or anonymousId is required");
        assert_eq!(parse_count_key(&short).unwrap().2, "userId or anonymousId is required");
    }
}
