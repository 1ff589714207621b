//! Reads: events by identifier or profile (newest or oldest first, by arrival or by event time,
//! cursor paging, filters) and the committed log after a sequence (the live tail). Short read
//! transactions; never the write lock.
//!
//! Arrival order is the order of the log (event seqs), which the identifier index keeps sorted:
//! a page walks the index from its cursor. Event-time order has no index of its own: a page reads
//! the timestamp of every event asked for (decoding nothing else) and sorts by (timestamp, seq),
//! so its cost grows with the number of those events.

use std::fmt;
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

/// A tailed event: (log seq, source id, event).
pub type TailedEvent = (u64, u32, Event);

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

/// Only the timestamp of a stored `Event` (same tag): decoding it skips every other field
/// without allocating.
#[derive(Clone, PartialEq, Message)]
struct EventTime {
    #[prost(message, optional, tag = "5")]
    timestamp: Option<prost_types::Timestamp>,
}

/// A place in event-time order: (timestamp in ms, seq). Its text is the cursor, "ms:seq".
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct TimePosition(i64, u64);

impl fmt::Display for TimePosition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0, self.1)
    }
}

impl TimePosition {
    fn parse(cursor: &str) -> Option<Self> {
        let (ms, seq) = cursor.split_once(':')?;
        Some(Self(ms.parse().ok()?, seq.parse().ok()?))
    }
}

/// One page of events being filled: stops at the page size or at what fits in one gRPC message.
struct Page<P> {
    events: Vec<Event>,
    sources: Vec<u32>,
    bytes: usize,
    limit: usize,
    last: Option<P>,
}

impl<P: fmt::Display> Page<P> {
    fn new(limit: usize) -> Self {
        Self {
            events: Vec::with_capacity(limit),
            sources: Vec::with_capacity(limit),
            bytes: 0,
            limit,
            last: None,
        }
    }

    /// Adds the event found at `position`; false (and not added) when the page is full, which
    /// proves that there is a next page.
    fn add(&mut self, event: Event, source_id: u32, encoded_len: usize, position: P) -> bool {
        let full =
            self.events.len() == self.limit || (self.bytes + encoded_len > MAX_PAGE_BYTES && !self.events.is_empty());
        if full {
            return false;
        }
        self.bytes += encoded_len + 8;
        self.events.push(event);
        self.sources.push(source_id);
        self.last = Some(position);
        true
    }

    /// The page and the cursor of the next one (empty when `more` is false).
    fn finish(self, more: bool) -> ListEventsResponse {
        let next_cursor = match (more, self.last) {
            (true, Some(last)) => last.to_string(),
            _ => String::new(),
        };
        ListEventsResponse {
            events: self.events,
            source_ids: self.sources,
            next_cursor,
        }
    }
}

/// Splits a stored value into its source id and encoded event.
pub(crate) fn split_stored(value: &[u8]) -> Result<(u32, &[u8])> {
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
        let invalid_cursor = || EngineError::InvalidRequest("cursor is not valid".into());
        let cursor = request.cursor.as_str();
        let page = if request.by_event_time {
            let after = match cursor {
                "" => None,
                text => Some(TimePosition::parse(text).ok_or_else(invalid_cursor)?),
            };
            self.page_by_event_time(&keys, request.oldest_first, after, limit, &filter)?
        } else {
            let after = match cursor {
                "" => None,
                text => Some(text.parse::<u64>().map_err(|_| invalid_cursor())?),
            };
            self.page_of_events(&keys, request.oldest_first, after, limit, &filter)?
        };
        let page = page.ok_or_else(|| EngineError::NotFound(format!("no events for {text}")))?;
        Ok(page.encode_to_vec())
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
    ) -> Result<Option<ListEventsResponse>> {
        let store = &self.shared.store;
        let chunk = limit.max(64);
        let mut page = Page::new(limit);
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
                return Ok(Some(page.finish(false)));
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
                let (source_id, encoded) = split_stored(value)?;
                let event: Event = proto::decode_record(encoded, format_args!("event {seq}"))?;
                if filter.matches(&event) && !page.add(event, source_id, encoded.len(), seq) {
                    return Ok(Some(page.finish(true)));
                }
            }
            if horizon.is_none() {
                return Ok(Some(page.finish(false)));
            }
        }
    }

    /// A page in event-time order: the (timestamp, seq) of every event of `keys` after the
    /// cursor, sorted, then the events read in that order until the page is full.
    fn page_by_event_time(
        &self,
        keys: &[Vec<u8>],
        oldest_first: bool,
        after: Option<TimePosition>,
        limit: usize,
        filter: &EventFilter,
    ) -> Result<Option<ListEventsResponse>> {
        let store = &self.shared.store;
        let mut seqs = Vec::new();
        let mut known = false;
        for key in keys {
            if let Some(found) = self.shared.index.all(store, key)? {
                known = true;
                seqs.extend(found);
            }
        }
        if !known {
            return Ok(None);
        }
        seqs.sort_unstable();
        seqs.dedup();
        let txn = store.log.read()?;
        let read = |seq: u64| -> Result<(u32, &[u8])> {
            let value = store
                .log_dbs
                .events
                .get(&txn.txn, &seq)?
                .ok_or_else(|| EngineError::Storage(format!("event {seq} is indexed but missing")))?;
            split_stored(value)
        };
        let mut positions = Vec::with_capacity(seqs.len());
        for seq in seqs {
            let decoded =
                EventTime::decode(read(seq)?.1).map_err(|e| EngineError::Storage(format!("event {seq}: {e}")))?;
            let at = TimePosition(decoded.timestamp.as_ref().map_or(0, time::to_ms), seq);
            let in_window =
                filter.start_ms.is_none_or(|start| at.0 >= start) && filter.end_ms.is_none_or(|end| at.0 < end);
            let past_cursor = after.is_none_or(|cursor| if oldest_first { at > cursor } else { at < cursor });
            if in_window && past_cursor {
                positions.push(at);
            }
        }
        positions.sort_unstable();
        if !oldest_first {
            positions.reverse();
        }
        let mut page = Page::new(limit);
        for at in positions {
            let (source_id, encoded) = read(at.1)?;
            let event: Event = proto::decode_record(encoded, format_args!("event {}", at.1))?;
            if filter.matches(&event) && !page.add(event, source_id, encoded.len(), at) {
                return Ok(Some(page.finish(true)));
            }
        }
        Ok(Some(page.finish(false)))
    }

    /// Committed events after `after` (at most `limit`), each an encoded `TailResponse`, and the
    /// sequence to continue from. Waits up to `wait` when there is nothing new.
    pub fn tail(&self, after: u64, limit: usize, filter: &TailFilter, wait: Duration) -> Result<(Vec<Vec<u8>>, u64)> {
        let (events, position) = self.tail_events(after, limit, filter, wait)?;
        let encoded = events
            .into_iter()
            .map(|(_, source_id, event)| {
                TailResponse {
                    event: Some(event),
                    source_id,
                }
                .encode_to_vec()
            })
            .collect();
        Ok((encoded, position))
    }

    /// `tail` as (seq, source id, event) triples.
    pub fn tail_events(
        &self,
        after: u64,
        limit: usize,
        filter: &TailFilter,
        wait: Duration,
    ) -> Result<(Vec<TailedEvent>, u64)> {
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
                out.push((seq, source_id, event));
            }
        }
        Ok((out, position))
    }

    /// Committed events whose identifier postings are not yet in the index environment (they
    /// are served from memory meanwhile; a restart replays them from the log).
    pub fn index_lag(&self) -> Result<u64> {
        let flushed = crate::index::IdentifierIndex::flushed_through(&self.shared.store)?;
        Ok(self.last_seq().saturating_sub(flushed))
    }

    /// Number of stored events (all sources).
    pub fn event_count(&self) -> Result<u64> {
        let txn = self.shared.store.log.read()?;
        Ok(self.shared.store.log_dbs.events.len(&txn.txn)?)
    }
}
