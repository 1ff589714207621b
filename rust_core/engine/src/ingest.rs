//! The ingest engine: callers prepare their batches on their own threads, then hand them to one
//! writer thread that groups every batch waiting into one LMDB transaction (group commit) and
//! answers each caller only after that transaction has committed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use heed::PutFlags;
use parking_lot::{Condvar, Mutex};

use crate::config::EngineConfig;
use crate::dedupe::{short_fingerprint, DedupeKey, DedupeSet, KeyMap, Marker};
use crate::error::{EngineError, Rejection, Result};
use crate::event::{prepare_batch, BatchContext, PreparedEvent};
use crate::index::IdentifierIndex;
use crate::profiles::SNAPSHOT_NAME;
use crate::profiles::{Profiles, Resolvable};
use crate::proto::{self, Batch, EventResult, EventStatus, SendRequest, SendResponse, StreamRequest, StreamResponse};
use crate::segment_json::{self, JsonOptions};
use crate::snapshot::Snapshots;
use crate::store::Store;
use crate::time;

/// The events of a `SendRequest` or `StreamRequest`, in either form.
enum Payload {
    Batch(Batch),
    Json(proto::JsonBatch),
}

impl From<proto::send_request::Payload> for Payload {
    fn from(payload: proto::send_request::Payload) -> Self {
        match payload {
            proto::send_request::Payload::Batch(batch) => Payload::Batch(batch),
            proto::send_request::Payload::Json(json) => Payload::Json(json),
        }
    }
}

impl From<proto::stream_request::Payload> for Payload {
    fn from(payload: proto::stream_request::Payload) -> Self {
        match payload {
            proto::stream_request::Payload::Batch(batch) => Payload::Batch(batch),
            proto::stream_request::Payload::Json(json) => Payload::Json(json),
        }
    }
}

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
    /// Events refused because they carry a suppressed identifier.
    pub suppressed: AtomicU64,
    pub commits: AtomicU64,
    pub map_grows: AtomicU64,
    /// Bytes of the in-memory dedupe set (it lives on the writer thread), after the last group.
    pub dedupe_bytes: AtomicU64,
    /// Id of the newest record in the rejected store (0: none).
    pub last_rejected_id: AtomicU64,
    /// Events stored per source since the engine opened.
    pub stored_by_source: Mutex<rustc_hash::FxHashMap<u32, u64>>,
}

pub(crate) struct Shared {
    pub(crate) store: Store,
    pub(crate) index: IdentifierIndex,
    pub(crate) profiles: Profiles,
    pub(crate) config: EngineConfig,
    pub(crate) stats: Stats,
    /// Highest committed event sequence; waiters (the live tail) are woken on change.
    pub(crate) committed: Mutex<u64>,
    pub(crate) committed_changed: Condvar,
    snapshots: Option<Snapshots>,
    /// What the snapshot on disk covers (resolved seq, administration fingerprint), and the
    /// thread writing one, if any.
    snapshot_covers: Mutex<(u64, u128)>,
    snapshot_writer: Mutex<Option<JoinHandle<()>>>,
    /// Real-time audiences and computed traits (`engage::realtime`).
    pub(crate) engage_hub: crate::engage::realtime::Hub,
    /// Delivery workers' counts and states, by destination id.
    pub(crate) delivery: crate::delivery::stats::DeliveryCounters,
    /// Each source's compiled tracking plan and transformations.
    pub(crate) governance: crate::governance::Live,
    /// Answers of `credential`, forgotten whenever a credential changes.
    pub(crate) credentials: crate::credentials::CredentialCache,
    /// The sources' rate-limit buckets, shared by every ingest surface.
    pub(crate) source_rates: crate::rate::RateLimit,
    /// Wakes the privacy deletion thread.
    pub(crate) deletions: crate::governance::deletion::Control,
}

/// What the writer answers a job: each event's fate and message id, in order.
type JobReply = Result<Vec<(Stored, String)>>;

pub(crate) struct Job {
    source_id: u32,
    events: Vec<PreparedEvent>,
    /// Refused events of the request, for the rejected store.
    rejected: Vec<proto::RejectedEvent>,
    /// The tracking-plan violations its events were found with, for their counts.
    violations: crate::governance::store::Tally,
    /// What became of each event, with its message id (moved out of the event, not copied).
    reply: Sender<JobReply>,
    /// Set on a job that carries no events but a deletion's change to the log.
    erase: Option<EraseLog>,
}

/// A privacy deletion's change to the log (`governance::deletion`), made by the writer so that
/// its in-memory dedupe set forgets the erased events' messageIds in step with the log: no
/// group can see the markers gone from one and not the other.
pub(crate) struct EraseLog {
    /// The events to remove (with their dedupe markers).
    seqs: Vec<u64>,
    /// The deletion's own records, written in the same transaction; given the number of
    /// events removed.
    record: EraseRecord,
    reply: Sender<Result<usize>>,
}

pub(crate) type EraseRecord = Box<dyn FnMut(&mut heed::RwTxn<'_>, usize) -> Result<()> + Send>;

/// Has the writer remove `seqs` from the log (after the groups queued before), with `record`
/// in the same transaction; returns how many events were removed, once committed.
pub(crate) fn erase_log(jobs: &Sender<Job>, seqs: Vec<u64>, record: EraseRecord) -> Result<usize> {
    let (erased, reply) = bounded(1);
    // A job carries a reply channel for events; an erase is answered on its own (`erased`).
    let (unused, _) = bounded(1);
    jobs.send(Job {
        source_id: 0,
        events: Vec::new(),
        rejected: Vec::new(),
        violations: Default::default(),
        reply: unused,
        erase: Some(EraseLog {
            seqs,
            record,
            reply: erased,
        }),
    })
    .map_err(|_| EngineError::ShutDown)?;
    reply.recv().map_err(|_| EngineError::ShutDown)?
}

/// Handle on the engine; cheap to share between threads.
pub struct Engine {
    pub(crate) shared: Arc<Shared>,
    jobs: Mutex<Option<Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    indexer: Mutex<Option<JoinHandle<()>>>,
    engage: Mutex<Option<JoinHandle<()>>>,
    inventory: Mutex<Option<JoinHandle<()>>>,
    deletion: Mutex<Option<JoinHandle<()>>>,
}

/// A batch handed to the writer; `wait` returns once its events are durable.
pub struct PendingAck {
    /// None when nothing went to the writer.
    reply: Option<Receiver<JobReply>>,
    /// Batch index of each prepared event, in the order the writer answers.
    indices: Vec<u32>,
    rejections: Vec<Rejection>,
}

/// The result of a batch, per event.
pub struct BatchOutcome {
    pub stored: Vec<(u32, String, Stored)>,
    pub rejections: Vec<Rejection>,
}

impl PendingAck {
    pub fn wait(self) -> Result<BatchOutcome> {
        let stored = match &self.reply {
            None => Vec::new(),
            Some(reply) => reply.recv().map_err(|_| EngineError::ShutDown)??,
        };
        let stored = self
            .indices
            .into_iter()
            .zip(stored)
            .map(|(i, (s, id))| (i, id, s))
            .collect();
        Ok(BatchOutcome {
            stored,
            rejections: self.rejections,
        })
    }

    /// True when `wait` would not block.
    pub fn is_ready(&self) -> bool {
        self.reply.as_ref().is_none_or(|reply| !reply.is_empty())
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
        line: r.line,
    }
}

impl Engine {
    /// Opens (or creates) the store and starts the writer thread.
    pub fn open(config: EngineConfig) -> Result<Self> {
        let store = Store::open(&config)?;
        let administration = crate::profiles::load_administration(&store)?;
        let custom = crate::profiles::custom_identifiers(&administration.0);
        let snapshots = config.snapshots.then(|| Snapshots::new(&config.data_dir));
        // The three rebuilds of start-up read the log independently: the dedupe window and the
        // identifier index on one thread, the identity graph on another.
        let (state, index, profiles) = std::thread::scope(|scope| {
            let others = scope.spawn(|| -> Result<(WriterState, IdentifierIndex)> {
                Ok((WriterState::load(&store)?, IdentifierIndex::recover(&store, &custom)?))
            });
            let profiles = Profiles::rebuild(&store, administration, snapshots.as_ref());
            let (state, index) = others
                .join()
                .map_err(|_| EngineError::Storage("start-up failed while loading the dedupe window".into()))??;
            Ok::<_, EngineError>((state, index, profiles?))
        })?;
        // What the snapshot on disk covers: none usable means the next one is due.
        let snapshot_covers = match profiles.loaded_snapshot {
            Some(through) => (through, profiles.lock().administration()),
            None => (0, 0),
        };
        let last_rejected = {
            let txn = store.log.read()?;
            store.log_dbs.rejected.last(&txn.txn)?.map_or(0, |(id, _)| id)
        };
        let source_rates = crate::rate::RateLimit::new(config.source_rate_limit);
        let shared = Arc::new(Shared {
            store,
            index,
            profiles,
            config,
            stats: Stats {
                last_rejected_id: AtomicU64::new(last_rejected),
                ..Stats::default()
            },
            committed: Mutex::new(state.next_seq.saturating_sub(1)),
            committed_changed: Condvar::new(),
            snapshots,
            snapshot_covers: Mutex::new(snapshot_covers),
            snapshot_writer: Mutex::new(None),
            engage_hub: Default::default(),
            delivery: Default::default(),
            governance: Default::default(),
            credentials: Default::default(),
            source_rates,
            deletions: Default::default(),
        });
        shared.governance.reload(&shared.store)?;
        if let Some(engage_source) = crate::engage::realtime::existing_engage_source(&shared.store)? {
            shared.engage_hub.source_id.store(engage_source, Ordering::Release);
        }
        // A short queue: callers block (backpressure) rather than pile up memory.
        let (tx, rx) = bounded::<Job>(64);
        let spawn = |name: &str, work: Box<dyn FnOnce() + Send>| {
            std::thread::Builder::new()
                .name(name.into())
                .spawn(work)
                .map_err(|e| EngineError::Storage(format!("cannot start the {name} thread: {e}")))
        };
        let writer_shared = Arc::clone(&shared);
        let writer = spawn(
            "tributary-writer",
            Box::new(move || run_writer(&writer_shared, state, &rx)),
        )?;
        let indexer_shared = Arc::clone(&shared);
        let indexer = spawn(
            "tributary-indexer",
            Box::new(move || indexer_shared.index.run(&indexer_shared.store)),
        )?;
        let worker = crate::engage::realtime::Worker::new(Arc::clone(&shared), tx.clone(), shared.config.engage_tick)
            .ok_or_else(|| EngineError::Storage("the Engage worker was started twice".into()))?;
        let engage = spawn("tributary-engage", Box::new(move || worker.run()))?;
        let inventory_shared = Arc::clone(&shared);
        let inventory = spawn(
            "tributary-pii",
            Box::new(move || crate::governance::inventory::run(&inventory_shared)),
        )?;
        let (deletion_shared, deletion_jobs) = (Arc::clone(&shared), tx.clone());
        let deletion = spawn(
            "tributary-deletion",
            Box::new(move || crate::governance::deletion::run(&deletion_shared, &deletion_jobs)),
        )?;
        Ok(Self {
            shared,
            jobs: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            indexer: Mutex::new(Some(indexer)),
            engage: Mutex::new(Some(engage)),
            inventory: Mutex::new(Some(inventory)),
            deletion: Mutex::new(Some(deletion)),
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    pub fn stats(&self) -> &Stats {
        &self.shared.stats
    }

    pub fn map_size(&self) -> usize {
        self.shared.store.log.map_size()
    }

    /// One write transaction on the log beside the writer thread's (administration records:
    /// sources, tokens, identity rules), growing the map when it is full; grows are counted.
    pub(crate) fn write_log<T>(&self, work: impl FnMut(&mut heed::RwTxn<'_>) -> Result<T>) -> Result<T> {
        let (done, grows) = self.shared.store.log.write_with_growth(work)?;
        self.shared
            .stats
            .map_grows
            .fetch_add(u64::from(grows), Ordering::Relaxed);
        Ok(done)
    }

    /// Validates a batch on this thread and queues its valid events for the next group commit.
    pub fn submit(&self, source_id: u32, batch: Batch) -> Result<PendingAck> {
        let ctx = self.batch_context(source_id);
        let (events, rejections) = prepare_batch(batch, &ctx);
        self.enqueue(&ctx, events, rejections)
    }

    /// Decodes Segment-Spec JSON (a message, a batch object, an array or JSON lines) on this
    /// thread, validates it as `submit` does, and queues its valid events.
    pub fn submit_json(&self, source_id: u32, data: &[u8], options: &JsonOptions) -> Result<PendingAck> {
        let ctx = self.batch_context(source_id);
        let mut decoded = segment_json::decode(data, options, ctx.max_event_bytes)?;
        let (mut events, mut rejections) = prepare_batch(std::mem::take(&mut decoded.batch), &ctx);
        decoded.number(&mut events, &mut rejections);
        self.enqueue(&ctx, events, rejections)
    }

    fn batch_context(&self, source_id: u32) -> BatchContext {
        BatchContext {
            source_id,
            received_ms: time::now_ms(),
            max_event_bytes: self.shared.config.max_event_bytes,
            custom: self.shared.profiles.custom(),
            policy: self.shared.governance.policy(source_id),
            violations: Default::default(),
            suppressed: self.shared.governance.suppressed(),
        }
    }

    /// The writer's queue (for the engine's own writers: Engage, Predictions).
    pub(crate) fn job_sender(&self) -> Result<Sender<Job>> {
        self.jobs.lock().clone().ok_or(EngineError::ShutDown)
    }

    /// Hands prepared events, and the refused ones for the rejected store, to the writer.
    fn enqueue(
        &self,
        ctx: &BatchContext,
        events: Vec<PreparedEvent>,
        rejections: Vec<Rejection>,
    ) -> Result<PendingAck> {
        let sender = self.jobs.lock().clone().ok_or(EngineError::ShutDown)?;
        enqueue(&self.shared, &sender, ctx, events, rejections)
    }

    /// Queues a request's payload: protobuf events or Segment-Spec JSON.
    fn submit_payload(&self, source_id: u32, payload: Option<Payload>) -> Result<PendingAck> {
        match payload {
            Some(Payload::Batch(batch)) => self.submit(source_id, batch),
            Some(Payload::Json(json)) => {
                let options = JsonOptions {
                    content_message_ids: json.content_message_ids,
                    ignore_sent_at: json.ignore_sent_at,
                    first_line: json.first_line,
                    route_type: None,
                };
                self.submit_json(source_id, &json.data, &options)
            }
            None => self.submit(source_id, Batch::default()),
        }
    }

    /// Unary ingest of an encoded `SendRequest`.
    pub fn send(&self, source_id: u32, request: &[u8]) -> Result<BatchOutcome> {
        let request: SendRequest = proto::decode_request(request)?;
        self.submit_payload(source_id, request.payload.map(Payload::from))?
            .wait()
    }

    /// Decodes an encoded `StreamRequest` and queues it; returns its sequence number too.
    pub fn submit_stream(&self, source_id: u32, request: &[u8]) -> Result<(u64, PendingAck)> {
        let request: StreamRequest = proto::decode_request(request)?;
        let pending = self.submit_payload(source_id, request.payload.map(Payload::from))?;
        Ok((request.sequence, pending))
    }

    /// The engine's resident memory by part (see `memory`): the identity graph, account links,
    /// the dedupe window and the identifier index's buffers. Returns (part, bytes).
    pub fn memory_usage(&self) -> Vec<(&'static str, usize)> {
        let mut parts = {
            let state = self.shared.profiles.lock();
            let mut parts = state.graph.memory();
            parts.push(("account_links", state.links.memory()));
            parts.extend(state.engage.memory());
            parts
        };
        parts.push((
            "dedupe",
            self.shared.stats.dedupe_bytes.load(Ordering::Relaxed) as usize,
        ));
        parts.extend(self.shared.index.memory());
        parts
    }

    /// The log seq of the identity snapshot start-up loaded, if it loaded one.
    /// How many times a cluster of identifiers was re-resolved because an event arrived after
    /// a later one of its cluster (or an admin split it), since start-up.
    pub fn clusters_replayed(&self) -> u64 {
        self.shared.profiles.lock().graph.rebuilt_clusters()
    }

    pub fn loaded_snapshot(&self) -> Option<u64> {
        self.shared.profiles.loaded_snapshot
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
            self.shared.committed_changed.wait_for(&mut committed, timeout);
        }
        *committed
    }

    /// True until `close`: the engine takes events.
    pub fn is_open(&self) -> bool {
        self.jobs.lock().is_some()
    }

    /// Stops accepting batches, lets the writer finish what is queued, and waits for it.
    /// Then writes a snapshot of the identity state, so that the next start loads it.
    pub fn close(&self) {
        // The deletion thread too (a deletion stopped between stages resumes at the next start).
        self.shared.deletions.stop();
        if let Some(deletion) = self.deletion.lock().take() {
            let _ = deletion.join();
        }
        // The Engage worker writes through its own copy of the job queue: stop it first.
        self.shared.engage_hub.send(crate::engage::realtime::Message::Stop);
        if let Some(engage) = self.engage.lock().take() {
            let _ = engage.join();
        }
        self.jobs.lock().take();
        let writer = self.writer.lock().take();
        let closing = writer.is_some(); // the first close: later ones find nothing to do
        if let Some(writer) = writer {
            let _ = writer.join();
        }
        self.shared.index.stop();
        if let Some(indexer) = self.indexer.lock().take() {
            let _ = indexer.join();
        }
        self.shared.governance.stopping.store(true, Ordering::Release);
        self.shared.committed_changed.notify_all();
        if let Some(inventory) = self.inventory.lock().take() {
            let _ = inventory.join();
        }
        if closing {
            if let Err(err) = self.snapshot() {
                log::warn!("no identity snapshot at shutdown (the next start replays the log): {err}");
            }
        }
    }

    /// Writes a snapshot of the identity state now (after any one being written), unless the
    /// last one already covers it.
    pub fn snapshot(&self) -> Result<()> {
        write_snapshot(&self.shared)
    }
}

/// See `Engine::snapshot`.
pub(crate) fn write_snapshot(shared: &Shared) -> Result<()> {
    if let Some(writing) = shared.snapshot_writer.lock().take() {
        let _ = writing.join();
    }
    encode_and_write_snapshot(shared)
}

fn encode_and_write_snapshot(shared: &Shared) -> Result<()> {
    let Some(snapshots) = &shared.snapshots else {
        return Ok(());
    };
    let (bytes, covers) = {
        let state = shared.profiles.lock();
        let covers = (state.resolved_through, state.administration());
        if covers == *shared.snapshot_covers.lock() {
            return Ok(()); // the one on disk holds exactly this state
        }
        (state.snapshot_bytes()?, covers)
    };
    snapshots.write(SNAPSHOT_NAME, &bytes)?;
    *shared.snapshot_covers.lock() = covers;
    Ok(())
}

/// A privacy deletion's snapshot stage: the snapshot on disk (and any being written, waited
/// for) predates the deletion, so it is removed now; a new one is written on a thread of its own
/// (its cost is the whole state's, not the person's). Until it is, a restart replays the log.
pub(crate) fn replace_snapshot(shared: &Arc<Shared>) -> Result<()> {
    let Some(snapshots) = &shared.snapshots else {
        return Ok(());
    };
    let mut writer = shared.snapshot_writer.lock();
    if let Some(writing) = writer.take() {
        let _ = writing.join();
    }
    snapshots.remove(SNAPSHOT_NAME)?;
    *shared.snapshot_covers.lock() = (0, 0);
    let rewriting = Arc::clone(shared);
    let spawned = std::thread::Builder::new()
        .name("tributary-snapshot".into())
        .spawn(move || {
            if let Err(err) = encode_and_write_snapshot(&rewriting) {
                log::warn!("no identity snapshot after a deletion (the next start replays the log): {err}");
            }
        })
        .map_err(|e| EngineError::Storage(format!("cannot start the snapshot writer: {e}")))?;
    *writer = Some(spawned);
    Ok(())
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.close();
    }
}

/// What only the writer thread touches.
struct WriterState {
    next_seq: u64,
    dedupe: DedupeSet,
    next_sweep: Instant,
}

/// How often expired dedupe markers are swept: every 30 s, or a quarter of a shorter window.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
const SWEEP_BATCH: usize = 100_000;

impl WriterState {
    fn load(store: &Store) -> Result<Self> {
        let txn = store.log.read()?;
        // A deletion may have removed the newest events: their seqs are never given again
        // (destinations' cursors have passed them).
        let next_seq = store.log_dbs.events.last(&txn.txn)?.map_or(1, |(seq, _)| seq + 1).max(
            store
                .log_dbs
                .meta
                .get(&txn.txn, crate::governance::deletion::META_DELETED_THROUGH)?
                .unwrap_or(0)
                + 1,
        );
        let started = Instant::now();
        let dedupe = DedupeSet::load(&txn, &store.log_dbs)?;
        if !dedupe.is_empty() {
            log::info!(
                "dedupe window loaded: {} message ids in {:.2} s",
                dedupe.len(),
                started.elapsed().as_secs_f64()
            );
        }
        Ok(Self {
            next_seq,
            dedupe,
            next_sweep: Instant::now(),
        })
    }
}

/// A committed group on its way to its callers.
struct Committed {
    group: Vec<Job>,
    outcomes: Vec<Vec<Stored>>,
    first_seq: u64,
    through: u64,
}

/// The writer commits groups; a publisher thread, one group behind, resolves their identities,
/// indexes them and sends the acks. The next commit (and its fsync) overlaps that work, and
/// groups are published in commit order, so profiles follow the log order.
fn run_writer(shared: &Shared, mut state: WriterState, jobs: &Receiver<Job>) {
    let (to_publisher, committed) = bounded::<Committed>(2);
    std::thread::scope(|scope| {
        let publisher = std::thread::Builder::new()
            .name("tributary-publish".into())
            .spawn_scoped(scope, || committed.iter().for_each(|batch| publish(shared, batch)));
        if let Err(err) = publisher {
            log::error!("cannot start the publisher thread: {err}");
            return;
        }
        let mut next = None;
        while let Some(first) = next.take().or_else(|| jobs.recv().ok()) {
            if let Some(erase) = first.erase {
                let erased = erase_events(shared, &mut state, erase.seqs, erase.record);
                let _ = erase.reply.send(erased);
                continue;
            }
            let mut group_size = first.events.len();
            let mut group = vec![first];
            while group_size < shared.config.max_group_events {
                match jobs.try_recv() {
                    // A deletion waits for the group before it, and comes next.
                    Ok(job) if job.erase.is_some() => {
                        next = Some(job);
                        break;
                    }
                    Ok(job) => {
                        group_size += job.events.len();
                        group.push(job);
                    }
                    Err(_) => break,
                }
            }
            // Before the group's dedupe checks: a key whose window has passed is forgotten first.
            sweep_if_due(shared, &mut state);
            let first_seq = state.next_seq;
            match write_group(shared, &mut state, &mut group) {
                Ok(outcomes) => {
                    shared.stats.commits.fetch_add(1, Ordering::Relaxed);
                    let batch = Committed {
                        group,
                        outcomes,
                        first_seq,
                        through: state.next_seq - 1,
                    };
                    if to_publisher.send(batch).is_err() {
                        return;
                    }
                }
                Err(err) => {
                    log::error!("group commit failed: {err}");
                    for job in group {
                        let _ = job.reply.send(Err(err.clone()));
                    }
                }
            }
        }
        drop(to_publisher);
    });
}

/// Hands prepared events, and the refused ones for the rejected store, to the writer through
/// `sender` (the engine's, or the Engage worker's copy of it).
pub(crate) fn enqueue(
    shared: &Shared,
    sender: &Sender<Job>,
    ctx: &BatchContext,
    events: Vec<PreparedEvent>,
    mut rejections: Vec<Rejection>,
) -> Result<PendingAck> {
    shared
        .stats
        .rejected
        .fetch_add(rejections.len() as u64, Ordering::Relaxed);
    let suppressed = rejections
        .iter()
        .filter(|r| r.field == crate::event::SUPPRESSED)
        .count();
    if suppressed > 0 {
        shared.stats.suppressed.fetch_add(suppressed as u64, Ordering::Relaxed);
    }
    let indices = events.iter().map(|e| e.index).collect::<Vec<_>>();
    let rejected: Vec<_> = rejections
        .iter_mut()
        .map(|rejection| crate::rejected::record(ctx.source_id, ctx.received_ms, rejection))
        .collect();
    let violations = std::mem::take(&mut *ctx.violations.lock());
    let mut reply = None;
    if !events.is_empty() || !rejected.is_empty() {
        let (reply_tx, reply_rx) = bounded(1);
        sender
            .send(Job {
                source_id: ctx.source_id,
                events,
                rejected,
                violations,
                reply: reply_tx,
                erase: None,
            })
            .map_err(|_| EngineError::ShutDown)?;
        reply = Some(reply_rx);
    }
    Ok(PendingAck {
        reply,
        indices,
        rejections,
    })
}

/// Makes a committed group visible (profiles, index, tail) and only then acks it, so a reader
/// told of an ack finds the events (read-your-writes).
fn publish(shared: &Shared, batch: Committed) {
    let Committed {
        mut group,
        outcomes,
        first_seq,
        through,
    } = batch;
    resolve_identities(shared, &group, &outcomes, first_seq);
    snapshot_if_due(shared, through);
    index_postings(shared, &mut group, &outcomes, first_seq, through);
    *shared.committed.lock() = through;
    shared.committed_changed.notify_all();
    for (job, outcome) in group.into_iter().zip(outcomes) {
        let answer = outcome
            .into_iter()
            .zip(job.events)
            .map(|(stored, event)| (stored, event.message_id))
            .collect();
        let _ = job.reply.send(Ok(answer));
    }
}

/// Every `snapshot_every_events`: encodes the identity state under its lock (the one pause the
/// ingest path sees) and writes the file on a thread of its own. Skipped while one is written.
fn snapshot_if_due(shared: &Shared, through: u64) {
    let every = shared.config.snapshot_every_events;
    let Some(snapshots) = &shared.snapshots else {
        return;
    };
    if every == 0 || through < shared.snapshot_covers.lock().0 + every {
        return;
    }
    let mut writer = shared.snapshot_writer.lock();
    if writer.as_ref().is_some_and(|thread| !thread.is_finished()) {
        return;
    }
    let started = Instant::now();
    let encoded = {
        let state = shared.profiles.lock();
        let covers = (state.resolved_through, state.administration());
        state.snapshot_bytes().map(|bytes| (bytes, covers))
    };
    let encoding = started.elapsed();
    let (bytes, covered) = match encoded {
        Ok(encoded) => encoded,
        Err(err) => {
            log::warn!("cannot encode an identity snapshot: {err}");
            return;
        }
    };
    // Counted as taken even if writing fails: the next try waits another interval.
    *shared.snapshot_covers.lock() = covered;
    let snapshots = snapshots.clone();
    let spawned = std::thread::Builder::new()
        .name("tributary-snapshot".into())
        .spawn(move || {
            let started = Instant::now();
            match snapshots.write(SNAPSHOT_NAME, &bytes) {
                Ok(()) => log::info!(
                    "identity snapshot through event {}: {} MB, encoded in {:.2} s (resolution paused meanwhile), written in {:.2} s",
                    covered.0,
                    bytes.len() >> 20,
                    encoding.as_secs_f64(),
                    started.elapsed().as_secs_f64()
                ),
                Err(err) => log::warn!("identity snapshot not written (the previous one stays): {err}"),
            }
        });
    match spawned {
        Ok(thread) => *writer = Some(thread),
        Err(err) => log::warn!("cannot start the snapshot writer: {err}"),
    }
}

/// Resolves the accepted events of a committed group into profiles, in log order, and tells
/// the Engage worker which profiles they touched (their primary nodes, with the event names and
/// trait keys they carried): only when real-time definitions exist, and never of the worker's
/// own events.
fn resolve_identities(shared: &Shared, group: &[Job], outcomes: &[Vec<Stored>], first_seq: u64) {
    use crate::engage::realtime::Message;
    let hub = &shared.engage_hub;
    let active = hub.active.load(Ordering::Acquire);
    let own = hub.source_id.load(Ordering::Acquire);
    let accepted = group
        .iter()
        .zip(outcomes)
        .flat_map(|(job, job_outcomes)| {
            let derived = own != 0 && job.source_id == own;
            let report = active && !derived;
            job.events
                .iter()
                .zip(job_outcomes)
                .map(move |pair| (pair, report, derived))
        })
        .filter(|((_, outcome), ..)| **outcome == Stored::Accepted)
        .zip(first_seq..)
        .map(|(((event, _), report, derived), seq)| Resolvable {
            seq,
            message_id: &event.message_id,
            timestamp_ms: event.timestamp_ms,
            identifiers: &event.profile_identifiers,
            sets_traits: event.sets_traits,
            account: event.account.as_deref(),
            engage_name: event.engage_name.as_deref(),
            engage_traits: event.engage_traits.as_ref(),
            revenue: event.revenue,
            received_ms: event.received_ms,
            derived,
            report,
        });
    let (touches, rebuilt) = shared.profiles.resolve(&shared.store, accepted);
    if !active {
        return;
    }
    // A late event replayed a cluster: that may have split profiles it did not touch.
    if hub.rebuilt_clusters.swap(rebuilt, Ordering::AcqRel) != rebuilt {
        hub.send(Message::ReconcileAll);
    }
    if !touches.is_empty() {
        hub.send(Message::Touched(touches));
    }
}

/// Hands the identifier keys of the accepted events (moved, not copied) to the index.
fn index_postings(shared: &Shared, group: &mut [Job], outcomes: &[Vec<Stored>], first_seq: u64, through: u64) {
    let mut seq = first_seq;
    let mut postings = Vec::new();
    for (job, job_outcomes) in group.iter_mut().zip(outcomes) {
        for (event, outcome) in job.events.iter_mut().zip(job_outcomes) {
            if *outcome == Stored::Accepted {
                postings.extend(
                    std::mem::take(&mut event.identifier_keys)
                        .into_iter()
                        .map(|key| (key, seq)),
                );
                seq += 1;
            }
        }
    }
    shared.index.add(postings, through);
}

/// What one group's transaction decided, applied to memory only after it committed.
struct GroupWrite {
    outcomes: Vec<Vec<Stored>>,
    last_rejected: Option<u64>,
    markers: Vec<(DedupeKey, Marker)>,
    next_seq: u64,
    counts: [u64; 3],
}

/// Writes one group in one transaction: appends only (events and dedupe markers). On error
/// nothing of it is visible and `state` is unchanged.
fn write_group(shared: &Shared, state: &mut WriterState, group: &mut [Job]) -> Result<Vec<Vec<Stored>>> {
    let dbs = &shared.store.log_dbs;
    let now_ms = time::now_ms();
    let mut value = Vec::new();
    let (write, grows) = shared.store.log.write_with_growth(|txn| {
        let mut next_seq = state.next_seq;
        let mut in_group: KeyMap<u32> = KeyMap::default();
        let mut write = GroupWrite {
            outcomes: Vec::with_capacity(group.len()),
            last_rejected: None,
            markers: Vec::new(),
            next_seq,
            counts: [0; 3],
        };
        for job in group.iter() {
            let mut job_outcomes = Vec::with_capacity(job.events.len());
            for event in &job.events {
                let seen = event
                    .dedupe_key
                    .as_ref()
                    .and_then(|key| in_group.get(key).copied().or_else(|| state.dedupe.check(key)));
                let outcome = match seen {
                    Some(fp) if fp == short_fingerprint(event.fingerprint) => Stored::Duplicate,
                    Some(_) => Stored::Conflict,
                    None => {
                        let seq = next_seq;
                        next_seq += 1;
                        value.clear();
                        value.extend_from_slice(&job.source_id.to_be_bytes());
                        value.extend_from_slice(&event.encoded);
                        dbs.events.put_with_flags(txn, PutFlags::APPEND, &seq, &value)?;
                        if let Some(key) = event.dedupe_key {
                            let marker = Marker {
                                fingerprint: event.fingerprint,
                                received_ms: now_ms,
                            };
                            dbs.dedupe_log
                                .put_with_flags(txn, PutFlags::APPEND, &seq, &marker.encode(&key))?;
                            in_group.insert(key, short_fingerprint(event.fingerprint));
                            write.markers.push((key, marker));
                        }
                        Stored::Accepted
                    }
                };
                write.counts[outcome as usize] += 1;
                job_outcomes.push(outcome);
            }
            write.outcomes.push(job_outcomes);
        }
        write.next_seq = next_seq;
        let mut rejected: Vec<_> = group.iter_mut().flat_map(|job| job.rejected.iter_mut()).collect();
        write.last_rejected = crate::rejected::write(
            txn,
            &mut rejected,
            dbs.rejected,
            dbs.rejected_counts,
            shared.config.max_rejected_kept,
        )?;
        if group.iter().any(|job| !job.violations.is_empty()) {
            let mut tally = crate::governance::store::Tally::default();
            for job in group.iter() {
                tally.merge_from(&job.violations);
            }
            crate::governance::store::write(txn, &dbs.governance, &tally, now_ms)?;
        }
        Ok(write)
    })?;

    state.next_seq = write.next_seq;
    for (key, marker) in write.markers {
        state.dedupe.insert(key, marker.fingerprint);
    }
    let dedupe_bytes = state.dedupe.memory_bytes() as u64;
    shared.stats.dedupe_bytes.store(dedupe_bytes, Ordering::Relaxed);
    let stats = &shared.stats;
    if let Some(last) = write.last_rejected {
        stats.last_rejected_id.store(last, Ordering::Release);
    }
    {
        let mut by_source = stats.stored_by_source.lock();
        for (job, outcomes) in group.iter().zip(&write.outcomes) {
            let stored = outcomes.iter().filter(|o| **o == Stored::Accepted).count() as u64;
            *by_source.entry(job.source_id).or_default() += stored;
        }
    }
    stats.map_grows.fetch_add(u64::from(grows), Ordering::Relaxed);
    stats
        .accepted
        .fetch_add(write.counts[Stored::Accepted as usize], Ordering::Relaxed);
    stats
        .duplicates
        .fetch_add(write.counts[Stored::Duplicate as usize], Ordering::Relaxed);
    stats
        .conflicts
        .fetch_add(write.counts[Stored::Conflict as usize], Ordering::Relaxed);
    Ok(write.outcomes)
}

/// Removes events and their dedupe markers from the log in one transaction with the deletion's
/// records, then forgets their keys in memory; returns how many events were removed.
fn erase_events(shared: &Shared, state: &mut WriterState, seqs: Vec<u64>, mut record: EraseRecord) -> Result<usize> {
    let dbs = &shared.store.log_dbs;
    let ((removed, markers), grows) = shared.store.log.write_with_growth(|txn| {
        let mut removed = 0;
        let mut markers = Vec::new();
        for seq in &seqs {
            if dbs.events.delete(txn, seq)? {
                removed += 1;
            }
            if let Some((key, _)) = dbs.dedupe_log.get(txn, seq)?.and_then(Marker::decode) {
                markers.push((*seq, key));
                dbs.dedupe_log.delete(txn, seq)?;
            }
        }
        record(txn, removed)?;
        Ok((removed, markers))
    })?;
    for (seq, key) in &markers {
        state.dedupe.forget(*seq, key);
    }
    shared.stats.map_grows.fetch_add(u64::from(grows), Ordering::Relaxed);
    Ok(removed)
}

fn sweep_if_due(shared: &Shared, state: &mut WriterState) {
    let now = Instant::now();
    if now < state.next_sweep {
        return;
    }
    state.next_sweep = match sweep_dedupe(shared, state) {
        // More to do: again before the next group, so that expiry keeps up with a high rate.
        Ok(SWEEP_BATCH) => now,
        Ok(_) => now + SWEEP_EVERY.min(shared.config.dedupe_window / 4),
        Err(err) => {
            log::warn!("dedupe sweep failed: {err}");
            now + SWEEP_EVERY
        }
    };
}

/// Forgets dedupe markers older than the window: deletes them from the head of the log
/// (oldest first, a bounded number per call) and their keys from memory once that committed.
/// Returns how many; `SWEEP_BATCH` means there may be more.
fn sweep_dedupe(shared: &Shared, state: &mut WriterState) -> Result<usize> {
    let cutoff = time::now_ms() - shared.config.dedupe_window.as_millis() as i64;
    let dbs = &shared.store.log_dbs;
    let (expired, _) = shared.store.log.write_with_growth(|txn| {
        let mut expired = Vec::new();
        for entry in dbs.dedupe_log.iter(txn)? {
            let (seq, value) = entry?;
            let marker = Marker::decode(value);
            if marker.is_some_and(|(_, marker)| marker.received_ms >= cutoff) || expired.len() >= SWEEP_BATCH {
                break;
            }
            expired.push((seq, marker.map(|(key, _)| key)));
        }
        for (seq, _) in &expired {
            dbs.dedupe_log.delete(txn, seq)?;
        }
        Ok(expired)
    })?;
    for (seq, key) in &expired {
        if let Some(key) = key {
            state.dedupe.forget(*seq, key);
        }
    }
    Ok(expired.len())
}

#[cfg(test)]
mod request_properties;
#[cfg(test)]
mod tests;
