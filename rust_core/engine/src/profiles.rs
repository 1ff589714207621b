//! Profiles: the identity graph kept up to date by the writer, and the account links of group
//! calls.
//!
//! The publisher resolves each accepted event after its group has committed and before its ack
//! is sent, so an acknowledged event is already part of its profile. The graph is a function of
//! the set of stored events and the identity administration (rules, separations), not of the
//! order events arrived in (see `identity::graph`); at start-up it is rebuilt by replaying the
//! log in canonical order.
//!
//! Traits are not stored per profile: a lookup folds the profile's identify events (see
//! `profile_reads`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, MutexGuard};
use rustc_hash::{FxHashMap, FxHashSet};

use crate::engage::realtime::{Touch, Touching};
use crate::engage::{Engage, EngageFacts};
use crate::error::{EngineError, Result};
use crate::identifiers::{self, CustomIdentifiers, Identifier};
use crate::identity::graph::{EventIdentity, EventLoader, GraphState, GraphStateRef, IdentityGraph, StoredEvent};
use crate::identity::order::OrderKey;
use crate::identity::rules::IdentityRules;
use crate::identity::separations::Separations;
use crate::progress::{self, Progress};
use crate::proto::identity_rules_progress::Phase;
use crate::proto::{self, Event, EventType};
use crate::snapshot::Snapshots;
use crate::store::Store;
use crate::time;

/// The identifiers that can link an event to a user profile: all but the account id.
pub fn profile_identifiers(mut all: Vec<Identifier>) -> Vec<Identifier> {
    all.retain(|identifier| identifier.kind != "group_id");
    all
}

/// True for events that set profile traits (only identify does, as in Segment).
pub fn sets_traits(event: &Event) -> bool {
    event.r#type == EventType::Identify as i32 && !event.traits.is_empty()
}

/// The account a group call links its user to.
pub fn account_of(event: &Event) -> Option<&str> {
    let group_id = event.group_id.trim();
    (event.r#type == EventType::Group as i32 && !group_id.is_empty()).then_some(group_id)
}

/// An accepted event as the graph (and Engage's index) needs it.
pub struct Resolvable<'a> {
    pub seq: u64,
    pub message_id: &'a str,
    pub timestamp_ms: i64,
    pub identifiers: &'a [Identifier],
    pub sets_traits: bool,
    pub account: Option<&'a str>,
    /// Its name for `event('…')` (`engage::event_name`).
    pub engage_name: Option<&'a str>,
    /// The traits it sets (`engage::identify_traits`).
    pub engage_traits: Option<&'a serde_json::Map<String, serde_json::Value>>,
    /// Its revenue (`engage::revenue_of`).
    pub revenue: Option<f64>,
    pub received_ms: i64,
    /// Written by Engage itself: it does not move the log's clock.
    pub derived: bool,
    /// The real-time worker wants to hear what it touched (`Profiles::resolve`).
    pub report: bool,
}

impl Resolvable<'_> {
    fn identity(&self) -> EventIdentity<'_> {
        EventIdentity {
            seq: self.seq,
            message_id: self.message_id,
            timestamp_ms: self.timestamp_ms,
            identifiers: self.identifiers,
            sets_traits: self.sets_traits,
        }
    }
}

/// One group call between a user identifier and an account.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct LinkRecord {
    pub seq: u64,
    pub key: OrderKey,
}

/// Users ↔ accounts, from group calls. Kept by identifier (not profile id), so it holds
/// whatever the graph later decides about the users.
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct AccountLinks {
    /// group id → (user identifier, its first linking call).
    pub users: HashMap<String, Vec<(Identifier, LinkRecord)>>,
    /// user identifier hash → (group id, first linking call).
    pub accounts: FxHashMap<u128, Vec<(String, LinkRecord)>>,
    /// group id → seqs of its group calls (their traits are the account's).
    pub calls: HashMap<String, Vec<u64>>,
}

impl AccountLinks {
    /// Bytes held (tables and what their entries own).
    pub fn memory(&self) -> usize {
        use crate::memory::{heap, string, table};
        let users: usize = self
            .users
            .iter()
            .map(|(g, v)| {
                string(g)
                    + heap(v)
                    + v.iter()
                        .map(|(i, r)| string(&i.kind) + string(&i.value) + string(&r.key.message_id))
                        .sum::<usize>()
            })
            .sum();
        let accounts: usize = self
            .accounts
            .values()
            .map(|v| {
                heap(v)
                    + v.iter()
                        .map(|(g, r)| string(g) + string(&r.key.message_id))
                        .sum::<usize>()
            })
            .sum();
        let calls: usize = self.calls.iter().map(|(g, v)| string(g) + heap(v)).sum();
        table::<(String, Vec<(Identifier, LinkRecord)>)>(self.users.capacity())
            + table::<(u128, Vec<(String, LinkRecord)>)>(self.accounts.capacity())
            + table::<(String, Vec<u64>)>(self.calls.capacity())
            + users
            + accounts
            + calls
    }

    /// Forgets the links of `identifiers` and the group calls at `seqs` (a privacy deletion:
    /// the caller records the calls that remain again).
    fn forget(&mut self, identifiers: &[Identifier], seqs: &FxHashSet<u64>) {
        for identifier in identifiers {
            let Some(groups) = self.accounts.remove(&identifier.hash128()) else {
                continue;
            };
            for (group, _) in groups {
                if let Some(users) = self.users.get_mut(&group) {
                    users.retain(|(known, _)| known != identifier);
                    if users.is_empty() {
                        self.users.remove(&group);
                    }
                }
            }
        }
        self.calls.retain(|_, calls| {
            calls.retain(|seq| !seqs.contains(seq));
            !calls.is_empty()
        });
    }

    /// Records a group call of `group`.
    fn record(&mut self, event: &EventIdentity<'_>, group: &str) {
        self.calls.entry(group.to_owned()).or_default().push(event.seq);
        let key = OrderKey::new(event.timestamp_ms, event.message_id);
        for identifier in event.identifiers {
            let record = LinkRecord {
                seq: event.seq,
                key: key.clone(),
            };
            let users = self.users.entry(group.to_owned()).or_default();
            match users.iter_mut().find(|(known, _)| known == identifier) {
                Some((_, first)) if first.key > record.key => *first = record.clone(),
                Some(_) => {}
                None => users.push((identifier.clone(), record.clone())),
            }
            let accounts = self.accounts.entry(identifier.hash128()).or_default();
            match accounts.iter_mut().find(|(known, _)| known == group) {
                Some((_, first)) if first.key > record.key => *first = record,
                Some(_) => {}
                None => accounts.push((group.to_owned(), record)),
            }
        }
    }
}

/// The snapshot of the identity state (see `crate::snapshot`).
pub const SNAPSHOT_NAME: &str = "profiles";

#[derive(serde::Serialize)]
struct SnapshotRef<'a> {
    resolved_through: u64,
    administration: u128,
    graph: GraphStateRef<'a>,
    links: &'a AccountLinks,
    engage: &'a Engage,
}

#[derive(serde::Deserialize)]
struct Snapshot {
    resolved_through: u64,
    administration: u128,
    graph: GraphState,
    links: AccountLinks,
    engage: Engage,
}

/// What the lock guards.
pub struct ProfileState {
    pub graph: IdentityGraph,
    /// The last log seq resolved (the publisher goes in log order; replays may repeat seqs).
    pub resolved_through: u64,
    pub links: AccountLinks,
    /// Engage's indexes, keyed by the graph's identifier nodes.
    pub engage: Engage,
    /// The administration the graph was built under, as stored.
    pub rules: proto::IdentityRules,
    pub actions: Vec<proto::IdentityAction>,
    /// The custom identifier types of `rules`.
    pub custom: Arc<CustomIdentifiers>,
    /// Privacy deletions applied to this state (`governance::deletion`): a snapshot taken
    /// before the last one must not be loaded after it.
    pub deletions: u64,
}

impl ProfileState {
    /// The fingerprint of the administration this state was built under.
    pub fn administration(&self) -> u128 {
        administration_of(&self.rules, &self.actions, self.deletions)
    }

    /// Records an event in Engage's indexes, under its primary node (after the graph added the
    /// event).
    fn record_engage(&mut self, event: &EventIdentity<'_>, facts: EngageFacts<'_>, loader: &mut LogLoader<'_>) {
        if facts.name.is_none() && facts.traits.is_none() {
            return;
        }
        if let Some(node) = self.graph.primary_node(event.identifiers) {
            self.record_engage_at(node, event, facts, loader);
        }
    }

    fn record_engage_at(
        &mut self,
        node: u32,
        event: &EventIdentity<'_>,
        facts: EngageFacts<'_>,
        loader: &mut LogLoader<'_>,
    ) {
        let at = (event.seq, event.timestamp_ms, event.message_id);
        self.engage.record(node, facts, at, &mut |seq| loader.message_id(seq));
    }

    /// What a resolved event touched, for the real-time worker: its primary node, and the event
    /// name or trait keys it carried, as Engage's indexes number them (every definition when
    /// it merged profiles or carried neither).
    fn touch(&self, node: u32, facts: &EngageFacts<'_>, merged: bool) -> Touch {
        let engage = &self.engage;
        let what = match (merged, facts.name, facts.traits) {
            (true, ..) => Touching::Other,
            (false, Some(name), _) => engage.events.name_id(name).map_or(Touching::Other, Touching::Name),
            (false, None, Some(traits)) => {
                Touching::Traits(traits.keys().filter_map(|key| engage.traits.trait_id(key)).collect())
            }
            (false, None, None) => Touching::Other,
        };
        Touch { node, what }
    }

    /// The bytes of a snapshot file of this state.
    pub fn snapshot_bytes(&self) -> Result<Vec<u8>> {
        Snapshots::encode(&SnapshotRef {
            resolved_through: self.resolved_through,
            administration: self.administration(),
            graph: self.graph.state(),
            links: &self.links,
            engage: &self.engage,
        })
    }
}

fn administration_of(rules: &proto::IdentityRules, actions: &[proto::IdentityAction], deletions: u64) -> u128 {
    use prost::Message;
    let mut actions = proto::IdentityActions {
        actions: actions.to_vec(),
    }
    .encode_to_vec();
    // No deletion yet: the fingerprint snapshots written before deletions existed carry.
    if deletions > 0 {
        actions.extend_from_slice(b"deletions");
        actions.extend_from_slice(&deletions.to_le_bytes());
    }
    crate::snapshot::administration_fingerprint(&rules.encode_to_vec(), &actions)
}

/// The graph behind a lock: the publisher updates it, lookups read it briefly.
pub struct Profiles {
    state: Mutex<ProfileState>,
    /// The custom identifier types in force, read by every batch's preparation (a copy of
    /// `state.custom`, so preparing never waits for the graph).
    custom: parking_lot::RwLock<Arc<CustomIdentifiers>>,
    /// Serialises rule changes (each builds a whole graph outside the state lock).
    pub admin: Mutex<()>,
    /// How far the running (or last) rule change has got.
    pub progress: Progress,
    /// The log seq of the snapshot start-up loaded (then replaying only the log after it).
    pub loaded_snapshot: Option<u64>,
    /// Ingest's resolutions waiting for `state`: long background work (Predictions' rows over
    /// every profile) gives the lock up at once when one is.
    resolutions_waiting: AtomicUsize,
}

/// Most events the scans below read under one read transaction.
pub const LOG_CHUNK: usize = 8_192;
/// A chunk ends once its stored events reach this many bytes (events are up to 32 KiB each).
pub const LOG_CHUNK_BYTES: usize = 8 << 20;

/// The log's last seq (0 when empty).
pub fn last_seq(store: &Store) -> Result<u64> {
    let txn = store.log.read()?;
    Ok(store.log_dbs.events.last(&txn.txn)?.map_or(0, |(seq, _)| seq))
}

/// Hands the stored events of `seqs` to `each`, in that order (seqs not in the log are
/// skipped), read in chunks as `scan_raw` does.
pub fn read_events(store: &Store, seqs: &[u64], mut each: impl FnMut(u64, Event) -> Result<()>) -> Result<()> {
    let mut rest = seqs;
    while !rest.is_empty() {
        let chunk = {
            let txn = store.log.read()?;
            let mut chunk = Vec::new();
            let mut bytes = 0;
            for &seq in rest.iter().take(LOG_CHUNK) {
                rest = &rest[1..];
                if let Some(value) = store.log_dbs.events.get(&txn.txn, &seq)? {
                    chunk.push((seq, decode_stored(seq, value)?));
                    bytes += value.len();
                    if bytes >= LOG_CHUNK_BYTES {
                        break;
                    }
                }
            }
            chunk
        };
        for (seq, event) in chunk {
            each(seq, event)?;
        }
    }
    Ok(())
}

/// Reads events back from the log for replays.
pub struct LogLoader<'a> {
    pub store: &'a Store,
    pub custom: &'a CustomIdentifiers,
}

impl EventLoader for LogLoader<'_> {
    fn load(&mut self, seqs: &[u64]) -> Vec<StoredEvent> {
        let mut out = Vec::with_capacity(seqs.len());
        let loaded = seqs.chunks(LOG_CHUNK).try_for_each(|chunk| -> Result<()> {
            let txn = self.store.log.read()?;
            for &seq in chunk {
                if let Some(value) = self.store.log_dbs.events.get(&txn.txn, &seq)? {
                    out.push(stored_identity(seq, value, self.custom)?.stored);
                }
            }
            Ok(())
        });
        if let Err(err) = loaded {
            // The log is the source of truth: a read failure here is a storage fault that the
            // next replay (at start-up) repairs; keep serving what we have.
            log::error!("replaying a cluster could not read the log: {err}");
            out.clear();
        }
        out
    }

    /// Decodes the messageId field alone.
    fn message_id(&mut self, seq: u64) -> Option<String> {
        #[derive(Clone, PartialEq, prost::Message)]
        struct MessageIdOnly {
            #[prost(string, tag = "2")]
            message_id: String,
        }
        let read = || -> Result<Option<String>> {
            let txn = self.store.log.read()?;
            let Some(value) = self.store.log_dbs.events.get(&txn.txn, &seq)? else {
                return Ok(None);
            };
            let only: MessageIdOnly =
                proto::decode_record(value.get(4..).unwrap_or_default(), format_args!("event {seq}"))?;
            Ok(Some(only.message_id))
        };
        read().unwrap_or_else(|err| {
            log::error!("reading a messageId back from the log failed: {err}");
            None
        })
    }
}

/// The fields of a stored `Event` that identity resolution reads, at the event's own tags:
/// decoding stored bytes as this skips the rest (properties above all), which replays and bulk
/// re-resolution never look at unless custom identifier types read properties.
#[derive(Clone, PartialEq, prost::Message)]
struct IdentityFields {
    #[prost(int32, tag = "1")]
    r#type: i32,
    #[prost(string, tag = "2")]
    message_id: String,
    #[prost(string, tag = "3")]
    anonymous_id: String,
    #[prost(string, tag = "4")]
    user_id: String,
    #[prost(message, optional, tag = "5")]
    timestamp: Option<prost_types::Timestamp>,
    #[prost(message, optional, tag = "8")]
    received_at: Option<prost_types::Timestamp>,
    #[prost(string, tag = "9")]
    event: String,
    #[prost(string, tag = "11")]
    group_id: String,
    #[prost(bytes = "vec", tag = "13")]
    properties: Vec<u8>,
    #[prost(bytes = "vec", tag = "14")]
    traits: Vec<u8>,
    #[prost(bytes = "vec", tag = "15")]
    context: Vec<u8>,
    #[prost(bytes = "vec", tag = "16")]
    integrations: Vec<u8>,
}

/// What replays read of a stored event.
pub struct Decoded {
    pub stored: StoredEvent,
    /// The account a group call links its user to.
    pub account: Option<String>,
    /// Its name for Engage's `event('…')`.
    pub name: Option<String>,
    /// The traits it sets, as stored (JSON): parsed when Engage records them.
    pub traits: Option<Vec<u8>>,
    /// A named event's revenue.
    pub revenue: Option<f64>,
    pub received_ms: i64,
    /// The source it came from.
    pub source: u32,
}

impl Decoded {
    fn of(seq: u64, event: &Event, custom: &CustomIdentifiers, source: u32) -> Self {
        let name = crate::engage::event_name(event).map(str::to_owned);
        Self {
            stored: stored_event(seq, event, custom),
            account: account_of(event).map(str::to_owned),
            revenue: name.as_ref().and_then(|_| crate::engage::revenue_of(&event.properties)),
            name,
            traits: sets_traits(event).then(|| event.traits.clone()),
            received_ms: event.received_at.as_ref().map_or(0, time::to_ms),
            source,
        }
    }

    /// Moves the log's clock with this event, unless Engage wrote it (`source` is Engage's).
    fn advance_clock(&self, clock: &mut crate::engage::clock::LogClock, engage_source: Option<u32>) {
        if engage_source != Some(self.source) {
            clock.advance(self.stored.seq, self.stored.timestamp_ms, self.received_ms);
        }
    }

    /// What Engage records of it (`traits` parsed into `parsed`).
    fn engage_facts<'a>(
        &'a self,
        parsed: &'a mut Option<serde_json::Map<String, serde_json::Value>>,
    ) -> EngageFacts<'a> {
        *parsed = self
            .traits
            .as_deref()
            .and_then(|bytes| crate::json::parse_object(bytes).ok().flatten());
        EngageFacts {
            name: self.name.as_deref(),
            traits: parsed.as_ref(),
            revenue: self.revenue,
        }
    }
}

/// The identity facts of a stored event's bytes (as the log keeps them), with its account and
/// Engage name.
pub fn stored_identity(seq: u64, value: &[u8], custom: &CustomIdentifiers) -> Result<Decoded> {
    let source = crate::profile_reads::source_of(value);
    if !custom.is_empty() {
        return Ok(Decoded::of(seq, &decode_stored(seq, value)?, custom, source));
    }
    let mut fields: IdentityFields =
        proto::decode_record(value.get(4..).unwrap_or_default(), format_args!("event {seq}"))?;
    let traits = (fields.r#type == EventType::Identify as i32 && !fields.traits.is_empty())
        .then(|| std::mem::take(&mut fields.traits));
    // Only the fields identity reads are set: the rest stay empty.
    let event = Event {
        r#type: fields.r#type,
        event: fields.event,
        user_id: fields.user_id,
        anonymous_id: fields.anonymous_id,
        group_id: fields.group_id,
        traits: traits.clone().unwrap_or_default(),
        context: fields.context,
        integrations: fields.integrations,
        ..Default::default()
    };
    let stored = StoredEvent {
        seq,
        message_id: fields.message_id,
        timestamp_ms: fields.timestamp.as_ref().map_or(0, time::to_ms),
        identifiers: profile_identifiers(identifiers::of_event(&event, custom)),
        sets_traits: sets_traits(&event),
    };
    let name = crate::engage::event_name(&event).map(str::to_owned);
    Ok(Decoded {
        stored,
        account: account_of(&event).map(str::to_owned),
        revenue: name
            .as_ref()
            .and_then(|_| crate::engage::revenue_of(&fields.properties)),
        name,
        traits,
        received_ms: fields.received_at.as_ref().map_or(0, time::to_ms),
        source,
    })
}

/// The identity facts of a stored event.
pub fn stored_event(seq: u64, event: &Event, custom: &CustomIdentifiers) -> StoredEvent {
    StoredEvent {
        seq,
        message_id: event.message_id.clone(),
        timestamp_ms: event.timestamp.as_ref().map_or(0, time::to_ms),
        identifiers: profile_identifiers(identifiers::of_event(event, custom)),
        sets_traits: sets_traits(event),
    }
}

/// The stored identity administration.
pub fn load_administration(store: &Store) -> Result<(proto::IdentityRules, Vec<proto::IdentityAction>)> {
    let txn = store.log.read()?;
    let rules = match store.log_dbs.identity.get(&txn.txn, "rules")? {
        Some(bytes) => proto::decode_record(bytes, "the identity rules record")?,
        None => proto::IdentityRules::default(),
    };
    let actions = match store.log_dbs.identity.get(&txn.txn, "actions")? {
        Some(bytes) => proto::decode_record::<proto::IdentityActions>(bytes, "the identity actions record")?.actions,
        None => Vec::new(),
    };
    Ok((rules, actions))
}

/// The separations the admin actions made.
pub fn separations_of(actions: &[proto::IdentityAction]) -> Separations {
    let mut separations = Separations::default();
    for action in actions {
        let Some(a) = Identifier::parse(&action.a) else {
            continue;
        };
        match Identifier::parse(&action.b) {
            Some(b) => separations.separate(a.hash128(), b.hash128()),
            None => separations.isolate(a.hash128()),
        }
    }
    separations
}

/// A graph (and account links) built from the whole log in canonical order; also returns the
/// last seq it covers. The bulk path of start-up without a snapshot and of rule changes: the log
/// is read in chunks under short read transactions, each chunk decoded on every core (rayon),
/// and the identity facts kept in memory, so the events are read once; then they are sorted
/// into the canonical order and resolved (nothing is late then, so no cluster is replayed).
pub fn replay_log(
    store: &Store,
    rules: IdentityRules,
    custom: &CustomIdentifiers,
    separations: Separations,
    progress: &Progress,
) -> Result<Replayed> {
    use rayon::prelude::*;
    let started = std::time::Instant::now();
    let mut graph = IdentityGraph::with_separations(rules, separations);
    let mut links = AccountLinks::default();
    let mut engage = Engage::default();
    let engage_source = crate::engage::realtime::existing_engage_source(store)?;
    let through = last_seq(store)?;
    progress.begin(Phase::Reading, through);
    // Each event's identity facts, with what Engage records (once the graph holds its nodes).
    let mut facts: Vec<Decoded> = Vec::with_capacity(through as usize);
    scan_raw(store, 0, through, |chunk| {
        progress.advance(chunk.len() as u64);
        let decoded: Vec<Decoded> = chunk
            .par_iter()
            .map(|(seq, value)| stored_identity(*seq, value, custom))
            .collect::<Result<_>>()?;
        for decoded in decoded {
            decoded.advance_clock(&mut engage.clock, engage_source);
            if let Some(account) = &decoded.account {
                links.record(&decoded.stored.identity(), account);
            }
            if !decoded.stored.identifiers.is_empty() {
                facts.push(decoded);
            }
        }
        Ok(())
    })?;
    let decoded = started.elapsed();
    // At most this many nodes: growing the big tables step by step would copy them.
    graph.reserve(facts.iter().map(|d| d.stored.identifiers.len()).sum());
    facts.par_sort_unstable_by(|a, b| {
        let (a, b) = (&a.stored, &b.stored);
        (a.timestamp_ms, &a.message_id, a.seq).cmp(&(b.timestamp_ms, &b.message_id, b.seq))
    });
    let sorted = started.elapsed();
    let mut loader = LogLoader { store, custom };
    progress.begin(Phase::Resolving, facts.len() as u64);
    for step in facts.chunks(progress::STEP) {
        for decoded in step {
            graph.add(&decoded.stored.identity(), &mut loader);
        }
        progress.advance(step.len() as u64);
    }
    // The indexes do not depend on the order events are recorded in (times are sorted, and a
    // trait's latest value is the latest by its own key): only the nodes had to exist.
    let mut parsed = None;
    for decoded in &facts {
        let stored = &decoded.stored;
        if let Some(node) = graph.primary_node(&stored.identifiers) {
            let at = (stored.seq, stored.timestamp_ms, stored.message_id.as_str());
            engage.record(node, decoded.engage_facts(&mut parsed), at, &mut |seq| {
                loader.message_id(seq)
            });
        }
    }
    log::info!(
        "re-resolved {through} events in {:.2} s: read and decoded in {:.2} s, ordered in {:.2} s, resolved in {:.2} s",
        started.elapsed().as_secs_f64(),
        decoded.as_secs_f64(),
        (sorted - decoded).as_secs_f64(),
        (started.elapsed() - sorted).as_secs_f64()
    );
    Ok(Replayed {
        graph,
        links,
        engage,
        through,
    })
}

/// What `replay_log` builds.
pub struct Replayed {
    pub graph: IdentityGraph,
    pub links: AccountLinks,
    pub engage: Engage,
    /// The last seq replayed.
    pub through: u64,
}

/// The stored bytes of the events after `after`, up to `through`, handed to `each` a chunk at a
/// time in seq order. Each chunk is copied out under a read transaction of its own that is closed
/// before `each` sees it: a long scan then neither keeps LMDB from reusing pages, nor holds the
/// resize gate while `each` resolves events (which may read the log again: see `store`).
fn scan_raw(
    store: &Store,
    after: u64,
    through: u64,
    mut each: impl FnMut(Vec<(u64, Vec<u8>)>) -> Result<()>,
) -> Result<()> {
    let mut next = after.saturating_add(1);
    while next <= through {
        let chunk = {
            let txn = store.log.read()?;
            let mut chunk = Vec::new();
            let mut bytes = 0;
            for entry in store.log_dbs.events.range(&txn.txn, &(next..=through))? {
                let (seq, value) = entry?;
                chunk.push((seq, value.to_vec()));
                bytes += value.len();
                if chunk.len() == LOG_CHUNK || bytes >= LOG_CHUNK_BYTES {
                    break;
                }
            }
            chunk
        };
        let Some(&(last, _)) = chunk.last() else {
            break;
        };
        next = last + 1;
        each(chunk)?;
    }
    Ok(())
}

impl Profiles {
    /// Rebuilds the graph under the stored administration: from the latest usable snapshot
    /// and the log after it, or else from the whole log.
    /// `administration`: what `load_administration` read; `snapshots`: None to ignore them.
    pub fn rebuild(
        store: &Store,
        administration: (proto::IdentityRules, Vec<proto::IdentityAction>),
        snapshots: Option<&Snapshots>,
    ) -> Result<Self> {
        let (rules, actions) = administration;
        let custom = Arc::new(custom_identifiers(&rules));
        let deletions = crate::governance::deletion::applied(store)?;
        let mut loaded_snapshot = None;
        let state = match snapshots.map(|s| Self::from_snapshot(s, store, &rules, &actions, &custom)) {
            Some(Ok(Some((state, through)))) => {
                loaded_snapshot = Some(through);
                state
            }
            outcome => {
                if let Some(Err(err)) = outcome {
                    log::warn!("the identity snapshot could not be read ({err}): replaying the whole log");
                }
                let Replayed {
                    graph,
                    links,
                    engage,
                    through,
                } = replay_log(
                    store,
                    compile_rules(&rules)?,
                    &custom,
                    separations_of(&actions),
                    &Progress::default(),
                )?;
                if through > 0 {
                    log::info!(
                        "identity graph rebuilt from {through} events: {} profiles",
                        graph.profile_count()
                    );
                }
                ProfileState {
                    graph,
                    resolved_through: through,
                    links,
                    engage,
                    rules,
                    actions,
                    custom: Arc::clone(&custom),
                    deletions,
                }
            }
        };
        Ok(Self {
            state: Mutex::new(state),
            admin: Mutex::new(()),
            progress: Progress::default(),
            custom: parking_lot::RwLock::new(custom),
            loaded_snapshot,
            resolutions_waiting: AtomicUsize::new(0),
        })
    }

    /// The state of the latest snapshot, caught up with the log after it, and the seq the
    /// snapshot covered; `None` when there is no usable snapshot (the reason is logged).
    fn from_snapshot(
        snapshots: &Snapshots,
        store: &Store,
        rules: &proto::IdentityRules,
        actions: &[proto::IdentityAction],
        custom: &Arc<CustomIdentifiers>,
    ) -> Result<Option<(ProfileState, u64)>> {
        let started = std::time::Instant::now();
        let snapshot: Snapshot = match snapshots.read(SNAPSHOT_NAME)? {
            Ok(snapshot) => snapshot,
            Err(reason) => {
                log::info!("no identity snapshot used ({reason}): replaying the whole log");
                return Ok(None);
            }
        };
        let last = last_seq(store)?;
        let deletions = crate::governance::deletion::applied(store)?;
        if snapshot.administration != administration_of(rules, actions, deletions) || snapshot.resolved_through > last {
            log::info!("the identity snapshot was built under other identity rules or ahead of the log: not used");
            return Ok(None);
        }
        let graph = IdentityGraph::from_state(compile_rules(rules)?, separations_of(actions), snapshot.graph);
        let mut state = ProfileState {
            graph,
            resolved_through: snapshot.resolved_through,
            links: snapshot.links,
            engage: {
                let mut engage = snapshot.engage;
                engage.restore();
                engage
            },
            rules: rules.clone(),
            actions: actions.to_vec(),
            custom: Arc::clone(custom),
            deletions,
        };
        let loaded = started.elapsed();
        Self::catch_up(&mut state, store)?;
        log::info!(
            "identity graph loaded from its snapshot through event {} in {:.2} s, then {} later events replayed in {:.2} s",
            snapshot.resolved_through,
            loaded.as_secs_f64(),
            last - snapshot.resolved_through,
            (started.elapsed() - loaded).as_secs_f64()
        );
        Ok(Some((state, snapshot.resolved_through)))
    }

    /// Resolves committed events, in log order (events already resolved are skipped). Returns
    /// what the events marked `report` touched, and the graph's count of replayed clusters
    /// (read under the same lock: see `Hub::rebuilt_clusters`).
    pub fn resolve<'a>(&self, store: &Store, events: impl IntoIterator<Item = Resolvable<'a>>) -> (Vec<Touch>, u64) {
        self.resolutions_waiting.fetch_add(1, Ordering::AcqRel);
        let mut state = self.state.lock();
        self.resolutions_waiting.fetch_sub(1, Ordering::AcqRel);
        let custom = Arc::clone(&state.custom);
        let mut loader = LogLoader { store, custom: &custom };
        let mut touches = Vec::new();
        for event in events {
            if event.seq <= state.resolved_through {
                continue;
            }
            let identity = event.identity();
            let merged = state.graph.add_noting_merge(&identity, &mut loader) == Some(true);
            if let Some(account) = event.account {
                state.links.record(&identity, account);
            }
            if !event.derived {
                state
                    .engage
                    .clock
                    .advance(event.seq, event.timestamp_ms, event.received_ms);
            }
            let facts = EngageFacts {
                name: event.engage_name,
                traits: event.engage_traits,
                revenue: event.revenue,
            };
            let carries = facts.name.is_some() || facts.traits.is_some();
            // The primary node is found once, for the index and the worker both; the touch
            // after the index, which numbers a name or trait key seen for the first time.
            if carries || event.report {
                if let Some(node) = state.graph.primary_node(event.identifiers) {
                    let touch = event.report.then_some((facts.name, facts.traits));
                    if carries {
                        state.record_engage_at(node, &identity, facts, &mut loader);
                    }
                    if let Some((name, traits)) = touch {
                        touches.push(state.touch(
                            node,
                            &EngageFacts {
                                name,
                                traits,
                                revenue: None,
                            },
                            merged,
                        ));
                    }
                }
            }
            state.resolved_through = event.seq;
        }
        let rebuilt = state.graph.rebuilt_clusters();
        (touches, rebuilt)
    }

    /// Resolves what the log holds after `state.resolved_through` (used after swapping in a
    /// graph built from a snapshot). No read transaction is open while an event is resolved:
    /// a late one reads its cluster back from the log.
    pub fn catch_up(state: &mut ProfileState, store: &Store) -> Result<()> {
        let custom = Arc::clone(&state.custom);
        let mut loader = LogLoader { store, custom: &custom };
        let through = last_seq(store)?;
        let engage_source = crate::engage::realtime::existing_engage_source(store)?;
        // Only the fields identity reads are decoded, as in `replay_log`.
        scan_raw(store, state.resolved_through, through, |chunk| {
            for (seq, value) in chunk {
                let decoded = stored_identity(seq, &value, &custom)?;
                decoded.advance_clock(&mut state.engage.clock, engage_source);
                let stored = &decoded.stored;
                state.graph.add(&stored.identity(), &mut loader);
                if let Some(account) = &decoded.account {
                    state.links.record(&stored.identity(), account);
                }
                let mut parsed = None;
                state.record_engage(&stored.identity(), decoded.engage_facts(&mut parsed), &mut loader);
                state.resolved_through = seq;
            }
            Ok(())
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, ProfileState> {
        self.state.lock()
    }

    /// Whether ingest waits to resolve events (background work holding the lock lets go).
    pub fn ingest_waiting(&self) -> bool {
        self.resolutions_waiting.load(Ordering::Acquire) > 0
    }

    /// Makes background work see ingest waiting, always (tests of giving the lock up).
    #[cfg(test)]
    pub fn pretend_ingest_waits(&self, waits: bool) {
        if waits {
            self.resolutions_waiting.fetch_add(1, Ordering::AcqRel);
        } else {
            self.resolutions_waiting.fetch_sub(1, Ordering::AcqRel);
        }
    }

    pub fn custom(&self) -> Arc<CustomIdentifiers> {
        Arc::clone(&self.custom.read())
    }

    /// Swaps in a state built under new rules (the caller holds the lock on `state`).
    pub fn replace(&self, state: &mut ProfileState, new: ProfileState) {
        *self.custom.write() = Arc::clone(&new.custom);
        *state = new;
    }
}

/// The custom identifier types the rules name.
pub fn custom_identifiers(rules: &proto::IdentityRules) -> CustomIdentifiers {
    let mut custom = CustomIdentifiers::default();
    for rule in &rules.rules {
        let kind = rule.r#type.trim().to_ascii_lowercase();
        custom
            .traits
            .extend(rule.traits.iter().map(|name| (kind.clone(), name.clone())));
        custom
            .properties
            .extend(rule.properties.iter().map(|name| (kind.clone(), name.clone())));
    }
    custom
}

/// Compiles stored or requested rules, naming the rule that is wrong.
pub fn compile_rules(rules: &proto::IdentityRules) -> Result<IdentityRules> {
    use crate::identity::rules::{Limit, LimitWindow, TypeRule};
    let mut types = HashMap::new();
    for (i, rule) in rules.rules.iter().enumerate() {
        let kind = rule.r#type.trim().to_ascii_lowercase();
        if kind.is_empty() || kind.contains(':') {
            return Err(EngineError::InvalidRequest(format!(
                "rules[{i}].type must be an identifier type like \"email\", got {:?}",
                rule.r#type
            )));
        }
        let names = rule.traits.iter().map(|n| ("traits", n));
        for (field, name) in names.chain(rule.properties.iter().map(|n| ("properties", n))) {
            if name.trim().is_empty() {
                return Err(EngineError::InvalidRequest(format!(
                    "rules[{i}].{field} has an empty name"
                )));
            }
        }
        if types.contains_key(&kind) {
            return Err(EngineError::InvalidRequest(format!(
                "rules[{i}].type {kind:?} appears twice"
            )));
        }
        let window = match proto::LimitWindow::try_from(rule.window) {
            Ok(proto::LimitWindow::Ever) => LimitWindow::Ever,
            Ok(proto::LimitWindow::Weekly) => LimitWindow::Weekly,
            Ok(proto::LimitWindow::Monthly) => LimitWindow::Monthly,
            Ok(proto::LimitWindow::Annually) => LimitWindow::Annually,
            Err(_) => {
                return Err(EngineError::InvalidRequest(format!(
                    "rules[{i}].window {} is not a known window",
                    rule.window
                )))
            }
        };
        let default_values = if kind == "user_id" {
            1
        } else {
            crate::identity::rules::DEFAULT_LIMIT
        };
        let limit = (rule.limit > 0 || window != LimitWindow::Ever).then_some(Limit {
            values: if rule.limit == 0 { default_values } else { rule.limit },
            window,
        });
        let default_priority = match kind.as_str() {
            "user_id" => Some(1),
            "email" => Some(2),
            _ => None,
        };
        let typed = TypeRule {
            limit,
            priority: if rule.priority == 0 {
                default_priority
            } else {
                Some(rule.priority)
            },
            blocked_values: rule.blocked_values.clone(),
            blocked_patterns: rule.blocked_patterns.clone(),
        };
        types.insert(kind, typed);
    }
    IdentityRules::new(types).map_err(|e| EngineError::InvalidRequest(format!("rules: {}", e.0)))
}

/// A stored event record: the source id (4 bytes), then the encoded event.
pub(crate) fn decode_stored(seq: u64, value: &[u8]) -> Result<Event> {
    proto::decode_record(value.get(4..).unwrap_or_default(), format_args!("event {seq}"))
}

mod erase;
#[cfg(test)]
mod tests;

pub use erase::Erasure;
