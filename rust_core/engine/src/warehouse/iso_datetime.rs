//! Date-time strings: which ones a value casts to a timestamp, and which ones make a new column a
//! timestamp column.
//!
//! `parse_datetime` is CPython 3.11's `datetime.fromisoformat` (its C implementation, ported
//! step for step with its quirks, e.g. `12:00:00:30` reading as 12:00:00.300000), followed by
//! the loader's rule that a date-time without a zone is UTC: what a string cast to
//! `timestamp with time zone` always was. It accepts dates alone (`2024-05-01`, midnight), basic
//! and week forms (`20240501`, `2024-W18-3`), any one character between date and time, a time
//! of 2, 4 or 6 digits with or without `:`, fractions of any length (truncated to the
//! microsecond), zones `Z`, `±HH`, `±HH:MM`, `±HHMM` and with seconds.
//!
//! `is_timestamp_text` is stricter (RFC 3339: a full date, `T`/`t`/space, hours and minutes,
//! optional seconds and fraction, and a zone): only such strings make a new column a timestamp;
//! a date alone or a time without a zone makes it text.

use std::sync::LazyLock;

use regex::Regex;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01T00:00:00Z).
pub const POSTGRES_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// A byte of the string, or 0 past its end (the C code reads the NUL terminator).
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

/// `parse_digits`: `n` ASCII digits at `pos`, as a number, and the position after them.
fn digits(s: &[u8], pos: usize, n: usize) -> Option<(i64, usize)> {
    let mut value = 0;
    for i in 0..n {
        let c = at(s, pos + i);
        if !c.is_ascii_digit() {
            return None;
        }
        value = value * 10 + i64::from(c - b'0');
    }
    Some((value, pos + n))
}

/// `_find_isoformat_datetime_separator`: where the date ends (None: invalid).
fn separator_location(s: &[u8]) -> Option<usize> {
    let len = s.len();
    if len == 7 {
        return Some(7);
    }
    if s[4] == b'-' {
        if s[5] == b'W' {
            if len < 8 {
                return None;
            }
            if len > 8 && s[8] == b'-' {
                if len == 9 {
                    return None;
                }
                if len > 10 && s[10].is_ascii_digit() {
                    return Some(8);
                }
                return Some(10);
            }
            return Some(8);
        }
        return Some(10);
    }
    if s[4] == b'W' {
        let mut idx = 7;
        while idx < len && s[idx].is_ascii_digit() {
            idx += 1;
        }
        if idx < 9 {
            return Some(idx);
        }
        return Some(if idx % 2 == 0 { 7 } else { 8 });
    }
    Some(8)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

/// Days from 1970-01-01 to the civil date (proleptic Gregorian; Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if month <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        month,
        day,
    )
}

/// `iso_to_ymd`: an ISO week date as a civil date.
fn iso_week_date(year: i64, week: i64, day: i64) -> Option<(i64, i64, i64)> {
    if !(1..=9999).contains(&year) {
        return None;
    }
    if !(1..53).contains(&week) {
        // Years starting on a Thursday, and leap years starting on a Wednesday, have 53 weeks.
        let first_weekday = (days_from_civil(year, 1, 1) + 3).rem_euclid(7); // Monday = 0
        if !(week == 53 && (first_weekday == 3 || (first_weekday == 2 && is_leap(year)))) {
            return None;
        }
    }
    if !(1..8).contains(&day) {
        return None;
    }
    let jan4 = days_from_civil(year, 1, 4);
    let week1_monday = jan4 - (jan4 + 3).rem_euclid(7);
    Some(civil_from_days(week1_monday + (week - 1) * 7 + (day - 1)))
}

/// `parse_isoformat_date` over `s[..len]`.
fn parse_date(s: &[u8], len: usize) -> Option<(i64, i64, i64)> {
    let (year, mut p) = digits(s, 0, 4)?;
    let uses_separator = at(s, p) == b'-';
    if uses_separator {
        p += 1;
    }
    if at(s, p) == b'W' {
        p += 1;
        let (week, next) = digits(s, p, 2)?;
        p = next;
        let mut day = 1;
        if p < len {
            if uses_separator {
                if at(s, p) != b'-' {
                    return None;
                }
                p += 1;
            }
            day = digits(s, p, 1)?.0;
        }
        return iso_week_date(year, week, day);
    }
    let (month, next) = digits(s, p, 2)?;
    p = next;
    if uses_separator {
        if at(s, p) != b'-' {
            return None;
        }
        p += 1;
    }
    let (day, _) = digits(s, p, 2)?;
    Some((year, month, day))
}

/// `parse_hh_mm_ss_ff` over `s[start..end]`: (hour, minute, second, microsecond) and whether
/// something is left (the C code's return value 1), or None.
fn parse_hh_mm_ss_ff(s: &[u8], start: usize, end: usize) -> Option<([i64; 4], bool)> {
    let mut values = [0i64; 4];
    let mut p = start;
    let mut has_separator = true;
    for (i, slot) in values.iter_mut().take(3).enumerate() {
        let (value, next) = digits(s, p, 2)?;
        *slot = value;
        p = next;
        let c = at(s, p);
        p += 1;
        if i == 0 {
            has_separator = c == b':';
        }
        if p >= end {
            return Some((values, c != 0));
        } else if has_separator && c == b':' {
            continue;
        } else if c == b'.' || c == b',' {
            break;
        } else if !has_separator {
            p -= 1;
        } else {
            return None;
        }
    }
    let remains = end.saturating_sub(p);
    let to_parse = remains.min(6);
    let (mut micros, next) = digits(s, p, to_parse)?;
    p = next;
    if to_parse < 6 {
        // C indexes `correction[to_parse - 1]`; with nothing to parse that read is out of bounds
        // and the value stays 0 × whatever: 0.
        micros *= 10i64.pow(6 - to_parse as u32);
        if to_parse == 0 {
            micros = 0;
        }
    }
    while at(s, p).is_ascii_digit() {
        p += 1;
    }
    values[3] = micros;
    Some((values, at(s, p) != 0))
}

/// `parse_isoformat_time` over `s[start..]`: the time and the zone's offset in microseconds
/// (None: no zone).
fn parse_time(s: &[u8], start: usize) -> Option<([i64; 4], Option<i64>)> {
    let end = s.len();
    let mut tz = start;
    loop {
        if matches!(at(s, tz), b'Z' | b'+' | b'-') {
            break;
        }
        tz += 1;
        if tz >= end {
            break;
        }
    }
    let (time, rest) = parse_hh_mm_ss_ff(s, start, tz)?;
    if tz == end {
        return if rest { None } else { Some((time, None)) };
    }
    if at(s, tz) == b'Z' {
        return if at(s, tz + 1) != 0 {
            None
        } else {
            Some((time, Some(0)))
        };
    }
    let sign = if at(s, tz) == b'-' { -1 } else { 1 };
    let (offset, rest) = parse_hh_mm_ss_ff(s, tz + 1, end)?;
    if rest {
        return None;
    }
    let seconds = offset[0] * 3600 + offset[1] * 60 + offset[2];
    if seconds == 0 {
        // CPython makes UTC of a zero offset before looking at its microseconds.
        return Some((time, Some(0)));
    }
    let micros = seconds * 1_000_000 + offset[3];
    // datetime.timezone takes offsets strictly within a day.
    if micros >= 86_400_000_000 {
        return None;
    }
    Some((time, Some(sign * micros)))
}

/// Python's `datetime.fromisoformat(text)`, a zone-less result read as UTC: microseconds since
/// the Unix epoch, or None when Python raises.
pub fn parse_datetime(text: &str) -> Option<i64> {
    let s = text.as_bytes();
    // Python counts characters, not bytes, for its shortest valid string.
    if text.chars().count() < 7 {
        return None;
    }
    let separator = separator_location(s)?;
    let (year, month, day) = parse_date(s, separator)?;
    let (time, offset) = if s.len() > separator {
        // The separator is any one character (a UTF-8 sequence of 1 to 4 bytes).
        let width = match s[separator] {
            b if b & 0x80 == 0 => 1,
            b if b & 0xf0 == 0xe0 => 3,
            b if b & 0xf0 == 0xf0 => 4,
            _ => 2,
        };
        parse_time(s, separator + width)?
    } else {
        ([0; 4], None)
    };
    let [hour, minute, second, micros] = time;
    let valid = (1..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0..60).contains(&second);
    if !valid {
        return None;
    }
    let local = (days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second) * 1_000_000 + micros;
    Some(local - offset.unwrap_or(0))
}

// RFC 3339 date-times (ISO-8601 with a time and a zone).
static RFC3339: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?([Zz]|[+-][0-9]{2}(:?[0-9]{2})?)$")
        .expect("a valid pattern")
});

/// A string that makes a new column `timestamp with time zone`: an RFC 3339 date-time that
/// `parse_datetime` reads.
pub fn is_timestamp_text(text: &str) -> bool {
    // Cheap refusals first: most strings are not date-times.
    let s = text.as_bytes();
    if s.len() < 16 || s.len() > 40 || !s[..4].iter().all(u8::is_ascii_digit) || s[4] != b'-' {
        return false;
    }
    RFC3339.is_match(text) && parse_datetime(text).is_some()
}

/// Unix microseconds as PostgreSQL's text for `timestamp with time zone` (UTC).
pub fn write_postgres_timestamp(out: &mut Vec<u8>, unix_micros: i64) {
    let days = unix_micros.div_euclid(86_400_000_000);
    let in_day = unix_micros.rem_euclid(86_400_000_000);
    let (year, month, day) = civil_from_days(days);
    let (seconds, micros) = (in_day / 1_000_000, in_day % 1_000_000);
    // Year 0 and before are written as years BC (0 is 1 BC).
    let (shown_year, era) = if year <= 0 { (1 - year, " BC") } else { (year, "") };
    let text = format!(
        "{shown_year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{micros:06}+00{era}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    out.extend_from_slice(text.as_bytes());
}
