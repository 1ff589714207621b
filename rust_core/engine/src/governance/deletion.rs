//! Privacy deletion (Segment's `SUPPRESS_WITH_DELETE` and `DELETE_ONLY`): a person's events,
//! identifiers, traits, links, audience bits, dedupe markers, rejected events, violation
//! examples and dead letters leave every store, the identity snapshot is rewritten, destinations
//! that accept one get a deletion notice, and the pages LMDB freed are zeroed (`scrub`).
//!
//! The person is every identifier named and every identifier linked to them when the regulation
//! is made. Their events are those, stored up to the deletion, that carry any of those
//! identifiers (`profiles::erase`); with `SUPPRESS_WITH_DELETE` later ones are refused at ingest
//! from the moment the regulation is made, with `DELETE_ONLY` later ones are kept.
//!
//! One thread (`tributary-deletion`) works the regulations in order, in stages named in the
//! receipt (INITIALIZED → RUNNING → FINISHED, or FAILED for a destination that would not take its
//! notice, making the whole PARTIAL_SUCCESS). What a stage needs is kept in the `deletions`
//! database (regulation id → `Work`) until the last stage, so a crash at any point resumes where
//! it stopped: every stage can run again. The log is the source of truth: its events are removed
//! in one transaction (on the writer thread, which forgets their dedupe markers in step) that
//! also counts the deletion in the log's meta; identity snapshots record that count, so one taken
//! before the deletion is never loaded after it, and a restart before the new snapshot replays
//! the log without the events. Removed seqs are never given out again.
//!
//! The `Work` record holds the person's identifiers in the clear while it runs (they are needed
//! to find the index entries and to tell destinations whom to delete); the last stage drops them
//! and then scrubs, so nothing of the person remains in the data files once it is FINISHED.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use heed::types::Bytes;
use heed::{Database, RwTxn};
use parking_lot::{Condvar, Mutex};
use prost::Message;
use rustc_hash::FxHashSet;
use serde_json::{json, Value};

use crate::error::{EngineError, Result};
use crate::governance::regulations::RegulationDbs;
use crate::identifiers::Identifier;
use crate::ingest::{erase_log, Engine, EraseRecord, Job, Shared};
use crate::proto::{self, Regulation, RegulationStatus, RegulationType, StoreStatus};
use crate::store::{BeU64, Store};
use crate::time;

/// Log meta: how many deletions the log has applied (identity snapshots record it).
pub const META_APPLIED: &str = "deletions_applied";
/// Log meta: the highest seq a deletion removed (never given out again).
pub const META_DELETED_THROUGH: &str = "deleted_through";

/// The stages, as the receipt names them, in the order they run.
const EVENTS: &str = "events and dedupe markers";
const PROFILES: &str = "profiles, traits, links and audiences";
const INDEX: &str = "identifier index";
const REJECTED: &str = "rejected events";
const VIOLATIONS: &str = "violation examples";
const DEAD_LETTERS: &str = "dead letters";
const SNAPSHOT: &str = "identity snapshot";
/// A destination's notice: this and its name.
const DESTINATION: &str = "destination ";
const SCRUB: &str = "freed pages";
const ENGINE_STAGES: [&str; 7] = [EVENTS, PROFILES, INDEX, REJECTED, VIOLATIONS, DEAD_LETTERS, SNAPSHOT];

/// Destination kinds that act on a notice (`cdp_server/destinations/deletion.py`).
const NOTICE_KINDS: [&str; 2] = ["webhook", "warehouse"];
/// How often the thread looks again while notices are out.
const NOTICE_POLL: Duration = Duration::from_secs(1);

pub type WorkDb = Database<BeU64, Bytes>;

/// A notice not yet taken: its regulation, destination name, the highest removed seq (the
/// destination's cursor must pass it first, so that nothing of the person it is still delivering
/// lands after the notice) and the notice (JSON).
/// A notice not yet taken: (regulation, destination, the highest removed log sequence, the notice
/// as JSON, whether an attempt to send it has started before: perhaps before a restart, when the
/// destination may have done the deleting already).
pub type PendingNotice = (u64, String, u64, Vec<u8>, bool);

/// A destination stage's detail once its notice has gone out (`start_deletion_notice`).
const NOTICE_SENT: &str = "notice sent; waiting for the destination's answer";

/// What a running deletion needs (see the module docs).
#[derive(serde::Serialize, serde::Deserialize)]
struct Work {
    /// The person: the identifiers named and those linked to them.
    person: Vec<Identifier>,
    /// Set in the transaction that removed the events.
    erased: Option<Erased>,
    /// The deletion notice (JSON), once the events are removed.
    notice: Vec<u8>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Erased {
    /// The removed events' seqs.
    seqs: Vec<u64>,
    /// Every identifier they carried.
    identifiers: Vec<Identifier>,
    /// Their property and trait texts (violation examples holding one are cleared).
    values: Vec<String>,
}

/// Wakes the deletion thread.
#[derive(Default)]
pub struct Control {
    wake: Mutex<bool>,
    changed: Condvar,
    pub(crate) stopping: AtomicBool,
    /// Deletions whose events this process removed from the log and whose profiles stage has not
    /// finished (it failed): their profiles are erased again, not taken as rebuilt at start-up.
    erased_here: Mutex<FxHashSet<u64>>,
}

impl Control {
    pub(crate) fn notify(&self) {
        *self.wake.lock() = true;
        self.changed.notify_all();
    }

    pub(crate) fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        self.notify();
    }

    fn wait(&self, timeout: Duration) {
        let mut woken = self.wake.lock();
        if !*woken {
            self.changed.wait_for(&mut woken, timeout);
        }
        *woken = false;
    }
}

/// The number of deletions the log has applied.
pub fn applied(store: &Store) -> Result<u64> {
    let txn = store.log.read()?;
    Ok(store.log_dbs.meta.get(&txn.txn, META_APPLIED)?.unwrap_or(0))
}

/// Records a new deletion in the transaction that makes its regulation: the receipt lists every
/// stage INITIALIZED, one per destination that takes a notice.
pub(crate) fn begin(
    txn: &mut RwTxn<'_>,
    store: &Store,
    regulation: &mut Regulation,
    person: &[Identifier],
) -> Result<()> {
    let mut stores: Vec<String> = ENGINE_STAGES.iter().map(|s| (*s).to_owned()).collect();
    for entry in store.log_dbs.destinations.iter(txn)? {
        let (name, bytes) = entry?;
        let destination: proto::Destination = proto::decode_record(bytes, "a destination")?;
        if NOTICE_KINDS.contains(&destination.kind.as_str()) {
            stores.push(format!("{DESTINATION}{name}"));
        }
    }
    stores.push(SCRUB.to_owned());
    regulation.status = RegulationStatus::Initialized as i32;
    regulation.finished_at_ms = 0;
    regulation.stores.extend(stores.into_iter().map(|store| StoreStatus {
        store,
        status: RegulationStatus::Initialized as i32,
        detail: String::new(),
    }));
    let work = Work {
        person: person.to_vec(),
        erased: None,
        notice: Vec::new(),
    };
    store
        .log_dbs
        .regulations
        .deletions
        .put(txn, &regulation.id, &encode(&work)?)?;
    Ok(())
}

fn encode(work: &Work) -> Result<Vec<u8>> {
    postcard::to_allocvec(work).map_err(|e| EngineError::Storage(format!("cannot encode a deletion: {e}")))
}

fn decode(bytes: &[u8]) -> Result<Work> {
    postcard::from_bytes(bytes).map_err(|e| EngineError::Storage(format!("a deletion record does not decode: {e}")))
}

fn stage<'a>(regulation: &'a Regulation, name: &str) -> Option<&'a StoreStatus> {
    regulation.stores.iter().find(|s| s.store == name)
}

fn is_settled(status: &StoreStatus) -> bool {
    status.status == RegulationStatus::Finished as i32 || status.status == RegulationStatus::Failed as i32
}

fn done(regulation: &Regulation, name: &str) -> bool {
    stage(regulation, name).is_none_or(is_settled)
}

fn set_stage(regulation: &mut Regulation, name: &str, status: RegulationStatus, detail: String) {
    if let Some(stage) = regulation.stores.iter_mut().find(|s| s.store == name) {
        stage.status = status as i32;
        stage.detail = detail;
    }
}

/// The thread: works every deletion that is not finished, oldest first, until the engine closes.
pub(crate) fn run(shared: &Arc<Shared>, jobs: &Sender<Job>) {
    let control = &shared.deletions;
    while !control.stopping.load(Ordering::Acquire) {
        let pending = match pending(&shared.store) {
            Ok(pending) => pending,
            Err(err) => {
                log::error!("cannot read the deletions to do: {err}");
                Vec::new()
            }
        };
        let mut waiting = false;
        for id in pending {
            if control.stopping.load(Ordering::Acquire) {
                return;
            }
            match advance(shared, jobs, id) {
                Ok(finished) => waiting |= !finished,
                Err(EngineError::ShutDown) => return,
                Err(err) => {
                    // Every stage can run again: the next round retries.
                    log::error!("deletion {id} stopped at a stage (retried): {err}");
                    waiting = true;
                }
            }
        }
        control.wait(if waiting {
            NOTICE_POLL
        } else {
            Duration::from_secs(3600)
        });
    }
}

fn pending(store: &Store) -> Result<Vec<u64>> {
    let txn = store.log.read()?;
    let mut ids = Vec::new();
    for entry in store.log_dbs.regulations.deletions.iter(&txn.txn)? {
        ids.push(entry?.0);
    }
    Ok(ids)
}

fn read(store: &Store, id: u64) -> Result<Option<(Work, Regulation)>> {
    let txn = store.log.read()?;
    let dbs = &store.log_dbs.regulations;
    let Some(work) = dbs.deletions.get(&txn.txn, &id)? else {
        return Ok(None);
    };
    let Some(regulation) = dbs.regulations.get(&txn.txn, &id)? else {
        return Err(EngineError::Storage(format!("deletion {id} has no regulation record")));
    };
    Ok(Some((decode(work)?, proto::decode_record(regulation, "a regulation")?)))
}

/// Rewrites a regulation's receipt (and the work record, when given) in `txn`.
fn write(txn: &mut RwTxn<'_>, store: &Store, regulation: &mut Regulation, work: Option<&Work>) -> Result<()> {
    let dbs = &store.log_dbs.regulations;
    put_receipt(txn, dbs, regulation)?;
    if let Some(work) = work {
        dbs.deletions.put(txn, &regulation.id, &encode(work)?)?;
    }
    Ok(())
}

/// Stores this thread's copy of a receipt, keeping the destination stages that the delivery
/// side settled meanwhile (`finish_deletion_notice` writes those).
fn put_receipt(txn: &mut RwTxn<'_>, dbs: &RegulationDbs, regulation: &mut Regulation) -> Result<()> {
    if let Some(bytes) = dbs.regulations.get(txn, &regulation.id)? {
        let stored: Regulation = proto::decode_record(bytes, "a regulation")?;
        for settled in stored
            .stores
            .iter()
            .filter(|s| s.store.starts_with(DESTINATION) && is_settled(s))
        {
            set_stage(
                regulation,
                &settled.store,
                RegulationStatus::try_from(settled.status).unwrap_or(RegulationStatus::Finished),
                settled.detail.clone(),
            );
        }
    }
    dbs.regulations.put(txn, &regulation.id, &regulation.encode_to_vec())?;
    Ok(())
}

/// Takes one deletion as far as it can go; true once it is finished.
fn advance(shared: &Arc<Shared>, jobs: &Sender<Job>, id: u64) -> Result<bool> {
    let store = &shared.store;
    let Some((mut work, mut regulation)) = read(store, id)? else {
        return Ok(true);
    };
    if regulation.status == RegulationStatus::Initialized as i32 {
        regulation.status = RegulationStatus::Running as i32;
        store
            .log
            .write_with_growth(|txn| write(txn, store, &mut regulation, None))?;
    }
    if !done(&regulation, EVENTS) {
        erase_events(shared, jobs, &mut work, &mut regulation)?;
    } else if !done(&regulation, PROFILES) {
        if shared.deletions.erased_here.lock().contains(&id) {
            let identifiers = work.erased.as_ref().map(|e| e.identifiers.clone()).unwrap_or_default();
            erase_profiles(shared, &identifiers, &mut regulation)?;
        } else {
            // The crash came between the two: start-up rebuilt the profiles from the log, which
            // no longer holds the events (a snapshot from before the deletion is not loaded).
            set_stage(
                &mut regulation,
                PROFILES,
                RegulationStatus::Finished,
                "rebuilt from the log at start-up".into(),
            );
            store
                .log
                .write_with_growth(|txn| write(txn, store, &mut regulation, None))?;
        }
    }
    let erased = work
        .erased
        .as_ref()
        .ok_or_else(|| EngineError::Storage(format!("deletion {id}: its events stage left no record")))?;
    let stages: [(&str, &dyn Fn() -> Result<String>); 5] = [
        (INDEX, &|| erase_index(shared, erased)),
        (REJECTED, &|| erase_rejected(shared, &work.person, erased)),
        (VIOLATIONS, &|| erase_examples(store, id, erased)),
        (DEAD_LETTERS, &|| erase_dead_letters(store, erased)),
        (SNAPSHOT, &|| {
            crate::ingest::replace_snapshot(shared)?;
            Ok("the one from before removed; rewritten in the background".into())
        }),
    ];
    for (name, work_stage) in stages {
        if done(&regulation, name) {
            continue;
        }
        let started = Instant::now();
        let detail = work_stage()?;
        set_stage(&mut regulation, name, RegulationStatus::Finished, detail);
        regulation.engine_seconds += started.elapsed().as_secs_f64();
        store
            .log
            .write_with_growth(|txn| write(txn, store, &mut regulation, None))?;
        pause(shared);
    }
    let notices_out = regulation
        .stores
        .iter()
        .any(|s| s.store.starts_with(DESTINATION) && !is_settled(s));
    if notices_out {
        return Ok(false);
    }
    finish(shared, id, work, regulation)?;
    Ok(true)
}

/// The events stage, then the profiles stage (in memory, at once after it).
fn erase_events(shared: &Shared, jobs: &Sender<Job>, work: &mut Work, regulation: &mut Regulation) -> Result<()> {
    let store = &shared.store;
    let started = Instant::now();
    // Every batch queued before now is committed and resolved first, so the plan sees it (with
    // SUPPRESS_WITH_DELETE, batches prepared before the suppression took effect).
    erase_log(jobs, Vec::new(), Box::new(|_, _| Ok(())))?;
    let through = crate::profiles::last_seq(store)?;
    loop {
        let mut committed = shared.committed.lock();
        if *committed >= through {
            break;
        }
        shared
            .committed_changed
            .wait_for(&mut committed, Duration::from_millis(50));
    }
    let erasure = shared.profiles.lock().plan_erasure(store, &work.person)?;
    let exited = audiences_exited(store, &erasure.flags)?;
    work.notice = notice(regulation, &work.person, &exited);
    let erased = Erased {
        seqs: erasure.seqs,
        identifiers: erasure.identifiers,
        values: erasure.values,
    };
    let seqs = erased.seqs.clone();
    let identifiers = erased.identifiers.clone();
    work.erased = Some(erased);
    // What the writer's transaction records with the removal.
    let record: EraseRecord = {
        let dbs = store.log_dbs;
        let mut regulation = regulation.clone();
        let work = encode(work)?;
        let highest = seqs.last().copied().unwrap_or(0);
        let exited = exited.len();
        Box::new(move |txn: &mut RwTxn<'_>, removed: usize| -> Result<()> {
            let count = dbs.meta.get(txn, META_APPLIED)?.unwrap_or(0) + 1;
            dbs.meta.put(txn, META_APPLIED, &count)?;
            let deleted_through = dbs.meta.get(txn, META_DELETED_THROUGH)?.unwrap_or(0).max(highest);
            dbs.meta.put(txn, META_DELETED_THROUGH, &deleted_through)?;
            set_stage(
                &mut regulation,
                EVENTS,
                RegulationStatus::Finished,
                events_detail(removed, exited),
            );
            put_receipt(txn, &dbs.regulations, &mut regulation)?;
            dbs.regulations.deletions.put(txn, &regulation.id, &work)?;
            Ok(())
        })
    };
    let removed = erase_log(jobs, seqs, record)?;
    set_stage(
        regulation,
        EVENTS,
        RegulationStatus::Finished,
        events_detail(removed, exited.len()),
    );
    shared.deletions.erased_here.lock().insert(regulation.id);
    regulation.engine_seconds += started.elapsed().as_secs_f64();
    pause(shared);
    erase_profiles(shared, &identifiers, regulation)
}

/// The profiles stage: the in-memory state without the events the log no longer holds.
fn erase_profiles(shared: &Shared, identifiers: &[Identifier], regulation: &mut Regulation) -> Result<()> {
    let store = &shared.store;
    let started = Instant::now();
    let outcome = shared.profiles.lock().erase(store, identifiers, applied(store)?)?;
    if shared.engage_hub.active.load(Ordering::Acquire) {
        shared.engage_hub.send(crate::engage::realtime::Message::ReconcileAll);
    }
    set_stage(
        regulation,
        PROFILES,
        RegulationStatus::Finished,
        format!(
            "{} identifiers and {} profile ids removed; {} identifiers of others kept",
            outcome.erased,
            outcome.gone.len(),
            outcome.members.len() - outcome.erased
        ),
    );
    regulation.engine_seconds += started.elapsed().as_secs_f64();
    store.log.write_with_growth(|txn| write(txn, store, regulation, None))?;
    shared.deletions.erased_here.lock().remove(&regulation.id);
    Ok(())
}

/// The test setting `deletion_stage_pause` (a chance to kill the process between stages).
fn pause(shared: &Shared) {
    let pause = shared.config.deletion_stage_pause;
    if !pause.is_zero() {
        std::thread::sleep(pause);
    }
}

fn events_detail(removed: usize, exited: usize) -> String {
    format!("{removed} events removed with their dedupe markers; {exited} audiences exited")
}

/// The audiences the person was in when deleted (their `Audience Exited` go in the notice).
fn audiences_exited(store: &Store, flags: &rustc_hash::FxHashMap<String, (i64, u64, bool)>) -> Result<Vec<String>> {
    if flags.is_empty() {
        return Ok(Vec::new());
    }
    let txn = store.log.read()?;
    let mut exited = Vec::new();
    for (key, &(_, _, member)) in flags {
        if !member {
            continue;
        }
        let Some(bytes) = store.log_dbs.audiences.get(&txn.txn, key)? else {
            continue;
        };
        let audience: proto::Audience = proto::decode_record(bytes, "an audience")?;
        if audience.r#type != proto::DefinitionType::ComputedTrait as i32 {
            exited.push(key.clone());
        }
    }
    exited.sort();
    Ok(exited)
}

/// The deletion notice destinations get (`cdp_server/destinations/deletion.py`): the person's
/// identifiers, and the events to send: an `Audience Exited` for each audience they were in,
/// then a `delete` call (Segment's name for a user deletion forwarded to destinations).
fn notice(regulation: &Regulation, person: &[Identifier], exited: &[String]) -> Vec<u8> {
    let first = |kind: &str| person.iter().find(|i| i.kind == kind).map(|i| i.value.clone());
    let (user_id, anonymous_id) = (first("user_id"), first("anonymous_id"));
    let now = crate::event_json::iso8601_ms(time::now_ms());
    let kind = RegulationType::try_from(regulation.r#type)
        .map(|t| t.as_str_name().trim_start_matches("REGULATION_TYPE_").to_owned())
        .unwrap_or_default();
    let who = |event: &mut Value| {
        if let Some(user_id) = &user_id {
            event["userId"] = json!(user_id);
        }
        if let Some(anonymous_id) = &anonymous_id {
            event["anonymousId"] = json!(anonymous_id);
        }
    };
    let mut events: Vec<Value> = exited
        .iter()
        .map(|key| {
            let mut event = json!({
                "type": "track",
                "event": "Audience Exited",
                "messageId": format!("deletion-{}-exit-{key}", regulation.id),
                "timestamp": now,
                "properties": {"audience_key": key, key.as_str(): false},
                "context": {"personas": {"computation_key": key, "computation_class": "audience"}},
            });
            who(&mut event);
            event
        })
        .collect();
    let mut delete = json!({
        "type": "delete",
        "messageId": format!("deletion-{}", regulation.id),
        "timestamp": now,
        "context": {
            "regulation": {"id": regulation.id.to_string(), "type": kind},
            "externalIds": person.iter().map(|i| json!({"type": i.kind, "id": i.value})).collect::<Vec<_>>(),
        },
    });
    who(&mut delete);
    events.push(delete);
    json!({
        "regulationId": regulation.id.to_string(),
        "identifiers": person.iter().map(|i| json!({"type": i.kind, "value": i.value})).collect::<Vec<_>>(),
        "events": events,
    })
    .to_string()
    .into_bytes()
}

fn erase_index(shared: &Shared, erased: &Erased) -> Result<String> {
    let removed = shared.index.erase(&shared.store, &erased.identifiers, &erased.seqs)?;
    Ok(format!("{removed} identifiers and their event lists removed"))
}

/// Rejected events that carry any of the person's identifiers (those not parsed: that name one
/// as a JSON string).
fn erase_rejected(shared: &Shared, person: &[Identifier], erased: &Erased) -> Result<String> {
    let store = &shared.store;
    let wanted: FxHashSet<u128> = person
        .iter()
        .chain(&erased.identifiers)
        .map(Identifier::hash128)
        .collect();
    let needles: Vec<Vec<u8>> = person
        .iter()
        .chain(&erased.identifiers)
        .map(|i| serde_json::to_vec(&i.value).unwrap_or_default())
        .collect();
    // The workspace's custom identifier types too (an identifier read from a trait).
    let custom = shared.profiles.custom();
    let (removed, _) = store.log.write_with_growth(|txn| {
        let db = store.log_dbs.rejected;
        let mut doomed = Vec::new();
        for entry in db.iter(txn)? {
            let (id, bytes) = entry?;
            let record: proto::RejectedEvent = proto::decode_record(bytes, "a rejected event")?;
            let named = match &record.event {
                Some(event) => crate::identifiers::of_event(event, &custom)
                    .iter()
                    .any(|i| wanted.contains(&i.hash128())),
                None => needles.iter().any(|needle| contains(&record.raw, needle)),
            };
            if named {
                doomed.push(id);
            }
        }
        for id in &doomed {
            db.delete(txn, id)?;
        }
        Ok(doomed.len())
    })?;
    Ok(format!("{removed} removed"))
}

/// Violation examples (and the descriptions quoting them) that hold one of the person's texts.
fn erase_examples(store: &Store, regulation: u64, erased: &Erased) -> Result<String> {
    let needles: Vec<&[u8]> = erased.values.iter().map(|v| v.as_bytes()).collect();
    let (cleared, _) = store.log.write_with_growth(|txn| {
        let db = store.log_dbs.governance.violations;
        let mut changed = Vec::new();
        for entry in db.iter(txn)? {
            let (key, bytes) = entry?;
            let mut violation: proto::Violation = proto::decode_record(bytes, "a violation")?;
            let quoted = |text: &str| needles.iter().any(|n| contains(text.as_bytes(), n));
            if quoted(&violation.example) || quoted(&violation.description) {
                violation.example.clear();
                violation.description = format!("its example was removed by privacy regulation {regulation}");
                changed.push((key.to_vec(), violation.encode_to_vec()));
            }
        }
        for (key, value) in &changed {
            db.put(txn, key, value)?;
        }
        Ok(changed.len())
    })?;
    Ok(format!("{cleared} examples cleared"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Dead letters of the removed events, for every destination.
fn erase_dead_letters(store: &Store, erased: &Erased) -> Result<String> {
    let dbs = &store.delivery_dbs;
    let (removed, _) = store.delivery.write_with_growth(|txn| {
        let mut destinations = Vec::new();
        for entry in dbs.cursors.iter(txn)? {
            destinations.push(entry?.0);
        }
        let mut removed = 0;
        for &destination in &destinations {
            for &seq in &erased.seqs {
                if dbs
                    .dead_letters
                    .delete(txn, &crate::delivery::dead_letter_key(destination, seq))?
                {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    })?;
    Ok(format!("{removed} removed"))
}

/// The last stage: the work record forgets the person, then the freed pages are zeroed and the
/// receipt closed.
fn finish(shared: &Shared, id: u64, mut work: Work, mut regulation: Regulation) -> Result<()> {
    let store = &shared.store;
    work.person.clear();
    work.notice.clear();
    work.erased = None;
    store
        .log
        .write_with_growth(|txn| write(txn, store, &mut regulation, Some(&work)))?;
    let started = Instant::now();
    let report = store.scrub_all()?;
    set_stage(
        &mut regulation,
        SCRUB,
        RegulationStatus::Finished,
        format!("{} bytes zeroed in the data files", report.bytes_zeroed()),
    );
    let failed = regulation
        .stores
        .iter()
        .any(|s| s.status == RegulationStatus::Failed as i32);
    regulation.status = if failed {
        RegulationStatus::PartialSuccess
    } else {
        RegulationStatus::Finished
    } as i32;
    regulation.finished_at_ms = time::now_ms();
    log::info!(
        "deletion {id} {} (engine {:.3} s, scrub {:.3} s)",
        if failed { "partly done" } else { "finished" },
        regulation.engine_seconds,
        started.elapsed().as_secs_f64()
    );
    store.log.write_with_growth(|txn| {
        write(txn, store, &mut regulation, None)?;
        store.log_dbs.regulations.deletions.delete(txn, &id)?;
        Ok(())
    })?;
    Ok(())
}

impl Engine {
    /// Deletion notices not yet taken by their destination.
    pub fn deletion_notices(&self) -> Result<Vec<PendingNotice>> {
        let store = &self.shared.store;
        let mut out = Vec::new();
        for id in pending(store)? {
            let Some((work, regulation)) = read(store, id)? else {
                continue;
            };
            let Some(erased) = &work.erased else {
                continue;
            };
            for stage in &regulation.stores {
                if let Some(name) = stage.store.strip_prefix(DESTINATION) {
                    if !is_settled(stage) {
                        let through = erased.seqs.last().copied().unwrap_or(0);
                        let sent = stage.detail == NOTICE_SENT;
                        out.push((id, name.to_owned(), through, work.notice.clone(), sent));
                    }
                }
            }
        }
        Ok(out)
    }

    /// The notice of `regulation` is about to go to `destination`: recorded before the call, so a
    /// restart that sends it again knows an earlier attempt may have done the deleting.
    pub fn start_deletion_notice(&self, regulation: u64, destination: &str) -> Result<()> {
        let store = &self.shared.store;
        let name = format!("{DESTINATION}{destination}");
        store.log.write_with_growth(|txn| {
            let dbs = &store.log_dbs.regulations;
            let Some(bytes) = dbs.regulations.get(txn, &regulation)? else {
                return Err(EngineError::NotFound(format!("no regulation {regulation}")));
            };
            let mut record: Regulation = proto::decode_record(bytes, "a regulation")?;
            match stage(&record, &name) {
                Some(found) if !is_settled(found) && found.detail != NOTICE_SENT => {}
                _ => return Ok(()),
            }
            set_stage(&mut record, &name, RegulationStatus::Running, NOTICE_SENT.to_owned());
            dbs.regulations
                .put(txn, &regulation, &record.encode_to_vec())
                .map_err(EngineError::from)
        })?;
        Ok(())
    }

    /// A destination took its notice (`ok`), or gave up on it; `detail` says what it did.
    pub fn finish_deletion_notice(&self, regulation: u64, destination: &str, ok: bool, detail: &str) -> Result<()> {
        let store = &self.shared.store;
        let name = format!("{DESTINATION}{destination}");
        store.log.write_with_growth(|txn| {
            let dbs = &store.log_dbs.regulations;
            let Some(bytes) = dbs.regulations.get(txn, &regulation)? else {
                return Err(EngineError::NotFound(format!("no regulation {regulation}")));
            };
            let mut record: Regulation = proto::decode_record(bytes, "a regulation")?;
            if stage(&record, &name).is_none_or(is_settled) {
                return Ok(());
            }
            let status = if ok {
                RegulationStatus::Finished
            } else {
                RegulationStatus::Failed
            };
            set_stage(&mut record, &name, status, detail.chars().take(500).collect());
            dbs.regulations
                .put(txn, &regulation, &record.encode_to_vec())
                .map_err(EngineError::from)
        })?;
        self.shared.deletions.notify();
        Ok(())
    }
}
