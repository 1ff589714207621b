//! The tables of Segment's warehouse schema: their fixed columns and types, and the columns
//! their properties or traits may not take.
//!
//! Invariants: every table's fixed columns start with `id` (the primary key) and include
//! `uuid_ts` (the load time, never taken from an event); a table's reserved columns are its
//! fixed ones (plus, for every table, any `context_` column).

/// The types the loader creates; `data_type` is information_schema's name (valid in DDL too).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ColumnType {
    Text,
    Bigint,
    Double,
    Boolean,
    Timestamp,
}

impl ColumnType {
    pub const ALL: [ColumnType; 5] = [
        ColumnType::Text,
        ColumnType::Bigint,
        ColumnType::Double,
        ColumnType::Boolean,
        ColumnType::Timestamp,
    ];

    pub fn data_type(self) -> &'static str {
        match self {
            ColumnType::Text => "text",
            ColumnType::Bigint => "bigint",
            ColumnType::Double => "double precision",
            ColumnType::Boolean => "boolean",
            ColumnType::Timestamp => "timestamp with time zone",
        }
    }

    /// Ours, from information_schema's `data_type`; None for a type made by hand (`numeric`,
    /// `character varying`, ...), whose values the server casts from text.
    pub fn from_data_type(data_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.data_type() == data_type)
    }
}

/// Set by the loader (the load time), never copied from an event.
pub const LOAD_TIME_COLUMN: &str = "uuid_ts";

use ColumnType::{Text, Timestamp};

/// Every table of calls: the ids, the four timestamps and the load time.
const CALL_COLUMNS: [(&str, ColumnType); 8] = [
    ("id", Text),
    ("received_at", Timestamp),
    ("sent_at", Timestamp),
    ("original_timestamp", Timestamp),
    ("timestamp", Timestamp),
    ("uuid_ts", Timestamp),
    ("user_id", Text),
    ("anonymous_id", Text),
];

const fn with<const N: usize>(extra: (&'static str, ColumnType)) -> [(&'static str, ColumnType); N] {
    let mut columns = [("", Text); N];
    let mut i = 0;
    while i < CALL_COLUMNS.len() {
        columns[i] = CALL_COLUMNS[i];
        i += 1;
    }
    columns[CALL_COLUMNS.len()] = extra;
    columns
}

const TRACK_COLUMNS: [(&str, ColumnType); 10] = {
    let mut columns = with::<10>(("event", Text));
    columns[9] = ("event_text", Text);
    columns
};
const PAGE_COLUMNS: [(&str, ColumnType); 9] = with::<9>(("name", Text));
const GROUP_COLUMNS: [(&str, ColumnType); 9] = with::<9>(("group_id", Text));
const ALIAS_COLUMNS: [(&str, ColumnType); 9] = with::<9>(("previous_id", Text));
const USER_COLUMNS: [(&str, ColumnType); 4] = [
    ("id", Text),
    ("received_at", Timestamp),
    ("timestamp", Timestamp),
    ("uuid_ts", Timestamp),
];

/// What a table holds, which decides its fixed columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TableKind {
    /// `tracks`, and each event's own table.
    Track,
    /// `pages` and `screens`.
    Page,
    Identify,
    Group,
    Alias,
    /// `users`: one row per userId, upserted.
    User,
}

impl TableKind {
    pub const ALL: [TableKind; 6] = [
        TableKind::Track,
        TableKind::Page,
        TableKind::Identify,
        TableKind::Group,
        TableKind::Alias,
        TableKind::User,
    ];

    /// The columns its CREATE TABLE makes, in order.
    pub fn fixed_columns(self) -> &'static [(&'static str, ColumnType)] {
        match self {
            TableKind::Track => &TRACK_COLUMNS,
            TableKind::Page => &PAGE_COLUMNS,
            TableKind::Identify => &CALL_COLUMNS,
            TableKind::Group => &GROUP_COLUMNS,
            TableKind::Alias => &ALIAS_COLUMNS,
            TableKind::User => &USER_COLUMNS,
        }
    }

    pub fn fixed_type(self, column: &str) -> Option<ColumnType> {
        self.fixed_columns()
            .iter()
            .find(|(name, _)| *name == column)
            .map(|(_, column_type)| *column_type)
    }

    /// Whether a property or trait may not take `column` (Segment discards those).
    pub fn reserves(self, column: &str) -> bool {
        column.starts_with("context_") || self.fixed_type(column).is_some()
    }
}
