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

/// Parses an ISO-8601 date-time with a zone, as Segment's libraries write them:
/// `2024-05-01T12:00:00.123Z`, `…+02:00` or `…+0200`; `T`, `t` or a space before the time;
/// seconds optional; `.` or `,` before the fraction (kept to the nanosecond). A time without a
/// zone is refused rather than guessed: read as UTC on one machine and as local time on another,
/// it would shift events by hours. The error says what is wrong, without the field's name.
pub fn parse_iso8601(text: &str) -> Result<Timestamp, String> {
    let not_iso = || format!("{text:?} is not an ISO-8601 date-time");
    let mut cursor = Cursor(text.as_bytes());
    let year = cursor.number(4).ok_or_else(not_iso)?;
    cursor.expect(b"-").ok_or_else(not_iso)?;
    let month = cursor.number(2).ok_or_else(not_iso)?;
    cursor.expect(b"-").ok_or_else(not_iso)?;
    let day = cursor.number(2).ok_or_else(not_iso)?;
    cursor.expect(b"Tt ").ok_or_else(not_iso)?;
    let hour = cursor.number(2).ok_or_else(not_iso)?;
    cursor.expect(b":").ok_or_else(not_iso)?;
    let minute = cursor.number(2).ok_or_else(not_iso)?;
    let (mut second, mut nanos) = (0, 0);
    if cursor.expect(b":").is_some() {
        second = cursor.number(2).ok_or_else(not_iso)?;
        if cursor.expect(b".,").is_some() {
            let digits = cursor.digits();
            if digits.is_empty() {
                return Err(not_iso());
            }
            // Nanoseconds: the first nine digits, padded.
            nanos = digits
                .iter()
                .chain(std::iter::repeat(&b'0'))
                .take(9)
                .fold(0, |n, d| n * 10 + i64::from(d - b'0'));
        }
    }
    let offset_seconds = match cursor.0.first() {
        Some(b'Z' | b'z') => {
            cursor.0 = &cursor.0[1..];
            0
        }
        Some(&sign @ (b'+' | b'-')) => {
            cursor.0 = &cursor.0[1..];
            let hours = cursor.number(2).ok_or_else(not_iso)?;
            let colon = cursor.expect(b":").is_some();
            let minutes = if cursor.0.is_empty() && !colon {
                0
            } else {
                cursor.number(2).ok_or_else(not_iso)?
            };
            if hours > 23 || minutes > 59 {
                return Err(format!("{text:?} has an invalid UTC offset"));
            }
            let offset = hours * 3600 + minutes * 60;
            if sign == b'+' {
                offset
            } else {
                -offset
            }
        }
        _ if cursor.0.is_empty() => {
            return Err(format!(
                "{text:?} has no time zone; add 'Z' for UTC or an offset such as '+02:00'"
            ))
        }
        _ => return Err(not_iso()),
    };
    if !cursor.0.is_empty() {
        return Err(not_iso());
    }
    let invalid = || format!("{text:?} is not a valid date and time");
    let date = chrono::NaiveDate::from_ymd_opt(year as i32, month as u32, day as u32).ok_or_else(invalid)?;
    let time = date
        .and_hms_opt(hour as u32, minute as u32, second as u32)
        .ok_or_else(invalid)?;
    let timestamp = Timestamp {
        seconds: time.and_utc().timestamp() - offset_seconds,
        nanos: nanos as i32,
    };
    if !is_valid(&timestamp) {
        return Err(format!("{text:?} is outside the years 0001 to 9999"));
    }
    Ok(timestamp)
}

/// The unread rest of a date-time being parsed.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    /// Exactly `width` ASCII digits.
    fn number(&mut self, width: usize) -> Option<i64> {
        let digits = self.0.get(..width)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.0 = &self.0[width..];
        Some(digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    }

    /// One byte out of `choices`.
    fn expect(&mut self, choices: &[u8]) -> Option<()> {
        let first = self.0.first()?;
        choices.contains(first).then(|| self.0 = &self.0[1..])
    }

    /// All leading ASCII digits.
    fn digits(&mut self) -> &[u8] {
        let end = self.0.iter().position(|b| !b.is_ascii_digit()).unwrap_or(self.0.len());
        let (digits, rest) = self.0.split_at(end);
        self.0 = rest;
        digits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso8601_forms_segment_libraries_write() {
        let ms = |text: &str| to_ms(&parse_iso8601(text).unwrap());
        assert_eq!(ms("2024-05-01T12:00:00Z"), 1_714_564_800_000);
        assert_eq!(ms("2024-05-01t12:00:00.123z"), 1_714_564_800_123);
        assert_eq!(ms("2024-05-01 14:00:00,5+02:00"), 1_714_564_800_500);
        assert_eq!(ms("2024-05-01T07:00-0500"), 1_714_564_800_000);
        assert_eq!(ms("2024-05-01T14:00:00+02"), 1_714_564_800_000);
        assert_eq!(
            parse_iso8601("2024-05-01T12:00:00.123456789123Z").unwrap().nanos,
            123_456_789
        );
        assert_eq!(ms("1969-12-31T23:59:59.999Z"), -1);
    }

    #[test]
    fn iso8601_refusals_say_why() {
        assert!(parse_iso8601("2024-05-01T12:00:00")
            .unwrap_err()
            .contains("no time zone"));
        assert!(parse_iso8601("2024-02-30T12:00:00Z")
            .unwrap_err()
            .contains("not a valid date"));
        assert!(parse_iso8601("2024-05-01T24:00:00Z")
            .unwrap_err()
            .contains("not a valid date"));
        assert!(parse_iso8601("2024-05-01T12:00:00+25:00")
            .unwrap_err()
            .contains("offset"));
        for text in [
            "",
            "yesterday",
            "2024-5-1T12:00Z",
            "2024-05-01",
            "2024-05-01T12:00:00.Z",
            "2024-05-01T12:00:00Zx",
            "2024-05-01T12:00+02:",
            "١٩٧٠-01-01T00:00Z",
        ] {
            assert!(parse_iso8601(text).unwrap_err().contains("not an ISO-8601"), "{text}");
        }
    }

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
