//! What Engage's evaluation reads of the graph, through a shared reference: profiles by their
//! union-find root (a dense `u32` that stays a profile's number while it lives, see
//! `root_table`), and their member nodes, so node-keyed indexes map to profiles at evaluation.

use roaring::RoaringBitmap;

use super::{IdentityGraph, ProfileId, ProfileLookup};
use crate::identifiers::Identifier;

impl IdentityGraph {
    /// The root node of every profile.
    pub fn root_bitmap(&self) -> &RoaringBitmap {
        self.profiles.root_set()
    }

    /// The root of the profile holding `node`; None for a node no profile holds. (A node no
    /// profile holds is a set of its own that roots no profile: checked on the roots' bitmap,
    /// which is small and hot, rather than on the node table, which is large and cold.)
    pub fn root_of(&self, node: u32) -> Option<u32> {
        let root = self.sets.root(node);
        self.profiles.root_set().contains(root).then_some(root)
    }

    /// The roots of the profiles holding any of `nodes`; `roots` is `root_bitmap()`, so that
    /// nodes that are roots themselves (most: one-identifier profiles) cost a bitmap AND.
    pub fn roots_of(&self, nodes: &RoaringBitmap, roots: &RoaringBitmap) -> RoaringBitmap {
        let mut found = nodes & roots;
        let others: Vec<u32> = (nodes - roots).iter().filter_map(|node| self.root_of(node)).collect();
        if !others.is_empty() {
            found |= RoaringBitmap::from_iter(others);
        }
        found
    }

    /// The nodes of the profile rooted at `root` (empty for a root that holds none).
    pub fn members_at(&self, root: u32) -> &[u32] {
        self.profiles.get(root).map_or(&[], |profile| &profile.members)
    }

    /// The root of the profile an identifier is linked in.
    pub fn linked_root(&self, identifier: &Identifier) -> Option<u32> {
        self.linked_node(identifier).map(|node| self.sets.root(node))
    }

    /// The root of a profile named by an identifier or by its id.
    pub fn root_for(&self, lookup: &ProfileLookup) -> Option<u32> {
        match lookup {
            ProfileLookup::Identifier(identifier) => self.linked_root(identifier),
            ProfileLookup::Id(id) => self
                .anchors
                .get(&self.current_id(*id))
                .map(|&node| self.sets.root(node)),
        }
    }

    /// The log seqs of the events that set the traits of the profile rooted at `root`.
    pub fn trait_events_at(&self, root: u32) -> &[u64] {
        self.profiles.get(root).map_or(&[], |profile| &profile.trait_events)
    }

    /// The id of the profile rooted at `root`.
    pub fn id_at(&self, root: u32) -> Option<ProfileId> {
        self.profiles.get(root).map(|profile| profile.id)
    }
}

impl IdentityGraph {
    /// The identifier of a node.
    pub fn identifier_at(&self, node: u32) -> Identifier {
        self.identifier(node).to_identifier()
    }
}
