//! Clusters: identifiers joined by appearing together in any event, whatever the rules then
//! decided. Flat matching can only ever link identifiers within one cluster, and its decisions
//! in one cluster never depend on another, so a cluster is the unit that is re-resolved when
//! an event arrives late (or an admin splits a profile): its events are replayed in the
//! canonical order and the result is what in-order arrival would have produced.

use super::order::OrderKey;
use super::root_table::RootTable;
use super::union_find::UnionFind;

/// What a cluster remembers to be replayed.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Cluster {
    /// The canonical key of its latest event.
    pub latest: OrderKey,
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
        use crate::memory::{heap, string};
        let owned: usize = self
            .infos
            .values()
            .map(|c| string(&c.latest.message_id) + heap(&c.events) + heap(&c.members))
            .sum();
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

    fn take(&mut self, root: u32) -> Cluster {
        self.infos.remove(root).unwrap_or_else(|| Cluster {
            latest: OrderKey::FIRST,
            events: Vec::new(),
            members: vec![root],
        })
    }

    fn is_after(&self, root: u32, timestamp_ms: i64, message_id: &str) -> bool {
        self.infos
            .get(root)
            .is_some_and(|cluster| cluster.latest.is_after(timestamp_ms, message_id))
    }

    /// Joins the clusters of an event's nodes (at least one) and records the event.
    pub fn join(&mut self, nodes: &[u32], seq: u64, timestamp_ms: i64, message_id: &str) -> Joined {
        let mut root = self.sets.find(nodes[0]);
        // The common case: every node is already in one recorded cluster.
        if nodes[1..].iter().all(|&node| self.sets.find(node) == root) {
            if let Some(cluster) = self.infos.get_mut(root) {
                let late = cluster.latest.is_after(timestamp_ms, message_id);
                cluster.events.push(seq);
                if !late {
                    cluster.latest.set(timestamp_ms, message_id);
                }
                return Joined { root, late };
            }
        }
        let mut late = self.is_after(root, timestamp_ms, message_id);
        let mut cluster = self.take(root);
        for &node in &nodes[1..] {
            let other = self.sets.find(node);
            if other == root {
                continue;
            }
            late |= self.is_after(other, timestamp_ms, message_id);
            let absorbed = self.take(other);
            absorb(&mut cluster, absorbed);
            root = self.sets.union(root, other).expect("distinct sets");
        }
        self.infos.insert(root, cluster);
        let cluster = self.infos.get_mut(root).expect("just inserted");
        cluster.events.push(seq);
        if !late {
            cluster.latest.set(timestamp_ms, message_id);
        }
        Joined { root, late }
    }
}

fn absorb(kept: &mut Cluster, mut other: Cluster) {
    if other.events.len() > kept.events.len() {
        std::mem::swap(&mut kept.events, &mut other.events);
    }
    kept.events.extend(other.events);
    if other.members.len() > kept.members.len() {
        std::mem::swap(&mut kept.members, &mut other.members);
    }
    kept.members.extend(other.members);
    if other.latest > kept.latest {
        kept.latest = other.latest;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joining_merges_events_and_reports_late_arrivals() {
        let mut clusters = Clusters::default();
        let (a, b, c) = (clusters.add(), clusters.add(), clusters.add());
        assert!(!clusters.join(&[a], 1, 10, "m1").late);
        assert!(!clusters.join(&[b], 2, 30, "m2").late);
        // Later than a's cluster but earlier than b's: late for the joined cluster.
        let joined = clusters.join(&[a, b], 3, 20, "m3");
        assert!(joined.late);
        let cluster = clusters.get(joined.root);
        assert_eq!(cluster.latest, OrderKey::new(30, "m2"));
        let mut events = cluster.events.clone();
        events.sort_unstable();
        assert_eq!(events, vec![1, 2, 3]);
        assert!(!clusters.join(&[c, a], 4, 30, "m4").late);
        let root = clusters.root(c);
        assert_eq!(clusters.get(root).members.len(), 3);
        assert_eq!(clusters.get(root).latest, OrderKey::new(30, "m4"));
    }
}
