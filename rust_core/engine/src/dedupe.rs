//! Exact deduplication of (source, messageId) over a time window, answered from memory.
//!
//! The persisted truth is the append-only `dedupe_log` in the log environment, written in the
//! same transaction as the events it covers. This set is rebuilt from it at start-up, so the ack
//! path never does a random-key B-tree write.
//!
//! Invariant: the set holds exactly the keys of the markers in `dedupe_log`. Expiry is the
//! writer's sweep, which deletes the oldest markers from the log and forgets their keys in the
//! same step; until then a key is remembered, so the window is at least the configured one.
//! Because a remembered key is never accepted again, the log holds one marker per key, and the
//! set needs no times and no expiry queue.
//!
//! An entry is 16 bytes: 96 bits of the 128-bit key and 32 bits of the payload fingerprint
//! (about 26 bytes per remembered messageId with the table's free slots). 96 bits keep a false
//! "duplicate" (two different messageIds sharing a remembered key) below one in 10^11 with a
//! billion keys in the window; 32 fingerprint bits only decide whether a same-id resend is
//! reported as a duplicate or a conflict, and either way the first version is the one kept.

use std::collections::{HashMap, HashSet};

use std::hash::{BuildHasherDefault, Hasher};

use crate::error::Result;
use crate::shards::ShardedMap;
use crate::store::{LogDatabases, ReadTxn};

/// The 128-bit dedupe key of a (source, messageId) pair.
pub type DedupeKey = [u8; 16];

/// What the log records per remembered event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    pub fingerprint: u64,
    pub received_ms: i64,
}

impl Marker {
    pub fn encode(&self, key: &DedupeKey) -> [u8; 32] {
        let mut out = [0u8; 32];
        out[..16].copy_from_slice(key);
        out[16..24].copy_from_slice(&self.fingerprint.to_be_bytes());
        out[24..].copy_from_slice(&self.received_ms.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<(DedupeKey, Self)> {
        let key: DedupeKey = bytes.get(..16)?.try_into().ok()?;
        let fingerprint = u64::from_be_bytes(bytes.get(16..24)?.try_into().ok()?);
        let received_ms = i64::from_be_bytes(bytes.get(24..32)?.try_into().ok()?);
        Some((
            key,
            Self {
                fingerprint,
                received_ms,
            },
        ))
    }
}

/// The keys are already uniform hashes: use their low bits as is.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }
}

pub type KeyMap<V> = HashMap<DedupeKey, V, BuildHasherDefault<KeyHasher>>;

/// What memory keeps of a dedupe key: its first 96 bits.
pub type ShortKey = [u8; 12];

/// What memory keeps of a payload fingerprint.
pub fn short_fingerprint(fingerprint: u64) -> u32 {
    fingerprint as u32
}

fn short_key(key: &DedupeKey) -> ShortKey {
    key[..12].try_into().expect("a dedupe key has 16 bytes")
}

/// The remembered keys and their payload fingerprints (both shortened).
pub struct DedupeSet {
    fingerprints: ShardedMap<ShortKey, u32, BuildHasherDefault<KeyHasher>>,
    /// Log seqs of markers whose key has a newer marker (only in logs written before the set
    /// kept its invariant): sweeping them must not forget the key.
    superseded: HashSet<u64>,
}

impl DedupeSet {
    pub fn new() -> Self {
        Self {
            fingerprints: ShardedMap::default(),
            superseded: HashSet::new(),
        }
    }

    /// Rebuilds the set from every marker in the log, expired or not: the sweep forgets the
    /// expired ones (a key forgotten here would be accepted again while its marker stays).
    pub fn load(txn: &ReadTxn<'_>, dbs: &LogDatabases) -> Result<Self> {
        let mut set = Self::new();
        let mut newest_seq: KeyMap<u64> = KeyMap::default();
        for entry in dbs.dedupe_log.iter(&txn.txn)? {
            let (seq, value) = entry?;
            let Some((key, marker)) = Marker::decode(value) else {
                continue;
            };
            if let Some(older) = newest_seq.insert(key, seq) {
                set.superseded.insert(older);
            }
            set.insert(key, marker.fingerprint);
        }
        Ok(set)
    }

    /// The (short) fingerprint of the event remembered under `key`.
    pub fn check(&self, key: &DedupeKey) -> Option<u32> {
        self.fingerprints.get(&short_key(key)).copied()
    }

    pub fn insert(&mut self, key: DedupeKey, fingerprint: u64) {
        self.fingerprints
            .insert(short_key(&key), short_fingerprint(fingerprint));
    }

    /// Forgets the key of the marker at `seq`, which the sweep has deleted from the log.
    pub fn forget(&mut self, seq: u64, key: &DedupeKey) {
        if !self.superseded.remove(&seq) {
            self.fingerprints.remove(&short_key(key));
        }
    }

    pub fn len(&self) -> usize {
        self.fingerprints.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fingerprints.is_empty()
    }

    /// Bytes of the table (allocated capacity, as the allocator sees it).
    pub fn memory_bytes(&self) -> usize {
        self.fingerprints.memory_bytes() + crate::shards::table_bytes::<u64>(self.superseded.capacity())
    }
}

impl Default for DedupeSet {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_its_marker_is_swept() {
        let mut set = DedupeSet::new();
        set.insert([1; 16], 7 | 1 << 40);
        assert_eq!(set.check(&[1; 16]), Some(7));
        assert_eq!(set.check(&[2; 16]), None);
        set.forget(10, &[1; 16]);
        assert!(set.is_empty());
    }

    #[test]
    fn sweeping_a_superseded_marker_keeps_the_newer_one() {
        let mut set = DedupeSet::new();
        set.superseded.insert(3);
        set.insert([1; 16], 8);
        set.forget(3, &[1; 16]);
        assert_eq!(set.check(&[1; 16]), Some(8));
        set.forget(9, &[1; 16]);
        assert_eq!(set.check(&[1; 16]), None);
    }

    #[test]
    fn markers_round_trip() {
        let marker = Marker {
            fingerprint: u64::MAX,
            received_ms: -5,
        };
        assert_eq!(Marker::decode(&marker.encode(&[3; 16])), Some(([3; 16], marker)));
    }
}
