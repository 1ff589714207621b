//! The ingest engine: callers prepare their batches on their own threads, then hand them to one
//! writer thread that groups every batch waiting into one LMDB transaction (group commit) and
//! answers each caller only after that transaction has committed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use heed::PutFlags;
use parking_lot::{Condvar, Mutex};
use prost::Message;

use crate::config::EngineConfig;
use crate::error::{EngineError, Rejection, Result};
use crate::event::{prepare_batch, BatchContext, PreparedEvent};
use crate::proto::{
    self, Batch, EventResult, EventStatus, SendRequest, SendResponse, StreamRequest, StreamResponse,
};
use crate::store::Store;
use crate::time;

/// What happened to one valid event in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    Accepted,
    Duplicate,
    Conflict,
}

/// Counters since the engine opened.
#[derive(Default)]
pub struct Stats {
    pub accepted: AtomicU64,
    pub duplicates: AtomicU64,
    pub conflicts: AtomicU64,
    pub rejected: AtomicU64,
    pub commits: AtomicU64,
    pub map_grows: AtomicU64,
}

pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) config: EngineConfig,
    pub(crate) stats: Stats,
    /// Highest committed event sequence; waiters (the live tail) are woken on change.
    pub(crate) committed: Mutex<u64>,
    pub(crate) committed_changed: Condvar,
}

struct Job {
    source_id: u32,
    events: Vec<PreparedEvent>,
    reply: Sender<Result<Vec<Stored>>>,
}

/// Handle on the engine; cheap to share between threads.
pub struct Engine {
    pub(crate) shared: Arc<Shared>,
    jobs: Mutex<Option<Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

/// A batch handed to the writer; `wait` returns once its events are durable.
pub struct PendingAck {
    reply: Receiver<Result<Vec<Stored>>>,
    /// (index, message id) of each prepared event, in the order the writer answers.
    accepted_ids: Vec<(u32, String)>,
    rejections: Vec<Rejection>,
}

/// The result of a batch, per event.
pub struct BatchOutcome {
    pub stored: Vec<(u32, String, Stored)>,
    pub rejections: Vec<Rejection>,
}

impl PendingAck {
    pub fn wait(self) -> Result<BatchOutcome> {
        let stored = if self.accepted_ids.is_empty() {
            Vec::new()
        } else {
            self.reply.recv().map_err(|_| EngineError::ShutDown)??
        };
        let stored = self
            .accepted_ids
            .into_iter()
            .zip(stored)
            .map(|((i, id), s)| (i, id, s))
            .collect();
        Ok(BatchOutcome {
            stored,
            rejections: self.rejections,
        })
    }

    /// True when `wait` would not block.
    pub fn is_ready(&self) -> bool {
        self.accepted_ids.is_empty() || !self.reply.is_empty()
    }
}

impl BatchOutcome {
    fn count(&self, which: Stored) -> u32 {
        self.stored.iter().filter(|(_, _, s)| *s == which).count() as u32
    }

    /// The unary answer: one result per event, in batch order.
    pub fn send_response(&self) -> SendResponse {
        let mut results: Vec<EventResult> = self
            .stored
            .iter()
            .map(|(index, id, stored)| EventResult {
                index: *index,
                message_id: id.clone(),
                status: match stored {
                    Stored::Accepted => EventStatus::Accepted,
                    Stored::Duplicate => EventStatus::Duplicate,
                    Stored::Conflict => EventStatus::Conflict,
                } as i32,
                rejection: None,
            })
            .chain(self.rejections.iter().map(|r| EventResult {
                index: r.index,
                message_id: r.message_id.clone(),
                status: EventStatus::Rejected as i32,
                rejection: Some(rejection_message(r)),
            }))
            .collect();
        results.sort_by_key(|r| r.index);
        SendResponse { results }
    }

    /// The streaming ack of one numbered batch.
    pub fn stream_response(&self, sequence: u64) -> StreamResponse {
        StreamResponse {
            sequence,
            accepted: self.count(Stored::Accepted),
            duplicates: self.count(Stored::Duplicate),
            conflicts: self.count(Stored::Conflict),
            rejections: self.rejections.iter().map(rejection_message).collect(),
        }
    }
}

fn rejection_message(r: &Rejection) -> proto::EventRejection {
    proto::EventRejection {
        index: r.index,
        message_id: r.message_id.clone(),
        field: r.field.to_owned(),
        reason: r.reason.clone(),
    }
}

impl Engine {
    /// Opens (or creates) the store and starts the writer thread.
    pub fn open(config: EngineConfig) -> Result<Self> {
        let store = Store::open(&config)?;
        let state = WriterState::load(&store)?;
        let shared = Arc::new(Shared {
            store,
            config,
            stats: Stats::default(),
            committed: Mutex::new(state.next_seq.saturating_sub(1)),
            committed_changed: Condvar::new(),
        });
        // A short queue: callers block (backpressure) rather than pile up memory.
        let (tx, rx) = bounded::<Job>(64);
        let writer_shared = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("tributary-writer".into())
            .spawn(move || run_writer(&writer_shared, state, &rx))
            .map_err(|e| EngineError::Storage(format!("cannot start the writer thread: {e}")))?;
        Ok(Self {
            shared,
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    pub fn map_size(&self) -> usize {
        self.shared.store.map_size()
    }

    /// Validates a batch on this thread and queues its valid events for the next group commit.
    pub fn submit(&self, source_id: u32, batch: Batch) -> Result<PendingAck> {
        let ctx = BatchContext {
            source_id,
            received_ms: time::now_ms(),
            max_event_bytes: self.shared.config.max_event_bytes,
        };
        let (events, rejections) = prepare_batch(batch, &ctx);
        self.shared
            .stats
            .rejected
            .fetch_add(rejections.len() as u64, Ordering::Relaxed);
        let accepted_ids = events
            .iter()
            .map(|e| (e.index, e.message_id.clone()))
            .collect::<Vec<_>>();
        let (reply_tx, reply_rx) = bounded(1);
        if !events.is_empty() {
            let sender = self.jobs.lock().clone().ok_or(EngineError::ShutDown)?;
            sender
                .send(Job {
                    source_id,
                    events,
                    reply: reply_tx,
                })
                .map_err(|_| EngineError::ShutDown)?;
        }
        Ok(PendingAck {
            reply: reply_rx,
            accepted_ids,
            rejections,
        })
    }

    /// Unary ingest of an encoded `SendRequest`.
    pub fn send(&self, source_id: u32, request: &[u8]) -> Result<BatchOutcome> {
        let request = SendRequest::decode(request)
            .map_err(|e| EngineError::InvalidRequest(format!("malformed SendRequest: {e}")))?;
        self.submit(source_id, request.batch.unwrap_or_default())?
            .wait()
    }

    /// Decodes an encoded `StreamRequest` and queues it; returns its sequence number too.
    pub fn submit_stream(&self, source_id: u32, request: &[u8]) -> Result<(u64, PendingAck)> {
        let request = StreamRequest::decode(request)
            .map_err(|e| EngineError::InvalidRequest(format!("malformed StreamRequest: {e}")))?;
        let pending = self.submit(source_id, request.batch.unwrap_or_default())?;
        Ok((request.sequence, pending))
    }

    /// Highest committed event sequence.
    pub fn last_seq(&self) -> u64 {
        *self.shared.committed.lock()
    }

    /// Blocks until an event after `after` is committed or `timeout` passes; returns the
    /// highest committed sequence.
    pub fn wait_for_events(&self, after: u64, timeout: Duration) -> u64 {
        let mut committed = self.shared.committed.lock();
        if *committed <= after {
            self.shared
                .committed_changed
                .wait_for(&mut committed, timeout);
        }
        *committed
    }

    /// Stops accepting batches, lets the writer finish what is queued, and waits for it.
    pub fn close(&self) {
        self.jobs.lock().take();
        if let Some(writer) = self.writer.lock().take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.close();
    }
}

/// What only the writer thread touches.
struct WriterState {
    next_seq: u64,
    next_ident_id: u64,
    /// identifier key → id; filled after each commit, so it never holds uncommitted ids.
    ident_ids: HashMap<Vec<u8>, u64>,
    last_sweep: Instant,
}

const META_NEXT_IDENT: &str = "next_ident_id";
/// Bound of the identifier cache; past it the cache starts over (the store stays the truth).
const IDENT_CACHE_LIMIT: usize = 4_000_000;
const SWEEP_EVERY: Duration = Duration::from_secs(30);
const SWEEP_BATCH: usize = 50_000;

impl WriterState {
    fn load(store: &Store) -> Result<Self> {
        let txn = store.read()?;
        let next_seq = store
            .dbs
            .events
            .last(&txn.txn)?
            .map_or(1, |(seq, _)| seq + 1);
        let next_ident_id = store.dbs.meta.get(&txn.txn, META_NEXT_IDENT)?.unwrap_or(1);
        Ok(Self {
            next_seq,
            next_ident_id,
            ident_ids: HashMap::new(),
            last_sweep: Instant::now(),
        })
    }
}

fn run_writer(shared: &Shared, mut state: WriterState, jobs: &Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut group_size = first.events.len();
        let mut group = vec![first];
        while group_size < shared.config.max_group_events {
            match jobs.try_recv() {
                Ok(job) => {
                    group_size += job.events.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let result = loop {
            match write_group(shared, &mut state, &group) {
                Err(EngineError::MapFull) => {
                    if let Err(err) = shared.store.grow() {
                        break Err(err);
                    }
                    shared.stats.map_grows.fetch_add(1, Ordering::Relaxed);
                }
                other => break other,
            }
        };
        match result {
            Ok(outcomes) => {
                shared.stats.commits.fetch_add(1, Ordering::Relaxed);
                *shared.committed.lock() = state.next_seq - 1;
                shared.committed_changed.notify_all();
                for (job, outcome) in group.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Err(err) => {
                let err = shared.store.classify_write_error(err);
                log::error!("group commit failed: {err}");
                for job in group {
                    let _ = job.reply.send(Err(err.clone()));
                }
            }
        }
        if state.last_sweep.elapsed() >= SWEEP_EVERY {
            state.last_sweep = Instant::now();
            if let Err(err) = sweep_dedupe(shared) {
                log::warn!("dedupe sweep failed: {err}");
            }
        }
    }
}

/// A dedupe marker: where the event went, what it said, when it arrived.
struct DedupeRecord {
    seq: u64,
    fingerprint: u64,
    received_ms: i64,
}

impl DedupeRecord {
    fn encode(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[..8].copy_from_slice(&self.seq.to_be_bytes());
        out[8..16].copy_from_slice(&self.fingerprint.to_be_bytes());
        out[16..].copy_from_slice(&self.received_ms.to_be_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Self> {
        let field = |range: std::ops::Range<usize>| bytes.get(range)?.try_into().ok();
        Some(Self {
            seq: u64::from_be_bytes(field(0..8)?),
            fingerprint: u64::from_be_bytes(field(8..16)?),
            received_ms: i64::from_be_bytes(field(16..24)?),
        })
    }
}

/// Writes one group in one transaction. On error nothing of it is visible and `state` is
/// unchanged, so the group can be retried (after the map grew).
fn write_group(
    shared: &Shared,
    state: &mut WriterState,
    group: &[Job],
) -> Result<Vec<Vec<Stored>>> {
    let dbs = &shared.store.dbs;
    let mut wtxn = shared.store.write()?;
    let txn = &mut wtxn.txn;
    let now_ms = time::now_ms();
    let window_start = now_ms - shared.config.dedupe_window.as_millis() as i64;
    let mut next_seq = state.next_seq;
    let mut next_ident_id = state.next_ident_id;
    let mut in_group: HashMap<[u8; 16], u64> = HashMap::new();
    let mut new_idents: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut ident_event_keys: Vec<[u8; 16]> = Vec::new();
    let mut value = Vec::new();
    let mut outcomes = Vec::with_capacity(group.len());
    let mut counts = [0u64; 3];

    for job in group {
        let source_id = job.source_id;
        let mut job_outcomes = Vec::with_capacity(job.events.len());
        for event in &job.events {
            let seen = match &event.dedupe_key {
                None => None,
                Some(key) => match in_group.get(key) {
                    Some(fingerprint) => Some(*fingerprint),
                    None => dbs
                        .dedupe
                        .get(txn, key)?
                        .and_then(DedupeRecord::decode)
                        .filter(|record| record.received_ms >= window_start)
                        .map(|record| record.fingerprint),
                },
            };
            let outcome = match seen {
                Some(fp) if fp == event.fingerprint => Stored::Duplicate,
                Some(_) => Stored::Conflict,
                None => {
                    let seq = next_seq;
                    next_seq += 1;
                    value.clear();
                    value.extend_from_slice(&source_id.to_be_bytes());
                    value.extend_from_slice(&event.encoded);
                    dbs.events
                        .put_with_flags(txn, PutFlags::APPEND, &seq, &value)?;
                    if let Some(key) = &event.dedupe_key {
                        let record = DedupeRecord {
                            seq,
                            fingerprint: event.fingerprint,
                            received_ms: now_ms,
                        };
                        dbs.dedupe.put(txn, key, &record.encode())?;
                        dbs.dedupe_by_time.put(txn, &time_key(now_ms, key), &())?;
                        in_group.insert(*key, event.fingerprint);
                    }
                    for ident in &event.identifiers {
                        let key = ident.key();
                        let id = match state.ident_ids.get(&key).or_else(|| new_idents.get(&key)) {
                            Some(id) => *id,
                            None => {
                                let id = match dbs.identifiers.get(txn, &key)? {
                                    Some(record) => u64::from_be_bytes(
                                        record[..8].try_into().unwrap_or_default(),
                                    ),
                                    None => {
                                        let id = next_ident_id;
                                        next_ident_id += 1;
                                        let mut record = [0u8; 16];
                                        record[..8].copy_from_slice(&id.to_be_bytes());
                                        record[8..].copy_from_slice(&seq.to_be_bytes());
                                        dbs.identifiers.put(txn, &key, &record)?;
                                        id
                                    }
                                };
                                new_idents.insert(key, id);
                                id
                            }
                        };
                        ident_event_keys.push(ident_event_key(id, seq));
                    }
                    Stored::Accepted
                }
            };
            counts[outcome as usize] += 1;
            job_outcomes.push(outcome);
        }
        outcomes.push(job_outcomes);
    }
    // Sorted inserts touch each B-tree page once per run instead of at random.
    ident_event_keys.sort_unstable();
    for key in &ident_event_keys {
        dbs.ident_events.put(txn, key, &())?;
    }
    if next_ident_id != state.next_ident_id {
        dbs.meta.put(txn, META_NEXT_IDENT, &next_ident_id)?;
    }
    wtxn.commit()?;

    state.next_seq = next_seq;
    state.next_ident_id = next_ident_id;
    if state.ident_ids.len() + new_idents.len() > IDENT_CACHE_LIMIT {
        state.ident_ids.clear();
    }
    state.ident_ids.extend(new_idents);
    let stats = &shared.stats;
    stats
        .accepted
        .fetch_add(counts[Stored::Accepted as usize], Ordering::Relaxed);
    stats
        .duplicates
        .fetch_add(counts[Stored::Duplicate as usize], Ordering::Relaxed);
    stats
        .conflicts
        .fetch_add(counts[Stored::Conflict as usize], Ordering::Relaxed);
    Ok(outcomes)
}

pub(crate) fn ident_event_key(id: u64, seq: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&id.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn time_key(ms: i64, dedupe_key: &[u8; 16]) -> [u8; 24] {
    let mut key = [0u8; 24];
    key[..8].copy_from_slice(&(ms as u64).to_be_bytes());
    key[8..].copy_from_slice(dedupe_key);
    key
}

/// Forgets dedupe markers older than the window, oldest first, a bounded number per call.
pub(crate) fn sweep_dedupe(shared: &Shared) -> Result<usize> {
    let dbs = &shared.store.dbs;
    let cutoff = time::now_ms() - shared.config.dedupe_window.as_millis() as i64;
    let mut wtxn = shared.store.write()?;
    let txn = &mut wtxn.txn;
    let mut expired = Vec::new();
    for entry in dbs.dedupe_by_time.iter(txn)? {
        let (key, ()) = entry?;
        let ms = u64::from_be_bytes(key[..8].try_into().unwrap_or_default()) as i64;
        if ms >= cutoff || expired.len() >= SWEEP_BATCH {
            break;
        }
        expired.push((ms, key.to_vec()));
    }
    for (ms, key) in &expired {
        dbs.dedupe_by_time.delete(txn, key)?;
        let dedupe_key = &key[8..];
        // A marker rewritten after this one expired belongs to a newer event: keep it.
        let current = dbs
            .dedupe
            .get(txn, dedupe_key)?
            .and_then(DedupeRecord::decode);
        if current.is_some_and(|record| record.received_ms == *ms) {
            dbs.dedupe.delete(txn, dedupe_key)?;
        }
    }
    wtxn.commit()?;
    Ok(expired.len())
}

#[cfg(test)]
mod tests;
