//! What the query language does with JSON values: numbers (numeric strings count), equality,
//! the total order that decides "same value" for `mode` and `unique`, and instants for the date
//! comparators. The contract is the docstring of `tests/audience_reference.py`; this copies it.

use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

static NUMERIC_STRING: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$").expect("valid"));
static DATE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^([0-9]{4})-([0-9]{2})-([0-9]{2})$").expect("valid"));
static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?(Z|[+-][0-9]{2}:[0-9]{2})$",
    )
    .expect("valid")
});

/// A JSON number, or a string that is entirely a decimal number; as a finite f64.
pub fn as_number(value: &Value) -> Option<f64> {
    let number = match value {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) if NUMERIC_STRING.is_match(s) => s.parse::<f64>().ok()?,
        _ => return None,
    };
    number.is_finite().then_some(number)
}

/// Missing: no value, or null.
pub fn is_missing(value: Option<&Value>) -> bool {
    value.is_none_or(Value::is_null)
}

/// `equals`: numbers (numeric strings count) when either side is a number, else two strings by
/// text or two bools; anything else is not equal.
pub fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::Number(_), _) | (_, Value::Number(_)) => match (as_number(a), as_number(b)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        _ => false,
    }
}

fn rank(value: &Value) -> u8 {
    match value {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

/// The total order of values (`value_order`): bools < numbers (by f64) < strings (by UTF-8
/// bytes, which is code point order) < arrays (element-wise) < objects (by their JSON text with
/// sorted keys). Two values are "the same" when this says Equal.
pub fn order(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.total_cmp(&y)
        }
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Array(x), Value::Array(y)) => {
            for (a, b) in x.iter().zip(y) {
                let ordering = order(a, b);
                if ordering != Ordering::Equal {
                    return ordering;
                }
            }
            x.len().cmp(&y.len())
        }
        // serde_json's maps are sorted by key, so their text is the sorted-key form.
        (Value::Object(_), Value::Object(_)) => a.to_string().cmp(&b.to_string()),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// An instant in microseconds since the epoch: a string `YYYY-MM-DD` (midnight UTC) or
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (fraction cut to microseconds). Anything else,
/// including a time without a zone, is not an instant.
pub fn instant_micros(value: &Value) -> Option<i64> {
    let Value::String(text) = value else {
        return None;
    };
    instant_of_text(text)
}

/// See [`instant_micros`].
pub fn instant_of_text(text: &str) -> Option<i64> {
    let int = |s: &str| s.parse::<u32>().ok();
    if let Some(found) = DATE.captures(text) {
        let date = date(int(&found[1])?, int(&found[2])?, int(&found[3])?)?;
        return Some(date.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros());
    }
    let found = TIMESTAMP.captures(text)?;
    let date = date(int(&found[1])?, int(&found[2])?, int(&found[3])?)?;
    let fraction = found.get(7).map_or("", |m| m.as_str());
    let micros: String = fraction.chars().chain(std::iter::repeat('0')).take(6).collect();
    let time = date.and_hms_micro_opt(int(&found[4])?, int(&found[5])?, int(&found[6])?, micros.parse().ok()?)?;
    let zone = &found[8];
    let offset_secs = if zone == "Z" {
        0
    } else {
        let (hours, minutes) = (int(&zone[1..3])?, int(&zone[4..6])?);
        if hours > 23 || minutes > 59 {
            return None;
        }
        let secs = i64::from(hours * 3600 + minutes * 60);
        if zone.starts_with('+') {
            secs
        } else {
            -secs
        }
    };
    Some(time.and_utc().timestamp_micros() - offset_secs * 1_000_000)
}

/// Years 1 to 9999, as Python's datetime takes them.
fn date(year: u32, month: u32, day: u32) -> Option<chrono::NaiveDate> {
    if !(1..=9999).contains(&year) {
        return None;
    }
    chrono::NaiveDate::from_ymd_opt(year as i32, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numeric_strings_are_numbers_and_others_are_not() {
        for (text, number) in [("42", 42.0), ("12.5", 12.5), ("-3", -3.0), ("007", 7.0), ("1e2", 100.0)] {
            assert_eq!(as_number(&json!(text)), Some(number), "{text}");
        }
        assert_eq!(as_number(&json!(".5")), Some(0.5));
        assert_eq!(as_number(&json!("5.")), Some(5.0));
        for text in [" 5", "5 ", "1,000", "NaN", "inf", "0x10", "", "1e999"] {
            assert_eq!(as_number(&json!(text)), None, "{text:?}");
        }
        assert_eq!(as_number(&json!(true)), None);
    }

    #[test]
    fn equality_follows_the_contract() {
        assert!(equal(&json!(5), &json!("5.0")));
        assert!(equal(&json!("pro"), &json!("pro")));
        assert!(!equal(&json!("5"), &json!("5.0")), "two strings compare as text");
        assert!(!equal(&json!(true), &json!(1)));
        assert!(!equal(&json!([1]), &json!([1])));
        assert!(!equal(&Value::Null, &Value::Null));
    }

    #[test]
    fn the_order_puts_types_apart_and_numbers_by_value() {
        assert_eq!(order(&json!(5), &json!(5.0)), Ordering::Equal);
        assert_eq!(order(&json!(true), &json!(0)), Ordering::Less);
        assert_eq!(order(&json!(100), &json!("1")), Ordering::Less);
        assert_eq!(order(&json!("B"), &json!("a")), Ordering::Less);
        assert_eq!(order(&json!([1, "a"]), &json!([1, "b"])), Ordering::Less);
        assert_eq!(order(&json!([1]), &json!([1, 0])), Ordering::Less);
    }

    #[test]
    fn instants_need_a_zone_and_a_real_date() {
        assert_eq!(instant_of_text("1970-01-02"), Some(86_400_000_000));
        assert_eq!(instant_of_text("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(instant_of_text("1970-01-01T00:00:00.1234567Z"), Some(123_456));
        for text in [
            "2025-05-31T12:00:00",
            "2025-02-30",
            "2025-13-01",
            "soon",
            "2025-06-01t00:00:00Z",
        ] {
            assert_eq!(instant_of_text(text), None, "{text}");
        }
        assert_eq!(instant_of_text("2025-06-01T24:00:00Z"), None);
        assert_eq!(instant_micros(&json!(5)), None);
    }
}
