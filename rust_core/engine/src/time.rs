//! Timestamps: protobuf `Timestamp` ⇄ Unix milliseconds, and Segment's clock-skew correction.

use prost_types::Timestamp;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

pub fn to_ms(ts: &Timestamp) -> i64 {
    ts.seconds * 1000 + i64::from(ts.nanos) / 1_000_000
}

pub fn from_ms(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// True when a timestamp is well formed (nanos in range, year 0001..=9999).
pub fn is_valid(ts: &Timestamp) -> bool {
    (0..1_000_000_000).contains(&ts.nanos) && (-62_135_596_800..=253_402_300_799).contains(&ts.seconds)
}

/// When an event happened, by Segment's rule: `receivedAt − (sentAt − originalTimestamp)` when
/// both client clocks are known (removes the device's clock skew); else an explicit `timestamp`
/// (server-side callers and historical imports); else `originalTimestamp`; else arrival time.
/// All in Unix ms.
pub fn event_timestamp_ms(
    received_ms: i64,
    sent_ms: Option<i64>,
    original_ms: Option<i64>,
    explicit_ms: Option<i64>,
) -> i64 {
    match (original_ms.or(explicit_ms), sent_ms) {
        (Some(original), Some(sent)) => received_ms - (sent - original),
        _ => explicit_ms.or(original_ms).unwrap_or(received_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skew_is_removed_when_sent_at_is_known() {
        // Device clock one hour fast; event made 10 s before sending.
        let received = 1_700_000_000_000;
        let sent = received + 3_600_000;
        let original = sent - 10_000;
        assert_eq!(
            event_timestamp_ms(received, Some(sent), Some(original), None),
            received - 10_000
        );
        // A client `timestamp` without originalTimestamp is the original time (Segment).
        assert_eq!(
            event_timestamp_ms(received, Some(sent), None, Some(original)),
            received - 10_000
        );
    }

    #[test]
    fn explicit_time_then_original_then_arrival_without_sent_at() {
        assert_eq!(event_timestamp_ms(5, None, Some(3), Some(2)), 2);
        assert_eq!(event_timestamp_ms(5, None, Some(3), None), 3);
        assert_eq!(event_timestamp_ms(5, Some(4), None, None), 5);
    }

    #[test]
    fn millisecond_round_trip_handles_negative_times() {
        for ms in [-1_500, -1, 0, 1, 1_700_000_000_123] {
            assert_eq!(to_ms(&from_ms(ms)), ms);
        }
    }
}
