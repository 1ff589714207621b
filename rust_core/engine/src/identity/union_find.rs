//! Union-find over dense node numbers: union by size, path compression (path halving), so that
//! both `find` and `union` are near O(1). Identity edges are kept elsewhere; this is only the
//! index that answers "which component (profile) is this identifier in".

/// Disjoint sets of nodes `0..len`.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct UnionFind {
    parent: Vec<u32>,
    size: Vec<u32>,
}

impl UnionFind {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a node in a set of its own; returns its number.
    pub fn add(&mut self) -> u32 {
        let node = u32::try_from(self.parent.len()).expect("fewer than 2^32 nodes");
        self.parent.push(node);
        self.size.push(1);
        node
    }

    pub fn reserve(&mut self, nodes: usize) {
        self.parent.reserve(nodes);
        self.size.reserve(nodes);
    }

    pub fn len(&self) -> usize {
        self.parent.len()
    }

    /// Bytes held.
    pub fn memory(&self) -> usize {
        crate::memory::heap(&self.parent) + crate::memory::heap(&self.size)
    }

    pub fn is_empty(&self) -> bool {
        self.parent.is_empty()
    }

    /// The representative of the node's set.
    pub fn find(&mut self, mut node: u32) -> u32 {
        while self.parent[node as usize] != node {
            let grandparent = self.parent[self.parent[node as usize] as usize];
            self.parent[node as usize] = grandparent;
            node = grandparent;
        }
        node
    }

    /// The representative of the node's set, without compressing the path (for readers that
    /// hold the graph shared; union by size keeps paths short).
    pub fn root(&self, mut node: u32) -> u32 {
        while self.parent[node as usize] != node {
            node = self.parent[node as usize];
        }
        node
    }

    /// Joins the sets of `a` and `b`; returns the new representative, or `None` when they were
    /// already one set.
    pub fn union(&mut self, a: u32, b: u32) -> Option<u32> {
        let (mut a, mut b) = (self.find(a), self.find(b));
        if a == b {
            return None;
        }
        if self.size[a as usize] < self.size[b as usize] {
            std::mem::swap(&mut a, &mut b);
        }
        self.parent[b as usize] = a;
        self.size[a as usize] += self.size[b as usize];
        Some(a)
    }

    /// Makes the node a set of its own again. Only sound when applied to every node of a closed
    /// group of sets (no node outside the group points into it), as when a cluster is rebuilt.
    pub fn reset(&mut self, node: u32) {
        self.parent[node as usize] = node;
        self.size[node as usize] = 1;
    }

    /// Number of nodes in the node's set.
    pub fn set_size(&mut self, node: u32) -> u32 {
        let root = self.find(node);
        self.size[root as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: relabel every node of one set when two sets join.
    fn naive_components(nodes: usize, edges: &[(u32, u32)]) -> Vec<usize> {
        let mut label: Vec<usize> = (0..nodes).collect();
        for &(a, b) in edges {
            let (from, to) = (label[b as usize], label[a as usize]);
            for l in &mut label {
                if *l == from {
                    *l = to;
                }
            }
        }
        label
    }

    proptest! {
        #[test]
        fn agrees_with_a_naive_relabelling(nodes in 1usize..60, raw in prop::collection::vec((0u32..60, 0u32..60), 0..120)) {
            let edges: Vec<(u32, u32)> = raw.into_iter().map(|(a, b)| (a % nodes as u32, b % nodes as u32)).collect();
            let mut uf = UnionFind::new();
            for _ in 0..nodes {
                uf.add();
            }
            for &(a, b) in &edges {
                uf.union(a, b);
            }
            let label = naive_components(nodes, &edges);
            for a in 0..nodes as u32 {
                let size = label.iter().filter(|&&l| l == label[a as usize]).count() as u32;
                prop_assert_eq!(uf.set_size(a), size);
                for b in 0..nodes as u32 {
                    prop_assert_eq!(uf.find(a) == uf.find(b), label[a as usize] == label[b as usize]);
                }
            }
        }
    }

    #[test]
    fn union_reports_only_real_joins() {
        let mut uf = UnionFind::new();
        let (a, b, c) = (uf.add(), uf.add(), uf.add());
        assert!(uf.union(a, b).is_some());
        assert_eq!(uf.union(b, a), None);
        let root = uf.union(c, a).unwrap();
        assert_eq!(root, uf.find(a), "the larger set's root survives");
        assert_eq!(uf.set_size(c), 3);
    }
}
