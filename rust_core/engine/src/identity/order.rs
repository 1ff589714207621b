//! The canonical order of events for identity: by event timestamp, then messageId. Resolving a
//! cluster's events in this order, whatever order they arrived in, is what makes a profile a
//! function of the set of its events.

use std::cmp::Ordering;

/// An event's place in the canonical order.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderKey {
    pub timestamp_ms: i64,
    pub message_id: String,
}

impl OrderKey {
    /// Before every event.
    pub const FIRST: OrderKey = OrderKey {
        timestamp_ms: i64::MIN,
        message_id: String::new(),
    };

    pub fn new(timestamp_ms: i64, message_id: &str) -> Self {
        Self {
            timestamp_ms,
            message_id: message_id.to_owned(),
        }
    }

    /// Overwrites in place (keeps the string's allocation: this runs once per event).
    pub fn set(&mut self, timestamp_ms: i64, message_id: &str) {
        self.timestamp_ms = timestamp_ms;
        self.message_id.clear();
        self.message_id.push_str(message_id);
    }

    /// Orders (timestamp, messageId) against this key without building a key.
    pub fn compare(&self, timestamp_ms: i64, message_id: &str) -> Ordering {
        (timestamp_ms, message_id).cmp(&(self.timestamp_ms, self.message_id.as_str()))
    }

    /// True when an event at (timestamp, messageId) sorts strictly before this key.
    pub fn is_after(&self, timestamp_ms: i64, message_id: &str) -> bool {
        self.compare(timestamp_ms, message_id) == Ordering::Less
    }
}

impl PartialOrd for OrderKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrderKey {
    fn cmp(&self, other: &Self) -> Ordering {
        other.compare(self.timestamp_ms, &self.message_id)
    }
}

/// An event's place in the canonical order as the identity graph keeps it: its timestamp, the
/// first 8 bytes of its messageId and its log seq; 24 bytes, no heap. Keys that tie on the first
/// two are ordered by the full messageIds, read back from the log by seq (`message_id`), so the
/// order is exactly `OrderKey`'s, the same whatever the arrival order, while the graph holds no
/// messageId text. (Ties need equal milliseconds and equal 8-byte prefixes: rare with real ids.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PackedKey {
    pub timestamp_ms: i64,
    /// The messageId's first 8 bytes, big-endian, zero-padded: ordered as the ids are.
    prefix: u64,
    /// The event's log seq; 0 for `FIRST`.
    pub seq: u64,
}

/// Reads the messageId of the event at a log seq (`None` if it is gone).
pub type MessageIds<'a> = dyn FnMut(u64) -> Option<String> + 'a;

impl PackedKey {
    /// Before every event.
    pub const FIRST: PackedKey = PackedKey {
        timestamp_ms: i64::MIN,
        prefix: 0,
        seq: 0,
    };

    pub fn new(timestamp_ms: i64, message_id: &str, seq: u64) -> Self {
        let mut bytes = [0u8; 8];
        let head = &message_id.as_bytes()[..message_id.len().min(8)];
        bytes[..head.len()].copy_from_slice(head);
        Self {
            timestamp_ms,
            prefix: u64::from_be_bytes(bytes),
            seq,
        }
    }

    /// How this key sorts against `other`.
    pub fn cmp_key(&self, other: &PackedKey, ids: &mut MessageIds<'_>) -> Ordering {
        match (self.seq, other.seq) {
            (0, 0) => return Ordering::Equal,
            (0, _) => return Ordering::Less,
            (_, 0) => return Ordering::Greater,
            (a, b) if a == b => return Ordering::Equal,
            _ => {}
        }
        (self.timestamp_ms, self.prefix)
            .cmp(&(other.timestamp_ms, other.prefix))
            .then_with(|| match (ids(self.seq), ids(other.seq)) {
                (Some(mine), Some(theirs)) => mine.cmp(&theirs),
                // An event gone from the log: its seq decides, as nothing else can.
                _ => self.seq.cmp(&other.seq),
            })
    }

    /// How the event (`timestamp_ms`, `message_id`, at `seq`) sorts against this key.
    pub fn event_cmp(&self, timestamp_ms: i64, message_id: &str, seq: u64, ids: &mut MessageIds<'_>) -> Ordering {
        if self.seq == 0 {
            return Ordering::Greater;
        }
        if self.seq == seq {
            return Ordering::Equal;
        }
        let event = PackedKey::new(timestamp_ms, message_id, seq);
        (event.timestamp_ms, event.prefix)
            .cmp(&(self.timestamp_ms, self.prefix))
            .then_with(|| match ids(self.seq) {
                Some(mine) => message_id.cmp(mine.as_str()),
                None => seq.cmp(&self.seq),
            })
    }

    /// The later of two keys.
    #[must_use]
    pub fn max(self, other: PackedKey, ids: &mut MessageIds<'_>) -> PackedKey {
        if other.cmp_key(&self, ids) == Ordering::Greater {
            other
        } else {
            self
        }
    }
}

impl Default for PackedKey {
    fn default() -> Self {
        Self::FIRST
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_first_then_message_id_bytewise() {
        let a = OrderKey::new(1, "b");
        assert!(a < OrderKey::new(2, "a"));
        assert!(a < OrderKey::new(1, "c"));
        assert!(OrderKey::FIRST < OrderKey::new(i64::MIN, "a"));
        assert!(a.is_after(1, "a") && !a.is_after(1, "b") && !a.is_after(1, "c"));
        let mut b = OrderKey::FIRST;
        b.set(1, "b");
        assert_eq!(a, b);
    }

    #[test]
    fn packed_keys_sort_as_order_keys_reading_ids_only_on_ties() {
        let ids = ["b", "a", "abcdefgh-2", "abcdefgh-1", "", "abcdefgh"];
        let texts: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        let mut reads = 0;
        let mut lookup = |seq: u64| {
            reads += 1;
            texts.get(seq as usize - 1).cloned()
        };
        for (i, a) in ids.iter().enumerate() {
            for (j, b) in ids.iter().enumerate() {
                for (ta, tb) in [(1, 1), (1, 2), (2, 1)] {
                    if i == j && ta != tb {
                        continue; // one seq is one event, with one timestamp
                    }
                    let (ka, kb) = (PackedKey::new(ta, a, i as u64 + 1), PackedKey::new(tb, b, j as u64 + 1));
                    let expected = OrderKey::new(ta, a).cmp(&OrderKey::new(tb, b));
                    assert_eq!(ka.cmp_key(&kb, &mut lookup), expected, "{a} at {ta} vs {b} at {tb}");
                    assert_eq!(kb.event_cmp(ta, a, i as u64 + 1, &mut lookup), expected);
                }
            }
            assert_eq!(
                PackedKey::FIRST.event_cmp(i64::MIN, a, 9, &mut lookup),
                Ordering::Less.reverse()
            );
        }
        assert!(reads > 0);
        let mut no_reads = |_: u64| -> Option<String> { panic!("no tie: nothing to read") };
        let (x, y) = (PackedKey::new(5, "zz", 1), PackedKey::new(5, "za", 2));
        assert_eq!(x.cmp_key(&y, &mut no_reads), Ordering::Greater);
        assert_eq!(x.max(y, &mut no_reads), x);
    }
}
