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
}
