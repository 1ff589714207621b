//! A column's values: what a row holds, the type a new column takes from its first value, and
//! how a later value fits its column's type (the casting rules, stated in `super`'s docs).
//!
//! Invariants: a `Value` is never null (a null makes no column value); strings keep their NUL
//! characters until they are written as text (a NUL-holding string casts to nothing, as in
//! Python), JSON text never holds one.

use super::iso_datetime::{is_timestamp_text, parse_datetime, POSTGRES_EPOCH_UNIX_MICROS};
use super::json::Span;
use super::number_text::{is_python_space, parse_python_float, parse_python_int, write_python_float};
use super::schema::ColumnType;

/// One non-null value of a row, its text in the batch's pool.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    /// An integer past i64 (up to u64): text when it makes a column, NULL in a bigint one.
    UInt(u64),
    Float(f64),
    Str(Span),
    /// An array, or an object nested deeper than the flattening goes: its JSON text.
    Json(Span),
}

fn str_of(pool: &[u8], span: Span) -> &str {
    // Spans are whole strings of UTF-8 input or of unescaped UTF-8.
    std::str::from_utf8(&pool[span.range()]).unwrap_or_default()
}

/// The type a new column takes from its first non-null value.
pub fn infer_type(value: Value, pool: &[u8]) -> ColumnType {
    match value {
        Value::Bool(_) => ColumnType::Boolean,
        Value::Int(_) => ColumnType::Bigint,
        Value::Float(_) => ColumnType::Double,
        Value::Str(span) if is_timestamp_text(str_of(pool, span)) => ColumnType::Timestamp,
        Value::UInt(_) | Value::Str(_) | Value::Json(_) => ColumnType::Text,
    }
}

const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

pub fn to_bigint(value: Value, pool: &[u8]) -> Option<i64> {
    match value {
        Value::Int(n) => Some(n),
        Value::Float(f) if f.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&f) => Some(f as i64),
        Value::Str(span) => parse_python_int(str_of(pool, span)),
        Value::Float(_) | Value::UInt(_) | Value::Bool(_) | Value::Json(_) => None,
    }
}

pub fn to_double(value: Value, pool: &[u8]) -> Option<f64> {
    match value {
        Value::Float(f) => Some(f),
        Value::Int(n) => Some(n as f64),
        Value::UInt(n) => Some(n as f64),
        Value::Str(span) => parse_python_float(str_of(pool, span)),
        Value::Bool(_) | Value::Json(_) => None,
    }
}

pub fn to_boolean(value: Value, pool: &[u8]) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(b),
        Value::Str(span) => {
            let word = str_of(pool, span).trim_matches(is_python_space);
            if word.eq_ignore_ascii_case("true") {
                Some(true)
            } else if word.eq_ignore_ascii_case("false") {
                Some(false)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// Microseconds since PostgreSQL's epoch (2000-01-01 UTC).
pub fn to_timestamp(value: Value, pool: &[u8]) -> Option<i64> {
    match value {
        Value::Str(span) => parse_datetime(str_of(pool, span)).map(|unix| unix - POSTGRES_EPOCH_UNIX_MICROS),
        _ => None,
    }
}

/// Appends the value's text as a text column takes it: strings as they are (without NUL
/// characters, which PostgreSQL's text cannot hold), booleans as `true`/`false`, numbers as
/// Python's `str()` writes them, arrays and objects as their JSON.
pub fn write_text(out: &mut Vec<u8>, value: Value, pool: &[u8]) {
    match value {
        Value::Str(span) => {
            let bytes = &pool[span.range()];
            if bytes.contains(&0) {
                out.extend(bytes.iter().copied().filter(|&b| b != 0));
            } else {
                out.extend_from_slice(bytes);
            }
        }
        Value::Json(span) => out.extend_from_slice(&pool[span.range()]),
        Value::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
        Value::Int(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        Value::UInt(n) => out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()),
        Value::Float(f) => write_python_float(out, f),
    }
}
