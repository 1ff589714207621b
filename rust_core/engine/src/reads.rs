//! Reads: events by identifier (newest or oldest first, cursor paging) and the committed log
//! after a sequence (the live tail). Short read transactions; never the write lock.

use std::time::Duration;

use prost::Message;

use crate::error::{EngineError, Result};
use crate::identifiers::Identifier;
use crate::index::PageQuery;
use crate::ingest::Engine;
use crate::proto::{Event, EventType, ListEventsRequest, ListEventsResponse, TailResponse};

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

/// Splits a stored value into its source id and encoded event.
fn split_stored(value: &[u8]) -> Result<(u32, &[u8])> {
    if value.len() < 4 {
        return Err(EngineError::Storage("corrupt event record".into()));
    }
    let (source, event) = value.split_at(4);
    Ok((u32::from_be_bytes(source.try_into().unwrap_or_default()), event))
}

impl Engine {
    /// `ListEvents` on encoded bytes: events carrying the identifier, one page.
    pub fn list_events(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request = ListEventsRequest::decode(request)
            .map_err(|e| EngineError::InvalidRequest(format!("malformed ListEventsRequest: {e}")))?;
        let identifier = Identifier::parse(&request.identifier).ok_or_else(|| {
            EngineError::InvalidRequest(format!("identifier must be type:value, got {:?}", request.identifier))
        })?;
        let limit = match request.limit as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let cursor = match request.cursor.as_str() {
            "" => None,
            text => Some(
                text.parse::<u64>()
                    .map_err(|_| EngineError::InvalidRequest("cursor is not valid".into()))?,
            ),
        };
        let store = &self.shared.store;
        let query = PageQuery {
            oldest_first: request.oldest_first,
            after: cursor,
            limit,
        };
        let Some(mut seqs) = self.shared.index.page(store, &identifier.key(), &query)? else {
            return Err(EngineError::NotFound(format!(
                "no events for {}:{}",
                identifier.kind, identifier.value
            )));
        };
        let mut more = seqs.len() > limit;
        seqs.truncate(limit);
        let txn = store.log.read()?;
        let mut events = Vec::with_capacity(seqs.len());
        let mut page_bytes = 0;
        let mut last_included = None;
        for seq in &seqs {
            let value = store
                .log_dbs
                .events
                .get(&txn.txn, seq)?
                .ok_or_else(|| EngineError::Storage(format!("event {seq} is indexed but missing")))?;
            let (_, encoded) = split_stored(value)?;
            // A page must fit in one gRPC message: stop early and let the cursor continue.
            if page_bytes + encoded.len() > MAX_PAGE_BYTES && !events.is_empty() {
                more = true;
                break;
            }
            page_bytes += encoded.len() + 8;
            events.push(Event::decode(encoded).map_err(|e| EngineError::Storage(format!("event {seq}: {e}")))?);
            last_included = Some(*seq);
        }
        let next_cursor = match (more, last_included) {
            (true, Some(last)) => last.to_string(),
            _ => String::new(),
        };
        Ok(ListEventsResponse { events, next_cursor }.encode_to_vec())
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
            let event = Event::decode(encoded).map_err(|e| EngineError::Storage(format!("event {seq}: {e}")))?;
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
