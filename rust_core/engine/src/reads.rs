//! Reads: events by identifier (newest or oldest first, cursor paging) and the committed log
//! after a sequence (the live tail). Short read transactions; never the write lock.

use std::time::Duration;

use prost::Message;

use crate::error::{EngineError, Result};
use crate::identifiers::Identifier;
use crate::ingest::{ident_event_key, Engine};
use crate::proto::{Event, EventType, ListEventsRequest, ListEventsResponse, TailResponse};

/// Page size bounds of `ListEvents`.
pub const DEFAULT_PAGE: usize = 20;
pub const MAX_PAGE: usize = 1000;

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
                || (event.r#type == EventType::Track as i32
                    && self.event_names.contains(&event.event)))
    }
}

/// Splits a stored value into its source id and encoded event.
fn split_stored(value: &[u8]) -> Result<(u32, &[u8])> {
    if value.len() < 4 {
        return Err(EngineError::Storage("corrupt event record".into()));
    }
    let (source, event) = value.split_at(4);
    Ok((
        u32::from_be_bytes(source.try_into().unwrap_or_default()),
        event,
    ))
}

impl Engine {
    /// `ListEvents` on encoded bytes: events carrying the identifier, one page.
    pub fn list_events(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request = ListEventsRequest::decode(request).map_err(|e| {
            EngineError::InvalidRequest(format!("malformed ListEventsRequest: {e}"))
        })?;
        let identifier = Identifier::parse(&request.identifier).ok_or_else(|| {
            EngineError::InvalidRequest(format!(
                "identifier must be type:value, got {:?}",
                request.identifier
            ))
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
        let txn = store.read()?;
        let Some(record) = store.dbs.identifiers.get(&txn.txn, &identifier.key())? else {
            return Err(EngineError::NotFound(format!(
                "no events for {}:{}",
                identifier.kind, identifier.value
            )));
        };
        let id = u64::from_be_bytes(record[..8].try_into().unwrap_or_default());
        let (low, high) = match (cursor, request.oldest_first) {
            (Some(c), true) => (
                ident_event_key(id, c.saturating_add(1)),
                ident_event_key(id, u64::MAX),
            ),
            (Some(c), false) => (
                ident_event_key(id, 0),
                ident_event_key(id, c.saturating_sub(1)),
            ),
            (None, _) => (ident_event_key(id, 0), ident_event_key(id, u64::MAX)),
        };
        let range = (
            std::ops::Bound::Included(&low[..]),
            std::ops::Bound::Included(&high[..]),
        );
        let mut seqs = Vec::with_capacity(limit + 1);
        if request.oldest_first {
            for entry in store
                .dbs
                .ident_events
                .range(&txn.txn, &range)?
                .take(limit + 1)
            {
                seqs.push(seq_of(entry?.0));
            }
        } else {
            for entry in store
                .dbs
                .ident_events
                .rev_range(&txn.txn, &range)?
                .take(limit + 1)
            {
                seqs.push(seq_of(entry?.0));
            }
        }
        let more = seqs.len() > limit;
        seqs.truncate(limit);
        let mut events = Vec::with_capacity(seqs.len());
        for seq in &seqs {
            let value = store.dbs.events.get(&txn.txn, seq)?.ok_or_else(|| {
                EngineError::Storage(format!("event {seq} is indexed but missing"))
            })?;
            let (_, encoded) = split_stored(value)?;
            events.push(
                Event::decode(encoded)
                    .map_err(|e| EngineError::Storage(format!("event {seq}: {e}")))?,
            );
        }
        let next_cursor = match (more, seqs.last()) {
            (true, Some(last)) => last.to_string(),
            _ => String::new(),
        };
        Ok(ListEventsResponse {
            events,
            next_cursor,
        }
        .encode_to_vec())
    }

    /// Committed events after `after` (at most `limit`), each an encoded `TailResponse`, and the
    /// sequence to continue from. Waits up to `wait` when there is nothing new.
    pub fn tail(
        &self,
        after: u64,
        limit: usize,
        filter: &TailFilter,
        wait: Duration,
    ) -> Result<(Vec<Vec<u8>>, u64)> {
        let last = self.wait_for_events(after, wait);
        if last <= after {
            return Ok((Vec::new(), after));
        }
        let store = &self.shared.store;
        let txn = store.read()?;
        let mut out = Vec::new();
        let mut position = after;
        for entry in store
            .dbs
            .events
            .range(&txn.txn, &((after + 1)..=last))?
            .take(limit.max(1))
        {
            let (seq, value) = entry?;
            position = seq;
            let (source_id, encoded) = split_stored(value)?;
            let event = Event::decode(encoded)
                .map_err(|e| EngineError::Storage(format!("event {seq}: {e}")))?;
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
        let txn = self.shared.store.read()?;
        Ok(self.shared.store.dbs.events.len(&txn.txn)?)
    }
}

fn seq_of(key: &[u8]) -> u64 {
    u64::from_be_bytes(key[8..16].try_into().unwrap_or_default())
}
