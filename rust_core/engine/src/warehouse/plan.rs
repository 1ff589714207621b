//! A batch of Segment-Spec events as rows per table of Segment's warehouse schema (the rules are
//! `super`'s docs).
//!
//! Invariants of a `BatchPlan`:
//! - tables come in the order the batch first needs them (`tracks` before the first event's own
//!   table), `users` last;
//! - every track event is one row of `tracks` and one row of its event's table, holding the
//!   same call columns (ids, timestamps, context, `event`, `event_text`) with the same values;
//!   every page, screen, identify, group and alias is one row of its table; an event of another
//!   type is no row and is counted (`skipped_events`);
//! - a row holds each column at most once and never a null; `uuid_ts` is never in a row (the
//!   loader adds the load time);
//! - `users` has one row per distinct userId of the batch's identify calls, folded: the newest
//!   call's non-null values win, older calls only fill what newer ones left out.

use rustc_hash::FxHashMap;

use super::iso_datetime::parse_datetime;
use super::json::{get, unique_members, ArrayReader, Document, Member, Node, Span};
use super::json_text::{append_json, Nul};
use super::names::{event_table_name, ColumnId, ColumnNames, Parent};
use super::schema::{ColumnType, TableKind};
use super::values::{infer_type, Value};
use crate::EngineError;

/// Objects nested deeper than this under `properties`, `traits` or `context` are stored as
/// JSON text, not flattened: `properties.a.b.c` is a column, `properties.a.b.c.d` is JSON
/// inside `a_b_c`.
pub const MAX_FLATTEN_DEPTH: u32 = 3;

/// The largest batch planned at once: keeps every offset into the pool within 32 bits (the
/// delivery worker's batches are a few MB).
pub const MAX_BATCH_BYTES: usize = 256 << 20;

/// One column's value in a row.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Entry {
    pub column: ColumnId,
    pub value: Value,
}

const ABSENT: u32 = u32::MAX;

/// One table's rows.
pub struct TableRows {
    name: String,
    kind: TableKind,
    row_starts: Vec<u32>,
    entries: Vec<Entry>,
    // Per column id: the index in `entries` of its first value (ABSENT: no row has one).
    first: Vec<u32>,
    // The columns some row has a value for, sorted by name (set when the plan is finished).
    columns: Vec<ColumnId>,
}

impl TableRows {
    fn new(name: String, kind: TableKind) -> Self {
        Self {
            name,
            kind,
            row_starts: Vec::new(),
            entries: Vec::new(),
            first: Vec::new(),
            columns: Vec::new(),
        }
    }

    fn push_row(&mut self, row: &[Entry]) {
        self.row_starts.push(self.entries.len() as u32);
        for entry in row {
            let column = entry.column as usize;
            if self.first.len() <= column {
                self.first.resize(column + 1, ABSENT);
            }
            if self.first[column] == ABSENT {
                self.first[column] = self.entries.len() as u32;
            }
            self.entries.push(*entry);
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn kind(&self) -> TableKind {
        self.kind
    }

    pub fn len(&self) -> usize {
        self.row_starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.row_starts.is_empty()
    }

    /// Row `index`'s values, in no particular column order.
    pub fn row(&self, index: usize) -> &[Entry] {
        let start = self.row_starts[index] as usize;
        let end = self
            .row_starts
            .get(index + 1)
            .map_or(self.entries.len(), |&end| end as usize);
        &self.entries[start..end]
    }

    /// The ids of the columns some row has a value for, sorted by name.
    pub fn column_ids(&self) -> &[ColumnId] {
        &self.columns
    }

    /// How many values its rows hold.
    pub fn value_count(&self) -> usize {
        self.entries.len()
    }

    /// About the bytes its values take in a COPY payload (what to reserve for one).
    pub fn value_bytes(&self) -> usize {
        self.entries
            .iter()
            .map(|entry| match entry.value {
                Value::Str(span) | Value::Json(span) => 4 + span.len as usize,
                _ => 12,
            })
            .sum()
    }
}

/// Rows per table for one batch, and what the rules dropped.
pub struct BatchPlan {
    // The batch's JSON, then unescaped strings, message ids and JSON text: every `Span`'s bytes.
    pool: Vec<u8>,
    names: ColumnNames,
    tables: Vec<TableRows>,
    discarded: u64,
    skipped_events: u64,
}

impl BatchPlan {
    pub fn tables(&self) -> &[TableRows] {
        &self.tables
    }

    /// Properties and traits dropped because their column is reserved.
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// Events of no known type.
    pub fn skipped_events(&self) -> u64 {
        self.skipped_events
    }

    pub fn pool(&self) -> &[u8] {
        &self.pool
    }

    pub fn column_name(&self, id: ColumnId) -> &str {
        self.names.name(id)
    }

    /// The columns of table `table` that some row has a value for, sorted by name, each with
    /// the type it is made with when new: the table's fixed type, else its first value's.
    pub fn columns(&self, table: usize) -> Vec<(&str, ColumnType)> {
        let rows = &self.tables[table];
        rows.columns
            .iter()
            .map(|&id| {
                let name = self.names.name(id);
                let column_type = rows.kind.fixed_type(name).unwrap_or_else(|| {
                    let first = rows.first[id as usize] as usize;
                    infer_type(rows.entries[first].value, &self.pool)
                });
                (name, column_type)
            })
            .collect()
    }
}

/// Plans a batch: `raw` is a JSON array of Segment-Spec events, `message_ids[i]` event i's `id`.
pub fn plan_batch<S: AsRef<str>>(raw: &[u8], message_ids: &[S]) -> Result<BatchPlan, EngineError> {
    if raw.len() > MAX_BATCH_BYTES {
        return Err(EngineError::InvalidRequest(format!(
            "a warehouse batch is at most {MAX_BATCH_BYTES} bytes of JSON"
        )));
    }
    let json_error = |error: super::json::JsonError| EngineError::InvalidRequest(format!("the batch's {error}"));
    let mut reader = ArrayReader::new(raw).map_err(json_error)?;
    let mut planner = Planner::new(raw);
    let mut index = 0;
    while let Some(node) = reader
        .next_element(&mut planner.doc, &mut planner.pool)
        .map_err(json_error)?
    {
        let Some(message_id) = message_ids.get(index) else {
            return Err(EngineError::InvalidRequest(format!(
                "the batch has more events than its {} message ids",
                message_ids.len()
            )));
        };
        planner.event(index, node, message_id.as_ref())?;
        index += 1;
    }
    if index != message_ids.len() {
        return Err(EngineError::InvalidRequest(format!(
            "the batch has {index} events and {} message ids",
            message_ids.len()
        )));
    }
    Ok(planner.finish())
}

fn str_of(pool: &[u8], span: Span) -> &str {
    std::str::from_utf8(&pool[span.range()]).unwrap_or_default()
}

/// The fields of an event the rules read (the last of a repeated key, as in a Python dict; a
/// null is no value).
#[derive(Default)]
struct Fields {
    call_type: Option<Node>,
    event: Option<Node>,
    name: Option<Node>,
    user_id: Option<Node>,
    anonymous_id: Option<Node>,
    group_id: Option<Node>,
    previous_id: Option<Node>,
    received_at: Option<Node>,
    sent_at: Option<Node>,
    original_timestamp: Option<Node>,
    timestamp: Option<Node>,
    context: Option<Node>,
    properties: Option<Node>,
    traits: Option<Node>,
}

impl Fields {
    fn read(members: &[Member], pool: &[u8]) -> Self {
        let mut fields = Fields::default();
        for member in members {
            let slot = match &pool[member.key.range()] {
                b"type" => &mut fields.call_type,
                b"event" => &mut fields.event,
                b"name" => &mut fields.name,
                b"userId" => &mut fields.user_id,
                b"anonymousId" => &mut fields.anonymous_id,
                b"groupId" => &mut fields.group_id,
                b"previousId" => &mut fields.previous_id,
                b"receivedAt" => &mut fields.received_at,
                b"sentAt" => &mut fields.sent_at,
                b"originalTimestamp" => &mut fields.original_timestamp,
                b"timestamp" => &mut fields.timestamp,
                b"context" => &mut fields.context,
                b"properties" => &mut fields.properties,
                b"traits" => &mut fields.traits,
                _ => continue,
            };
            *slot = Some(member.value).filter(|value| *value != Node::Null);
        }
        fields
    }
}

#[derive(Clone, Copy)]
enum CallType {
    Track,
    Page,
    Screen,
    Identify,
    Group,
    Alias,
}

impl CallType {
    fn named(name: &[u8]) -> Option<Self> {
        Some(match name {
            b"track" => CallType::Track,
            b"page" => CallType::Page,
            b"screen" => CallType::Screen,
            b"identify" => CallType::Identify,
            b"group" => CallType::Group,
            b"alias" => CallType::Alias,
            _ => return None,
        })
    }
}

/// The ids of the columns the rules set by name.
struct KnownColumns {
    id: ColumnId,
    received_at: ColumnId,
    sent_at: ColumnId,
    original_timestamp: ColumnId,
    timestamp: ColumnId,
    user_id: ColumnId,
    anonymous_id: ColumnId,
    event: ColumnId,
    event_text: ColumnId,
    name: ColumnId,
    group_id: ColumnId,
    previous_id: ColumnId,
    context: ColumnId,
}

impl KnownColumns {
    fn new(names: &mut ColumnNames) -> Self {
        Self {
            id: names.intern("id"),
            received_at: names.intern("received_at"),
            sent_at: names.intern("sent_at"),
            original_timestamp: names.intern("original_timestamp"),
            timestamp: names.intern("timestamp"),
            user_id: names.intern("user_id"),
            anonymous_id: names.intern("anonymous_id"),
            event: names.intern("event"),
            event_text: names.intern("event_text"),
            name: names.intern("name"),
            group_id: names.intern("group_id"),
            previous_id: names.intern("previous_id"),
            context: names.intern("context"),
        }
    }
}

/// One row being built: setting a column twice keeps the last value (as a dict does).
#[derive(Default)]
struct RowBuilder {
    entries: Vec<Entry>,
    // Per column id: the generation of the row that set it, and where.
    stamp: Vec<u32>,
    position: Vec<u32>,
    generation: u32,
}

impl RowBuilder {
    fn start(&mut self) {
        self.entries.clear();
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamp.fill(0);
            self.generation = 1;
        }
    }

    fn set(&mut self, column: ColumnId, value: Value) {
        let c = column as usize;
        if self.stamp.len() <= c {
            self.stamp.resize(c + 1, 0);
            self.position.resize(c + 1, 0);
        }
        if self.stamp[c] == self.generation {
            self.entries[self.position[c] as usize].value = value;
        } else {
            self.stamp[c] = self.generation;
            self.position[c] = self.entries.len() as u32;
            self.entries.push(Entry { column, value });
        }
    }
}

/// A user's row as folded so far, and the time of the newest call folded in.
struct UserRow {
    newest: Option<i64>,
    entries: Vec<Entry>,
}

impl UserRow {
    /// Folds a call's values in: a newer (or as new) call's replace, an older one's only fill
    /// columns no call set yet (the loader's upsert applies the same rule across batches).
    fn fold(&mut self, when: Option<i64>, entries: &[Entry]) {
        let newer_or_equal = match (when, self.newest) {
            (_, None) => true,
            (Some(when), Some(newest)) => when >= newest,
            (None, Some(_)) => false,
        };
        for entry in entries {
            match self.entries.iter_mut().find(|kept| kept.column == entry.column) {
                Some(kept) if newer_or_equal => kept.value = entry.value,
                Some(_) => {}
                None => self.entries.push(*entry),
            }
        }
        if newer_or_equal {
            self.newest = when;
        }
    }
}

struct Planner {
    pool: Vec<u8>,
    doc: Document,
    names: ColumnNames,
    known: KnownColumns,
    tables: Vec<TableRows>,
    table_of: FxHashMap<String, usize>,
    // Event name (its text) → its table and the table's name in the pool.
    event_tables: FxHashMap<Box<[u8]>, (usize, Span)>,
    row: RowBuilder,
    users: Vec<UserRow>,
    user_of: FxHashMap<Box<[u8]>, usize>,
    discarded: u64,
    skipped_events: u64,
}

impl Planner {
    fn new(raw: &[u8]) -> Self {
        let mut names = ColumnNames::default();
        let known = KnownColumns::new(&mut names);
        // The pool starts as the input: spans of unescaped strings point into it.
        let mut pool = Vec::with_capacity(raw.len() + raw.len() / 4);
        pool.extend_from_slice(raw);
        Self {
            pool,
            doc: Document::default(),
            names,
            known,
            tables: Vec::new(),
            table_of: FxHashMap::default(),
            event_tables: FxHashMap::default(),
            row: RowBuilder::default(),
            users: Vec::new(),
            user_of: FxHashMap::default(),
            discarded: 0,
            skipped_events: 0,
        }
    }

    fn table(&mut self, name: &str, kind: TableKind) -> usize {
        if let Some(&index) = self.table_of.get(name) {
            return index;
        }
        let index = self.tables.len();
        self.tables.push(TableRows::new(name.to_owned(), kind));
        self.table_of.insert(name.to_owned(), index);
        index
    }

    fn append_str(&mut self, text: &str) -> Span {
        let start = self.pool.len() as u32;
        self.pool.extend_from_slice(text.as_bytes());
        Span {
            start,
            len: text.len() as u32,
        }
    }

    /// A node as a row value: JSON text for arrays and objects.
    fn value(&mut self, node: Node) -> Value {
        match node {
            Node::Null | Node::Array { .. } | Node::Object { .. } => Value::Json(self.json_text(node, Nul::Drop)),
            scalar => scalar_value(scalar),
        }
    }

    fn json_text(&mut self, node: Node, nul: Nul) -> Span {
        let start = self.pool.len();
        append_json(&mut self.pool, &self.doc, node, nul);
        Span {
            start: start as u32,
            len: (self.pool.len() - start) as u32,
        }
    }

    /// A scalar as text (ids, names): strings as they are, anything else as its JSON.
    fn text(&mut self, node: Node) -> Span {
        match node {
            Node::Str(span) => span,
            other => self.json_text(other, Nul::Escape),
        }
    }

    /// An id as text, None when absent or empty (Segment accepts numeric userIds).
    fn text_id(&mut self, node: Option<Node>) -> Option<Value> {
        match node? {
            Node::Str(span) if span.len == 0 => None,
            node => Some(Value::Str(self.text(node))),
        }
    }

    /// Flattens `object` (when it is one) into the row: see `Flattener::flatten`.
    fn flatten(&mut self, object: Node, parent: Parent, reserved: Option<TableKind>) -> u64 {
        let Node::Object { first, len } = object else {
            return 0;
        };
        let mut flattener = Flattener {
            doc: &self.doc,
            pool: &mut self.pool,
            names: &mut self.names,
            row: &mut self.row,
        };
        flattener.flatten(self.doc.members(first, len), parent, 1, reserved)
    }

    /// Plans event `index` of the batch (`node`), whose row id is `message_id`.
    fn event(&mut self, index: usize, node: Node, message_id: &str) -> Result<(), EngineError> {
        let Node::Object { first, len } = node else {
            return Err(EngineError::InvalidRequest(format!(
                "event {index} of the batch is not a JSON object"
            )));
        };
        let fields = Fields::read(self.doc.members(first, len), &self.pool);
        let id = self.append_str(message_id);
        self.row.start();
        self.call_row(id, &fields);
        let call_type = match fields.call_type {
            Some(Node::Str(span)) => CallType::named(&self.pool[span.range()]),
            _ => None,
        };
        match call_type {
            Some(CallType::Track) => self.track(&fields),
            Some(CallType::Page) => self.page(&fields, "pages"),
            Some(CallType::Screen) => self.page(&fields, "screens"),
            Some(CallType::Identify) => self.identify(&fields),
            Some(CallType::Group) => {
                if let Some(group_id) = self.text_id(fields.group_id) {
                    self.row.set(self.known.group_id, group_id);
                }
                self.discarded += self.flatten_custom(fields.traits, TableKind::Group);
                self.push_row("groups", TableKind::Group);
            }
            Some(CallType::Alias) => {
                if let Some(previous_id) = self.text_id(fields.previous_id) {
                    self.row.set(self.known.previous_id, previous_id);
                }
                self.push_row("aliases", TableKind::Alias);
            }
            None => self.skipped_events += 1,
        }
        Ok(())
    }

    /// The columns every table of calls has: the id, the four timestamps (whatever their
    /// values: a non-string one goes in as NULL, counted), the ids as text, the context.
    fn call_row(&mut self, id: Span, fields: &Fields) {
        let known = &self.known;
        self.row.set(known.id, Value::Str(id));
        let times = [
            (fields.received_at, known.received_at),
            (fields.sent_at, known.sent_at),
            (fields.original_timestamp, known.original_timestamp),
            (fields.timestamp, known.timestamp),
        ];
        let ids = [
            (fields.user_id, known.user_id),
            (fields.anonymous_id, known.anonymous_id),
        ];
        let context = Parent::Column(known.context);
        for (node, column) in times {
            if let Some(node) = node {
                let value = self.value(node);
                self.row.set(column, value);
            }
        }
        for (node, column) in ids {
            if let Some(value) = self.text_id(node) {
                self.row.set(column, value);
            }
        }
        if let Some(context_object) = fields.context {
            self.flatten(context_object, context, None);
        }
    }

    /// Properties or traits into the row, never over a reserved column: how many were dropped.
    fn flatten_custom(&mut self, object: Option<Node>, kind: TableKind) -> u64 {
        object.map_or(0, |object| self.flatten(object, Parent::Root, Some(kind)))
    }

    fn push_row(&mut self, table: &str, kind: TableKind) {
        let index = self.table(table, kind);
        self.tables[index].push_row(&self.row.entries);
    }

    /// `tracks` gets the call columns, `event` and `event_text`; the event's own table the same
    /// and the properties.
    fn track(&mut self, fields: &Fields) {
        let event_text = match fields.event {
            None => Span { start: 0, len: 0 },
            Some(node) => self.text(node),
        };
        let tracks = self.table("tracks", TableKind::Track);
        let (event_table, table_name) = self.event_table(event_text);
        self.row.set(self.known.event, Value::Str(table_name));
        self.row.set(self.known.event_text, Value::Str(event_text));
        self.tables[tracks].push_row(&self.row.entries);
        self.discarded += self.flatten_custom(fields.properties, TableKind::Track);
        self.tables[event_table].push_row(&self.row.entries);
    }

    fn event_table(&mut self, event_text: Span) -> (usize, Span) {
        if let Some(&found) = self.event_tables.get(&self.pool[event_text.range()]) {
            return found;
        }
        let text = str_of(&self.pool, event_text).to_owned();
        let name = event_table_name(&text);
        let table = self.table(&name, TableKind::Track);
        let name_span = self.append_str(&name);
        self.event_tables.insert(text.into_bytes().into(), (table, name_span));
        (table, name_span)
    }

    /// `pages`/`screens`: `name` (the call's, else the properties' when the call's is empty),
    /// then the properties (whose own `name` is reserved).
    fn page(&mut self, fields: &Fields, table: &str) {
        let name = match (fields.name, fields.properties) {
            (Some(name), _) if name.is_truthy() => Some(name),
            (_, Some(Node::Object { first, len })) => {
                get(self.doc.members(first, len), &self.pool, "name").filter(|name| *name != Node::Null)
            }
            _ => None,
        };
        if let Some(name) = name {
            let text = self.text(name);
            self.row.set(self.known.name, Value::Str(text));
        }
        self.discarded += self.flatten_custom(fields.properties, TableKind::Page);
        self.push_row(table, TableKind::Page);
    }

    /// `identifies` gets the call columns and the traits; `users` the traits, folded per userId.
    fn identify(&mut self, fields: &Fields) {
        let call_columns = self.row.entries.len();
        self.discarded += self.flatten_custom(fields.traits, TableKind::Identify);
        self.push_row("identifies", TableKind::Identify);
        let Some(user_id) = self.text_id(fields.user_id) else {
            return;
        };
        // When the call happened: its timestamp, else its receipt (the first that is not empty).
        let raw_time = match fields.timestamp {
            Some(timestamp) if timestamp.is_truthy() => Some(timestamp),
            _ => fields.received_at,
        };
        let when = match raw_time {
            Some(Node::Str(span)) => parse_datetime(str_of(&self.pool, span)),
            _ => None,
        };
        let mut entries = Vec::with_capacity(3 + self.row.entries.len() - call_columns);
        entries.push(Entry {
            column: self.known.id,
            value: user_id,
        });
        for (node, column) in [
            (fields.received_at, self.known.received_at),
            (raw_time, self.known.timestamp),
        ] {
            if let Some(node) = node {
                let value = self.value(node);
                entries.push(Entry { column, value });
            }
        }
        entries.extend_from_slice(&self.row.entries[call_columns..]);
        let Value::Str(key) = user_id else {
            return;
        };
        let key = &self.pool[key.range()];
        match self.user_of.get(key) {
            Some(&index) => self.users[index].fold(when, &entries),
            None => {
                self.user_of.insert(key.into(), self.users.len());
                self.users.push(UserRow { newest: when, entries });
            }
        }
    }

    fn finish(mut self) -> BatchPlan {
        if !self.users.is_empty() {
            let table = self.table("users", TableKind::User);
            for user in std::mem::take(&mut self.users) {
                self.tables[table].push_row(&user.entries);
            }
        }
        let names = &self.names;
        for table in &mut self.tables {
            let mut columns: Vec<ColumnId> = (0..table.first.len() as ColumnId)
                .filter(|&id| table.first[id as usize] != ABSENT)
                .collect();
            columns.sort_unstable_by(|a, b| names.name(*a).cmp(names.name(*b)));
            table.columns = columns;
        }
        BatchPlan {
            pool: self.pool,
            names: self.names,
            tables: self.tables,
            discarded: self.discarded,
            skipped_events: self.skipped_events,
        }
    }
}

/// The parts of the planner that flattening an object touches.
struct Flattener<'a> {
    doc: &'a Document,
    pool: &'a mut Vec<u8>,
    names: &'a mut ColumnNames,
    row: &'a mut RowBuilder,
}

impl<'a> Flattener<'a> {
    /// Adds the non-null leaves of an object (`members`, at nesting `depth`) to the row under
    /// their column names; with `reserved`, leaves whose column that kind of table reserves are
    /// left out and counted (the return value).
    fn flatten(&mut self, members: &'a [Member], parent: Parent, depth: u32, reserved: Option<TableKind>) -> u64 {
        let mut discarded = 0;
        for member in unique_members(members, self.pool).iter() {
            let value = match member.value {
                Node::Null => continue,
                value => value,
            };
            let column = self.names.child(parent, &self.pool[member.key.range()]);
            match value {
                Node::Object { first, len } if depth < MAX_FLATTEN_DEPTH => {
                    let inner = self.doc.members(first, len);
                    discarded += self.flatten(inner, Parent::Column(column), depth + 1, reserved);
                }
                _ if reserved.is_some_and(|kind| self.names.is_reserved(column, kind)) => discarded += 1,
                Node::Array { .. } | Node::Object { .. } => {
                    let start = self.pool.len();
                    append_json(self.pool, self.doc, value, Nul::Drop);
                    let span = Span {
                        start: start as u32,
                        len: (self.pool.len() - start) as u32,
                    };
                    self.row.set(column, Value::Json(span));
                }
                scalar => self.row.set(column, scalar_value(scalar)),
            }
        }
        discarded
    }
}

fn scalar_value(node: Node) -> Value {
    match node {
        Node::Bool(b) => Value::Bool(b),
        Node::Int(n) => Value::Int(n),
        Node::UInt(n) => Value::UInt(n),
        Node::Float(f) => Value::Float(f),
        Node::Str(span) => Value::Str(span),
        Node::Null | Node::Array { .. } | Node::Object { .. } => unreachable!("not a scalar"),
    }
}
