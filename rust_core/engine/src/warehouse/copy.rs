//! A planned table's rows as the payload of one PostgreSQL `COPY … FROM STDIN`, each value fitted
//! to its column's type on the way (the casting rules are `super`'s docs).
//!
//! Binary format (PostgreSQL's documentation, COPY, "Binary Format"): the signature
//! `PGCOPY\n\377\r\n\0`, a 32-bit flags field (0) and header-extension length (0); per row a
//! 16-bit field count, then per field a 32-bit length (-1: NULL) and the value in its type's
//! binary form; the trailer is a 16-bit -1. Integers are big-endian. The forms used: `text`
//! UTF-8 bytes, `int8` 8 bytes, `float8` IEEE 754 (8 bytes), `bool` one byte, `timestamptz`
//! microseconds since 2000-01-01 00:00 UTC (8 bytes).
//!
//! Text format, when some column has a type made by hand (`numeric`, `varchar(20)`, ...) that
//! only the server can cast a value's text to: fields separated by tabs, rows ended by a
//! newline, `\N` for NULL, and `\\`, `\n`, `\r`, `\t` for the four characters that would
//! otherwise end a field or row.
//!
//! Invariants: a payload has one row per planned row, with the table's columns in
//! `column_ids` order and the load time last; a value that did not cast is NULL and counted
//! in `nulled` under its column (every table that holds it counts it).

use super::iso_datetime::{write_postgres_timestamp, POSTGRES_EPOCH_UNIX_MICROS};
use super::plan::BatchPlan;
use super::schema::ColumnType;
use super::values::{to_bigint, to_boolean, to_double, to_timestamp, write_text, Value};
use crate::EngineError;

pub const BINARY_SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// One table's COPY payload.
#[derive(Debug)]
pub struct EncodedTable {
    pub payload: Vec<u8>,
    /// `COPY … (FORMAT BINARY)`; else the text format, for the server to cast.
    pub binary: bool,
    /// Per column: how many values did not cast to its type and went in as NULL (only > 0).
    pub nulled: Vec<(String, u64)>,
}

const ABSENT: u32 = u32::MAX;

/// Encodes table `table` of `plan` for a COPY of its columns (`column_ids` order, whose
/// information_schema types are `data_types`) and then `uuid_ts`, the load time
/// (`load_time_unix_micros` on every row).
pub fn encode_table<S: AsRef<str>>(
    plan: &BatchPlan,
    table: usize,
    data_types: &[S],
    load_time_unix_micros: i64,
) -> Result<EncodedTable, EngineError> {
    let rows = plan
        .tables()
        .get(table)
        .ok_or_else(|| EngineError::InvalidRequest(format!("the plan has no table {table}")))?;
    let columns = rows.column_ids();
    if data_types.len() != columns.len() {
        return Err(EngineError::InvalidRequest(format!(
            "{} has {} columns, not {}",
            rows.name(),
            columns.len(),
            data_types.len()
        )));
    }
    let types: Vec<Option<ColumnType>> = data_types
        .iter()
        .map(|data_type| ColumnType::from_data_type(data_type.as_ref()))
        .collect();
    let binary = types.iter().all(Option::is_some);
    let mut position = vec![ABSENT; columns.iter().max().map_or(0, |&id| id as usize + 1)];
    for (index, &id) in columns.iter().enumerate() {
        position[id as usize] = index as u32;
    }
    let pool = plan.pool();
    let mut slots: Vec<Option<Value>> = vec![None; columns.len()];
    let mut nulled = vec![0u64; columns.len()];
    // Values, a NULL's 4 bytes per missing one, the field count and load time per row.
    let nulls = (rows.len() * columns.len()).saturating_sub(rows.value_count());
    let mut out = Vec::with_capacity(rows.value_bytes() + 4 * nulls + rows.len() * 14 + 32);
    let mut scratch = Vec::new();
    if binary {
        out.extend_from_slice(BINARY_SIGNATURE);
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
    }
    let field_count = (columns.len() + 1) as i16;
    for index in 0..rows.len() {
        slots.fill(None);
        for entry in rows.row(index) {
            if let Some(&slot) = position.get(entry.column as usize).filter(|&&slot| slot != ABSENT) {
                slots[slot as usize] = Some(entry.value);
            }
        }
        if binary {
            out.extend_from_slice(&field_count.to_be_bytes());
            for ((slot, column_type), count) in slots.iter().zip(&types).zip(&mut nulled) {
                let column_type = column_type.unwrap_or(ColumnType::Text);
                if !write_binary_field(&mut out, *slot, column_type, pool) {
                    *count += 1;
                }
            }
            out.extend_from_slice(&8i32.to_be_bytes());
            out.extend_from_slice(&(load_time_unix_micros - POSTGRES_EPOCH_UNIX_MICROS).to_be_bytes());
        } else {
            for ((slot, column_type), count) in slots.iter().zip(&types).zip(&mut nulled) {
                if !write_text_field(&mut out, &mut scratch, *slot, *column_type, pool) {
                    *count += 1;
                }
                out.push(b'\t');
            }
            write_postgres_timestamp(&mut out, load_time_unix_micros);
            out.push(b'\n');
        }
    }
    if binary {
        out.extend_from_slice(&(-1i16).to_be_bytes());
    }
    let nulled = columns
        .iter()
        .zip(nulled)
        .filter(|(_, count)| *count > 0)
        .map(|(&id, count)| (plan.column_name(id).to_owned(), count))
        .collect();
    Ok(EncodedTable {
        payload: out,
        binary,
        nulled,
    })
}

fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i32).to_be_bytes());
}

fn fixed(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
    out.extend_from_slice(bytes);
}

/// Writes one field in binary; false when a value did not cast (written as NULL).
fn write_binary_field(out: &mut Vec<u8>, value: Option<Value>, column_type: ColumnType, pool: &[u8]) -> bool {
    let Some(value) = value else {
        null(out);
        return true;
    };
    let written = match column_type {
        ColumnType::Text => {
            let length_at = out.len();
            out.extend_from_slice(&[0; 4]);
            write_text(out, value, pool);
            let length = (out.len() - length_at - 4) as i32;
            out[length_at..length_at + 4].copy_from_slice(&length.to_be_bytes());
            return true;
        }
        ColumnType::Bigint => to_bigint(value, pool).map(|n| fixed(out, &n.to_be_bytes())),
        ColumnType::Double => to_double(value, pool).map(|f| fixed(out, &f.to_be_bytes())),
        ColumnType::Boolean => to_boolean(value, pool).map(|b| fixed(out, &[u8::from(b)])),
        ColumnType::Timestamp => to_timestamp(value, pool).map(|t| fixed(out, &t.to_be_bytes())),
    };
    if written.is_none() {
        null(out);
    }
    written.is_some()
}

/// Writes one field in the text format (`None` type: a column of a type made by hand, given
/// the value's text); false when a value did not cast (written as NULL).
fn write_text_field(
    out: &mut Vec<u8>,
    scratch: &mut Vec<u8>,
    value: Option<Value>,
    column_type: Option<ColumnType>,
    pool: &[u8],
) -> bool {
    let Some(value) = value else {
        out.extend_from_slice(b"\\N");
        return true;
    };
    scratch.clear();
    let cast = match column_type {
        None | Some(ColumnType::Text) => {
            write_text(scratch, value, pool);
            true
        }
        Some(ColumnType::Bigint) => to_bigint(value, pool)
            .map(|n| scratch.extend_from_slice(itoa::Buffer::new().format(n).as_bytes()))
            .is_some(),
        Some(ColumnType::Double) => to_double(value, pool)
            .map(|f| scratch.extend_from_slice(ryu::Buffer::new().format_finite(f).as_bytes()))
            .is_some(),
        Some(ColumnType::Boolean) => to_boolean(value, pool)
            .map(|b| scratch.push(if b { b't' } else { b'f' }))
            .is_some(),
        Some(ColumnType::Timestamp) => to_timestamp(value, pool)
            .map(|t| write_postgres_timestamp(scratch, t + POSTGRES_EPOCH_UNIX_MICROS))
            .is_some(),
    };
    if !cast {
        out.extend_from_slice(b"\\N");
        return false;
    }
    for &byte in scratch.iter() {
        match byte {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => out.push(byte),
        }
    }
    true
}
