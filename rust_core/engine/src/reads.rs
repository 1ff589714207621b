//! Reads: events by identifier or profile (newest or oldest first, cursor paging, filters) and the committed log
//! after a sequence (the live tail). Short read transactions; never the write lock.

use std::time::Duration;

use prost::Message;

use crate::error::{EngineError, Result};
use crate::identifiers::Identifier;
use crate::index::PageQuery;
use crate::ingest::Engine;
use crate::proto::{self, Event, EventType, ListEventsRequest, ListEventsResponse, TailResponse};
use crate::time;

/// Page size bounds of `ListEvents`.
pub const DEFAULT_PAGE: usize = 20;
pub const MAX_PAGE: usize = 1000;
/// Encoded events per page at most (gRPC messages are capped at 4 MiB).
pub const MAX_PAGE_BYTES: usize = 3 << 20;

/// Which committed events a tail wants.
#[derive(Default, Clone)]
pub struct TailFilter {
    pub types: Vec<i32>,
    pub event_names: Vec<String>,
}

impl TailFilter {
    fn matches(&self, event: &Event) -> bool {
        (self.types.is_empty() || self.types.contains(&event.r#type))
            && (self.event_names.is_empty()
                || (event.r#type == EventType::Track as i32 && self.event_names.contains(&event.event)))
    }
}

/// Which events of a profile a `ListEvents` call wants.
struct EventFilter {
    include: Vec<String>,
    exclude: Vec<String>,
    start_ms: Option<i64>,
    end_ms: Option<i64>,
}

impl EventFilter {
    fn matches(&self, event: &Event) -> bool {
        let name = if event.r#type == EventType::Track as i32 {
            event.event.as_str()
        } else {
            event.name.as_str()
        };
        let at = event.timestamp.as_ref().map_or(0, time::to_ms);
        (self.include.is_empty() || self.include.iter().any(|n| n == name))
            && !self.exclude.iter().any(|n| n == name)
            && self.start_ms.is_none_or(|start| at >= start)
            && self.end_ms.is_none_or(|end| at < end)
    }
}

/// Splits a stored value into its source id and encoded event.
fn split_stored(value: &[u8]) -> Result<(u32, &[u8])> {
    if value.len() < 4 {
        return Err(EngineError::Storage("corrupt event record".into()));
    }
    let (source, event) = value.split_at(4);
    Ok((u32::from_be_bytes(source.try_into().unwrap_or_default()), event))
}

impl Engine {
    /// `ListEvents` on encoded bytes: one page of the events of an identifier, or of every
    /// identifier of a profile, optionally filtered by name and time. No age limit.
    pub fn list_events(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: ListEventsRequest = proto::decode_request(request)?;
        let text = request.identifier.trim();
        let keys: Vec<Vec<u8>> = if request.profile || text.starts_with("tp_") {
            let view = self.find_profile(text)?;
            view.identifiers
                .iter()
                .map(|(identifier, ..)| identifier.key())
                .collect()
        } else {
            let identifier = Identifier::parse(text).ok_or_else(|| {
                EngineError::InvalidRequest(format!("identifier must be type:value, got {:?}", request.identifier))
            })?;
            vec![identifier.key()]
        };
        let limit = match request.limit as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let after = match request.cursor.as_str() {
            "" => None,
            text => Some(
                text.parse::<u64>()
                    .map_err(|_| EngineError::InvalidRequest("cursor is not valid".into()))?,
            ),
        };
        let filter = EventFilter {
            include: request.include_events,
            exclude: request.exclude_events,
            start_ms: request.start.as_ref().map(time::to_ms),
            end_ms: request.end.as_ref().map(time::to_ms),
        };
        if let (Some(start), Some(end)) = (filter.start_ms, filter.end_ms) {
            if start >= end {
                return Err(EngineError::InvalidRequest("start must be before end".into()));
            }
        }
        let (events, next_cursor) = self
            .page_of_events(&keys, request.oldest_first, after, limit, &filter)?
            .ok_or_else(|| EngineError::NotFound(format!("no events for {text}")))?;
        Ok(ListEventsResponse { events, next_cursor }.encode_to_vec())
    }

    /// Walks the merged postings of `keys` from the cursor, keeping the events that pass the
    /// filter, until a page is full (and one more match proves there is a next page).
    fn page_of_events(
        &self,
        keys: &[Vec<u8>],
        oldest_first: bool,
        mut cursor: Option<u64>,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<Option<(Vec<Event>, String)>> {
        let store = &self.shared.store;
        let chunk = limit.max(64);
        let mut events = Vec::with_capacity(limit);
        let mut page_bytes = 0;
        let mut last_included = None;
        let mut known = false;
        loop {
            // Each key's next chunk; past the nearest end of a truncated chunk another key's
            // seqs may be missing, so the merged list is only walked up to that horizon.
            let mut merged = Vec::new();
            let mut horizon: Option<u64> = None;
            for key in keys {
                let query = PageQuery {
                    oldest_first,
                    after: cursor,
                    limit: chunk,
                };
                let Some(mut seqs) = self.shared.index.page(store, key, &query)? else {
                    continue;
                };
                known = true;
                if seqs.len() > chunk {
                    seqs.truncate(chunk);
                    let last = *seqs.last().expect("not empty");
                    horizon = Some(match (horizon, oldest_first) {
                        (None, _) => last,
                        (Some(h), true) => h.min(last),
                        (Some(h), false) => h.max(last),
                    });
                }
                merged.extend(seqs);
            }
            if !known {
                return Ok(None);
            }
            merged.sort_unstable();
            merged.dedup();
            if !oldest_first {
                merged.reverse();
            }
            if merged.is_empty() {
                return Ok(Some((events, String::new())));
            }
            let txn = store.log.read()?;
            for seq in merged {
                let beyond = horizon.is_some_and(|h| if oldest_first { seq > h } else { seq < h });
                if beyond {
                    break;
                }
                cursor = Some(seq);
                let value = store
                    .log_dbs
                    .events
                    .get(&txn.txn, &seq)?
                    .ok_or_else(|| EngineError::Storage(format!("event {seq} is indexed but missing")))?;
                let (_, encoded) = split_stored(value)?;
                let event: Event = proto::decode_record(encoded, format_args!("event {seq}"))?;
                if !filter.matches(&event) {
                    continue;
                }
                // A page must fit in one gRPC message: stop early and let the cursor continue.
                let full = events.len() == limit || (page_bytes + encoded.len() > MAX_PAGE_BYTES && !events.is_empty());
                if full {
                    let next = last_included.map(|s: u64| s.to_string()).unwrap_or_default();
                    return Ok(Some((events, next)));
                }
                page_bytes += encoded.len() + 8;
                events.push(event);
                last_included = Some(seq);
            }
            if horizon.is_none() {
                return Ok(Some((events, String::new())));
            }
        }
    }

    /// Committed events after `after` (at most `limit`), each an encoded `TailResponse`, and the
    /// sequence to continue from. Waits up to `wait` when there is nothing new.
    pub fn tail(&self, after: u64, limit: usize, filter: &TailFilter, wait: Duration) -> Result<(Vec<Vec<u8>>, u64)> {
        let last = self.wait_for_events(after, wait);
        if last <= after {
            return Ok((Vec::new(), after));
        }
        let store = &self.shared.store;
        let txn = store.log.read()?;
        let mut out = Vec::new();
        let mut position = after;
        for entry in store
            .log_dbs
            .events
            .range(&txn.txn, &((after + 1)..=last))?
            .take(limit.max(1))
        {
            let (seq, value) = entry?;
            position = seq;
            let (source_id, encoded) = split_stored(value)?;
            let event: Event = proto::decode_record(encoded, format_args!("event {seq}"))?;
            if filter.matches(&event) {
                out.push(
                    TailResponse {
                        event: Some(event),
                        source_id,
                    }
                    .encode_to_vec(),
                );
            }
        }
        Ok((out, position))
    }

    /// Number of stored events (all sources).
    pub fn event_count(&self) -> Result<u64> {
        let txn = self.shared.store.log.read()?;
        Ok(self.shared.store.log_dbs.events.len(&txn.txn)?)
    }
}
