//! The identity graph: Segment's flat matching over identifier nodes, with the workspace's
//! rules checked before any union (a "checked union"), stable profile ids and a merge log.
//!
//! Invariants after every `resolve`:
//! - every known identifier is a node in exactly one profile (its union-find component);
//! - no blocked identifier is ever a node;
//! - within each profile, the values of a type seen inside that type's limit window never
//!   exceed its limit at the time they were linked, and no profile passes the caps
//!   (`MAX_MERGES` merges, `MAX_IDENTIFIERS` identifiers);
//! - a profile keeps the id of the oldest profile it was merged from; merged-away ids resolve
//!   to the survivor through `aliases`.
//!
//! Decisions depend only on the graph and the event, so replaying the same events in the same
//! order rebuilds the same graph (ids included).

use std::collections::HashMap;
use std::fmt;

use rustc_hash::FxHashMap;
use xxhash_rust::xxh3::xxh3_128;

use super::rules::IdentityRules;
use super::union_find::UnionFind;
use crate::identifiers::Identifier;

/// Segment's system caps.
pub const MAX_MERGES: u32 = 100;
pub const MAX_IDENTIFIERS: usize = 1_000;

/// A profile's stable id: `tp_` and 26 Crockford base-32 characters (128 bits).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Its value is blocked for its type.
    Blocked,
    /// Linking it would give the profile more values of `kind` than its limit allows.
    Limit { kind: String },
    /// The profile would pass `MAX_IDENTIFIERS`.
    IdentifierCap,
    /// The merge would pass `MAX_MERGES`.
    MergeCap,
}

/// What the graph needs of an event.
pub struct EventIdentity<'a> {
    pub message_id: &'a str,
    pub timestamp_ms: i64,
    pub identifiers: &'a [Identifier],
    /// The log seq of an event that sets profile traits (an identify), to be kept with the
    /// profile it resolves to.
    pub trait_event: Option<u64>,
}

/// A profile as a reader sees it.
pub struct ProfileView {
    pub id: ProfileId,
    pub merges: u32,
    /// (identifier, first seen ms, first message id), in link order.
    pub identifiers: Vec<(Identifier, i64, String)>,
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

/// How a reader names a profile.
pub enum ProfileLookup {
    Identifier(Identifier),
    Id(ProfileId),
}

/// One merge, for history and for explaining links.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merge {
    pub survivor: ProfileId,
    pub merged: ProfileId,
    pub message_id: String,
    pub timestamp_ms: i64,
}

struct Node {
    identifier: Identifier,
    first_seen_ms: i64,
    last_seen_ms: i64,
    first_message: String,
    /// The profile it first joined (it may since have been merged into another).
    origin: ProfileId,
}

/// An identifier an event carried but did not link, kept for explanations.
#[derive(Clone, Debug, PartialEq, Eq)]
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
    /// `identifier` first joined `profile` with this event.
    Joined {
        identifier: Identifier,
        profile: ProfileId,
        message_id: String,
        timestamp_ms: i64,
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

struct Profile {
    id: ProfileId,
    created_ms: i64,
    merges: u32,
    members: Vec<u32>,
    trait_events: Vec<u64>,
    /// Indexes into the merge log.
    merge_history: Vec<u32>,
}

/// See the module docs.
pub struct IdentityGraph {
    rules: IdentityRules,
    /// Keyed by `Identifier::hash128` (128 bits: collisions are not a practical concern).
    node_of: FxHashMap<u128, u32>,
    nodes: Vec<Node>,
    sets: UnionFind,
    /// Keyed by the union-find root of the profile's nodes.
    profiles: FxHashMap<u32, Profile>,
    aliases: HashMap<ProfileId, ProfileId>,
    /// A node of each live profile, to find it by id.
    anchors: HashMap<ProfileId, u32>,
    merges: Vec<Merge>,
    /// Merged-away profile → its merge in `merges`.
    merged_by: HashMap<ProfileId, u32>,
    refusals: std::collections::VecDeque<RefusalRecord>,
}

impl IdentityGraph {
    pub fn new(rules: IdentityRules) -> Self {
        Self {
            rules,
            node_of: FxHashMap::default(),
            nodes: Vec::new(),
            sets: UnionFind::new(),
            profiles: FxHashMap::default(),
            aliases: HashMap::new(),
            anchors: HashMap::new(),
            merges: Vec::new(),
            merged_by: HashMap::new(),
            refusals: std::collections::VecDeque::new(),
        }
    }

    /// Flat matching: finds the profiles owning the event's identifiers and creates, attaches or
    /// merges; when a rule or cap forbids the result, drops the event's lowest-priority
    /// identifier and matches again. `None` when the event has no linkable identifier.
    pub fn resolve(&mut self, event: &EventIdentity<'_>) -> Option<Resolution> {
        let resolution = self.match_flat(event)?;
        for (identifier, reason) in &resolution.refused {
            if *reason == Refusal::Blocked {
                continue; // blocked values are never nodes: nothing to explain between profiles
            }
            if self.refusals.len() == REFUSAL_LOG_LIMIT {
                self.refusals.pop_front();
            }
            self.refusals.push_back(RefusalRecord {
                identifier: identifier.clone(),
                reason: reason.clone(),
                message_id: event.message_id.to_owned(),
                timestamp_ms: event.timestamp_ms,
                resolved_to: resolution.profile,
            });
        }
        Some(resolution)
    }

    fn match_flat(&mut self, event: &EventIdentity<'_>) -> Option<Resolution> {
        let mut refused = Vec::new();
        let mut candidates: Vec<Identifier> = Vec::new();
        for identifier in event.identifiers {
            if self.rules.is_blocked(identifier) {
                refused.push((identifier.clone(), Refusal::Blocked));
            } else if !candidates.contains(identifier) {
                candidates.push(identifier.clone());
            }
        }
        candidates.sort_by(|a, b| {
            self.rules
                .priority_key(&a.kind)
                .cmp(&self.rules.priority_key(&b.kind))
                .then_with(|| a.value.cmp(&b.value))
        });
        if let Some(profile) = self.already_linked(event, &candidates) {
            return Some(Resolution {
                profile,
                created: false,
                merged: Vec::new(),
                linked: candidates,
                refused,
            });
        }
        let owners = loop {
            if candidates.is_empty() {
                return None;
            }
            let owners = self.owners(&candidates);
            match self.check(&owners, &candidates, event.timestamp_ms) {
                Ok(()) => break owners,
                // At a cap the event still resolves to its profile; nothing more links.
                Err(cap @ (Refusal::MergeCap | Refusal::IdentifierCap)) if !owners.is_empty() => {
                    return Some(self.attach_at_cap(event, candidates, refused, cap));
                }
                Err(refusal) => {
                    let dropped = candidates.pop().expect("not empty");
                    refused.push((dropped, refusal));
                }
            }
        };
        Some(self.apply(event, owners, candidates, refused))
    }

    /// The common case, answered without the full check: every identifier is already linked in
    /// one profile and no type has a sliding window, so the check could only pass and nothing
    /// changes but "last seen" (the result is the same as the full path's).
    fn already_linked(&mut self, event: &EventIdentity<'_>, candidates: &[Identifier]) -> Option<ProfileId> {
        let mut home = None;
        let mut nodes = Vec::with_capacity(candidates.len());
        for identifier in candidates {
            if self.rules.limit(&identifier.kind).window.length().is_some() {
                return None;
            }
            let node = *self.node_of.get(&identifier.hash128())?;
            let root = self.sets.find(node);
            if *home.get_or_insert(root) != root {
                return None;
            }
            nodes.push(node);
        }
        let home = home?;
        for node in nodes {
            let node = &mut self.nodes[node as usize];
            node.last_seen_ms = node.last_seen_ms.max(event.timestamp_ms);
        }
        let profile = self.profiles.get_mut(&home).expect("a root is a profile");
        profile.trait_events.extend(event.trait_event);
        Some(profile.id)
    }

    /// Roots of the profiles owning any candidate, oldest profile first.
    fn owners(&mut self, candidates: &[Identifier]) -> Vec<u32> {
        let mut roots: Vec<u32> = Vec::new();
        for identifier in candidates {
            if let Some(&node) = self.node_of.get(&identifier.hash128()) {
                let root = self.sets.find(node);
                if !roots.contains(&root) {
                    roots.push(root);
                }
            }
        }
        roots.sort_by_key(|root| {
            let profile = &self.profiles[root];
            (profile.created_ms, profile.id)
        });
        roots
    }

    /// Would attaching the candidates to (and merging) these profiles keep every rule?
    fn check(&self, owners: &[u32], candidates: &[Identifier], now_ms: i64) -> Result<(), Refusal> {
        let members = owners
            .iter()
            .flat_map(|root| self.profiles[root].members.iter().copied());
        let mut identifiers = 0usize;
        let mut merges = 0u32;
        for root in owners {
            merges += self.profiles[root].merges;
            identifiers += self.profiles[root].members.len();
        }
        merges += owners.len().saturating_sub(1) as u32;
        let new: Vec<&Identifier> = candidates
            .iter()
            .filter(|identifier| !self.node_of.contains_key(&identifier.hash128()))
            .collect();
        if merges > MAX_MERGES && owners.len() > 1 {
            return Err(Refusal::MergeCap);
        }
        if identifiers + new.len() > MAX_IDENTIFIERS && !new.is_empty() {
            return Err(Refusal::IdentifierCap);
        }
        // Values per type inside each type's window, counting the event's own as seen now.
        let mut counts: HashMap<&str, u32> = HashMap::new();
        for node in members {
            let node = &self.nodes[node as usize];
            let kind = node.identifier.kind.as_str();
            let window = self.rules.limit(kind).window.length();
            let in_window = candidates.contains(&node.identifier)
                || window.is_none_or(|w| now_ms - node.last_seen_ms <= w.as_millis() as i64);
            if in_window {
                *counts.entry(kind).or_default() += 1;
            }
        }
        for identifier in new {
            *counts.entry(identifier.kind.as_str()).or_default() += 1;
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
        candidates: Vec<Identifier>,
        refused: Vec<(Identifier, Refusal)>,
    ) -> Resolution {
        let created = owners.is_empty();
        let mut merged_ids = Vec::new();
        let root = match owners.split_first() {
            None => {
                let id = new_profile_id(event.message_id, &candidates[0]);
                let node = self.add_node(&candidates[0], event, id);
                let profile = Profile {
                    id,
                    created_ms: event.timestamp_ms,
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
                    let absorbed = self.profiles.remove(&other).expect("an owner is a profile");
                    let kept = self.profiles.remove(&root).expect("an owner is a profile");
                    self.merges.push(Merge {
                        survivor: kept.id,
                        merged: absorbed.id,
                        message_id: event.message_id.to_owned(),
                        timestamp_ms: event.timestamp_ms,
                    });
                    self.aliases.insert(absorbed.id, kept.id);
                    self.merged_by.insert(absorbed.id, (self.merges.len() - 1) as u32);
                    self.anchors.remove(&absorbed.id);
                    merged_ids.push(absorbed.id);
                    let new_root = self.sets.union(root, other).expect("owners are distinct sets");
                    let mut members = kept.members;
                    members.extend(absorbed.members);
                    let mut trait_events = kept.trait_events;
                    trait_events.extend(absorbed.trait_events);
                    let mut merge_history = kept.merge_history;
                    merge_history.extend(absorbed.merge_history);
                    merge_history.push((self.merges.len() - 1) as u32);
                    merge_history.sort_unstable();
                    let merged = Profile {
                        id: kept.id,
                        created_ms: kept.created_ms,
                        merges: kept.merges + absorbed.merges + 1,
                        members,
                        trait_events,
                        merge_history,
                    };
                    self.profiles.insert(new_root, merged);
                    root = new_root;
                }
                root
            }
        };
        for identifier in &candidates {
            let node = match self.node_of.get(&identifier.hash128()) {
                Some(&node) => node,
                None => {
                    let origin = self.profiles[&root].id;
                    let node = self.add_node(identifier, event, origin);
                    // Union by size keeps the larger (older) set's root, so the profile stays
                    // under the same key.
                    let joined = self.sets.union(root, node);
                    debug_assert_eq!(joined, Some(root));
                    self.profiles
                        .get_mut(&root)
                        .expect("the target is a profile")
                        .members
                        .push(node);
                    node
                }
            };
            let node = &mut self.nodes[node as usize];
            node.last_seen_ms = node.last_seen_ms.max(event.timestamp_ms);
        }
        let profile = self.profiles.get_mut(&root).expect("the target is a profile");
        profile.trait_events.extend(event.trait_event);
        Resolution {
            profile: profile.id,
            created,
            merged: merged_ids,
            linked: candidates,
            refused,
        }
    }

    /// Resolves to the profile of the event's highest-priority known identifier and links
    /// nothing new: the other identifiers are refused with the cap as the reason.
    fn attach_at_cap(
        &mut self,
        event: &EventIdentity<'_>,
        candidates: Vec<Identifier>,
        mut refused: Vec<(Identifier, Refusal)>,
        cap: Refusal,
    ) -> Resolution {
        let home = candidates
            .iter()
            .find_map(|identifier| self.node_of.get(&identifier.hash128()).copied())
            .map(|node| self.sets.find(node))
            .expect("at a cap some identifier is known");
        let mut linked = Vec::new();
        for identifier in candidates {
            let node = self.node_of.get(&identifier.hash128()).copied();
            match node {
                Some(node) if self.sets.find(node) == home => {
                    let node = &mut self.nodes[node as usize];
                    node.last_seen_ms = node.last_seen_ms.max(event.timestamp_ms);
                    linked.push(identifier);
                }
                _ => refused.push((identifier, cap.clone())),
            }
        }
        let profile = self.profiles.get_mut(&home).expect("the home is a profile");
        profile.trait_events.extend(event.trait_event);
        Resolution {
            profile: profile.id,
            created: false,
            merged: Vec::new(),
            linked,
            refused,
        }
    }

    fn add_node(&mut self, identifier: &Identifier, event: &EventIdentity<'_>, origin: ProfileId) -> u32 {
        let node = self.sets.add();
        self.node_of.insert(identifier.hash128(), node);
        self.nodes.push(Node {
            identifier: identifier.clone(),
            first_seen_ms: event.timestamp_ms,
            last_seen_ms: event.timestamp_ms,
            first_message: event.message_id.to_owned(),
            origin,
        });
        node
    }

    /// Why `a` and `b` share a profile (each one's first link, then the merges that joined
    /// their first profiles), or why they do not (the refusals between their profiles).
    /// `None` when either identifier is unknown.
    pub fn explain(&mut self, a: &Identifier, b: &Identifier) -> Option<Explanation> {
        let (node_a, node_b) = (*self.node_of.get(&a.hash128())?, *self.node_of.get(&b.hash128())?);
        let (profile_a, profile_b) = (
            self.profiles[&self.sets.find(node_a)].id,
            self.profiles[&self.sets.find(node_b)].id,
        );
        let linked = profile_a == profile_b;
        let mut steps = Vec::new();
        if linked {
            let mut merges = Vec::new();
            for node in [node_a, node_b] {
                let node = &self.nodes[node as usize];
                steps.push(LinkStep::Joined {
                    identifier: node.identifier.clone(),
                    profile: node.origin,
                    message_id: node.first_message.clone(),
                    timestamp_ms: node.first_seen_ms,
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
            let current = |graph: &Self, id: ProfileId| graph.current_id(id);
            for record in &self.refusals {
                let towards = current(self, record.resolved_to);
                let involved = (record.identifier == *a && towards == profile_b)
                    || (record.identifier == *b && towards == profile_a);
                if involved {
                    steps.push(LinkStep::Refused(record.clone()));
                }
            }
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
        let node = *self.node_of.get(&identifier.hash128())?;
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

    /// The identifiers of a profile with (first seen ms, first message), in link order.
    pub fn identifiers(&mut self, identifier: &Identifier) -> Vec<(Identifier, i64, String)> {
        let Some(&node) = self.node_of.get(&identifier.hash128()) else {
            return Vec::new();
        };
        let root = self.sets.find(node);
        self.profiles[&root]
            .members
            .iter()
            .map(|&n| {
                let node = &self.nodes[n as usize];
                (node.identifier.clone(), node.first_seen_ms, node.first_message.clone())
            })
            .collect()
    }

    /// A profile by one of its identifiers or by its id (merged-away ids lead to the survivor).
    pub fn view(&mut self, lookup: &ProfileLookup) -> Option<ProfileView> {
        let node = match lookup {
            ProfileLookup::Identifier(identifier) => *self.node_of.get(&identifier.hash128())?,
            ProfileLookup::Id(id) => *self.anchors.get(&self.current_id(*id))?,
        };
        let root = self.sets.find(node);
        let profile = &self.profiles[&root];
        let identifiers = profile
            .members
            .iter()
            .map(|&n| {
                let node = &self.nodes[n as usize];
                (node.identifier.clone(), node.first_seen_ms, node.first_message.clone())
            })
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

    /// Every profile as (id, identifiers), sorted: for comparing graphs in tests.
    pub fn snapshot(&self) -> Vec<(ProfileId, Vec<Identifier>)> {
        let mut out: Vec<(ProfileId, Vec<Identifier>)> = self
            .profiles
            .values()
            .map(|p| {
                let mut ids: Vec<Identifier> = p
                    .members
                    .iter()
                    .map(|&n| self.nodes[n as usize].identifier.clone())
                    .collect();
                ids.sort();
                (p.id, ids)
            })
            .collect();
        out.sort();
        out
    }

    pub fn merge_log(&self) -> &[Merge] {
        &self.merges
    }

    pub fn profile_count(&self) -> usize {
        self.profiles.len()
    }
}

fn new_profile_id(message_id: &str, first: &Identifier) -> ProfileId {
    let mut seed = Vec::with_capacity(message_id.len() + 64);
    seed.extend_from_slice(message_id.as_bytes());
    seed.push(0);
    seed.extend_from_slice(&first.key());
    ProfileId(xxh3_128(&seed))
}

#[cfg(test)]
mod tests;
