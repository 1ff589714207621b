//! Values kept per union-find set (a profile, a cluster), in dense numbered slots and found by
//! the set's root node. A slot's number stays the same while its set lives, through unions (the
//! survivor keeps its slot), so other indexes can address profiles by a dense `u32`; a dissolved
//! set's slot is reused. Slots fill in order, so building a large graph writes memory in
//! sequence instead of scattering large entries over a hash table.

use std::ops::Index;

/// No value is rooted at this node.
const NONE: u32 = u32::MAX;

#[derive(serde::Serialize, serde::Deserialize)]
pub struct RootTable<T> {
    slots: Vec<Option<T>>,
    /// The slot of each root, by node number.
    slot_of: Vec<u32>,
    /// Empty slots, reused first.
    free: Vec<u32>,
    len: usize,
    /// The roots holding a value, as a bitmap (for Engage's evaluation: profile numbers). Not
    /// in snapshots: `restore` rebuilds it after a load.
    #[serde(skip)]
    root_set: roaring::RoaringBitmap,
}

impl<T> Default for RootTable<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            slot_of: Vec::new(),
            free: Vec::new(),
            len: 0,
            root_set: roaring::RoaringBitmap::new(),
        }
    }
}

impl<T> RootTable<T> {
    /// Room for `values` values over `nodes` nodes.
    pub fn reserve(&mut self, values: usize, nodes: usize) {
        self.slots.reserve(values.saturating_sub(self.slots.len()));
        self.slot_of.reserve(nodes.saturating_sub(self.slot_of.len()));
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot number of the value rooted at `root`.
    pub fn slot(&self, root: u32) -> Option<u32> {
        self.slot_of.get(root as usize).copied().filter(|&slot| slot != NONE)
    }

    pub fn get(&self, root: u32) -> Option<&T> {
        self.slots[self.slot(root)? as usize].as_ref()
    }

    pub fn get_mut(&mut self, root: u32) -> Option<&mut T> {
        let slot = self.slot(root)?;
        self.slots[slot as usize].as_mut()
    }

    /// Roots `value` at `root` in a free slot (replacing any value rooted there).
    pub fn insert(&mut self, root: u32, value: T) {
        if let Some(slot) = self.slot(root) {
            self.slots[slot as usize] = Some(value);
            return;
        }
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(value);
                slot
            }
            None => {
                self.slots.push(Some(value));
                (self.slots.len() - 1) as u32
            }
        };
        self.point(root, slot);
        self.len += 1;
    }

    pub fn remove(&mut self, root: u32) -> Option<T> {
        let slot = self.slot(root)?;
        self.slot_of[root as usize] = NONE;
        self.root_set.remove(root);
        self.free.push(slot);
        self.len -= 1;
        self.slots[slot as usize].take()
    }

    /// The set rooted at `from` is now rooted at `to` (a union): its value keeps its slot.
    pub fn rekey(&mut self, from: u32, to: u32) {
        if from == to {
            return;
        }
        if let Some(slot) = self.slot(from) {
            self.slot_of[from as usize] = NONE;
            self.root_set.remove(from);
            self.point(to, slot);
        }
    }

    /// The roots holding a value.
    pub fn root_set(&self) -> &roaring::RoaringBitmap {
        &self.root_set
    }

    /// Rebuilds `root_set` (after deserializing).
    pub fn restore(&mut self) {
        let roots = (0u32..)
            .zip(&self.slot_of)
            .filter(|(_, &slot)| slot != NONE)
            .map(|(root, _)| root);
        self.root_set = roaring::RoaringBitmap::from_sorted_iter(roots).unwrap_or_default();
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().flatten()
    }

    /// Bytes of the table itself (not what its values own).
    pub fn memory(&self) -> usize {
        use crate::memory::heap;
        heap(&self.slots) + heap(&self.slot_of) + heap(&self.free)
    }

    fn point(&mut self, root: u32, slot: u32) {
        let at = root as usize;
        if at >= self.slot_of.len() {
            self.slot_of.resize(at + 1, NONE);
        }
        debug_assert_eq!(self.slot_of[at], NONE, "a root holds one value");
        self.slot_of[at] = slot;
        self.root_set.insert(root);
    }
}

impl<T> Index<&u32> for RootTable<T> {
    type Output = T;

    fn index(&self, root: &u32) -> &T {
        self.get(*root).expect("a root of the table")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_dense_kept_through_rekeys_and_reused() {
        let mut table = RootTable::default();
        table.insert(7, "a");
        table.insert(3, "b");
        assert_eq!((table.slot(7), table.slot(3), table.len()), (Some(0), Some(1), 2));
        table.rekey(7, 9);
        assert_eq!((table.slot(7), table.slot(9), table[&9]), (None, Some(0), "a"));
        assert_eq!(table.remove(3), Some("b"));
        assert_eq!((table.get(3), table.len()), (None, 1));
        table.insert(4, "c");
        assert_eq!(table.slot(4), Some(1));
        let mut values: Vec<_> = table.values().copied().collect();
        values.sort();
        assert_eq!(values, ["a", "c"]);
    }
}
