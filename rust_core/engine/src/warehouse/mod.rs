//! Segment's warehouse schema for the PostgreSQL destination: which tables an event lands in,
//! its columns and their types, and each table's rows as a binary COPY payload. Pure functions,
//! no database: the loader (cdp_server/destinations/warehouse.py) makes the tables and columns,
//! runs the COPYs and keeps the transactions.
//!
//! Two steps, because a table's columns depend on the batch and on what the database has:
//! `plan_batch` decodes the batch's JSON and applies the rules (rows per table, each column's
//! type when new); the loader then creates what is missing and reads the columns' types back;
//! `encode_table` writes a table's rows for those types.
//!
//! Sources: Segment's "Warehouse Schemas" documentation (tables, columns, flattening, types,
//! `id`/`uuid_ts`, reserved column names), the go-snakecase package it names for table and
//! column names (`names::snake_case`, with its quirks), and RudderStack's "Warehouse Schema"
//! docs for the one case Segment leaves open (an event whose table name would be a fixed
//! table's). Where the rules read or write text the way Python did (orjson's JSON, `str()` of a
//! number, `int()`, `float()`, `datetime.fromisoformat`), the Rust follows the Python loader this
//! replaced, so that warehouses it filled keep getting the same names and values.
//!
//! Tables and their columns:
//! - Every table of calls (`identifies`, `tracks`, `pages`, `screens`, `groups`, `aliases`, one
//!   per track event) has `id` (the messageId, primary key), `received_at`, `sent_at`,
//!   `original_timestamp`, `timestamp`, `uuid_ts` (load time), `user_id`, `anonymous_id`, and
//!   `context_*` (the context object, flattened).
//! - `tracks`: plus `event` (the event name in snake_case, the name of its table) and
//!   `event_text` (the name as sent); no properties. The event's table (`Order Completed` →
//!   `order_completed`): the same columns plus its properties.
//! - `pages`, `screens`: plus `name` and the properties. `identifies`: plus the traits.
//!   `groups`: plus `group_id` and the group's traits. `aliases`: plus `previous_id`.
//! - `users`: one row per userId (`id`), upserted from identify calls that carry a userId:
//!   `received_at`, `timestamp` and `uuid_ts` of the newest, and every trait's newest non-null
//!   value. No `anonymous_id` (a user has many) and no context, as in Segment.
//!
//! Names: snake_case per key (go-snakecase: ASCII letters and digits only, `firstName` →
//! `first_name`); nested objects join their keys with `_` (`context.library.name` →
//! `context_library_name`). A key with no ASCII letter or digit becomes `_` + 8 hex digits of
//! its digest, so that its values are kept. A name longer than PostgreSQL's 63 bytes keeps its
//! first 54 bytes plus `_` and 8 hex digits of the full name's digest (PostgreSQL would
//! truncate, merging distinct long names). An event whose table name would be a fixed table's
//! (`Users`) gets a `_` prefix (`_users`); an event name with no ASCII letter or digit gets
//! `event_` + digest.
//!
//! Reserved columns: a property or trait whose column would be one of the table's own columns
//! (`id`, `user_id`, `name` on pages, ...) or a `context_` column is discarded, as Segment does
//! ("Segment discards properties with the same name as the reserved column name");
//! `BatchPlan::discarded` counts them.
//!
//! Values: null values make no column (Segment: a column is created on its first non-null
//! value). Arrays, and objects nested more than `MAX_FLATTEN_DEPTH` deep, are stored as JSON
//! text. Text loses NUL characters (PostgreSQL text cannot hold them). Ids and names (`userId`,
//! `event`, a page's `name`, ...) sent as numbers or objects are their JSON text.
//!
//! Types: a new column takes the type of the first non-null value seen for it (in log order):
//! boolean → `boolean`, integer (64-bit) → `bigint`, other number → `double precision`, a
//! string that is an ISO-8601 date-time with a time zone (`2024-05-01T12:00:00Z`) → `timestamp
//! with time zone`, anything else (other strings, arrays, larger integers) → `text`. The four
//! event timestamps are always `timestamp with time zone`; ids and names always `text`.
//!
//! Casting: a later value that does not fit its column's type: into a `text` column, any value
//! goes in as its text (`42`, `true`, JSON for arrays); into another type, a value that casts
//! cleanly goes in (`"42"` into `bigint`, `3` into `double precision`, `3.0` into `bigint`,
//! `"true"` into `boolean`, a date-time string into a timestamp, read as UTC when it has no
//! zone); one that does not (`"abc"` into `bigint`, `1.5` into `bigint`, `true` into `bigint`)
//! goes in as NULL and is counted (`EncodedTable::nulled`), so one odd value never fails a
//! batch. A column of another type (made by hand: `numeric`, `varchar(20)`, ...) takes the
//! value's text and the server's cast (the table then goes in COPY's text format); a value the
//! server cannot cast fails the batch.

mod copy;
mod iso_datetime;
mod json;
mod json_text;
mod names;
mod number_text;
mod plan;
mod schema;
mod values;

#[cfg(test)]
mod tests;

pub use copy::{encode_table, EncodedTable, BINARY_SIGNATURE};
pub use names::{column_name, event_table_name, snake_case, MAX_IDENTIFIER_BYTES};
pub use plan::{plan_batch, BatchPlan, TableRows, MAX_FLATTEN_DEPTH};
pub use schema::{ColumnType, TableKind, LOAD_TIME_COLUMN};
