//! Connections: every destination is a durable cursor over the event log (the log is the
//! outbox), so delivery adds no write to the ingest ack path and one destination's backlog
//! never holds another back.
//!
//! The engine keeps what must outlive a worker: the definitions (in the log environment, with
//! the other administration), each destination's cursor and its dead letters (in the delivery
//! environment: see `store`), and routing (`routing`). Python's delivery workers read batches
//! here, deliver them, then `settle` them: the cursor moves past the batch, and any events that
//! could not be delivered become dead letters, in one durable transaction, so a crash between
//! the two is impossible. A crash before `settle` redelivers the batch (at least once).
//!
//! Invariant: every event up to a destination's cursor was delivered to it, filtered out for
//! it, or is one of its dead letters. The log keeps every event (there is no log retention), so
//! nothing a live destination has not passed can be dropped.

pub mod routing;
pub mod stats;

use std::ops::Bound;
use std::time::Duration;

use heed::RoTxn;
use prost::Message;
use rustc_hash::FxHashSet;

use crate::error::{EngineError, Result};
use crate::ingest::Engine;
use crate::proto::{
    self, CreateDestinationRequest, DeadLetter, DeadLettersRequest, DeadLettersResponse, DeleteDestinationRequest,
    DeleteDestinationResponse, DeliveryStatsRequest, DeliveryStatsResponse, Destination, DestinationResponse,
    DestinationStats, Event, GetDestinationRequest, ListDeadLettersRequest, ListDeadLettersResponse,
    ListDestinationsRequest, ListDestinationsResponse, SetDestinationPausedRequest, Source, UpdateDestinationRequest,
};
use crate::store::Store;
use crate::time;
use routing::{Route, Routed};
pub use stats::Report;

const META_NEXT_DESTINATION: &str = "next_destination_id";
pub const DEFAULT_BATCH_SIZE: u32 = 100;
/// Segment's batch limit.
pub const MAX_BATCH_SIZE: u32 = 2_500;
/// Segment's retry window: 4 hours.
pub const DEFAULT_RETRY_WINDOW_SECS: u32 = 4 * 3600;
pub const DEFAULT_MAX_BACKLOG: u64 = 1_000_000;
/// The day of an event with neither a timestamp nor a receipt time.
pub const NO_DAY: i32 = i32::MIN;
/// Events one live read looks at, at most, beyond what it returns (a destination that filters
/// out almost everything still moves its position along in bounded steps).
const SCAN_PER_READ: usize = 20_000;
/// Log records read under one read transaction.
const CHUNK: usize = 4_096;

/// Events for one destination, in log order, ready to deliver.
#[derive(Default)]
pub struct DeliveryBatch {
    /// A JSON array of the events as the destination gets them (Segment JSON).
    pub raw: Vec<u8>,
    pub message_ids: Vec<String>,
    pub seqs: Vec<u64>,
    /// Every event up to this sequence was read: it is in the batch or was filtered out.
    pub position: u64,
    /// Events read and filtered out.
    pub filtered: u64,
    /// The earliest receive time in the batch (Unix ms; 0 when empty).
    pub oldest_received_ms: i64,
    /// Where each event's JSON starts in `raw` (it ends one byte before the next one's start).
    pub starts: Vec<usize>,
    /// Each event's UTC day (days since 1970-01-01) by its timestamp, else its receipt;
    /// `NO_DAY` when it has neither: what a destination that files events by day needs.
    pub days: Vec<i32>,
    /// The read stopped at the end of the log, not at its limits: after a restart the same read
    /// could find more events, so the batch's end must be recorded before it is sent.
    pub short: bool,
}

impl DeliveryBatch {
    fn push(&mut self, seq: u64, event: &Event, routed: &Routed) -> Result<()> {
        self.raw.push(if self.seqs.is_empty() { b'[' } else { b',' });
        self.starts.push(self.raw.len());
        routed
            .write(event, &mut self.raw)
            .map_err(|e| EngineError::Storage(format!("cannot encode event {seq}: {e}")))?;
        self.message_ids.push(event.message_id.clone());
        self.seqs.push(seq);
        let at = event.timestamp.as_ref().or(event.received_at.as_ref());
        let day = at.map_or(NO_DAY, |at| {
            at.seconds
                .div_euclid(86_400)
                .clamp(i64::from(NO_DAY) + 1, i64::from(i32::MAX)) as i32
        });
        self.days.push(day);
        let received = event.received_at.as_ref().map_or(0, time::to_ms);
        if received > 0 && (self.oldest_received_ms == 0 || received < self.oldest_received_ms) {
            self.oldest_received_ms = received;
        }
        Ok(())
    }

    /// The JSON of the `i`th event.
    fn event(&self, i: usize) -> &[u8] {
        let end = self.starts.get(i + 1).map_or(self.raw.len() - 1, |next| next - 1);
        &self.raw[self.starts[i]..end]
    }

    fn finish(mut self) -> Self {
        self.raw
            .extend_from_slice(if self.seqs.is_empty() { b"[]" } else { b"]" });
        self
    }
}

/// A stored log record: the source id (4 bytes, big-endian), then the encoded event.
fn split_record(seq: u64, value: &[u8]) -> Result<(u32, Event)> {
    let (source, encoded) = crate::reads::split_stored(value)?;
    Ok((source, proto::decode_record(encoded, format_args!("event {seq}"))?))
}

pub(crate) fn dead_letter_key(id: u32, seq: u64) -> [u8; 12] {
    let mut key = [0; 12];
    key[..4].copy_from_slice(&id.to_be_bytes());
    key[4..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn check_name(name: &str) -> Result<()> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidRequest(format!(
            "destination.name: {name:?} must be 1-64 lower-case letters, digits, '-' or '_'"
        )))
    }
}

fn sources(store: &Store, txn: &RoTxn<'_, heed::WithoutTls>) -> Result<Vec<Source>> {
    let mut sources = Vec::new();
    for entry in store.log_dbs.sources.iter(txn)? {
        sources.push(proto::decode_record(entry?.1, "a source record")?);
    }
    Ok(sources)
}

/// Checks a definition and fills in the defaults.
fn normalise(mut d: Destination, known_sources: &[Source]) -> Result<Destination> {
    check_name(&d.name)?;
    let invalid = |field: &str, message: String| EngineError::InvalidRequest(format!("destination.{field}: {message}"));
    if d.kind.trim().is_empty() {
        return Err(invalid("kind", "is required".into()));
    }
    match serde_json::from_slice::<serde_json::Value>(if d.settings.is_empty() { b"{}" } else { &d.settings }) {
        Ok(serde_json::Value::Object(_)) => {}
        _ => return Err(invalid("settings", "must be a JSON object".into())),
    }
    if !d.mappings.is_empty() && !matches!(serde_json::from_slice(&d.mappings), Ok(serde_json::Value::Array(_))) {
        return Err(invalid("mappings", "must be a JSON list".into()));
    }
    d.batch_size = match d.batch_size {
        0 => DEFAULT_BATCH_SIZE,
        n if n > MAX_BATCH_SIZE => return Err(invalid("batch_size", format!("{n} is over {MAX_BATCH_SIZE}"))),
        n => n,
    };
    if d.retry_window_secs == 0 {
        d.retry_window_secs = DEFAULT_RETRY_WINDOW_SECS;
    }
    if d.max_backlog == 0 {
        d.max_backlog = DEFAULT_MAX_BACKLOG;
    }
    let filters = d.filters.get_or_insert_with(Default::default);
    if let Some(unknown) = filters.types.iter().find(|t| !routing::is_type(t)) {
        return Err(invalid("filters.types", format!("{unknown:?} is not a call type")));
    }
    if let Some(p) = filters.sample_percent {
        if !(0.0..=100.0).contains(&p) {
            return Err(invalid("filters.sample_percent", format!("{p} is not within 0-100")));
        }
    }
    if let Some(unknown) = d
        .sources
        .iter()
        .find(|name| !known_sources.iter().any(|s| &s.name == *name))
    {
        return Err(invalid("sources", format!("there is no source named {unknown:?}")));
    }
    for category in &d.consent_categories {
        if category.is_empty() || category.len() >= 35 || category.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(invalid(
                "consent_categories",
                format!("{category:?}: a category id is 1-34 characters and does not start with a digit"),
            ));
        }
    }
    Ok(d)
}

/// The saved definition named `name`, read in `txn`.
fn stored(dbs: &crate::store::LogDatabases, txn: &RoTxn<'_, heed::WithoutTls>, name: &str) -> Result<Destination> {
    let bytes = dbs
        .destinations
        .get(txn, name)?
        .ok_or_else(|| EngineError::NotFound(format!("no destination named {name:?}")))?;
    proto::decode_record(bytes, format_args!("destination {name:?}"))
}

impl Engine {
    fn destination(&self, name: &str) -> Result<Destination> {
        let store = &self.shared.store;
        stored(&store.log_dbs, &store.log.read()?.txn, name)
    }

    fn all_destinations(&self) -> Result<Vec<Destination>> {
        let store = &self.shared.store;
        let txn = store.log.read()?;
        let mut all = Vec::new();
        for entry in store.log_dbs.destinations.iter(&txn.txn)? {
            let (name, bytes) = entry?;
            all.push(proto::decode_record(bytes, format_args!("destination {name:?}"))?);
        }
        Ok(all)
    }

    /// `CreateDestination`: saves the definition and starts its cursor at the log's end (or its
    /// beginning, with `from_beginning`). The settings were checked by the destination's kind.
    pub fn create_destination(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: CreateDestinationRequest = proto::decode_request(request)?;
        let destination = request
            .destination
            .ok_or_else(|| EngineError::InvalidRequest("destination is required".into()))?;
        let store = &self.shared.store;
        let known = sources(store, &store.log.read()?.txn)?;
        let mut destination = normalise(destination, &known)?;
        let dbs = &store.log_dbs;
        // The id first (ids are never reused), then the cursor, then the definition: a crash
        // in between leaves at most a cursor that nothing reads.
        let id = self.write_log(|txn| {
            if dbs.destinations.get(txn, &destination.name)?.is_some() {
                return Err(EngineError::AlreadyExists(format!(
                    "a destination named {:?} exists",
                    destination.name
                )));
            }
            let id = dbs.meta.get(txn, META_NEXT_DESTINATION)?.unwrap_or(1);
            dbs.meta.put(txn, META_NEXT_DESTINATION, &(id + 1))?;
            Ok(id as u32)
        })?;
        let start = if destination.from_beginning { 0 } else { self.last_seq() };
        self.write_delivery(|txn| Ok(store.delivery_dbs.cursors.put(txn, &id, &start)?))?;
        destination.id = id;
        destination.created_at_ms = time::now_ms();
        let encoded = destination.encode_to_vec();
        self.write_log(|txn| {
            if dbs.destinations.get(txn, &destination.name)?.is_some() {
                return Err(EngineError::AlreadyExists(format!(
                    "a destination named {:?} exists",
                    destination.name
                )));
            }
            Ok(dbs.destinations.put(txn, &destination.name, &encoded)?)
        })?;
        Ok(DestinationResponse {
            destination: Some(destination),
        }
        .encode_to_vec())
    }

    /// `UpdateDestination`: replaces the definition; the cursor, dead letters, id and creation
    /// time are kept.
    pub fn update_destination(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: UpdateDestinationRequest = proto::decode_request(request)?;
        let destination = request
            .destination
            .ok_or_else(|| EngineError::InvalidRequest("destination is required".into()))?;
        let store = &self.shared.store;
        let known = sources(store, &store.log.read()?.txn)?;
        let mut destination = normalise(destination, &known)?;
        let dbs = &store.log_dbs;
        self.write_log(|txn| {
            let old = stored(dbs, txn, &destination.name)?;
            destination.id = old.id;
            destination.created_at_ms = old.created_at_ms;
            destination.from_beginning = old.from_beginning;
            Ok(dbs
                .destinations
                .put(txn, &destination.name, &destination.encode_to_vec())?)
        })?;
        Ok(DestinationResponse {
            destination: Some(destination),
        }
        .encode_to_vec())
    }

    pub fn get_destination(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: GetDestinationRequest = proto::decode_request(request)?;
        Ok(DestinationResponse {
            destination: Some(self.destination(&request.name)?),
        }
        .encode_to_vec())
    }

    pub fn list_destinations(&self, request: &[u8]) -> Result<Vec<u8>> {
        proto::decode_request::<ListDestinationsRequest>(request)?;
        Ok(ListDestinationsResponse {
            destinations: self.all_destinations()?,
        }
        .encode_to_vec())
    }

    pub fn set_destination_paused(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: SetDestinationPausedRequest = proto::decode_request(request)?;
        let dbs = &self.shared.store.log_dbs;
        let destination = self.write_log(|txn| {
            let mut destination = stored(dbs, txn, &request.name)?;
            destination.paused = request.paused;
            dbs.destinations.put(txn, &request.name, &destination.encode_to_vec())?;
            Ok(destination)
        })?;
        Ok(DestinationResponse {
            destination: Some(destination),
        }
        .encode_to_vec())
    }

    /// `DeleteDestination`: the definition, then its cursor and dead letters.
    pub fn delete_destination(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: DeleteDestinationRequest = proto::decode_request(request)?;
        let dbs = &self.shared.store.log_dbs;
        let id = self.write_log(|txn| {
            let destination = stored(dbs, txn, &request.name)?;
            dbs.destinations.delete(txn, &request.name)?;
            Ok(destination.id)
        })?;
        let delivery = &self.shared.store.delivery_dbs;
        self.write_delivery(|txn| {
            delivery.cursors.delete(txn, &id)?;
            delivery.in_flight.delete(txn, &id)?;
            let (from, to) = (dead_letter_key(id, 0), dead_letter_key(id, u64::MAX));
            let range = (Bound::Included(&from[..]), Bound::Included(&to[..]));
            delivery.dead_letters.delete_range(txn, &range)?;
            delivery.replays.delete_range(txn, &range)?;
            Ok(())
        })?;
        self.shared.delivery.forget(id);
        Ok(DeleteDestinationResponse {}.encode_to_vec())
    }

    fn write_delivery<T>(&self, work: impl FnMut(&mut heed::RwTxn<'_>) -> Result<T>) -> Result<T> {
        Ok(self.shared.store.delivery.write_with_growth(work)?.0)
    }

    /// Where destination `id` is in the log.
    pub fn destination_cursor(&self, id: u32) -> Result<u64> {
        let store = &self.shared.store;
        let txn = store.delivery.read()?;
        Ok(store.delivery_dbs.cursors.get(&txn.txn, &id)?.unwrap_or(0))
    }

    /// Settles what a worker finished, in one durable transaction: the cursor moves to
    /// `position` (never back; 0: stays), `dead` events become dead letters with `reason`, and
    /// `delivered` dead letters (replayed ones) leave the store.
    pub fn settle(
        &self,
        id: u32,
        position: u64,
        dead: &Dead<'_>,
        delivered: &[u64],
        replay: Option<ReplayProgress<'_>>,
    ) -> Result<()> {
        let dbs = &self.shared.store.delivery_dbs;
        let now = time::now_ms();
        self.write_delivery(|txn| {
            if position > 0 {
                if dbs.cursors.get(txn, &id)?.unwrap_or(0) < position {
                    dbs.cursors.put(txn, &id, &position)?;
                }
                // The batch in flight is forgotten once the cursor has passed it.
                if dbs.in_flight.get(txn, &id)?.is_some_and(|end| end <= position) {
                    dbs.in_flight.delete(txn, &id)?;
                }
            }
            for (seq, message_id) in dead.seqs.iter().zip(dead.message_ids) {
                let key = dead_letter_key(id, *seq);
                let first_failed = match dbs.dead_letters.get(txn, &key)? {
                    Some(bytes) => proto::decode_record::<DeadLetter>(bytes, "a dead letter")?.first_failed_at_ms,
                    None => dead.first_failed_ms,
                };
                let letter = DeadLetter {
                    seq: *seq,
                    message_id: message_id.clone(),
                    reason: dead.reason.to_owned(),
                    attempts: dead.attempts,
                    first_failed_at_ms: first_failed,
                    dead_at_ms: now,
                    ..Default::default()
                };
                dbs.dead_letters.put(txn, &key, &letter.encode_to_vec())?;
            }
            for seq in delivered {
                dbs.dead_letters.delete(txn, &dead_letter_key(id, *seq))?;
            }
            if let Some(replay) = &replay {
                let key = dead_letter_key(id, replay.number);
                if replay.remaining.is_empty() {
                    dbs.replays.delete(txn, &key)?;
                } else if let Some(stored) = dbs.replays.get(txn, &key)? {
                    let record = replay_record(stored.first() == Some(&1), replay.remaining);
                    dbs.replays.put(txn, &key, &record)?;
                }
            }
            Ok(())
        })
    }

    /// Records a replay to destination `id` (durably: a restart finishes it); returns its number.
    pub fn queue_replay(&self, id: u32, seqs: &[u64], dead_letters: bool) -> Result<u64> {
        let dbs = &self.shared.store.delivery_dbs;
        self.write_delivery(|txn| {
            let (from, to) = (dead_letter_key(id, 0), dead_letter_key(id, u64::MAX));
            let last = dbs
                .replays
                .rev_range(txn, &(Bound::Included(&from[..]), Bound::Included(&to[..])))?
                .next()
                .transpose()?
                .map_or(0, |(key, _)| {
                    u64::from_be_bytes(key[4..12].try_into().unwrap_or_default())
                });
            let number = last + 1;
            dbs.replays
                .put(txn, &dead_letter_key(id, number), &replay_record(dead_letters, seqs))?;
            Ok(number)
        })
    }

    /// Destination `id`'s unfinished replays, oldest first: (number, of dead letters, the
    /// sequences still to deliver).
    pub fn pending_replays(&self, id: u32) -> Result<Vec<(u64, bool, Vec<u64>)>> {
        let store = &self.shared.store;
        let txn = store.delivery.read()?;
        let (from, to) = (dead_letter_key(id, 0), dead_letter_key(id, u64::MAX));
        let mut out = Vec::new();
        for entry in store
            .delivery_dbs
            .replays
            .range(&txn.txn, &(Bound::Included(&from[..]), Bound::Included(&to[..])))?
        {
            let (key, value) = entry?;
            let number = u64::from_be_bytes(key[4..12].try_into().unwrap_or_default());
            let seqs = value
                .get(1..)
                .unwrap_or_default()
                .chunks_exact(8)
                .map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default()))
                .collect();
            out.push((number, value.first() == Some(&1), seqs));
        }
        Ok(out)
    }

    /// Records that destination `id` is about to deliver the batch ending at `end`.
    pub fn begin_delivery(&self, id: u32, end: u64) -> Result<()> {
        let dbs = &self.shared.store.delivery_dbs;
        self.write_delivery(|txn| Ok(dbs.in_flight.put(txn, &id, &end)?))
    }

    /// Where destination `id` is: its cursor, and where the batch it was delivering ends (0:
    /// none), which the first read after a restart must not pass.
    pub fn delivery_position(&self, id: u32) -> Result<(u64, u64)> {
        let store = &self.shared.store;
        let txn = store.delivery.read()?;
        let cursor = store.delivery_dbs.cursors.get(&txn.txn, &id)?.unwrap_or(0);
        let in_flight = store.delivery_dbs.in_flight.get(&txn.txn, &id)?.unwrap_or(0);
        Ok((cursor, if in_flight > cursor { in_flight } else { 0 }))
    }

    /// Adds a worker's report to the destination's counters.
    pub fn report_delivery(&self, id: u32, report: &Report) {
        self.shared.delivery.of(id).add(report, time::now_ms());
    }

    /// Sets the worker's state ("idle", "delivering", "retrying", "paused", "stopped"), its
    /// last error (kept when `error` is None) and the number of replays it is running.
    pub fn set_delivery_status(&self, id: u32, state: &str, error: Option<&str>, replays: u32) {
        let counters = self.shared.delivery.of(id);
        let mut status = counters.status.lock();
        state.clone_into(&mut status.state);
        status.replays = replays;
        if let Some(error) = error {
            error.clone_into(&mut status.last_error);
            status.last_error_at_ms = time::now_ms();
        }
    }

    fn route(&self, destination: &Destination) -> Result<Route> {
        let store = &self.shared.store;
        let known = sources(store, &store.log.read()?.txn)?;
        let engage = crate::engage::realtime::existing_engage_source(store)?;
        Ok(Route::compile(destination, &known, engage))
    }

    /// The next events for destination `name` after log position `after`: at most `limit`
    /// events and about `max_bytes` of JSON, none past `until` (0: no bound), waiting up to
    /// `wait` when the log has nothing new.
    pub fn read_for_delivery(
        &self,
        name: &str,
        after: u64,
        limit: usize,
        max_bytes: usize,
        wait: Duration,
        until: u64,
    ) -> Result<DeliveryBatch> {
        let destination = self.destination(name)?;
        let log_end = self.wait_for_events(after, wait);
        let last = if until > after { log_end.min(until) } else { log_end };
        // Compiled after the wait: every event up to `last` was committed before, so the route
        // knows its source (Engage's source is created with its first events).
        let route = self.route(&destination)?;
        let mut batch = DeliveryBatch {
            position: after,
            ..Default::default()
        };
        let store = &self.shared.store;
        let mut scanned = 0;
        while batch.position < last && scanned < SCAN_PER_READ {
            let txn = store.log.read()?;
            let range = (batch.position + 1)..=last;
            for entry in store.log_dbs.events.range(&txn.txn, &range)?.take(CHUNK) {
                let (seq, value) = entry?;
                let (source_id, event) = split_record(seq, value)?;
                match route.decide(source_id, &event, false) {
                    Ok(message) => batch.push(seq, &event, &message)?,
                    Err(_) => batch.filtered += 1,
                }
                batch.position = seq;
                scanned += 1;
                if batch.seqs.len() >= limit.max(1) || batch.raw.len() >= max_bytes {
                    return Ok(batch.finish());
                }
            }
        }
        batch.short = batch.position == log_end;
        Ok(batch.finish())
    }

    /// The events of `seqs` (ascending) as destination `name` gets them on a replay: its
    /// routing and filters apply, its `integrations` key is forced on.
    pub fn read_seqs_for_delivery(&self, name: &str, seqs: &[u64]) -> Result<DeliveryBatch> {
        let destination = self.destination(name)?;
        let route = self.route(&destination)?;
        let store = &self.shared.store;
        let mut batch = DeliveryBatch::default();
        for chunk in seqs.chunks(CHUNK) {
            let txn = store.log.read()?;
            for &seq in chunk {
                let Some(value) = store.log_dbs.events.get(&txn.txn, &seq)? else {
                    continue;
                };
                let (source_id, event) = split_record(seq, value)?;
                match route.decide(source_id, &event, true) {
                    Ok(message) => batch.push(seq, &event, &message)?,
                    Err(_) => batch.filtered += 1,
                }
                batch.position = batch.position.max(seq);
            }
        }
        Ok(batch.finish())
    }

    /// Destination `name`'s id and the log sequences a replay to it delivers: events received in `[start_ms, end_ms)`
    /// (end 0: no end), or exactly those with `message_ids` when any are given, that the
    /// destination's routing lets through on a replay.
    pub fn replay_selection(
        &self,
        name: &str,
        start_ms: i64,
        end_ms: i64,
        message_ids: &[String],
    ) -> Result<(u32, Vec<u64>)> {
        let destination = self.destination(name)?;
        let route = self.route(&destination)?;
        let wanted: FxHashSet<&str> = message_ids.iter().map(String::as_str).collect();
        let store = &self.shared.store;
        let last = self.last_seq();
        let mut position = 0;
        let mut seqs = Vec::new();
        while position < last {
            let txn = store.log.read()?;
            for entry in store
                .log_dbs
                .events
                .range(&txn.txn, &((position + 1)..=last))?
                .take(CHUNK)
            {
                let (seq, value) = entry?;
                position = seq;
                let (source_id, event) = split_record(seq, value)?;
                let chosen = if wanted.is_empty() {
                    let received = event.received_at.as_ref().map_or(0, time::to_ms);
                    received >= start_ms && (end_ms == 0 || received < end_ms)
                } else {
                    wanted.contains(event.message_id.as_str())
                };
                if chosen && route.decide(source_id, &event, true).is_ok() {
                    seqs.push(seq);
                }
            }
        }
        Ok((destination.id, seqs))
    }

    /// Destination `name`'s id and its dead letters' sequences: `only` those (when given), or all.
    pub fn dead_letter_seqs(&self, name: &str, only: &[u64]) -> Result<(u32, Vec<u64>)> {
        let id = self.destination(name)?.id;
        let store = &self.shared.store;
        let txn = store.delivery.read()?;
        let dbs = &store.delivery_dbs;
        let mut seqs = Vec::new();
        if only.is_empty() {
            let (from, to) = (dead_letter_key(id, 0), dead_letter_key(id, u64::MAX));
            for entry in dbs
                .dead_letters
                .range(&txn.txn, &(Bound::Included(&from[..]), Bound::Included(&to[..])))?
            {
                let (key, _) = entry?;
                seqs.push(u64::from_be_bytes(key[4..12].try_into().unwrap_or_default()));
            }
        } else {
            for &seq in only {
                if dbs.dead_letters.get(&txn.txn, &dead_letter_key(id, seq))?.is_some() {
                    seqs.push(seq);
                }
            }
            seqs.sort_unstable();
            seqs.dedup();
        }
        Ok((id, seqs))
    }

    /// How many dead letters a destination has.
    fn dead_letter_count(&self, id: u32) -> Result<u64> {
        let store = &self.shared.store;
        let txn = store.delivery.read()?;
        let (from, to) = (dead_letter_key(id, 0), dead_letter_key(id, u64::MAX));
        let mut count = 0;
        for entry in store
            .delivery_dbs
            .dead_letters
            .remap_data_type::<heed::types::DecodeIgnore>()
            .range(&txn.txn, &(Bound::Included(&from[..]), Bound::Included(&to[..])))?
        {
            entry?;
            count += 1;
        }
        Ok(count)
    }

    /// `ListDeadLetters`: a page of a destination's dead letters, oldest event first, each with
    /// the event as the destination gets it.
    pub fn list_dead_letters(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: ListDeadLettersRequest = proto::decode_request(request)?;
        let destination = self.destination(&request.name)?;
        let limit = match request.limit {
            0 => 100,
            n => n.min(1000) as usize,
        };
        let store = &self.shared.store;
        let mut letters: Vec<DeadLetter> = {
            let txn = store.delivery.read()?;
            let from = dead_letter_key(destination.id, request.after_seq.saturating_add(1));
            let to = dead_letter_key(destination.id, u64::MAX);
            let mut letters = Vec::new();
            for entry in store
                .delivery_dbs
                .dead_letters
                .range(&txn.txn, &(Bound::Included(&from[..]), Bound::Included(&to[..])))?
                .take(limit + 1)
            {
                letters.push(proto::decode_record::<DeadLetter>(entry?.1, "a dead letter")?);
            }
            letters
        };
        let more = letters.len() > limit;
        letters.truncate(limit);
        let seqs: Vec<u64> = letters.iter().map(|l| l.seq).collect();
        let events = self.read_seqs_for_delivery(&request.name, &seqs)?;
        for letter in &mut letters {
            letter.destination.clone_from(&request.name);
            if let Some(i) = events.seqs.iter().position(|s| *s == letter.seq) {
                letter.event = events.event(i).to_vec();
            }
        }
        Ok(ListDeadLettersResponse {
            next_after_seq: if more { seqs.last().copied().unwrap_or(0) } else { 0 },
            dead_letters: letters,
        }
        .encode_to_vec())
    }

    /// `DiscardDeadLetters`: forgets dead letters (the events stay in the log).
    pub fn discard_dead_letters(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: DeadLettersRequest = proto::decode_request(request)?;
        let (id, seqs) = self.dead_letter_seqs(&request.name, &request.seqs)?;
        self.settle(id, 0, &Dead::default(), &seqs, None)?;
        Ok(DeadLettersResponse {
            count: seqs.len() as u64,
        }
        .encode_to_vec())
    }

    /// `DeliveryStats`: each destination's position, backlog and counts.
    pub fn delivery_stats(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: DeliveryStatsRequest = proto::decode_request(request)?;
        let destinations = if request.name.is_empty() {
            self.all_destinations()?
        } else {
            vec![self.destination(&request.name)?]
        };
        let last_seq = self.last_seq();
        let mut out = Vec::with_capacity(destinations.len());
        for d in destinations {
            let cursor = self.destination_cursor(d.id)?;
            let dead_letters = self.dead_letter_count(d.id)?;
            let counters = self.shared.delivery.of(d.id);
            let status = counters.status.lock().clone();
            let latency = counters.latency.lock().clone();
            let backlog = last_seq.saturating_sub(cursor);
            let relaxed = std::sync::atomic::Ordering::Relaxed;
            out.push(DestinationStats {
                name: d.name,
                kind: d.kind,
                state: if d.paused {
                    "paused".into()
                } else if status.state.is_empty() {
                    "stopped".into()
                } else {
                    status.state
                },
                cursor,
                last_seq,
                backlog,
                lagging: backlog > d.max_backlog,
                delivered: counters.delivered.load(relaxed),
                retried: counters.retried.load(relaxed),
                dead_lettered: counters.dead_lettered.load(relaxed),
                filtered: counters.filtered.load(relaxed),
                dead_letters,
                last_error: status.last_error,
                last_error_at_ms: status.last_error_at_ms,
                latency_p50_ms: latency.quantile_ms(0.5),
                latency_p95_ms: latency.quantile_ms(0.95),
                replays: status.replays,
            });
        }
        Ok(DeliveryStatsResponse { destinations: out }.encode_to_vec())
    }

    /// Every destination's backlog and counters, for `/metrics`.
    pub fn delivery_metrics(&self) -> Result<Vec<stats::DestinationMetrics>> {
        let last_seq = self.last_seq();
        self.all_destinations()?
            .into_iter()
            .map(|d| {
                let backlog = last_seq.saturating_sub(self.destination_cursor(d.id)?);
                Ok(stats::DestinationMetrics {
                    lagging: backlog > d.max_backlog,
                    counters: self.shared.delivery.of(d.id),
                    name: d.name,
                    backlog,
                })
            })
            .collect()
    }
}

/// A replay's progress, settled with the chunk just delivered.
pub struct ReplayProgress<'a> {
    pub number: u64,
    /// What is left to deliver (empty: the replay is done and forgotten).
    pub remaining: &'a [u64],
}

fn replay_record(dead_letters: bool, seqs: &[u64]) -> Vec<u8> {
    let mut record = Vec::with_capacity(1 + seqs.len() * 8);
    record.push(u8::from(dead_letters));
    for seq in seqs {
        record.extend_from_slice(&seq.to_le_bytes());
    }
    record
}

/// Events that become dead letters when a batch is settled.
#[derive(Default)]
pub struct Dead<'a> {
    pub seqs: &'a [u64],
    pub message_ids: &'a [String],
    pub reason: &'a str,
    pub attempts: u32,
    pub first_failed_ms: i64,
}

#[cfg(test)]
mod tests;
