//! The warehouse rules, one file per concept, and the properties that tie them together
//! (`properties.rs`). Expected values that Python decided (names' digests, float spellings,
//! `datetime.fromisoformat`) were taken from Python 3.11 and orjson, whose behaviour these
//! rules keep.

mod copy;
mod json;
mod names;
mod numbers_and_times;
mod plan;
mod properties;

use super::copy::{encode_table, EncodedTable, BINARY_SIGNATURE};
use super::plan::{plan_batch, BatchPlan};

/// A field read back from a binary COPY payload.
#[derive(Clone, Debug, PartialEq)]
pub enum Field {
    Null,
    Text(String),
    Bigint(i64),
    Double(f64),
    Boolean(bool),
    /// Microseconds since 2000-01-01 UTC.
    Timestamp(i64),
}

/// A tiny reader of PostgreSQL's binary COPY format: the rows of a whole payload whose fields have
/// `data_types` (information_schema names), checking the signature, field counts and trailer.
pub fn read_binary_copy(payload: &[u8], data_types: &[&str]) -> Vec<Vec<Field>> {
    assert!(payload.starts_with(BINARY_SIGNATURE), "no signature");
    let mut at = BINARY_SIGNATURE.len();
    let mut take = |n: usize| {
        let bytes = &payload[at..at + n];
        at += n;
        bytes
    };
    let flags = i32::from_be_bytes(take(4).try_into().unwrap());
    assert_eq!(flags, 0);
    let extension = i32::from_be_bytes(take(4).try_into().unwrap());
    take(extension as usize);
    let mut rows = Vec::new();
    loop {
        let fields = i16::from_be_bytes(take(2).try_into().unwrap());
        if fields == -1 {
            break;
        }
        assert_eq!(fields as usize, data_types.len(), "field count");
        let row = data_types
            .iter()
            .map(|data_type| {
                let length = i32::from_be_bytes(take(4).try_into().unwrap());
                if length == -1 {
                    return Field::Null;
                }
                let bytes = take(length as usize);
                match *data_type {
                    "text" => Field::Text(String::from_utf8(bytes.to_vec()).expect("UTF-8 text")),
                    "bigint" => Field::Bigint(i64::from_be_bytes(bytes.try_into().unwrap())),
                    "double precision" => Field::Double(f64::from_be_bytes(bytes.try_into().unwrap())),
                    "boolean" => {
                        assert_eq!(bytes.len(), 1);
                        Field::Boolean(bytes[0] == 1)
                    }
                    "timestamp with time zone" => Field::Timestamp(i64::from_be_bytes(bytes.try_into().unwrap())),
                    other => panic!("no binary form for {other}"),
                }
            })
            .collect();
        rows.push(row);
    }
    assert_eq!(at, payload.len(), "bytes after the trailer");
    rows
}

/// Plans a batch of JSON events, their message ids taken from their `messageId`s.
pub fn plan_json(events: &str) -> BatchPlan {
    let value: serde_json::Value = serde_json::from_str(events).expect("test JSON");
    let ids: Vec<String> = value
        .as_array()
        .expect("an array")
        .iter()
        .map(|event| event["messageId"].as_str().unwrap_or_default().to_owned())
        .collect();
    plan_batch(events.as_bytes(), &ids).expect("a valid batch")
}

pub fn table_index(plan: &BatchPlan, name: &str) -> usize {
    plan.tables()
        .iter()
        .position(|table| table.name() == name)
        .unwrap_or_else(|| panic!("no table {name}"))
}

pub const LOAD_TIME_UNIX_MICROS: i64 = 1_714_564_800_000_000; // 2024-05-01T12:00:00Z

/// Table `name` encoded with its columns' types as made (`overrides` by column), read back as
/// (column → field) per row, with the nulled counts.
pub fn loaded(plan: &BatchPlan, name: &str, overrides: &[(&str, &str)]) -> (Vec<Vec<(String, Field)>>, EncodedTable) {
    let index = table_index(plan, name);
    let columns = plan.columns(index);
    let types: Vec<&str> = columns
        .iter()
        .map(|(column, made)| {
            overrides
                .iter()
                .find(|(name, _)| name == column)
                .map_or(made.data_type(), |(_, data_type)| *data_type)
        })
        .collect();
    let encoded = encode_table(plan, index, &types, LOAD_TIME_UNIX_MICROS).unwrap();
    assert!(encoded.binary);
    let mut all_types = types.clone();
    all_types.push("timestamp with time zone");
    let rows = read_binary_copy(&encoded.payload, &all_types)
        .into_iter()
        .map(|fields| {
            assert_eq!(
                fields.last(),
                Some(&Field::Timestamp(LOAD_TIME_UNIX_MICROS - 946_684_800_000_000))
            );
            columns
                .iter()
                .zip(fields)
                .map(|((column, _), field)| ((*column).to_owned(), field))
                .collect()
        })
        .collect();
    (rows, encoded)
}

/// The field of `column` in a row read by `loaded` (Null when the column is not in the table).
pub fn field<'a>(row: &'a [(String, Field)], column: &str) -> &'a Field {
    row.iter()
        .find(|(name, _)| name == column)
        .map_or(&Field::Null, |(_, field)| field)
}
