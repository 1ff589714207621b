//! The identity graph: Segment's flat matching over identifier nodes, with the workspace's
//! rules checked before any union (a "checked union"), stable profile ids and a merge log.
//!
//! Invariants after every `resolve`:
//! - every linked identifier is in exactly one profile (its union-find component);
//! - every identifier an event carried (blocked values aside) is linked: one that a rule, cap or
//!   separation kept out of the profile its event resolved to is matched again with the other
//!   identifiers the event set aside, as if an event had carried only them (it may still join a
//!   profile of its own). So an identifier that has events always resolves to a profile;
//! - no blocked identifier is ever a node;
//! - within each profile, the values of a type seen inside that type's limit window never
//!   exceed its limit at the time they were linked, no profile passes the caps (`MAX_MERGES`
//!   merges, `MAX_IDENTIFIERS` identifiers) and no profile holds identifiers an admin separated;
//! - a profile keeps the id of the oldest profile it was merged from; merged-away ids resolve
//!   to the survivor through `aliases`;
//! - the profiles of every cluster (see `clusters`) are those that resolving the cluster's
//!   events in canonical order (`order`) gives: an event that arrives late replays its cluster.
//!   So the graph is a function of the set of events and the separations, not of arrival order
//!   (ids included: an id is derived from the event that created its profile).

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::fmt;

use rustc_hash::{FxHashMap, FxHashSet};
use xxhash_rust::xxh3::xxh3_128;

use hashbrown::HashTable;

use super::arena::{IdentRef, IdentifierArena, TextRef};
use super::clusters::Arrival;
use super::clusters::Clusters;
use super::order::PackedKey;
use super::root_table::RootTable;
use super::rules::IdentityRules;
use super::separations::Separations;
use super::union_find::UnionFind;
use crate::identifiers::Identifier;

/// Segment's system caps.
pub const MAX_MERGES: u32 = 100;
pub const MAX_IDENTIFIERS: usize = 1_000;

/// A profile's stable id: `tp_` and 26 Crockford base-32 characters (128 bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ProfileId(pub u128);

impl fmt::Display for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
        let mut text = [0u8; 26];
        for (i, out) in text.iter_mut().enumerate() {
            let shift = 5 * (25 - i);
            *out = ALPHABET[((self.0 >> shift) & 31) as usize];
        }
        write!(f, "tp_{}", std::str::from_utf8(&text).unwrap_or_default())
    }
}

impl std::str::FromStr for ProfileId {
    type Err = ();

    /// Parses `tp_` + 26 Crockford base-32 characters.
    fn from_str(text: &str) -> Result<Self, ()> {
        let body = text.strip_prefix("tp_").ok_or(())?;
        if body.len() != 26 {
            return Err(());
        }
        let mut value: u128 = 0;
        for ch in body.bytes() {
            let digit = b"0123456789abcdefghjkmnpqrstvwxyz"
                .iter()
                .position(|&c| c == ch.to_ascii_lowercase())
                .ok_or(())?;
            value = value.checked_mul(32).ok_or(())? | digit as u128;
        }
        Ok(ProfileId(value))
    }
}

impl fmt::Debug for ProfileId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

/// Why an identifier of an event was not linked.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Refusal {
    /// Its value is blocked for its type.
    Blocked,
    /// Linking it would give the profile more values of `kind` than its limit allows.
    Limit { kind: String },
    /// The profile would pass `MAX_IDENTIFIERS`.
    IdentifierCap,
    /// The merge would pass `MAX_MERGES`.
    MergeCap,
    /// An admin split these identifiers apart (`SplitProfile`, `RemoveIdentifier`).
    Separated,
}

/// What the graph needs of an event.
#[derive(Clone, Copy)]
pub struct EventIdentity<'a> {
    /// Its log seq (the graph keeps it to replay the event's cluster).
    pub seq: u64,
    pub message_id: &'a str,
    pub timestamp_ms: i64,
    pub identifiers: &'a [Identifier],
    /// It sets profile traits (an identify): its seq is kept with the profile it resolves to.
    pub sets_traits: bool,
}

/// An event read back from the log to be replayed.
#[derive(Clone, Debug)]
pub struct StoredEvent {
    pub seq: u64,
    pub message_id: String,
    pub timestamp_ms: i64,
    pub identifiers: Vec<Identifier>,
    pub sets_traits: bool,
}

impl StoredEvent {
    pub fn identity(&self) -> EventIdentity<'_> {
        EventIdentity {
            seq: self.seq,
            message_id: &self.message_id,
            timestamp_ms: self.timestamp_ms,
            identifiers: &self.identifiers,
            sets_traits: self.sets_traits,
        }
    }
}

/// Reads events back by seq, for replaying a cluster (the log in the engine, a map in tests).
pub trait EventLoader {
    /// The events that still exist, in any order.
    fn load(&mut self, seqs: &[u64]) -> Vec<StoredEvent>;

    /// The messageId of the event at `seq` (ties in the canonical order are broken by it).
    fn message_id(&mut self, seq: u64) -> Option<String> {
        self.load(&[seq]).pop().map(|event| event.message_id)
    }
}

/// A profile as a reader sees it.
pub struct ProfileView {
    pub id: ProfileId,
    pub merges: u32,
    /// (identifier, log seq of the event that first linked it), in link order.
    pub identifiers: Vec<(Identifier, u64)>,
    /// Log seqs of the events that set its traits.
    pub trait_events: Vec<u64>,
    /// The merges that built it, oldest first.
    pub merge_history: Vec<Merge>,
}

/// The decision for one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolution {
    pub profile: ProfileId,
    pub created: bool,
    /// Profiles merged into `profile` by this event.
    pub merged: Vec<ProfileId>,
    pub linked: Vec<Identifier>,
    pub refused: Vec<(Identifier, Refusal)>,
}

/// A decision as matching makes it: linked identifiers as node numbers (turned into a
/// `Resolution` only for callers that want one, off the ingest path).
struct Decided {
    profile: ProfileId,
    created: bool,
    merged: Vec<ProfileId>,
    linked: Vec<u32>,
    refused: Vec<(Identifier, Refusal)>,
}

/// See `IdentityGraph::classify_late`.
enum Late {
    Neutral,
    Earlier {
        home: u32,
        later: Vec<u32>,
        order: Vec<u32>,
    },
    Replay,
}

/// How a reader names a profile.
pub enum ProfileLookup {
    Identifier(Identifier),
    Id(ProfileId),
}

/// One merge, for history and for explaining links.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Merge {
    pub survivor: ProfileId,
    pub merged: ProfileId,
    pub message_id: String,
    pub timestamp_ms: i64,
}

/// An identifier an event carried but did not link, kept for explanations.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RefusalRecord {
    pub identifier: Identifier,
    pub reason: Refusal,
    pub message_id: String,
    pub timestamp_ms: i64,
    /// Where the event went instead.
    pub resolved_to: ProfileId,
}

/// One step of an explanation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkStep {
    /// `identifier` first joined `profile` with the event at log seq `first_seq`.
    Joined {
        identifier: Identifier,
        profile: ProfileId,
        first_seq: u64,
    },
    /// A merge on the way from an identifier's first profile to its profile now.
    Merged(Merge),
    /// An event carried `identifier` but it was not linked to `resolved_to`.
    Refused(RefusalRecord),
}

/// Why two identifiers are in one profile, or why not.
pub struct Explanation {
    pub linked: bool,
    pub profile_a: ProfileId,
    pub profile_b: ProfileId,
    pub steps: Vec<LinkStep>,
}

/// Refusals remembered for explanations (the oldest are forgotten first).
const REFUSAL_LOG_LIMIT: usize = 100_000;

/// An identifier seen in a linkable position. A node belongs to a cluster from its first event;
/// it is `linked` once flat matching put it in a profile (its union-find set).
/// 48 bytes (checked below): the identifier's text is in the arena, its first sighting is a log seq (the
/// event's message id and time are read back from the log when someone asks).
#[derive(serde::Serialize, serde::Deserialize)]
struct Node {
    /// The profile it first joined (it may since have been merged into another).
    origin: ProfileId,
    last_seen_ms: i64,
    /// Log seq of the event that first linked it.
    first_seq: u64,
    text: TextRef,
    linked: bool,
}

const _: () = assert!(std::mem::size_of::<Node>() == 48);

#[derive(serde::Serialize, serde::Deserialize)]
struct Profile {
    id: ProfileId,
    /// The key of the event that created it: the older profile survives a merge.
    created: PackedKey,
    /// 0 for a profile an event made for itself, n for one made of what it set aside at the
    /// n-th level (see `decide`): between profiles of one event, the event's own is older.
    set_aside: u8,
    /// The key of the latest event that added an identifier or merged (see `is_neutral`).
    changed: PackedKey,
    merges: u32,
    members: Vec<u32>,
    trait_events: Vec<u64>,
    /// Indexes into the merge log.
    merge_history: Vec<u32>,
}

/// See the module docs.
pub struct IdentityGraph {
    rules: IdentityRules,
    separations: Separations,
    /// The text of every node's identifier.
    arena: IdentifierArena,
    /// Node numbers, found by their identifier's text (hashed with `node_hash`): 4 bytes an
    /// entry, the text itself is the arena's.
    node_of: HashTable<u32>,
    nodes: Vec<Node>,
    /// Profiles: union-find over linked nodes.
    sets: UnionFind,
    /// Co-occurrence clusters over the same node numbers.
    clusters: Clusters,
    /// Keyed by the union-find root of the profile's nodes.
    profiles: RootTable<Profile>,
    /// Ids that no longer name a live profile → the id they lead to (never a cycle: only
    /// ids of live profiles are targets, and a live profile's id has no alias).
    aliases: FxHashMap<ProfileId, ProfileId>,
    /// A node of each live profile, to find it by id.
    anchors: FxHashMap<ProfileId, u32>,
    merges: Vec<Merge>,
    /// Merged-away profile → its merge in `merges`.
    merged_by: FxHashMap<ProfileId, u32>,
    /// (node of the refused identifier, record).
    refusals: VecDeque<(u32, RefusalRecord)>,
    rebuilt_clusters: u64,
}

/// The graph's own state, as a snapshot keeps it (see `crate::snapshot`): everything but the
/// rules and separations, which the administration gives back at load, and the node map,
/// rebuilt from the arena. `GraphStateRef` is the same, borrowed, for writing: keep the two in
/// step (a round-trip test checks it).
#[derive(serde::Deserialize)]
pub struct GraphState {
    arena: IdentifierArena,
    nodes: Vec<Node>,
    sets: UnionFind,
    clusters: Clusters,
    profiles: RootTable<Profile>,
    aliases: FxHashMap<ProfileId, ProfileId>,
    anchors: FxHashMap<ProfileId, u32>,
    merges: Vec<Merge>,
    merged_by: FxHashMap<ProfileId, u32>,
    refusals: VecDeque<(u32, RefusalRecord)>,
    rebuilt_clusters: u64,
}

#[derive(serde::Serialize)]
pub struct GraphStateRef<'a> {
    arena: &'a IdentifierArena,
    nodes: &'a Vec<Node>,
    sets: &'a UnionFind,
    clusters: &'a Clusters,
    profiles: &'a RootTable<Profile>,
    aliases: &'a FxHashMap<ProfileId, ProfileId>,
    anchors: &'a FxHashMap<ProfileId, u32>,
    merges: &'a Vec<Merge>,
    merged_by: &'a FxHashMap<ProfileId, u32>,
    refusals: &'a VecDeque<(u32, RefusalRecord)>,
    rebuilt_clusters: u64,
}

impl IdentityGraph {
    /// The state to snapshot.
    pub fn state(&self) -> GraphStateRef<'_> {
        GraphStateRef {
            arena: &self.arena,
            nodes: &self.nodes,
            sets: &self.sets,
            clusters: &self.clusters,
            profiles: &self.profiles,
            aliases: &self.aliases,
            anchors: &self.anchors,
            merges: &self.merges,
            merged_by: &self.merged_by,
            refusals: &self.refusals,
            rebuilt_clusters: self.rebuilt_clusters,
        }
    }

    /// A graph from a snapshot's state, under the rules and separations it was built with.
    pub fn from_state(rules: IdentityRules, separations: Separations, state: GraphState) -> Self {
        let mut graph = Self {
            rules,
            separations,
            arena: state.arena,
            node_of: HashTable::new(),
            nodes: state.nodes,
            sets: state.sets,
            clusters: state.clusters,
            profiles: state.profiles,
            aliases: state.aliases,
            anchors: state.anchors,
            merges: state.merges,
            merged_by: state.merged_by,
            refusals: state.refusals,
            rebuilt_clusters: state.rebuilt_clusters,
        };
        graph.profiles.restore();
        let (arena, nodes) = (&graph.arena, &graph.nodes);
        let hash = |node: u32| node_hash(arena.get(nodes[node as usize].text).hash128());
        graph.node_of = HashTable::with_capacity(nodes.len());
        for node in 0..nodes.len() as u32 {
            if !nodes[node as usize].text.is_erased() {
                graph.node_of.insert_unique(hash(node), node, |&known| hash(known));
            }
        }
        graph
    }

    pub fn new(rules: IdentityRules) -> Self {
        Self::with_separations(rules, Separations::default())
    }

    pub fn with_separations(rules: IdentityRules, separations: Separations) -> Self {
        Self {
            rules,
            separations,
            arena: IdentifierArena::default(),
            node_of: HashTable::new(),
            nodes: Vec::new(),
            sets: UnionFind::new(),
            clusters: Clusters::default(),
            profiles: RootTable::default(),
            aliases: FxHashMap::default(),
            anchors: FxHashMap::default(),
            merges: Vec::new(),
            merged_by: FxHashMap::default(),
            refusals: VecDeque::new(),
            rebuilt_clusters: 0,
        }
    }

    /// Room for about `identifiers` nodes (a replay knows its size: growing big tables
    /// step by step copies them and faults in fresh pages each time).
    pub fn reserve(&mut self, identifiers: usize) {
        let (arena, nodes) = (&self.arena, &self.nodes);
        self.node_of.reserve(identifiers, |&node| {
            node_hash(arena.get(nodes[node as usize].text).hash128())
        });
        self.nodes.reserve(identifiers);
        self.sets.reserve(identifiers);
        self.clusters.reserve(identifiers);
        self.profiles.reserve(identifiers / 2, identifiers);
        self.anchors.reserve(identifiers / 2);
    }

    pub fn rules(&self) -> &IdentityRules {
        &self.rules
    }

    pub fn separations(&self) -> &Separations {
        &self.separations
    }

    /// How many times a cluster was replayed (late events and admin splits).
    pub fn rebuilt_clusters(&self) -> u64 {
        self.rebuilt_clusters
    }

    /// Resolves one event. In canonical order (or when nothing its cluster has seen sorts
    /// after it) this is flat matching: find the profiles owning the event's identifiers and
    /// create, attach or merge; when a rule, cap or separation forbids the result, drop the
    /// event's lowest-priority identifier and match again. A late event instead replays its
    /// cluster in canonical order, unless it provably changes nothing (`is_neutral`).
    /// `None` when the event has no linkable identifier.
    pub fn resolve(&mut self, event: &EventIdentity<'_>, loader: &mut dyn EventLoader) -> Option<Resolution> {
        let decided = self.match_event(event, loader)?;
        Some(Resolution {
            profile: decided.profile,
            created: decided.created,
            merged: decided.merged,
            linked: decided
                .linked
                .iter()
                .map(|&n| self.identifier(n).to_identifier())
                .collect(),
            refused: decided.refused,
        })
    }

    /// `resolve` for the ingest path and replays: the profile only, without building the
    /// resolution's lists.
    pub fn add(&mut self, event: &EventIdentity<'_>, loader: &mut dyn EventLoader) -> Option<ProfileId> {
        self.match_event(event, loader).map(|decided| decided.profile)
    }

    /// `add` telling only whether the event merged profiles (a merge can change any of the
    /// merged profile's audiences, not only those reading what the event carried).
    pub fn add_noting_merge(&mut self, event: &EventIdentity<'_>, loader: &mut dyn EventLoader) -> Option<bool> {
        self.match_event(event, loader)
            .map(|decided| !decided.merged.is_empty())
    }

    fn match_event(&mut self, event: &EventIdentity<'_>, loader: &mut dyn EventLoader) -> Option<Decided> {
        let (candidates, refused) = self.candidates(event);
        if candidates.is_empty() {
            return None;
        }
        let arrival = Arrival {
            seq: event.seq,
            timestamp_ms: event.timestamp_ms,
            message_id: event.message_id,
        };
        let joined = self
            .clusters
            .join(&candidates, &arrival, &mut |seq| loader.message_id(seq));
        if joined.late {
            match self.classify_late(&candidates, event, loader) {
                Late::Neutral => {}
                Late::Earlier { home, later, order } => self.link_earlier(home, &later, order, event),
                Late::Replay => return self.rebuild_cluster(joined.root, Some(event.seq), loader),
            }
        }
        Some(self.decide(event, candidates, refused, loader))
    }

    /// `RemoveIdentifier`: from now on the identifier can only be in a profile of its own; its
    /// cluster is rebuilt. `false` when the identifier is not in any profile.
    pub fn isolate(&mut self, identifier: &Identifier, loader: &mut dyn EventLoader) -> bool {
        if self.linked_node(identifier).is_none() {
            return false;
        }
        let mut separations = self.separations.clone();
        separations.isolate(identifier.hash128());
        self.reseparate(separations, &[identifier], loader);
        true
    }

    /// `SplitProfile`: from now on `a` and `b` never share a profile; their cluster is rebuilt.
    /// `false` when either is not in any profile.
    pub fn separate(&mut self, a: &Identifier, b: &Identifier, loader: &mut dyn EventLoader) -> bool {
        if self.linked_node(a).is_none() || self.linked_node(b).is_none() {
            return false;
        }
        let mut separations = self.separations.clone();
        separations.separate(a.hash128(), b.hash128());
        self.reseparate(separations, &[a, b], loader);
        true
    }

    /// Puts `separations` in force and rebuilds the clusters of `around`, the identifiers whose
    /// separations changed (a separation made or withdrawn): the graph is then what resolving
    /// every event under `separations` gives. Identifiers that are not nodes are skipped.
    pub fn reseparate(&mut self, separations: Separations, around: &[&Identifier], loader: &mut dyn EventLoader) {
        self.separations = separations;
        for root in self.cluster_roots(around) {
            self.rebuild_cluster(root, None, loader);
        }
    }

    /// What `reseparate` would make of the clusters of `around`, on a graph of their own (a dry
    /// run: this graph does not change). Resolving a cluster never depends on another, so the
    /// profiles of those identifiers in the returned graph are what `reseparate` would give.
    pub fn preview_separations(
        &mut self,
        separations: Separations,
        around: &[&Identifier],
        loader: &mut dyn EventLoader,
    ) -> IdentityGraph {
        let mut seqs = Vec::new();
        for root in self.cluster_roots(around) {
            seqs.extend_from_slice(&self.clusters.get(root).events);
        }
        let mut events = loader.load(&seqs);
        events.sort_by(|a, b| (a.timestamp_ms, &a.message_id, a.seq).cmp(&(b.timestamp_ms, &b.message_id, b.seq)));
        let mut preview = IdentityGraph::with_separations(self.rules.clone(), separations);
        for event in &events {
            // In canonical order nothing is late: the loader is not used again.
            preview.add(&event.identity(), loader);
        }
        preview
    }

    /// The identifiers of the clusters of `around`: all that re-resolving them can move.
    pub fn cluster_members(&mut self, around: &[&Identifier]) -> Vec<Identifier> {
        let mut members = Vec::new();
        for root in self.cluster_roots(around) {
            let cluster = self.clusters.get(root);
            members.extend(
                cluster
                    .members
                    .iter()
                    .map(|&node| self.arena.get(self.nodes[node as usize].text).to_identifier()),
            );
        }
        members
    }

    /// The distinct cluster roots of the identifiers that are nodes.
    fn cluster_roots(&mut self, identifiers: &[&Identifier]) -> Vec<u32> {
        let mut roots = Vec::new();
        for identifier in identifiers {
            if let Some(node) = self.find_node(identifier) {
                let root = self.clusters.root(node);
                if !roots.contains(&root) {
                    roots.push(root);
                }
            }
        }
        roots
    }

    /// The nodes of the event's linkable identifiers (added when new; deduplicated; most
    /// important first) and its blocked identifiers.
    fn candidates(&mut self, event: &EventIdentity<'_>) -> (Vec<u32>, Vec<(Identifier, Refusal)>) {
        let mut refused = Vec::new();
        let mut candidates: Vec<u32> = Vec::with_capacity(event.identifiers.len());
        for identifier in event.identifiers {
            if self.rules.is_blocked(identifier) {
                refused.push((identifier.clone(), Refusal::Blocked));
                continue;
            }
            let node = self.node(identifier);
            if !candidates.contains(&node) {
                candidates.push(node);
            }
        }
        self.by_priority(&mut candidates);
        (candidates, refused)
    }

    fn identifier(&self, node: u32) -> IdentRef<'_> {
        self.arena.get(self.nodes[node as usize].text)
    }

    /// The node's identifier hash (`Identifier::hash128`).
    fn hash_of(&self, node: u32) -> u128 {
        self.identifier(node).hash128()
    }

    fn find_node(&self, identifier: &Identifier) -> Option<u32> {
        let (arena, nodes) = (&self.arena, &self.nodes);
        self.node_of
            .find(node_hash(identifier.hash128()), |&node| {
                arena.get(nodes[node as usize].text).is(identifier)
            })
            .copied()
    }

    fn is_linked(&self, node: u32) -> bool {
        self.nodes[node as usize].linked
    }

    /// The identifier's node, added (unlinked, in a cluster of its own) if new.
    fn node(&mut self, identifier: &Identifier) -> u32 {
        if let Some(node) = self.find_node(identifier) {
            return node;
        }
        let node = self.sets.add();
        let cluster_node = self.clusters.add();
        debug_assert_eq!(node, cluster_node);
        let text = self.arena.push(identifier);
        let (arena, nodes) = (&self.arena, &self.nodes);
        self.node_of
            .insert_unique(node_hash(identifier.hash128()), node, |&known| {
                node_hash(arena.get(nodes[known as usize].text).hash128())
            });
        self.nodes.push(Node {
            origin: ProfileId(0),
            last_seen_ms: 0,
            first_seq: 0,
            text,
            linked: false,
        });
        node
    }

    fn linked_node(&self, identifier: &Identifier) -> Option<u32> {
        let node = self.find_node(identifier)?;
        self.nodes[node as usize].linked.then_some(node)
    }

    /// What a late event (one that sorts before something its cluster has seen) needs. Its
    /// cluster is replayed unless one of two cases proves the replay's outcome in advance (never
    /// with sliding windows, where "last seen" feeds later decisions):
    /// - `Neutral`: replayed in canonical order it would find its identifiers already together
    ///   in one profile and only attach. So when the profile's every link and merge came from
    ///   events that sort before it; or when each of its identifiers was linked by an event that
    ///   sorts before it and so was every merge of the profile (one identifier: whatever merged
    ///   since, it was in some profile then).
    /// - `Earlier`: its identifiers are all in one profile that holds its whole cluster (nothing
    ///   there was ever refused or set aside) and whose merges all sort before it; some of them
    ///   were linked before it and the others after. Replayed, it would link those others
    ///   itself, and nothing else would change: within a profile that ends up holding them all,
    ///   no limit, cap or separation can refuse a subset. So those identifiers are linked by it
    ///   instead, and move up in the profile's link order to where it puts them.
    ///
    /// The keys of linking events are read back from the log (a few events, not the cluster's).
    fn classify_late(&mut self, nodes: &[u32], event: &EventIdentity<'_>, loader: &mut dyn EventLoader) -> Late {
        if self.rules.has_windows() {
            return Late::Replay;
        }
        let Some(home) = self.shared_profile(nodes) else {
            return Late::Replay;
        };
        let key = (event.timestamp_ms, event.message_id);
        let profile = &self.profiles[&home];
        let ids = &mut |seq| loader.message_id(seq);
        if profile.changed.event_cmp(key.0, key.1, event.seq, ids) == Ordering::Greater {
            return Late::Neutral;
        }
        let merges_before = profile.merge_history.iter().all(|&at| {
            let merge = &self.merges[at as usize];
            (merge.timestamp_ms, merge.message_id.as_str()) < key
        });
        if nodes.len() > 1 && !merges_before {
            return Late::Replay;
        }
        let Some(mut keys) = self.link_keys(nodes, loader) else {
            return Late::Replay;
        };
        let sorts_before = |node: u32| -> Option<bool> {
            let (ts, id) = &keys[&self.nodes[node as usize].first_seq];
            match (*ts, id.as_str()).cmp(&key) {
                Ordering::Less => Some(true),
                Ordering::Greater => Some(false),
                Ordering::Equal => None,
            }
        };
        let mut later = Vec::new();
        for &node in nodes {
            match sorts_before(node) {
                Some(true) => {}
                Some(false) => later.push(node),
                None => return Late::Replay,
            }
        }
        if later.is_empty() {
            return Late::Neutral;
        }
        let cluster = self.clusters.root(nodes[0]);
        if later.len() == nodes.len()
            || !merges_before
            || self.clusters.get(cluster).members.len() != profile.members.len()
        {
            return Late::Replay;
        }
        // The canonical link order: every member linked after the event was linked after the
        // profile's last merge, so those members are a suffix of `members`, in link order.
        let members = profile.members.clone();
        let mut suffix = members.len();
        while suffix > 0 {
            let member = members[suffix - 1];
            let seq = self.nodes[member as usize].first_seq;
            if !keys.contains_key(&seq) {
                // Read back only the linking events not read for the event's own identifiers.
                let Some(more) = self.link_keys(&[member], loader) else {
                    return Late::Replay;
                };
                keys.extend(more);
            }
            let (ts, id) = &keys[&seq];
            match (*ts, id.as_str()).cmp(&key) {
                Ordering::Less => break,
                Ordering::Equal => return Late::Replay,
                Ordering::Greater => suffix -= 1,
            }
        }
        let mut order = members[..suffix].to_vec();
        order.extend_from_slice(&later);
        order.extend(members[suffix..].iter().filter(|node| !later.contains(node)));
        Late::Earlier { home, later, order }
    }

    /// The (timestamp, message id) of the events that first linked `nodes`, by log seq, read
    /// back from the log; `None` when one of them is no longer there.
    fn link_keys(&self, nodes: &[u32], loader: &mut dyn EventLoader) -> Option<FxHashMap<u64, (i64, String)>> {
        let mut wanted: Vec<u64> = nodes.iter().map(|&node| self.nodes[node as usize].first_seq).collect();
        wanted.sort_unstable();
        wanted.dedup();
        let keys: FxHashMap<u64, (i64, String)> = loader
            .load(&wanted)
            .into_iter()
            .map(|linked| (linked.seq, (linked.timestamp_ms, linked.message_id)))
            .collect();
        wanted.iter().all(|seq| keys.contains_key(seq)).then_some(keys)
    }

    /// `Late::Earlier`: the event links `later` itself, and the profile's members take the
    /// canonical link order.
    fn link_earlier(&mut self, home: u32, later: &[u32], order: Vec<u32>, event: &EventIdentity<'_>) {
        for &node in later {
            self.nodes[node as usize].first_seq = event.seq;
        }
        let profile = self.profiles.get_mut(home).expect("a root is a profile");
        debug_assert_eq!(profile.members.len(), order.len());
        profile.members = order;
    }

    /// The root of the one profile that holds every node, if there is one.
    fn shared_profile(&mut self, nodes: &[u32]) -> Option<u32> {
        let mut home = None;
        for &node in nodes {
            if !self.is_linked(node) {
                return None;
            }
            let root = self.sets.find(node);
            if *home.get_or_insert(root) != root {
                return None;
            }
        }
        home
    }

    /// Flat matching of one event whose nodes exist (see `resolve`).
    fn decide(
        &mut self,
        event: &EventIdentity<'_>,
        candidates: Vec<u32>,
        refused: Vec<(Identifier, Refusal)>,
        loader: &mut dyn EventLoader,
    ) -> Decided {
        self.decide_at(event, candidates, refused, 0, loader)
    }

    /// Flat matching of `candidates` (most important first), then, when identifiers had to be
    /// left out and are in no profile, of those as if another event had carried only them
    /// (`depth` + 1; without traits). Each level links at least one identifier, so it ends.
    fn decide_at(
        &mut self,
        event: &EventIdentity<'_>,
        mut candidates: Vec<u32>,
        mut refused: Vec<(Identifier, Refusal)>,
        depth: u8,
        loader: &mut dyn EventLoader,
    ) -> Decided {
        let resolution = if let Some(profile) = self.already_linked(event, &candidates) {
            Decided {
                profile,
                created: false,
                merged: Vec::new(),
                linked: candidates,
                refused,
            }
        } else {
            loop {
                let owners = self.owners(&candidates, loader);
                match self.check(&owners, &candidates, event.timestamp_ms) {
                    Ok(()) => break self.apply(event, owners, candidates, refused, depth, loader),
                    // At a cap the event still resolves to its profile; nothing more links.
                    Err(cap @ (Refusal::MergeCap | Refusal::IdentifierCap)) if !owners.is_empty() => {
                        break self.attach_at_cap(event, candidates, refused, cap);
                    }
                    Err(refusal) => {
                        // A separation drops an identifier it names (the least important);
                        // otherwise, as Segment does, the event's least important one goes. A
                        // single identifier always passes the check, so one stays.
                        let at = match refusal {
                            Refusal::Separated => self.separated_candidate(&owners, &candidates),
                            _ => None,
                        };
                        let dropped = candidates.remove(at.unwrap_or(candidates.len() - 1));
                        refused.push((self.identifier(dropped).to_identifier(), refusal));
                    }
                }
            }
        };
        for (identifier, reason) in &resolution.refused {
            if *reason == Refusal::Blocked {
                continue; // blocked values are never nodes: nothing to explain between profiles
            }
            if self.refusals.len() == REFUSAL_LOG_LIMIT {
                self.refusals.pop_front();
            }
            let node = self
                .find_node(identifier)
                .expect("a refused identifier that is not blocked is a node");
            self.refusals.push_back((
                node,
                RefusalRecord {
                    identifier: identifier.clone(),
                    reason: reason.clone(),
                    message_id: event.message_id.to_owned(),
                    timestamp_ms: event.timestamp_ms,
                    resolved_to: resolution.profile,
                },
            ));
        }
        let mut set_aside: Vec<u32> = resolution
            .refused
            .iter()
            .filter(|(_, reason)| *reason != Refusal::Blocked)
            .filter_map(|(identifier, _)| self.find_node(identifier))
            .filter(|&node| !self.is_linked(node))
            .collect();
        if !set_aside.is_empty() {
            self.by_priority(&mut set_aside);
            let alone = EventIdentity {
                sets_traits: false,
                ..*event
            };
            self.decide_at(&alone, set_aside, Vec::new(), depth.saturating_add(1), loader);
        }
        resolution
    }

    /// The least important candidate that takes part in a separation the would-be profile
    /// breaks, if any (with `owners`, as in `check`).
    fn separated_candidate(&self, owners: &[u32], candidates: &[u32]) -> Option<usize> {
        let together: FxHashSet<u128> = owners
            .iter()
            .flat_map(|root| self.profiles[root].members.iter())
            .chain(candidates.iter().filter(|&&node| !self.is_linked(node)))
            .map(|&node| self.hash_of(node))
            .collect();
        candidates
            .iter()
            .rposition(|&node| self.separations.breaks(self.hash_of(node), &together))
    }

    /// Most important first: by type priority, then value.
    fn by_priority(&self, nodes: &mut [u32]) {
        nodes.sort_by(|&a, &b| {
            let (a, b) = (self.identifier(a), self.identifier(b));
            self.rules
                .priority_key(a.kind)
                .cmp(&self.rules.priority_key(b.kind))
                .then_with(|| a.value.cmp(b.value))
        });
    }

    /// The common case, answered without the full check: every identifier is already linked in
    /// one profile and no type has a sliding window, so the check could only pass and nothing
    /// changes but "last seen" (the result is the same as the full path's).
    fn already_linked(&mut self, event: &EventIdentity<'_>, candidates: &[u32]) -> Option<ProfileId> {
        let windowed = |graph: &Self, node: u32| graph.rules.limit(graph.identifier(node).kind).window.length();
        if candidates.iter().any(|&node| windowed(self, node).is_some()) {
            return None;
        }
        let home = self.shared_profile(candidates)?;
        for &node in candidates {
            let node = &mut self.nodes[node as usize];
            node.last_seen_ms = node.last_seen_ms.max(event.timestamp_ms);
        }
        let profile = self.profiles.get_mut(home).expect("a root is a profile");
        if event.sets_traits {
            profile.trait_events.push(event.seq);
        }
        Some(profile.id)
    }

    /// Roots of the profiles owning any candidate, oldest profile first.
    fn owners(&mut self, candidates: &[u32], loader: &mut dyn EventLoader) -> Vec<u32> {
        let mut roots: Vec<u32> = Vec::new();
        for &node in candidates {
            if self.is_linked(node) {
                let root = self.sets.find(node);
                if !roots.contains(&root) {
                    roots.push(root);
                }
            }
        }
        let ids = &mut |seq| loader.message_id(seq);
        roots.sort_by(|a, b| {
            let (a, b) = (&self.profiles[a], &self.profiles[b]);
            a.created
                .cmp_key(&b.created, ids)
                .then_with(|| (a.set_aside, a.id).cmp(&(b.set_aside, b.id)))
        });
        roots
    }

    /// Would attaching the candidates to (and merging) these profiles keep every rule?
    fn check(&self, owners: &[u32], candidates: &[u32], now_ms: i64) -> Result<(), Refusal> {
        let members = || {
            owners
                .iter()
                .flat_map(|root| self.profiles[root].members.iter().copied())
        };
        let mut identifiers = 0usize;
        let mut merges = 0u32;
        for root in owners {
            merges += self.profiles[root].merges;
            identifiers += self.profiles[root].members.len();
        }
        merges += owners.len().saturating_sub(1) as u32;
        let new: Vec<u32> = candidates.iter().copied().filter(|&n| !self.is_linked(n)).collect();
        if merges > MAX_MERGES && owners.len() > 1 {
            return Err(Refusal::MergeCap);
        }
        if identifiers + new.len() > MAX_IDENTIFIERS && !new.is_empty() {
            return Err(Refusal::IdentifierCap);
        }
        if !self.separations.is_empty() && (owners.len() > 1 || !new.is_empty()) {
            let together: FxHashSet<u128> = members()
                .map(|node| self.hash_of(node))
                .chain(new.iter().map(|&node| self.hash_of(node)))
                .collect();
            if !self.separations.allows(&together) {
                return Err(Refusal::Separated);
            }
        }
        // Values per type inside each type's window, counting the event's own as seen now (few
        // types per profile: a small list beats a hash map here).
        let mut counts: Vec<(&str, u32)> = Vec::new();
        fn count<'k>(counts: &mut Vec<(&'k str, u32)>, kind: &'k str) {
            match counts.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, n)) => *n += 1,
                None => counts.push((kind, 1)),
            }
        }
        for member in members() {
            let node = &self.nodes[member as usize];
            let kind = self.arena.get(node.text).kind;
            let window = self.rules.limit(kind).window.length();
            let in_window = candidates.contains(&member)
                || window.is_none_or(|w| now_ms - node.last_seen_ms <= w.as_millis() as i64);
            if in_window {
                count(&mut counts, kind);
            }
        }
        for &node in &new {
            count(&mut counts, self.identifier(node).kind);
        }
        let mut over: Vec<&str> = counts
            .into_iter()
            .filter(|(kind, count)| *count > self.rules.limit(kind).values)
            .map(|(kind, _)| kind)
            .collect();
        over.sort_by_key(|kind| self.rules.priority_key(kind));
        match over.first() {
            Some(kind) => Err(Refusal::Limit {
                kind: (*kind).to_owned(),
            }),
            None => Ok(()),
        }
    }

    fn apply(
        &mut self,
        event: &EventIdentity<'_>,
        owners: Vec<u32>,
        candidates: Vec<u32>,
        refused: Vec<(Identifier, Refusal)>,
        set_aside: u8,
        loader: &mut dyn EventLoader,
    ) -> Decided {
        let created = owners.is_empty();
        let mut merged_ids = Vec::new();
        let root = match owners.split_first() {
            None => {
                let node = candidates[0];
                let id = new_profile_id(event.message_id, self.identifier(node));
                self.link_node(node, event, id);
                let key = PackedKey::new(event.timestamp_ms, event.message_id, event.seq);
                let profile = Profile {
                    id,
                    created: key,
                    set_aside,
                    changed: key,
                    merges: 0,
                    members: vec![node],
                    trait_events: Vec::new(),
                    merge_history: Vec::new(),
                };
                self.profiles.insert(node, profile);
                self.anchors.insert(id, node);
                node
            }
            Some((&survivor, others)) => {
                let mut root = survivor;
                for &other in others {
                    root = self.merge(root, other, event, loader);
                    merged_ids.push(self.merges.last().expect("just merged").merged);
                }
                root
            }
        };
        let mut changed = !merged_ids.is_empty();
        for &node in &candidates {
            if !self.is_linked(node) {
                let origin = self.profiles[&root].id;
                self.link_node(node, event, origin);
                // Union by size keeps the larger set's root, so the profile stays under its key.
                let joined = self.sets.union(root, node);
                debug_assert_eq!(joined, Some(root));
                self.profiles
                    .get_mut(root)
                    .expect("the target is a profile")
                    .members
                    .push(node);
                changed = true;
            }
            let node = &mut self.nodes[node as usize];
            node.last_seen_ms = node.last_seen_ms.max(event.timestamp_ms);
        }
        let profile = self.profiles.get_mut(root).expect("the target is a profile");
        let ids = &mut |seq| loader.message_id(seq);
        if changed
            && profile
                .changed
                .event_cmp(event.timestamp_ms, event.message_id, event.seq, ids)
                == Ordering::Greater
        {
            profile.changed = PackedKey::new(event.timestamp_ms, event.message_id, event.seq);
        }
        if event.sets_traits {
            profile.trait_events.push(event.seq);
        }
        Decided {
            profile: profile.id,
            created,
            merged: merged_ids,
            linked: candidates,
            refused,
        }
    }

    /// Merges profile `other` into `root` (the older); returns the new root.
    fn merge(&mut self, root: u32, other: u32, event: &EventIdentity<'_>, loader: &mut dyn EventLoader) -> u32 {
        let absorbed = self.profiles.remove(other).expect("an owner is a profile");
        let kept_id = self.profiles[&root].id;
        self.merges.push(Merge {
            survivor: kept_id,
            merged: absorbed.id,
            message_id: event.message_id.to_owned(),
            timestamp_ms: event.timestamp_ms,
        });
        let index = (self.merges.len() - 1) as u32;
        self.aliases.insert(absorbed.id, kept_id);
        self.merged_by.insert(absorbed.id, index);
        self.anchors.remove(&absorbed.id);
        let new_root = self.sets.union(root, other).expect("owners are distinct sets");
        // The survivor keeps its slot (its profile number) whichever root the union kept.
        self.profiles.rekey(root, new_root);
        let log = &self.merges;
        let kept = self.profiles.get_mut(new_root).expect("an owner is a profile");
        kept.members.extend(absorbed.members);
        kept.trait_events.extend(absorbed.trait_events);
        kept.merge_history.extend(absorbed.merge_history);
        kept.merge_history.push(index);
        // Oldest first by the merging event's canonical key (log positions follow arrival and
        // replays, so they must not order a history that is meant to be order independent).
        kept.merge_history.sort_unstable_by(|&a, &b| {
            let (x, y) = (&log[a as usize], &log[b as usize]);
            (x.timestamp_ms, &x.message_id, a).cmp(&(y.timestamp_ms, &y.message_id, b))
        });
        kept.changed = kept.changed.max(absorbed.changed, &mut |seq| loader.message_id(seq));
        kept.merges += absorbed.merges + 1;
        self.anchors.insert(kept_id, new_root);
        new_root
    }

    /// Resolves to the profile of the event's highest-priority known identifier and links
    /// nothing new: the other identifiers are refused with the cap as the reason.
    fn attach_at_cap(
        &mut self,
        event: &EventIdentity<'_>,
        candidates: Vec<u32>,
        mut refused: Vec<(Identifier, Refusal)>,
        cap: Refusal,
    ) -> Decided {
        let home = candidates
            .iter()
            .copied()
            .find(|&node| self.is_linked(node))
            .map(|node| self.sets.find(node))
            .expect("at a cap some identifier is known");
        let mut linked = Vec::new();
        for node in candidates {
            if self.is_linked(node) && self.sets.find(node) == home {
                let entry = &mut self.nodes[node as usize];
                entry.last_seen_ms = entry.last_seen_ms.max(event.timestamp_ms);
                linked.push(node);
            } else {
                refused.push((self.identifier(node).to_identifier(), cap.clone()));
            }
        }
        let profile = self.profiles.get_mut(home).expect("the home is a profile");
        if event.sets_traits {
            profile.trait_events.push(event.seq);
        }
        Decided {
            profile: profile.id,
            created: false,
            merged: Vec::new(),
            linked,
            refused,
        }
    }

    fn link_node(&mut self, node: u32, event: &EventIdentity<'_>, origin: ProfileId) {
        let node = &mut self.nodes[node as usize];
        node.linked = true;
        node.last_seen_ms = event.timestamp_ms;
        node.first_seq = event.seq;
        node.origin = origin;
    }

    /// Forgets every decision in the cluster and replays its events in canonical order. Ids of
    /// profiles that no longer exist lead to the profile now holding their first identifier.
    /// Returns the resolution of `target` (the late event), if given.
    fn rebuild_cluster(&mut self, root: u32, target: Option<u64>, loader: &mut dyn EventLoader) -> Option<Decided> {
        self.rebuilt_clusters += 1;
        let cluster = self.clusters.get(root);
        let members = cluster.members.clone();
        let mut events = loader.load(&cluster.events);
        let old = self.unlink_members(&members);
        events.sort_by(|a, b| (a.timestamp_ms, &a.message_id, a.seq).cmp(&(b.timestamp_ms, &b.message_id, b.seq)));
        let mut resolution = None;
        for stored in &events {
            let event = stored.identity();
            let (candidates, refused) = self.candidates(&event);
            if candidates.is_empty() {
                continue;
            }
            let decided = self.decide(&event, candidates, refused, loader);
            if target == Some(stored.seq) {
                resolution = Some(decided);
            }
        }
        self.settle_ids(&members, old);
        resolution
    }

    /// Takes apart the profiles holding any of `members` (a closed group of clusters about to be
    /// resolved again): each node is unlinked and a set of its own, their refusals forgotten.
    /// Returns each removed profile's id and members.
    fn unlink_members(&mut self, members: &[u32]) -> Vec<(ProfileId, Vec<u32>)> {
        let mut old = Vec::new();
        for &node in members {
            if self.nodes[node as usize].linked {
                let root = self.sets.find(node);
                if let Some(profile) = self.profiles.remove(root) {
                    self.anchors.remove(&profile.id);
                    old.push((profile.id, profile.members));
                }
            }
        }
        for &node in members {
            self.sets.reset(node);
            self.nodes[node as usize].linked = false;
        }
        if !self.refusals.is_empty() {
            let in_cluster: FxHashSet<u32> = members.iter().copied().collect();
            self.refusals.retain(|(node, _)| !in_cluster.contains(node));
        }
        old
    }

    /// After `members` were resolved again: the ids of their live profiles lose any alias, and
    /// each `old` id that no longer names a profile (nor was merged away meanwhile) leads to the
    /// profile now holding its first still-linked identifier. Returns the old ids left with no
    /// such identifier: they lead nowhere.
    fn settle_ids(&mut self, members: &[u32], old: Vec<(ProfileId, Vec<u32>)>) -> Vec<ProfileId> {
        let mut live = FxHashSet::default();
        for &node in members {
            if self.nodes[node as usize].linked {
                let root = self.sets.find(node);
                let id = self.profiles[&root].id;
                if live.insert(id) {
                    self.aliases.remove(&id);
                    self.merged_by.remove(&id);
                }
            }
        }
        let mut orphans = Vec::new();
        for (id, old_members) in old {
            if live.contains(&id) || self.aliases.contains_key(&id) {
                continue;
            }
            let heir = old_members
                .iter()
                .find(|&&node| self.nodes[node as usize].linked)
                .map(|&node| self.sets.find(node));
            match heir {
                Some(heir) => {
                    let heir = self.profiles[&heir].id;
                    self.aliases.insert(id, heir);
                }
                None => orphans.push(id),
            }
        }
        orphans
    }

    /// Why `a` and `b` share a profile (each one's first link, then the merges that joined
    /// their first profiles), or why they do not (the events that carried an identifier of one
    /// profile but were kept in the other, with the rule that refused the link).
    /// `None` when either identifier is in no profile.
    pub fn explain(&mut self, a: &Identifier, b: &Identifier) -> Option<Explanation> {
        let (node_a, node_b) = (self.linked_node(a)?, self.linked_node(b)?);
        let (profile_a, profile_b) = (
            self.profiles[&self.sets.find(node_a)].id,
            self.profiles[&self.sets.find(node_b)].id,
        );
        let linked = profile_a == profile_b;
        let mut steps = Vec::new();
        if linked {
            let mut merges = Vec::new();
            for node in [node_a, node_b] {
                let identifier = self.identifier(node).to_identifier();
                let node = &self.nodes[node as usize];
                steps.push(LinkStep::Joined {
                    identifier,
                    profile: node.origin,
                    first_seq: node.first_seq,
                });
                let mut id = node.origin;
                while let Some(&index) = self.merged_by.get(&id) {
                    let merge = &self.merges[index as usize];
                    if !merges.contains(&index) {
                        merges.push(index);
                    }
                    id = merge.survivor;
                }
            }
            merges.sort_unstable();
            steps.extend(
                merges
                    .into_iter()
                    .map(|i| LinkStep::Merged(self.merges[i as usize].clone())),
            );
        } else {
            // Events that carried an identifier of one profile but went to the other.
            let mut bridging = Vec::new();
            for (node, record) in &self.refusals {
                let towards = self.current_id(record.resolved_to);
                if towards == profile_a || towards == profile_b {
                    bridging.push((*node, towards, record));
                }
            }
            let mut found = Vec::new();
            for (node, towards, record) in bridging {
                if !self.nodes[node as usize].linked {
                    continue;
                }
                let from = self.profiles[&self.sets.find(node)].id;
                if (from == profile_a && towards == profile_b) || (from == profile_b && towards == profile_a) {
                    found.push(LinkStep::Refused(record.clone()));
                }
            }
            steps = found;
        }
        Some(Explanation {
            linked,
            profile_a,
            profile_b,
            steps,
        })
    }

    /// The profile an identifier belongs to.
    pub fn profile_of(&mut self, identifier: &Identifier) -> Option<ProfileId> {
        let node = self.linked_node(identifier)?;
        let root = self.sets.find(node);
        Some(self.profiles[&root].id)
    }

    /// A profile id as it is now (merged-away ids lead to their survivor).
    pub fn current_id(&self, mut id: ProfileId) -> ProfileId {
        while let Some(&next) = self.aliases.get(&id) {
            id = next;
        }
        id
    }

    /// The identifiers of a profile with the log seq of the event that first linked each, in
    /// link order.
    pub fn identifiers(&mut self, identifier: &Identifier) -> Vec<(Identifier, u64)> {
        match self.view(&ProfileLookup::Identifier(identifier.clone())) {
            Some(view) => view.identifiers,
            None => Vec::new(),
        }
    }

    /// The node an event's Engage facts are kept under (`docs/engage.md`): of the identifiers
    /// it carries that the rules do not block, the first in priority order, the node a profile
    /// the event creates is rooted at (`candidates`), so that most events and traits sit on
    /// their profile's root. None before the event was added, or when all are blocked.
    pub fn primary_node(&self, identifiers: &[Identifier]) -> Option<u32> {
        identifiers
            .iter()
            .filter(|identifier| !self.rules.is_blocked(identifier))
            .filter_map(|identifier| self.find_node(identifier))
            .min_by(|&a, &b| {
                let (a, b) = (self.identifier(a), self.identifier(b));
                (self.rules.priority_key(a.kind), a.value).cmp(&(self.rules.priority_key(b.kind), b.value))
            })
    }

    /// The identifiers an event carried but did not link (from the bounded refusal log).
    pub fn refusals_of(&self, message_id: &str) -> Vec<RefusalRecord> {
        self.refusals
            .iter()
            .filter(|(_, record)| record.message_id == message_id)
            .map(|(_, record)| record.clone())
            .collect()
    }

    pub fn view(&mut self, lookup: &ProfileLookup) -> Option<ProfileView> {
        let node = match lookup {
            ProfileLookup::Identifier(identifier) => self.linked_node(identifier)?,
            ProfileLookup::Id(id) => *self.anchors.get(&self.current_id(*id))?,
        };
        let root = self.sets.find(node);
        let profile = &self.profiles[&root];
        let identifiers = profile
            .members
            .iter()
            .map(|&n| (self.identifier(n).to_identifier(), self.nodes[n as usize].first_seq))
            .collect();
        Some(ProfileView {
            id: profile.id,
            merges: profile.merges,
            identifiers,
            trait_events: profile.trait_events.clone(),
            merge_history: profile
                .merge_history
                .iter()
                .map(|&i| self.merges[i as usize].clone())
                .collect(),
        })
    }

    /// Every profile as (id, identifiers), sorted: for comparing graphs.
    pub fn snapshot(&self) -> Vec<(ProfileId, Vec<Identifier>)> {
        let mut out: Vec<(ProfileId, Vec<Identifier>)> = self
            .profiles
            .values()
            .map(|p| {
                let mut ids: Vec<Identifier> = p.members.iter().map(|&n| self.identifier(n).to_identifier()).collect();
                ids.sort();
                (p.id, ids)
            })
            .collect();
        out.sort();
        out
    }

    /// Each node's profile, by node number: the union-find root of its set, or `None` for a
    /// node no profile holds.
    pub fn profile_roots(&mut self) -> Vec<Option<u32>> {
        (0..self.nodes.len() as u32)
            .map(|node| self.is_linked(node).then(|| self.sets.find(node)))
            .collect()
    }

    /// The node of this graph with the identifier of `other`'s node `node`, if any.
    pub fn node_like(&self, other: &IdentityGraph, node: u32) -> Option<u32> {
        let wanted = other.identifier(node);
        let (arena, nodes) = (&self.arena, &self.nodes);
        self.node_of
            .find(node_hash(wanted.hash128()), |&known| {
                let known = arena.get(nodes[known as usize].text);
                known.kind == wanted.kind && known.value == wanted.value
            })
            .copied()
    }

    /// The id of the profile whose union-find root is `root` (see `profile_roots`).
    pub fn profile_at(&self, root: u32) -> ProfileId {
        self.profiles[&root].id
    }

    pub fn merge_log(&self) -> &[Merge] {
        &self.merges
    }

    pub fn profile_count(&self) -> usize {
        self.profiles.len()
    }

    /// The nodes (identifiers) in the graph.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Bytes held, by part (tables at their capacity, plus what their entries own on the heap).
    pub fn memory(&self) -> Vec<(&'static str, usize)> {
        use crate::memory::{heap, string, table};
        use std::mem::size_of;

        let profile_heap: usize = self
            .profiles
            .values()
            .map(|p| heap(&p.members) + heap(&p.trait_events) + heap(&p.merge_history))
            .sum();
        vec![
            ("graph.nodes", heap(&self.nodes)),
            ("graph.identifier_text", self.arena.memory()),
            ("graph.node_of", table::<u32>(self.node_of.capacity())),
            ("graph.profile_sets", self.sets.memory()),
            ("graph.clusters", self.clusters.memory()),
            ("graph.profiles", self.profiles.memory() + profile_heap),
            (
                "graph.ids",
                table::<(ProfileId, ProfileId)>(self.aliases.capacity())
                    + table::<(ProfileId, u32)>(self.anchors.capacity())
                    + table::<(ProfileId, u32)>(self.merged_by.capacity()),
            ),
            (
                "graph.merges",
                heap(&self.merges) + self.merges.iter().map(|m| string(&m.message_id)).sum::<usize>(),
            ),
            (
                "graph.refusals",
                self.refusals.capacity() * size_of::<(u32, RefusalRecord)>(),
            ),
        ]
    }
}

/// The node map's hash of an identifier: the low bits of its 128-bit hash.
fn node_hash(hash128: u128) -> u64 {
    hash128 as u64
}

/// The id of the profile an event creates when `first` is the first identifier it links.
pub fn created_profile_id(message_id: &str, first: &Identifier) -> ProfileId {
    new_profile_id(
        message_id,
        IdentRef {
            kind: &first.kind,
            value: &first.value,
        },
    )
}

fn new_profile_id(message_id: &str, first: IdentRef<'_>) -> ProfileId {
    let mut seed = Vec::with_capacity(message_id.len() + 64);
    seed.extend_from_slice(message_id.as_bytes());
    seed.push(0);
    seed.extend_from_slice(first.kind.as_bytes());
    seed.push(0x1f); // the storage key's separator: `Identifier::key`
    seed.extend_from_slice(first.value.as_bytes());
    ProfileId(xxh3_128(&seed))
}

#[cfg(test)]
mod tests;

mod erase;
mod members;

pub use erase::Erased;
