//! Exact deduplication of (source, messageId) over a time window, answered from memory.
//!
//! The persisted truth is the append-only `dedupe_log` in the log environment, written in the
//! same transaction as the events it covers. This set is rebuilt from it at start-up (only the
//! entries inside the window), so the ack path never does a random-key B-tree write.
//! Memory: about 60 bytes per remembered messageId.

use std::collections::{HashMap, VecDeque};
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
type ShardedKeyMap<V> = ShardedMap<DedupeKey, V, BuildHasherDefault<KeyHasher>>;

/// Remembered keys within the window, oldest first in `order` for expiry.
pub struct DedupeSet {
    markers: ShardedKeyMap<Marker>,
    order: VecDeque<(i64, DedupeKey)>,
    window_ms: i64,
}

impl DedupeSet {
    pub fn new(window_ms: i64) -> Self {
        Self {
            markers: ShardedKeyMap::default(),
            order: VecDeque::new(),
            window_ms,
        }
    }

    /// Rebuilds the set from the log: the newest entries back to the start of the window.
    pub fn load(txn: &ReadTxn<'_>, dbs: &LogDatabases, window_ms: i64, now_ms: i64) -> Result<Self> {
        let mut set = Self::new(window_ms);
        let cutoff = now_ms - window_ms;
        let mut recent = Vec::new();
        for entry in dbs.dedupe_log.rev_iter(&txn.txn)? {
            let (_, value) = entry?;
            let Some((key, marker)) = Marker::decode(value) else {
                continue;
            };
            if marker.received_ms < cutoff {
                break;
            }
            recent.push((key, marker));
        }
        for (key, marker) in recent.into_iter().rev() {
            set.insert(key, marker);
        }
        Ok(set)
    }

    /// The fingerprint of the event remembered under `key`, if it is inside the window.
    pub fn check(&self, key: &DedupeKey, now_ms: i64) -> Option<u64> {
        self.markers
            .get(key)
            .filter(|marker| marker.received_ms >= now_ms - self.window_ms)
            .map(|marker| marker.fingerprint)
    }

    pub fn insert(&mut self, key: DedupeKey, marker: Marker) {
        self.order.push_back((marker.received_ms, key));
        self.markers.insert(key, marker);
    }

    /// Forgets keys older than the window; returns how many.
    pub fn expire(&mut self, now_ms: i64) -> usize {
        let cutoff = now_ms - self.window_ms;
        let mut forgotten = 0;
        while let Some(&(ms, key)) = self.order.front() {
            if ms >= cutoff {
                break;
            }
            self.order.pop_front();
            // A key seen again later has a newer marker: keep that one.
            if self.markers.get(&key).is_some_and(|marker| marker.received_ms == ms) {
                self.markers.remove(&key);
                forgotten += 1;
            }
        }
        forgotten
    }

    pub fn len(&self) -> usize {
        self.markers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.markers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_within_the_window_and_forgets_after() {
        let mut set = DedupeSet::new(1_000);
        set.insert(
            [1; 16],
            Marker {
                fingerprint: 7,
                received_ms: 10_000,
            },
        );
        assert_eq!(set.check(&[1; 16], 10_500), Some(7));
        assert_eq!(set.check(&[1; 16], 11_001), None);
        assert_eq!(set.check(&[2; 16], 10_500), None);
        assert_eq!(set.expire(11_001), 1);
        assert!(set.is_empty());
    }

    #[test]
    fn a_key_seen_again_survives_expiry_of_its_first_sighting() {
        let mut set = DedupeSet::new(1_000);
        set.insert(
            [1; 16],
            Marker {
                fingerprint: 7,
                received_ms: 0,
            },
        );
        set.insert(
            [1; 16],
            Marker {
                fingerprint: 8,
                received_ms: 900,
            },
        );
        assert_eq!(set.expire(1_500), 0);
        assert_eq!(set.check(&[1; 16], 1_500), Some(8));
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
