//! Clusters: identifiers joined by appearing together in any event, whatever the rules then
//! decided. Flat matching can only ever link identifiers within one cluster, and its decisions
//! in one cluster never depend on another, so a cluster is the unit that is re-resolved when
//! an event arrives late (or an admin splits a profile): its events are replayed in the
//! canonical order and the result is what in-order arrival would have produced.

use super::order::{MessageIds, PackedKey};
use super::root_table::RootTable;
use super::union_find::UnionFind;

/// What a cluster remembers to be replayed.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Cluster {
    /// The canonical key of its latest event.
    pub latest: PackedKey,
    /// Log seqs of its events (those with a linkable identifier), in arrival order.
    pub events: Vec<u64>,
    /// Its identifier nodes.
    pub members: Vec<u32>,
}

/// Clusters over the graph's node numbers (a node is in a cluster of its own when added).
#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct Clusters {
    sets: UnionFind,
    infos: RootTable<Cluster>,
}

/// Where an event landed.
pub struct Joined {
    pub root: u32,
    /// The event sorts before an event its cluster has already seen.
    pub late: bool,
}

impl Clusters {
    /// Bytes held: the sets, the table of recorded clusters and what each cluster owns.
    pub fn memory(&self) -> usize {
        use crate::memory::heap;
        let owned: usize = self.infos.values().map(|c| heap(&c.events) + heap(&c.members)).sum();
        self.sets.memory() + self.infos.memory() + owned
    }

    /// Adds node number `len()`, in a cluster of its own (its record is made when it first
    /// joins an event: most new nodes are absorbed by that same event).
    pub fn add(&mut self) -> u32 {
        self.sets.add()
    }

    pub fn reserve(&mut self, nodes: usize) {
        self.sets.reserve(nodes);
        self.infos.reserve(nodes / 2, nodes);
    }

    pub fn root(&mut self, node: u32) -> u32 {
        self.sets.find(node)
    }

    /// The cluster of a root that has had an event.
    pub fn get(&self, root: u32) -> &Cluster {
        &self.infos[&root]
    }

    /// The cluster of a root, if it has had an event.
    pub fn recorded(&self, root: u32) -> Option<&Cluster> {
        self.infos.get(root)
    }

    /// Forgets a cluster: each of its members is a cluster of its own again (unrecorded, as a
    /// node is before its first event). Returns what it held.
    pub fn dissolve(&mut self, root: u32) -> Option<Cluster> {
        let cluster = self.infos.remove(root)?;
        for &member in &cluster.members {
            self.sets.reset(member);
        }
        Some(cluster)
    }

    fn take(&mut self, root: u32) -> Cluster {
        self.infos.remove(root).unwrap_or_else(|| Cluster {
            latest: PackedKey::FIRST,
            events: Vec::new(),
            members: vec![root],
        })
    }

    /// Joins the clusters of an event's nodes (at least one) and records the event. `ids`
    /// reads messageIds back for ties in the canonical order.
    pub fn join(&mut self, nodes: &[u32], event: &Arrival<'_>, ids: &mut MessageIds<'_>) -> Joined {
        let mut root = self.sets.find(nodes[0]);
        // The common case: every node is already in one recorded cluster.
        if nodes[1..].iter().all(|&node| self.sets.find(node) == root) {
            if let Some(cluster) = self.infos.get_mut(root) {
                let late = event.is_before(&cluster.latest, ids);
                cluster.events.push(event.seq);
                if !late {
                    cluster.latest = event.key();
                }
                return Joined { root, late };
            }
        }
        let mut late = self.is_after(root, event, ids);
        let mut cluster = self.take(root);
        for &node in &nodes[1..] {
            let other = self.sets.find(node);
            if other == root {
                continue;
            }
            late |= self.is_after(other, event, ids);
            let absorbed = self.take(other);
            absorb(&mut cluster, absorbed, ids);
            root = self.sets.union(root, other).expect("distinct sets");
        }
        self.infos.insert(root, cluster);
        let cluster = self.infos.get_mut(root).expect("just inserted");
        cluster.events.push(event.seq);
        if !late {
            cluster.latest = event.key();
        }
        Joined { root, late }
    }

    /// Whether the cluster of `root` has seen an event that sorts after `event`.
    fn is_after(&self, root: u32, event: &Arrival<'_>, ids: &mut MessageIds<'_>) -> bool {
        self.infos
            .get(root)
            .is_some_and(|cluster| event.is_before(&cluster.latest, ids))
    }
}

/// The event being joined: its log seq and its place in the canonical order.
pub struct Arrival<'a> {
    pub seq: u64,
    pub timestamp_ms: i64,
    pub message_id: &'a str,
}

impl Arrival<'_> {
    fn key(&self) -> PackedKey {
        PackedKey::new(self.timestamp_ms, self.message_id, self.seq)
    }

    fn is_before(&self, key: &PackedKey, ids: &mut MessageIds<'_>) -> bool {
        key.event_cmp(self.timestamp_ms, self.message_id, self.seq, ids) == std::cmp::Ordering::Less
    }
}

fn absorb(kept: &mut Cluster, mut other: Cluster, ids: &mut MessageIds<'_>) {
    if other.events.len() > kept.events.len() {
        std::mem::swap(&mut kept.events, &mut other.events);
    }
    kept.events.extend(other.events);
    if other.members.len() > kept.members.len() {
        std::mem::swap(&mut kept.members, &mut other.members);
    }
    kept.members.extend(other.members);
    kept.latest = kept.latest.max(other.latest, ids);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joining_merges_events_and_reports_late_arrivals() {
        let texts = ["message-1", "message-2", "message-3", "message-4", "message-0"];
        let mut ids = |seq: u64| texts.get(seq as usize - 1).map(|s| s.to_string());
        let mut join = |clusters: &mut Clusters, nodes: &[u32], seq: u64, timestamp_ms: i64| {
            let message_id = texts[seq as usize - 1];
            let event = Arrival {
                seq,
                timestamp_ms,
                message_id,
            };
            clusters.join(nodes, &event, &mut ids)
        };
        let mut clusters = Clusters::default();
        let (a, b, c) = (clusters.add(), clusters.add(), clusters.add());
        assert!(!join(&mut clusters, &[a], 1, 10).late);
        assert!(!join(&mut clusters, &[b], 2, 30).late);
        // Later than a's cluster but earlier than b's: late for the joined cluster.
        let joined = join(&mut clusters, &[a, b], 3, 20);
        assert!(joined.late);
        let cluster = clusters.get(joined.root);
        assert_eq!(cluster.latest, PackedKey::new(30, "message-2", 2));
        let mut events = cluster.events.clone();
        events.sort_unstable();
        assert_eq!(events, vec![1, 2, 3]);
        assert!(!join(&mut clusters, &[c, a], 4, 30).late);
        let root = clusters.root(c);
        assert_eq!(clusters.get(root).members.len(), 3);
        assert_eq!(clusters.get(root).latest, PackedKey::new(30, "message-4", 4));
        // Same time and 8-byte prefix as the latest, a smaller messageId (read back): late.
        assert!(join(&mut clusters, &[c], 5, 30).late);
    }
}
