//! Real-time audiences and computed traits: a worker thread that re-evaluates saved
//! definitions for the profiles (and the accounts they are linked to) each committed group
//! touched, and on a timer (time windows move without events), and writes what changed back
//! into the log as events.
//!
//! Exactly once, without any state of its own: the log already holds what was emitted. An
//! audience's last emitted state for a profile is the profile's stored trait named after the
//! key (true after `Audience Entered`, false after `Audience Exited`: the identify written with
//! each of them); a computed trait's is the stored trait itself; an account's, the account's
//! trait (set by the group call written for it). The worker is the only one that
//! decides, it decides against that trait, and it waits for its events to be committed and
//! resolved (the ack) before it decides again. So a crash, a replay or a restart can make it
//! re-evaluate, never emit twice: after a restart it reconciles every definition with what the
//! log says, and emits only the differences.
//!
//! Events the worker wrote (source "Tributary Engage") do not wake it: a definition reading
//! `Audience Entered`/`Exited` events is brought up to date by the next tick instead, so no
//! definition can feed on its own output in a loop.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use parking_lot::Mutex;
use roaring::RoaringBitmap;
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{json, Map, Value};

use super::evaluate::Entity;
use super::plan::Run;
use super::value::order;
use crate::error::{EngineError, Result};
use crate::identity::graph::IdentityGraph;
use crate::ingest::{enqueue, Job, Shared};
use crate::profiles::AccountLinks;
use crate::proto::{self, Audience, Batch, DefinitionType, EntityKind, Event, EventType};
use crate::query::{Body, Comparator, Condition, Definition, Filter, Scalar};
use crate::time;

/// The name of the source the worker's events come from.
pub const ENGAGE_SOURCE: &str = "Tributary Engage";
const META_ENGAGE_SOURCE: &str = "engage_source_id";
/// Most derived events in one batch (Segment's batch limit).
const BATCH: usize = 2_000;
/// Batches of derived events queued and not yet acknowledged, at most.
const IN_FLIGHT: usize = 8;
/// Most touched profiles evaluated under one hold of the graph lock (the publisher waits for it
/// to resolve the next group, so holds stay short).
const PROFILES_PER_LOCK: usize = 256;
/// Under a steady stream the worker decides at most this often: the touches that arrive
/// meanwhile gather, so a profile touched many times is decided once. An idle worker decides
/// at once.
const ROUND: Duration = Duration::from_millis(100);

/// What the publisher tells the worker about a committed group.
pub enum Message {
    /// What each accepted event of a group touched: its primary node and what it carried.
    Touched(Vec<Touch>),
    /// Definitions were created or deleted.
    DefinitionsChanged,
    /// Profiles were split or rebuilt (an admin decision, new rules, a late event that replayed
    /// a cluster): every definition is reconciled over every profile.
    ReconcileAll,
    Stop,
}

/// What one event touched: its primary node, and its event name (as the event index numbers
/// names), the trait keys it set (as the trait index numbers them), or neither (an identify
/// without traits, an alias, a group call: such an event may still merge profiles, so every
/// definition is re-evaluated for its profile).
pub struct Touch {
    pub node: u32,
    pub what: Touching,
}

pub enum Touching {
    Name(u32),
    Traits(Vec<u32>),
    Other,
}

/// The worker's handle, kept in the engine's shared state.
pub struct Hub {
    sender: Sender<Message>,
    receiver: Mutex<Option<Receiver<Message>>>,
    /// Saved definitions exist: only then does the publisher report touches.
    pub active: AtomicBool,
    /// The id of the "Tributary Engage" source (0 before start-up made it).
    pub source_id: AtomicU32,
    /// Keys whose first evaluation over every profile has not finished.
    computing: Mutex<FxHashSet<String>>,
    /// Of those, the share of their first evaluation's events written, in percent.
    progress: Mutex<FxHashMap<String, u32>>,
    /// The graph's count of replayed clusters when the publisher last looked: a change means a
    /// late event rebuilt profiles, which may have split others than the ones it touched.
    pub rebuilt_clusters: std::sync::atomic::AtomicU64,
    /// Each audience's size after each change the worker wrote, (time ms, size), the last
    /// `SIZE_POINTS` (in memory: a chart since the server started).
    sizes: Mutex<FxHashMap<String, std::collections::VecDeque<(i64, u64)>>>,
    /// The saved definitions parsed, for the service's evaluations (None: read them again).
    pub parsed: Mutex<Option<Arc<FxHashMap<String, Definition>>>>,
    /// Bumped by every change of the definitions (see `definitions_changed`).
    pub generation: std::sync::atomic::AtomicU64,
    /// Groups reported by the publisher and not yet evaluated: real time's lag.
    pub backlog: std::sync::atomic::AtomicU64,
}

/// Points of size history kept per audience.
const SIZE_POINTS: usize = 1_000;

impl Default for Hub {
    fn default() -> Self {
        let (sender, receiver) = crossbeam_channel::unbounded();
        Self {
            sender,
            receiver: Mutex::new(Some(receiver)),
            active: AtomicBool::new(false),
            source_id: AtomicU32::new(0),
            computing: Mutex::default(),
            progress: Mutex::default(),
            rebuilt_clusters: std::sync::atomic::AtomicU64::new(0),
            sizes: Mutex::default(),
            parsed: Mutex::default(),
            generation: std::sync::atomic::AtomicU64::new(0),
            backlog: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl Hub {
    pub fn send(&self, message: Message) {
        if matches!(message, Message::Touched(_)) {
            self.backlog.fetch_add(1, Ordering::AcqRel);
        }
        let _ = self.sender.send(message);
    }

    /// Definitions were created, changed or deleted (after their write committed).
    pub fn definitions_changed(&self) {
        let mut parsed = self.parsed.lock();
        self.generation.fetch_add(1, Ordering::AcqRel);
        *parsed = None;
        drop(parsed);
        self.send(Message::DefinitionsChanged);
    }

    pub fn mark_computing(&self, key: &str) {
        self.computing.lock().insert(key.to_owned());
    }

    pub fn is_computing(&self, key: &str) -> bool {
        self.computing.lock().contains(key)
    }

    /// How much of a definition's first evaluation is written, in percent (100 once READY; 0
    /// while its changes are being found).
    pub fn progress(&self, key: &str) -> u32 {
        if !self.is_computing(key) {
            return 100;
        }
        self.progress.lock().get(key).copied().unwrap_or(0)
    }

    fn set_progress(&self, key: &str, written: usize, total: usize) {
        let percent = (written * 100).checked_div(total).unwrap_or(100).min(99);
        self.progress.lock().insert(key.to_owned(), percent as u32);
    }

    /// An audience's size over time (see `sizes`), oldest first.
    pub fn sizes(&self, key: &str) -> Vec<(i64, u64)> {
        self.sizes
            .lock()
            .get(key)
            .map(|points| points.iter().copied().collect())
            .unwrap_or_default()
    }

    fn last_size(&self, key: &str) -> Option<u64> {
        self.sizes
            .lock()
            .get(key)
            .and_then(|points| points.back())
            .map(|&(_, size)| size)
    }

    fn record_size(&self, key: &str, at_ms: i64, size: u64) {
        let mut sizes = self.sizes.lock();
        let points = sizes.entry(key.to_owned()).or_default();
        if points.back().is_some_and(|&(_, last)| last == size) {
            return;
        }
        if points.len() == SIZE_POINTS {
            points.pop_front();
        }
        points.push_back((at_ms, size));
    }
}

/// A saved definition the worker keeps.
struct Kept {
    audience: Audience,
    definition: Definition,
    deps: Deps,
}

impl Kept {
    /// An ACCOUNTS definition: decided per account, its state the account's trait.
    fn of_accounts(&self) -> bool {
        self.audience.kind == EntityKind::Accounts as i32
    }
}

/// What can change a definition's result.
#[derive(Default)]
struct Deps {
    names: FxHashSet<String>,
    traits: FxHashSet<String>,
    /// Time windows or time-relative comparators: the result moves with the clock.
    timed: bool,
}

/// The event names of the worker's own events.
const OWN_EVENTS: [&str; 2] = ["Audience Entered", "Audience Exited"];

impl Deps {
    fn of(definition: &Definition, saved: &FxHashMap<String, Definition>) -> Self {
        let mut deps = Deps::default();
        let mut visiting = vec![definition];
        let mut seen = FxHashSet::default();
        while let Some(definition) = visiting.pop() {
            match &definition.body {
                Body::Audience(condition) => deps.condition(condition),
                Body::ComputedTrait(scalar) => deps.scalar(scalar),
            }
            for name in deps.traits.clone() {
                if let Some(read) = saved.get(&name) {
                    if seen.insert(name) {
                        visiting.push(read);
                    }
                }
            }
        }
        deps
    }

    fn condition(&mut self, condition: &Condition) {
        match condition {
            Condition::And(parts) | Condition::Or(parts) => parts.iter().for_each(|part| self.condition(part)),
            Condition::Not(inner) | Condition::Any(inner) | Condition::All(inner) => self.condition(inner),
            Condition::Compare(comparison) => {
                self.scalar(&comparison.subject);
                if let Some(operand) = comparison.comparator.operand() {
                    self.scalar(operand);
                }
                self.timed |= matches!(
                    comparison.comparator,
                    Comparator::WithinLast(_)
                        | Comparator::WithinNext(_)
                        | Comparator::BeforeLast(_)
                        | Comparator::AfterNext(_)
                );
            }
        }
    }

    fn scalar(&mut self, scalar: &Scalar) {
        match scalar {
            Scalar::Trait(name) => {
                self.traits.insert(name.clone());
            }
            Scalar::Reduced(reduction) => {
                self.names.insert(reduction.stream.name.clone());
                for filter in &reduction.stream.filters {
                    match filter {
                        Filter::Where(condition) => self.condition(condition),
                        Filter::Within(_) | Filter::Between(..) => self.timed = true,
                        Filter::WithinParent(_) | Filter::SourcesExclude(_) => {}
                    }
                }
            }
            Scalar::Literal(_) | Scalar::Field(_) => {}
        }
    }

    /// Reconciled on every tick: the result moves with the clock, or reads the worker's own
    /// events (which never wake it).
    fn on_tick(&self) -> bool {
        self.timed || OWN_EVENTS.iter().any(|name| self.names.contains(*name))
    }
}

/// Which definitions an event name or a trait key can change, by the indexes' numbers.
struct Relevance {
    by_name: FxHashMap<u32, Vec<usize>>,
    by_trait: FxHashMap<u32, Vec<usize>>,
    all: Vec<usize>,
}

impl Relevance {
    fn new(kept: &[Kept], run: &Run<'_>) -> Self {
        let engage = run.ev.engage;
        let (mut by_name, mut by_trait) = (
            FxHashMap::<u32, Vec<usize>>::default(),
            FxHashMap::<u32, Vec<usize>>::default(),
        );
        for (i, definition) in kept.iter().enumerate() {
            for name in &definition.deps.names {
                if let Some(id) = engage.events.name_id(name) {
                    by_name.entry(id).or_default().push(i);
                }
            }
            for key in &definition.deps.traits {
                if let Some(id) = engage.traits.trait_id(key) {
                    by_trait.entry(id).or_default().push(i);
                }
            }
        }
        Self {
            by_name,
            by_trait,
            all: (0..kept.len()).collect(),
        }
    }

    fn add(&self, what: &Touching, into: &mut FxHashSet<usize>) {
        match what {
            Touching::Name(id) => into.extend(self.by_name.get(id).into_iter().flatten()),
            Touching::Traits(ids) => {
                for id in ids {
                    into.extend(self.by_trait.get(id).into_iter().flatten());
                }
            }
            Touching::Other => into.extend(&self.all),
        }
    }
}

/// One change to write: the profile or account, the definition, and the new state.
struct Change {
    subject: Subject,
    key: String,
    /// An audience: entered (true) or exited (false); a computed trait: its new value.
    what: ChangeKind,
}

/// What a change is about: a profile (its root) or an account (its group id).
#[derive(Clone, PartialEq, Eq, Hash)]
enum Subject {
    Profile(u32),
    Account(String),
}

enum ChangeKind {
    Membership(bool),
    Value(Value),
}

/// The worker thread's state.
pub struct Worker {
    shared: Arc<Shared>,
    jobs: Sender<Job>,
    receiver: Receiver<Message>,
    tick: Duration,
    kept: Vec<Kept>,
    saved: FxHashMap<String, Definition>,
    /// When the last round of touches started being decided.
    last_round: Instant,
}

impl Worker {
    /// The worker, or None when it was taken already.
    pub(crate) fn new(shared: Arc<Shared>, jobs: Sender<Job>, tick: Duration) -> Option<Self> {
        let receiver = shared.engage_hub.receiver.lock().take()?;
        Some(Self {
            shared,
            jobs,
            receiver,
            tick,
            kept: Vec::new(),
            saved: FxHashMap::default(),
            last_round: Instant::now(),
        })
    }

    /// Runs until `Message::Stop`: a full reconciliation at start, then touches and ticks.
    pub fn run(mut self) {
        if let Err(err) = self.reload().and_then(|new| self.reconcile(&new)) {
            log::error!("Engage: the start-up reconciliation failed (retried at the next tick): {err}");
        }
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            let message = self.receiver.recv_timeout(wait);
            // A bug in one evaluation must not end real time for good: it is logged, and the
            // next tick or touch tries again.
            let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.step(message, &mut next_tick)));
            let outcome = match step {
                Ok(Some(outcome)) => outcome,
                Ok(None) => return,
                Err(_) => Err(EngineError::Storage(
                    "an evaluation panicked (see the log above)".into(),
                )),
            };
            if let Err(err) = outcome {
                if matches!(err, EngineError::ShutDown) {
                    return;
                }
                log::error!("Engage: real-time evaluation failed (retried at the next tick): {err}");
            }
        }
    }

    /// Handles one message (or a timeout); None when the worker must stop.
    fn step(
        &mut self,
        message: std::result::Result<Message, RecvTimeoutError>,
        next_tick: &mut Instant,
    ) -> Option<Result<()>> {
        Some(match message {
            Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => return None,
            Ok(Message::DefinitionsChanged) => self.reload().and_then(|new| self.reconcile(&new)),
            Ok(Message::ReconcileAll) => {
                let all: Vec<String> = self.kept.iter().map(|k| k.audience.key.clone()).collect();
                self.reconcile(&all)
            }
            Ok(first) => self.touched(first),
            Err(RecvTimeoutError::Timeout) => {
                *next_tick = Instant::now() + self.tick;
                let timed: Vec<String> = self
                    .kept
                    .iter()
                    .filter(|k| k.deps.on_tick() || self.shared.engage_hub.is_computing(&k.audience.key))
                    .map(|k| k.audience.key.clone())
                    .collect();
                self.reconcile(&timed)
            }
        })
    }

    /// Reads the saved definitions; returns the keys that are new or whose query changed.
    fn reload(&mut self) -> Result<Vec<String>> {
        let store = &self.shared.store;
        let audiences = {
            let txn = store.log.read()?;
            crate::audiences::saved_records(&store.log_dbs, &txn.txn)?
        };
        let saved = crate::audiences::parse_saved(audiences.clone())?;
        let known: FxHashMap<String, String> = self
            .kept
            .iter()
            .map(|k| (k.audience.key.clone(), k.audience.query.clone()))
            .collect();
        let mut new = Vec::new();
        self.kept = audiences
            .into_iter()
            .filter_map(|audience| {
                let definition = saved.get(&audience.key)?.clone();
                if known.get(&audience.key) != Some(&audience.query) {
                    new.push(audience.key.clone());
                }
                let deps = Deps::of(&definition, &saved);
                Some(Kept {
                    audience,
                    definition,
                    deps,
                })
            })
            .collect();
        self.saved = saved;
        let hub = &self.shared.engage_hub;
        hub.active.store(!self.kept.is_empty(), Ordering::Release);
        hub.computing.lock().extend(new.iter().cloned());
        Ok(new)
    }

    /// Re-evaluates the definitions with these keys over every profile, emitting the
    /// differences with what the log holds.
    fn reconcile(&mut self, keys: &[String]) -> Result<()> {
        for key in keys {
            let Some(kept) = self.kept.iter().find(|k| &k.audience.key == key) else {
                continue;
            };
            let changes = self.with_run(|run| full_changes(run, kept))?;
            self.emit(changes, Some(key))?;
            let hub = &self.shared.engage_hub;
            hub.computing.lock().remove(key);
            hub.progress.lock().remove(key);
            self.record_sizes(std::slice::from_ref(key))?;
        }
        Ok(())
    }

    /// Handles a touch (and every touch already queued behind it).
    fn touched(&mut self, first: Message) -> Result<()> {
        let mut touches = Vec::new();
        let (mut definitions_changed, mut taken) = (false, 0u64);
        let mut add = |message: Message, definitions_changed: &mut bool| match message {
            Message::Touched(more) => {
                taken += 1;
                touches.extend(more);
                true
            }
            Message::DefinitionsChanged | Message::ReconcileAll => {
                *definitions_changed = true;
                true
            }
            Message::Stop => false,
        };
        let mut stop = !add(first, &mut definitions_changed);
        // Touches gather until a round is due, so a profile touched many times in a round is
        // decided once.
        let due = self.last_round + ROUND;
        while !stop {
            match self.receiver.recv_deadline(due) {
                Ok(message) => stop = !add(message, &mut definitions_changed),
                Err(_) => break,
            }
        }
        self.last_round = Instant::now();
        let outcome = self.evaluate_touched(touches, definitions_changed);
        // Counted as evaluated even when it failed: the next tick or touch retries.
        self.shared.engage_hub.backlog.fetch_sub(taken, Ordering::AcqRel);
        if stop {
            return Err(EngineError::ShutDown);
        }
        outcome
    }

    /// Re-evaluates each touched profile for the definitions its events can change, then
    /// writes every change at once (one wait for the log, however many profiles).
    fn evaluate_touched(&mut self, mut touches: Vec<Touch>, definitions_changed: bool) -> Result<()> {
        if definitions_changed {
            // A reload, then every definition over every profile (covers both messages).
            self.reload()?;
            let all: Vec<String> = self.kept.iter().map(|k| k.audience.key.clone()).collect();
            self.reconcile(&all)?;
        }
        if self.kept.is_empty() {
            return Ok(());
        }
        touches.sort_unstable_by_key(|touch| touch.node);
        // By (profile, definition), the latest decision: a profile met again in a later chunk
        // (another of its nodes) is decided again on newer state, and undecided when that
        // matches what the log holds.
        let mut decided: FxHashMap<(Subject, usize), Change> = FxHashMap::default();
        let mut start = 0;
        while start < touches.len() {
            // Up to PROFILES_PER_LOCK nodes, never splitting one node's touches.
            let mut end = (start + PROFILES_PER_LOCK).min(touches.len());
            while end < touches.len() && touches[end].node == touches[end - 1].node {
                end += 1;
            }
            let chunk = &touches[start..end];
            start = end;
            self.with_run(|run| {
                let relevant = Relevance::new(&self.kept, run);
                // Each profile with the definitions any of its events can change.
                let mut wanted: FxHashMap<u32, FxHashSet<usize>> = FxHashMap::default();
                for touch in chunk {
                    let Some(root) = run.ev.graph.root_of(touch.node) else {
                        continue;
                    };
                    relevant.add(&touch.what, wanted.entry(root).or_default());
                }
                // ACCOUNTS definitions are decided for the accounts the profile is linked to.
                let mut accounts: FxHashMap<&str, FxHashSet<usize>> = FxHashMap::default();
                let mut decide = |subject: Subject, i: usize, change: Option<Change>| match change {
                    Some(change) => decided.insert((subject, i), change),
                    None => decided.remove(&(subject, i)),
                };
                for (root, definitions) in wanted {
                    let mut groups = None;
                    for i in definitions {
                        let kept = &self.kept[i];
                        if kept.of_accounts() {
                            for group in groups.get_or_insert_with(|| run.accounts_of(root)).iter() {
                                accounts.entry(group).or_default().insert(i);
                            }
                        } else {
                            decide(Subject::Profile(root), i, profile_change(run, kept, root)?);
                        }
                    }
                }
                for (group, definitions) in accounts {
                    let Some(account) = run.account(group)? else {
                        continue;
                    };
                    for i in definitions {
                        let change = account_change(run, &self.kept[i], group, &account)?;
                        decide(Subject::Account(group.to_owned()), i, change);
                    }
                }
                Ok(())
            })?;
        }
        let moves = self.emit(decided.into_values().collect(), None)?;
        self.record_moves(moves)
    }

    /// Adds a point to the size history of audiences that some profiles entered or left: the
    /// last size plus the change (counted afresh when there is no last size).
    fn record_moves(&self, moves: FxHashMap<String, i64>) -> Result<()> {
        let hub = &self.shared.engage_hub;
        let mut unknown = Vec::new();
        let now = time::now_ms();
        for (key, delta) in moves {
            match hub.last_size(&key) {
                Some(size) => hub.record_size(&key, now, size.saturating_add_signed(delta)),
                None => unknown.push(key),
            }
        }
        self.record_sizes(&unknown)
    }

    /// Adds a point to the size history of these audiences.
    fn record_sizes(&self, keys: &[String]) -> Result<()> {
        let audiences: Vec<&Audience> = self
            .kept
            .iter()
            .map(|k| &k.audience)
            .filter(|a| a.r#type != DefinitionType::ComputedTrait as i32 && keys.contains(&a.key))
            .collect();
        if audiences.is_empty() {
            return Ok(());
        }
        let sizes = self.with_run(|run| {
            audiences
                .iter()
                .map(|audience| emitted_size(run, audience))
                .collect::<Result<Vec<_>>>()
        })?;
        let now = time::now_ms();
        for (audience, size) in audiences.iter().zip(sizes) {
            self.shared.engage_hub.record_size(&audience.key, now, size);
        }
        Ok(())
    }

    fn with_run<T>(&self, work: impl FnOnce(&Run<'_>) -> Result<T>) -> Result<T> {
        super::with_run(&self.shared, &self.saved, time::now_ms(), work)
    }

    /// Writes the changes as events and waits until they are committed and resolved.
    /// Changes of a profile that stopped being one since it was decided (merged into another)
    /// are dropped: the merge touched the merged profile, which is decided again. Returns how
    /// many profiles entered minus left each audience, as written.
    /// `progress`: the definition whose first evaluation this writes (its percentage is kept).
    fn emit(&self, changes: Vec<Change>, progress: Option<&str>) -> Result<FxHashMap<String, i64>> {
        if changes.is_empty() {
            return Ok(FxHashMap::default());
        }
        let cause = *self.shared.committed.lock();
        let now = time::now_ms();
        // One profile's (or account's) changes go out together: one call for all its traits.
        let mut by_subject: FxHashMap<&Subject, Vec<&Change>> = FxHashMap::default();
        for change in &changes {
            by_subject.entry(&change.subject).or_default().push(change);
        }
        let mut written = Vec::new();
        let events: Vec<Event> = {
            let state = self.shared.profiles.lock();
            let graph = &state.graph;
            by_subject
                .into_iter()
                .filter_map(|(subject, changes)| {
                    let events = match subject {
                        Subject::Profile(root) if graph.root_of(*root) == Some(*root) => {
                            derived_events(graph, &self.kept, *root, &changes, cause, now)?
                        }
                        Subject::Profile(_) => return None,
                        Subject::Account(group) => {
                            vec![derived_account_event(
                                &state.links,
                                &self.kept,
                                group,
                                &changes,
                                cause,
                                now,
                            )?]
                        }
                    };
                    written.extend(changes);
                    Some(events)
                })
                .flatten()
                .collect()
        };
        let moves = size_changes(written);
        let (total, mut written) = (events.len(), 0);
        let hub = &self.shared.engage_hub;
        write_own_events(&self.shared, &self.jobs, &events, |size| {
            written += size;
            if let Some(key) = progress {
                hub.set_progress(key, written, total);
            }
            Ok(())
        })?;
        Ok(moves)
    }
}

/// How many profiles entered minus left each audience in `changes`.
fn size_changes<'a>(changes: impl IntoIterator<Item = &'a Change>) -> FxHashMap<String, i64> {
    let mut moves: FxHashMap<String, i64> = FxHashMap::default();
    for change in changes {
        if let ChangeKind::Membership(entered) = change.what {
            *moves.entry(change.key.clone()).or_default() += if entered { 1 } else { -1 };
        }
    }
    moves
}

/// The profile's last emitted state of a definition: its stored trait named after the key.
fn emitted(run: &Run<'_>, root: u32, key: &str) -> Option<Value> {
    run.ev.user_trait(run.ev.graph.members_at(root), key)
}

fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            order(a, b) == std::cmp::Ordering::Equal && std::mem::discriminant(a) == std::mem::discriminant(b)
        }
        (None, None) => true,
        _ => false,
    }
}

/// What changed for one profile, if anything.
fn profile_change(run: &Run<'_>, kept: &Kept, root: u32) -> Result<Option<Change>> {
    let key = &kept.audience.key;
    let stored = emitted(run, root, key);
    Ok(
        decision(run, kept, &run.user(root), stored.as_ref())?.map(|what| Change {
            subject: Subject::Profile(root),
            key: key.clone(),
            what,
        }),
    )
}

/// What changed for one account, if anything: its state is its own trait named after the key.
fn account_change(run: &Run<'_>, kept: &Kept, group: &str, account: &Entity) -> Result<Option<Change>> {
    let key = &kept.audience.key;
    Ok(
        decision(run, kept, account, account.account_trait(key))?.map(|what| Change {
            subject: Subject::Account(group.to_owned()),
            key: key.clone(),
            what,
        }),
    )
}

/// A definition decided for a profile or account, against its last emitted state: the new
/// state, or None when it is the same.
fn decision(run: &Run<'_>, kept: &Kept, entity: &Entity, stored: Option<&Value>) -> Result<Option<ChangeKind>> {
    Ok(match &kept.definition.body {
        Body::Audience(condition) => {
            let member = run.ev.holds_for(condition, entity)?;
            (member != (stored == Some(&Value::Bool(true)))).then_some(ChangeKind::Membership(member))
        }
        Body::ComputedTrait(scalar) => {
            let value = run.ev.value_for(scalar, entity)?;
            (!same(value.as_ref(), stored)).then(|| ChangeKind::Value(value.unwrap_or(Value::Null)))
        }
    })
}

/// Every change of a definition over all profiles (or accounts).
fn full_changes(run: &Run<'_>, kept: &Kept) -> Result<Vec<Change>> {
    let key = &kept.audience.key;
    if kept.of_accounts() {
        // Accounts are few and evaluated one by one (see `Run::accounts`).
        let mut changes = Vec::new();
        for group in run.account_ids() {
            if let Some(account) = run.account(group)? {
                changes.extend(account_change(run, kept, group, &account)?);
            }
        }
        return Ok(changes);
    }
    let change = |root, what| Change {
        subject: Subject::Profile(root),
        key: key.clone(),
        what,
    };
    match &kept.definition.body {
        Body::Audience(condition) => {
            let members = run.users(condition)?;
            let emitted = emitted_members(run, key);
            let entered = &members - &emitted;
            let exited = &emitted - &members;
            Ok(entered
                .iter()
                .map(|root| change(root, ChangeKind::Membership(true)))
                .chain(exited.iter().map(|root| change(root, ChangeKind::Membership(false))))
                .collect())
        }
        Body::ComputedTrait(scalar) => {
            let values: FxHashMap<u32, Value> = run.user_values(scalar)?.into_iter().collect();
            let mut changes = Vec::new();
            let mut roots = emitted_present(run, key);
            roots.extend(values.keys().copied());
            for root in roots {
                let value = values.get(&root);
                if !same(value, emitted(run, root, key).as_ref()) {
                    changes.push(change(root, ChangeKind::Value(value.cloned().unwrap_or(Value::Null))));
                }
            }
            Ok(changes)
        }
    }
}

/// A saved definition's live size: the profiles (or accounts) whose stored trait named after
/// its key is true (an audience) or set (a computed trait).
pub(crate) fn emitted_size(run: &Run<'_>, audience: &Audience) -> Result<u64> {
    let key = &audience.key;
    let computed = audience.r#type == DefinitionType::ComputedTrait as i32;
    if audience.kind == EntityKind::Accounts as i32 {
        let mut size = 0;
        for group in run.account_ids() {
            let traits = run.account_traits(group)?;
            let value = traits.get(key).filter(|value| !value.is_null());
            size += u64::from(if computed {
                value.is_some()
            } else {
                value == Some(&Value::Bool(true))
            });
        }
        return Ok(size);
    }
    Ok(if computed {
        emitted_present(run, key).len() as u64
    } else {
        emitted_members(run, key).len()
    })
}

/// Profiles whose stored trait `key` is true.
pub(crate) fn emitted_members(run: &Run<'_>, key: &str) -> RoaringBitmap {
    let index = &run.ev.engage.traits;
    let Some(trait_id) = index.trait_id(key) else {
        return RoaringBitmap::new();
    };
    run.profiles_with_trait(key, trait_id, &|value| value == &Value::Bool(true), run.roots)
}

/// Profiles with any stored value of trait `key`.
pub(crate) fn emitted_present(run: &Run<'_>, key: &str) -> FxHashSet<u32> {
    let index = &run.ev.engage.traits;
    let Some(trait_id) = index.trait_id(key) else {
        return FxHashSet::default();
    };
    let nodes = index.nodes_where(trait_id, |_| true);
    run.ev.graph.roots_of(&nodes, run.roots).into_iter().collect()
}

/// The events that write one profile's changes: for each audience it entered or left a track
/// `Audience Entered`/`Exited`, and one identify setting every changed trait (the audiences'
/// booleans and the computed traits' values) at once. They carry one identifier of the profile:
/// its root's when that is a userId, anonymousId or email, else the first of those it has. One,
/// so that the profile the graph files them under and the node Engage keeps them under are
/// always the same, even after a split separates identifiers an event carried together. None
/// for a profile with none of those.
fn derived_events(
    graph: &IdentityGraph,
    kept: &[Kept],
    root: u32,
    changes: &[&Change],
    cause: u64,
    now: i64,
) -> Option<Vec<Event>> {
    let carrier = Carrier::of(graph, root)?;
    let profile = graph.id_at(root)?;
    let base = carrier.event(now);
    let context = |personas: Value| carrier.context(personas);
    let written = Written::of(kept, changes);
    let mut events: Vec<Event> = written
        .moves
        .iter()
        .map(|(audience, personas, entered)| {
            let key = &audience.key;
            let (name, what) = if *entered {
                ("Audience Entered", "entered")
            } else {
                ("Audience Exited", "exited")
            };
            let properties = json!({ "audience_key": key, key.as_str(): entered });
            Event {
                r#type: EventType::Track as i32,
                // Zero-padded: within one millisecond a later decision sorts after an earlier.
                message_id: format!("engage-{}-{profile}-{cause:020}-{what}", audience.id),
                event: name.to_owned(),
                properties: serde_json::to_vec(&properties).unwrap_or_default(),
                context: context(personas.clone()),
                ..base.clone()
            }
        })
        .collect();
    if !written.traits.is_empty() {
        events.push(Event {
            r#type: EventType::Identify as i32,
            message_id: format!("engage-traits-{profile}-{cause:020}"),
            traits: serde_json::to_vec(&written.traits).unwrap_or_default(),
            context: context(written.personas()),
            ..base
        });
    }
    Some(events)
}

/// The identifier a profile's derived events carry (see `derived_events`): its root's when that
/// is a userId, anonymousId or email, else the first of those it has; the email rides in
/// `context.traits` when it is the one.
pub(crate) struct Carrier {
    user_id: Option<String>,
    anonymous_id: Option<String>,
    email: Option<String>,
}

impl Carrier {
    /// None for a profile with no userId, anonymousId or email (logged).
    pub(crate) fn of(graph: &IdentityGraph, root: u32) -> Option<Self> {
        let (mut user_id, mut anonymous_id, mut email) = (None, None, None);
        // The root's own identifier first (the node the profile's facts mostly sit on), then
        // the others in order.
        let members = graph.members_at(root);
        let nodes = std::iter::once(root).chain(members.iter().copied().filter(|&node| node != root));
        for node in nodes {
            let identifier = graph.identifier_at(node);
            let slot = match identifier.kind.as_str() {
                "user_id" => &mut user_id,
                "anonymous_id" => &mut anonymous_id,
                "email" => &mut email,
                _ => continue,
            };
            slot.get_or_insert(identifier.value);
            if user_id.is_some() || anonymous_id.is_some() || email.is_some() {
                break;
            }
        }
        if user_id.is_some() {
            (anonymous_id, email) = (None, None);
        } else if anonymous_id.is_some() {
            email = None;
        } else if email.is_none() {
            log::warn!(
                "Engage: profile {} has no userId, anonymousId or email to carry its Engage events",
                graph.id_at(root).map(|id| id.to_string()).unwrap_or_default(),
            );
            return None;
        }
        Some(Self {
            user_id,
            anonymous_id,
            email,
        })
    }

    /// An event carrying the identifier, at `now`.
    pub(crate) fn event(&self, now: i64) -> Event {
        Event {
            user_id: self.user_id.clone().unwrap_or_default(),
            anonymous_id: self.anonymous_id.clone().unwrap_or_default(),
            timestamp: Some(time::from_ms(now)),
            ..Default::default()
        }
    }

    /// The event's context: the computation's `personas`, and the email when it is the carrier.
    pub(crate) fn context(&self, personas: Value) -> Vec<u8> {
        let mut context = json!({ "personas": personas });
        if let Some(email) = &self.email {
            context["traits"] = json!({ "email": email });
        }
        serde_json::to_vec(&context).unwrap_or_default()
    }
}

/// The message id prefix of the group calls that write ACCOUNTS definitions' changes.
pub(crate) const ACCOUNT_CHANGE_PREFIX: &str = "engage-account-";

/// The group call that writes one account's changes, as Segment writes account audiences and
/// traits: `{key: true|false}` for an audience, `{key: value}` for a computed trait, all of
/// them at once. A group call names a user: the account's first linked user with a userId (else
/// an anonymousId), already linked, so the call changes no link. None when it has neither.
fn derived_account_event(
    links: &AccountLinks,
    kept: &[Kept],
    group: &str,
    changes: &[&Change],
    cause: u64,
    now: i64,
) -> Option<Event> {
    let users = links.users.get(group).map_or(&[][..], Vec::as_slice);
    let carrier = |kind: &str| users.iter().map(|(identifier, _)| identifier).find(|i| i.kind == kind);
    let Some(carrier) = carrier("user_id").or_else(|| carrier("anonymous_id")) else {
        log::warn!("Engage: account {group:?} has no user with a userId or anonymousId to carry its group call");
        return None;
    };
    let written = Written::of(kept, changes);
    let (mut user_id, mut anonymous_id) = (String::new(), String::new());
    if carrier.kind == "user_id" {
        user_id.clone_from(&carrier.value);
    } else {
        anonymous_id.clone_from(&carrier.value);
    }
    let group_hash = xxhash_rust::xxh3::xxh3_128(group.as_bytes());
    Some(Event {
        r#type: EventType::Group as i32,
        message_id: format!("{ACCOUNT_CHANGE_PREFIX}{group_hash:032x}-{cause:020}"),
        group_id: group.to_owned(),
        user_id,
        anonymous_id,
        traits: serde_json::to_vec(&written.traits).unwrap_or_default(),
        context: serde_json::to_vec(&json!({ "personas": written.personas() })).unwrap_or_default(),
        timestamp: Some(time::from_ms(now)),
        ..Default::default()
    })
}

/// What one profile's or account's changes write: the traits (an audience's boolean, a
/// computed trait's value), the audiences entered (true) or left, and each computation's
/// `context.personas`.
struct Written<'a> {
    traits: Map<String, Value>,
    moves: Vec<(&'a Audience, Value, bool)>,
    computations: Vec<Value>,
}

impl<'a> Written<'a> {
    fn of(kept: &'a [Kept], changes: &[&Change]) -> Self {
        let mut written = Self {
            traits: Map::new(),
            moves: Vec::new(),
            computations: Vec::new(),
        };
        for change in changes {
            let Some(audience) = kept.iter().map(|k| &k.audience).find(|a| a.key == change.key) else {
                continue;
            };
            let is_audience = audience.r#type != DefinitionType::ComputedTrait as i32;
            let personas = json!({
                "computation_class": if is_audience { "audience" } else { "trait" },
                "computation_id": audience.id,
                "computation_key": audience.key,
            });
            match &change.what {
                ChangeKind::Membership(entered) => {
                    written.moves.push((audience, personas.clone(), *entered));
                    written.traits.insert(audience.key.clone(), Value::Bool(*entered));
                }
                ChangeKind::Value(value) => {
                    written.traits.insert(audience.key.clone(), value.clone());
                }
            }
            written.computations.push(personas);
        }
        written
    }

    /// `context.personas` of the call setting every trait: the one computation, or all.
    fn personas(&self) -> Value {
        match self.computations.as_slice() {
            [one] => one.clone(),
            all => json!({ "computations": all }),
        }
    }
}

/// The id of the "Tributary Engage" source, if it was made.
pub(crate) fn existing_engage_source(store: &crate::store::Store) -> Result<Option<u32>> {
    let id = store.log_dbs.meta.get(&store.log.read()?.txn, META_ENGAGE_SOURCE)?;
    Ok(id.map(|id| id as u32))
}

/// The id of the "Tributary Engage" source, made when the worker first writes (its write key is
/// random and never shown: only the engine writes as it).
/// Writes events as Engage's own (the "Tributary Engage" source), in batches of Segment's limit
/// queued ahead of their acknowledgements (up to IN_FLIGHT: the log's waits overlap); `acked`
/// gets each batch's size once it is committed and resolved.
pub(crate) fn write_own_events(
    shared: &Shared,
    jobs: &Sender<Job>,
    events: &[Event],
    mut acked: impl FnMut(usize) -> Result<()>,
) -> Result<()> {
    let source_id = own_source(shared)?;
    let mut pending = std::collections::VecDeque::new();
    for chunk in events.chunks(BATCH) {
        let batch = Batch {
            events: chunk.to_vec(),
            ..Default::default()
        };
        let ctx = crate::event::BatchContext {
            source_id,
            received_ms: time::now_ms(),
            max_event_bytes: shared.config.max_event_bytes,
            custom: shared.profiles.custom(),
            // Engage's own events follow no source's tracking plan.
            policy: None,
            violations: Default::default(),
            suppressed: None,
        };
        let (prepared, rejections) = crate::event::prepare_batch(batch, &ctx);
        for rejection in &rejections {
            log::error!(
                "Engage: a derived event was refused: {}: {}",
                rejection.field,
                rejection.reason
            );
        }
        pending.push_back((enqueue(shared, jobs, &ctx, prepared, rejections)?, chunk.len()));
        if pending.len() > IN_FLIGHT {
            let (ack, size) = pending.pop_front().expect("more than IN_FLIGHT");
            ack.wait()?;
            acked(size)?;
        }
    }
    for (ack, size) in pending {
        ack.wait()?;
        acked(size)?;
    }
    Ok(())
}

/// The id of the "Tributary Engage" source, made on first use and remembered in the hub (the
/// publisher tells Engage's own events by it).
pub(crate) fn own_source(shared: &Shared) -> Result<u32> {
    match shared.engage_hub.source_id.load(Ordering::Acquire) {
        0 => {
            let id = engage_source(shared)?;
            shared.engage_hub.source_id.store(id, Ordering::Release);
            Ok(id)
        }
        id => Ok(id),
    }
}

fn engage_source(shared: &Shared) -> Result<u32> {
    let store = &shared.store;
    let dbs = &store.log_dbs;
    if let Some(id) = existing_engage_source(store)? {
        return Ok(id);
    }
    let (id, grows) = store.log.write_with_growth(|txn| {
        if let Some(id) = dbs.meta.get(txn, META_ENGAGE_SOURCE)? {
            return Ok(id as u32);
        }
        let id = dbs.meta.get(txn, "next_source_id")?.unwrap_or(1) as u32;
        let source = proto::Source {
            id,
            name: ENGAGE_SOURCE.to_owned(),
            created_at_ms: time::now_ms(),
            ..proto::Source::default()
        };
        use prost::Message as _;
        dbs.sources.put(txn, &id, &source.encode_to_vec())?;
        let digest: [u8; 32] = rand_digest();
        dbs.source_keys.put(txn, &digest, &id)?;
        dbs.meta.put(txn, "next_source_id", &(u64::from(id) + 1))?;
        dbs.meta.put(txn, META_ENGAGE_SOURCE, &u64::from(id))?;
        Ok(id)
    })?;
    shared.stats.map_grows.fetch_add(u64::from(grows), Ordering::Relaxed);
    Ok(id)
}

/// 32 random bytes (two v4 UUIDs): a key digest nobody holds the key of.
fn rand_digest() -> [u8; 32] {
    let mut digest = [0u8; 32];
    digest[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    digest[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    digest
}
