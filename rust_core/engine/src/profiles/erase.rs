//! A privacy deletion's part in the profile state (`governance::deletion`): finding the
//! person's stored events, and the state without them (graph, account links, Engage's
//! indexes), as if those events had never been stored.
//!
//! The person's events are those that carry any of their identifiers. All of them are in the
//! graph clusters holding those identifiers (a cluster holds every event that carried one of
//! its identifiers), so only those clusters are read and rebuilt: the cost is the person's
//! neighbourhood, not the store. Planning and erasing are two steps (the log changes between
//! them, on the writer thread): erasing finds the clusters again and rebuilds them from what the
//! log then holds, so events that arrived meanwhile are kept whole.

use rustc_hash::FxHashSet;
use serde_json::Value;

use super::{decode_stored, stored_identity, LogLoader, ProfileState, LOG_CHUNK};
use crate::error::Result;
use crate::identifiers::Identifier;
use crate::identity::graph::Erased;
use crate::store::Store;

/// The shortest text `Erasure::values` keeps (shorter ones say nothing about a person).
const MIN_VALUE_LEN: usize = 3;
/// Most texts kept per deletion (what other stores are searched for).
const MAX_VALUES: usize = 10_000;

/// The person's events and what they touched, found under the profiles lock.
pub struct Erasure {
    /// Log seqs of the person's events, ascending.
    pub seqs: Vec<u64>,
    /// Every identifier those events carry, sorted.
    pub identifiers: Vec<Identifier>,
    /// The text values of their properties and traits (searched for in stores that keep
    /// copies of what events held: violation examples).
    pub values: Vec<String>,
    /// The latest value of each boolean trait their identify calls set (what Engage emitted:
    /// an audience's trait is true while the person is in it): key → (time ms, seq, value).
    pub flags: rustc_hash::FxHashMap<String, (i64, u64, bool)>,
}

impl ProfileState {
    /// Finds the events carrying any of `person` (every event the graph resolved: the caller
    /// waits until the log is resolved through the deletion's start).
    pub fn plan_erasure(&mut self, store: &Store, person: &[Identifier]) -> Result<Erasure> {
        let (_, cluster_seqs) = self.clusters_of(person);
        let wanted: FxHashSet<u128> = person.iter().map(Identifier::hash128).collect();
        let mut erasure = Erasure {
            seqs: Vec::new(),
            identifiers: Vec::new(),
            values: Vec::new(),
            flags: Default::default(),
        };
        for chunk in cluster_seqs.chunks(LOG_CHUNK) {
            let txn = store.log.read()?;
            for &seq in chunk {
                let Some(value) = store.log_dbs.events.get(&txn.txn, &seq)? else {
                    continue;
                };
                let decoded = stored_identity(seq, value, &self.custom)?;
                if decoded.stored.identifiers.iter().any(|i| wanted.contains(&i.hash128())) {
                    erasure.seqs.push(seq);
                    erasure.identifiers.extend(decoded.stored.identifiers.iter().cloned());
                    let event = decode_stored(seq, value)?;
                    for json in [&event.properties, &event.traits] {
                        if let Ok(parsed) = serde_json::from_slice::<Value>(json) {
                            collect_texts(&parsed, &mut erasure.values);
                        }
                    }
                    let at = (decoded.stored.timestamp_ms, seq);
                    let traits = decoded
                        .traits
                        .as_deref()
                        .and_then(|t| crate::json::parse_object(t).ok().flatten());
                    for (key, value) in traits.iter().flatten() {
                        if let Value::Bool(flag) = value {
                            let latest = erasure.flags.entry(key.clone()).or_insert((at.0, at.1, *flag));
                            if (latest.0, latest.1) < at {
                                *latest = (at.0, at.1, *flag);
                            }
                        }
                    }
                }
            }
        }
        erasure.identifiers.extend(person.iter().cloned());
        erasure.identifiers.sort();
        erasure.identifiers.dedup();
        erasure
            .values
            .extend(erasure.identifiers.iter().map(|i| i.value.clone()));
        erasure.values.retain(|text| text.chars().count() >= MIN_VALUE_LEN);
        erasure.values.sort();
        erasure.values.dedup();
        erasure.values.truncate(MAX_VALUES);
        Ok(erasure)
    }

    /// The state without the erased events, which the log no longer holds: the clusters of
    /// `identifiers` (every identifier the erased events carried) are rebuilt from what the log
    /// still holds of their events. `deletions` is the log's count of deletions applied, this
    /// one included.
    pub fn erase(&mut self, store: &Store, identifiers: &[Identifier], deletions: u64) -> Result<Erased> {
        let (roots, cluster_seqs) = self.clusters_of(identifiers);
        let mut remaining = Vec::new();
        for chunk in cluster_seqs.chunks(LOG_CHUNK) {
            let txn = store.log.read()?;
            for &seq in chunk {
                if let Some(value) = store.log_dbs.events.get(&txn.txn, &seq)? {
                    remaining.push(stored_identity(seq, value, &self.custom)?);
                }
            }
        }
        let members: Vec<Identifier> = roots
            .iter()
            .flat_map(|&root| self.graph.cluster_identifiers(root))
            .collect();
        self.links.forget(&members, &cluster_seqs.iter().copied().collect());
        let custom = std::sync::Arc::clone(&self.custom);
        let mut loader = LogLoader { store, custom: &custom };
        let events = remaining.iter().map(|decoded| decoded.stored.clone()).collect();
        let erased = self.graph.erase(&roots, events, &mut loader);
        let nodes: FxHashSet<u32> = erased.members.iter().copied().collect();
        self.engage.forget_nodes(&nodes);
        for decoded in &remaining {
            let identity = decoded.stored.identity();
            if let Some(account) = &decoded.account {
                self.links.record(&identity, account);
            }
            let mut parsed = None;
            self.record_engage(&identity, decoded.engage_facts(&mut parsed), &mut loader);
        }
        self.deletions = deletions;
        Ok(erased)
    }
}

impl ProfileState {
    /// The graph clusters holding `identifiers`, and their events' seqs (ascending).
    fn clusters_of(&mut self, identifiers: &[Identifier]) -> (Vec<u32>, Vec<u64>) {
        let roots = self.graph.clusters_of(identifiers);
        let mut seqs: Vec<u64> = roots
            .iter()
            .flat_map(|&root| self.graph.cluster_events(root).iter().copied())
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        (roots, seqs)
    }
}

/// The strings of a JSON value, depth first.
fn collect_texts(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::String(text) => into.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| collect_texts(item, into)),
        Value::Object(fields) => fields.values().for_each(|item| collect_texts(item, into)),
        Value::Number(_) | Value::Bool(_) | Value::Null => {}
    }
}
