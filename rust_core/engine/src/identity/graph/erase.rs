//! Erasing events from the graph (a privacy deletion, `governance::deletion`): the clusters
//! that held them are dissolved and their remaining events resolved again in canonical order,
//! so the graph is what those events alone would have built (it stays a function of the set of
//! stored events). An identifier no remaining event carries stops being a node: it leaves the
//! node map, its text is zeroed in the arena, and its node number is never used again. Profile
//! ids that lead to no remaining identifier are forgotten, aliases and merge records included.

use rustc_hash::FxHashSet;

use super::{EventLoader, IdentityGraph, ProfileId, StoredEvent};
use crate::identifiers::Identifier;
use crate::identity::arena::TextRef;

/// What `erase` changed.
pub struct Erased {
    /// Every node of the dissolved clusters (Engage's facts under them are recorded again by
    /// the caller, from the remaining events).
    pub members: Vec<u32>,
    /// Of those, the nodes erased.
    pub erased: usize,
    /// Profile ids that no longer lead anywhere.
    pub gone: Vec<ProfileId>,
}

impl IdentityGraph {
    /// The roots of the clusters holding these identifiers (those that had events).
    pub fn clusters_of(&mut self, identifiers: &[Identifier]) -> Vec<u32> {
        let nodes: Vec<u32> = identifiers
            .iter()
            .filter_map(|identifier| self.find_node(identifier))
            .collect();
        let mut roots: Vec<u32> = nodes.into_iter().map(|node| self.clusters.root(node)).collect();
        roots.retain(|&root| self.clusters.recorded(root).is_some());
        roots.sort_unstable();
        roots.dedup();
        roots
    }

    /// The log seqs of a cluster's events (see `clusters_of`).
    pub fn cluster_events(&self, root: u32) -> &[u64] {
        self.clusters.recorded(root).map_or(&[], |cluster| &cluster.events)
    }

    /// The identifiers of a cluster's nodes (see `clusters_of`).
    pub fn cluster_identifiers(&self, root: u32) -> Vec<Identifier> {
        self.clusters.recorded(root).map_or_else(Vec::new, |cluster| {
            cluster
                .members
                .iter()
                .map(|&node| self.identifier(node).to_identifier())
                .collect()
        })
    }

    /// Dissolves the clusters of `roots` and resolves `remaining` (the events of theirs that
    /// stay, in any order) again; erases the nodes none of them carries. The erased events
    /// must already be gone from what `loader` reads.
    pub fn erase(&mut self, roots: &[u32], mut remaining: Vec<StoredEvent>, loader: &mut dyn EventLoader) -> Erased {
        self.rebuilt_clusters += 1;
        let mut members = Vec::new();
        for &root in roots {
            if let Some(cluster) = self.clusters.dissolve(root) {
                members.extend(cluster.members);
            }
        }
        let old = self.unlink_members(&members);
        // Nodes no remaining event carries are erased before anything is resolved again.
        let carried: FxHashSet<u32> = remaining
            .iter()
            .flat_map(|event| event.identifiers.iter())
            .filter_map(|identifier| self.find_node(identifier))
            .collect();
        let mut erased = 0;
        for &node in &members {
            if !carried.contains(&node) {
                self.erase_node(node);
                erased += 1;
            }
        }
        remaining.sort_by(|a, b| (a.timestamp_ms, &a.message_id, a.seq).cmp(&(b.timestamp_ms, &b.message_id, b.seq)));
        for event in &remaining {
            self.add(&event.identity(), loader);
        }
        let mut gone = self.settle_ids(&members, old);
        self.forget_profiles(&mut gone);
        Erased { members, erased, gone }
    }

    /// Takes a node out of the graph for good: nothing finds it, its text is zeroed.
    fn erase_node(&mut self, node: u32) {
        let text = self.nodes[node as usize].text;
        if text.is_erased() {
            return;
        }
        let hash = super::node_hash(self.arena.get(text).hash128());
        if let Ok(entry) = self.node_of.find_entry(hash, |&known| known == node) {
            entry.remove();
        }
        self.arena.erase(text);
        let erased = &mut self.nodes[node as usize];
        erased.text = TextRef::ERASED;
        erased.origin = ProfileId(0);
        erased.first_seq = 0;
        erased.last_seen_ms = 0;
    }

    /// Forgets profile ids that lead nowhere, with every alias that led to them (merged-away
    /// ids of the same person) and the merge records naming them; `gone` grows by those aliases.
    fn forget_profiles(&mut self, gone: &mut Vec<ProfileId>) {
        let mut forgotten: FxHashSet<ProfileId> = gone.iter().copied().collect();
        loop {
            let before = forgotten.len();
            self.aliases.retain(|id, target| {
                let leads_nowhere = forgotten.contains(target) || forgotten.contains(id);
                if leads_nowhere {
                    forgotten.insert(*id);
                }
                !leads_nowhere
            });
            if forgotten.len() == before {
                break;
            }
        }
        for id in &forgotten {
            self.merged_by.remove(id);
        }
        for merge in &mut self.merges {
            if forgotten.contains(&merge.survivor) || forgotten.contains(&merge.merged) {
                merge.survivor = ProfileId(0);
                merge.merged = ProfileId(0);
                merge.message_id.clear();
                merge.timestamp_ms = 0;
            }
        }
        gone.clear();
        gone.extend(forgotten);
        gone.sort();
    }
}
