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
    (0..1_000_000_000).contains(&ts.nanos)
        && (-62_135_596_800..=253_402_300_799).contains(&ts.seconds)
}

/// Segment's rule: `timestamp = receivedAt − (sentAt − originalTimestamp)` when `sentAt` is known,
/// else the client's time, else the arrival time. All in Unix ms.
pub fn corrected_timestamp_ms(
    received_ms: i64,
    sent_ms: Option<i64>,
    original_ms: Option<i64>,
) -> i64 {
    match (original_ms, sent_ms) {
        (Some(original), Some(sent)) => received_ms - (sent - original),
        (Some(original), None) => original,
        (None, _) => received_ms,
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
            corrected_timestamp_ms(received, Some(sent), Some(original)),
            received - 10_000
        );
    }

    #[test]
    fn client_time_or_arrival_without_sent_at() {
        assert_eq!(corrected_timestamp_ms(5, None, Some(3)), 3);
        assert_eq!(corrected_timestamp_ms(5, Some(4), None), 5);
    }

    #[test]
    fn millisecond_round_trip_handles_negative_times() {
        for ms in [-1_500, -1, 0, 1, 1_700_000_000_123] {
            assert_eq!(to_ms(&from_ms(ms)), ms);
        }
    }
}
