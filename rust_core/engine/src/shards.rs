//! A hash map split into shards so that growing it never copies the whole table at once: a
//! single table with millions of entries pauses for tens of milliseconds when it rehashes,
//! which would show up as ack-latency spikes on the ingest path.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

const SHARDS: usize = 64;

pub struct ShardedMap<K, V, S> {
    hasher: S,
    shards: Vec<HashMap<K, V, S>>,
}

impl<K: Hash + Eq, V, S: BuildHasher + Default + Clone> Default for ShardedMap<K, V, S> {
    fn default() -> Self {
        let hasher = S::default();
        Self {
            shards: (0..SHARDS).map(|_| HashMap::with_hasher(hasher.clone())).collect(),
            hasher,
        }
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> ShardedMap<K, V, S> {
    fn shard_of<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        // Middle bits: the table inside a shard uses the low and the top bits.
        ((self.hasher.hash_one(key) >> 32) as usize) % SHARDS
    }

    pub fn get<Q: Hash + Eq + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.shards[self.shard_of(key)].get(key)
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let shard = self.shard_of(key);
        self.shards[shard].get_mut(key)
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let shard = self.shard_of(&key);
        self.shards[shard].insert(key, value)
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        let shard = self.shard_of(key);
        self.shards[shard].remove(key)
    }

    pub fn entry(&mut self, key: K) -> std::collections::hash_map::Entry<'_, K, V> {
        let shard = self.shard_of(&key);
        self.shards[shard].entry(key)
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.iter().all(HashMap::is_empty)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(HashMap::iter)
    }

    /// Bytes of the shards' tables: every bucket (a power of two, at most 7/8 full) holds an
    /// entry and a control byte. Not counted: what keys and values own on the heap.
    pub fn memory_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| table_bytes::<(K, V)>(shard.capacity()))
            .sum()
    }
}

/// Bytes of a hashbrown table of `capacity` entries of `T` (std's HashMap and HashSet).
pub fn table_bytes<T>(capacity: usize) -> usize {
    if capacity == 0 {
        return 0;
    }
    let buckets = (capacity * 8 / 7).next_power_of_two();
    buckets * (std::mem::size_of::<T>() + 1)
}

impl<K: Hash + Eq + Clone, V: Clone, S: Clone> Clone for ShardedMap<K, V, S> {
    fn clone(&self) -> Self {
        Self {
            hasher: self.hasher.clone(),
            shards: self.shards.clone(),
        }
    }
}

impl<K, V, S> IntoIterator for ShardedMap<K, V, S> {
    type Item = (K, V);
    type IntoIter = std::iter::Flatten<std::vec::IntoIter<HashMap<K, V, S>>>;

    fn into_iter(self) -> Self::IntoIter {
        self.shards.into_iter().flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustc_hash::FxBuildHasher;

    #[test]
    fn behaves_like_one_map() {
        let mut map: ShardedMap<u64, u64, FxBuildHasher> = ShardedMap::default();
        for i in 0..10_000 {
            map.insert(i, i * 2);
        }
        *map.entry(7).or_default() += 1;
        assert_eq!(map.remove(&8), Some(16));
        assert_eq!((map.len(), map.get(&7), map.get(&8)), (9_999, Some(&15), None));
        assert_eq!(map.iter().count(), 9_999);
        assert!(map.shards.iter().all(|shard| !shard.is_empty()));
    }
}
