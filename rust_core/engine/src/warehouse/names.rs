//! Table and column names: Segment's snake_case, flattened keys, PostgreSQL's 63 bytes.
//!
//! Invariants:
//! - every name made here is ASCII (go-snakecase keeps only ASCII letters, digits and `_`;
//!   digests are hex) and at most `MAX_IDENTIFIER_BYTES` long;
//! - a name depends only on the key and its parent's name (never on the batch), so the same
//!   property always gets the same column, and names match those the Python loader made
//!   (same digests: BLAKE2b with a 4-byte output, as `hashlib.blake2b(digest_size=4)`);
//! - `ColumnNames` gives each distinct name one id per batch; two keys with the same name
//!   (`firstName`, `first_name`) share it.

use std::borrow::Cow;

use blake2::digest::{Update, VariableOutput};
use rustc_hash::FxHashMap;

use super::schema::TableKind;

/// PostgreSQL's NAMEDATALEN - 1.
pub const MAX_IDENTIFIER_BYTES: usize = 63;

/// The tables of Segment's schema that are not an event's.
pub const FIXED_TABLES: [&str; 7] = ["identifies", "users", "tracks", "pages", "screens", "groups", "aliases"];

fn is_lower(c: u8) -> bool {
    c.is_ascii_lowercase()
}

fn is_upper(c: u8) -> bool {
    c.is_ascii_uppercase()
}

fn is_digit(c: u8) -> bool {
    c.is_ascii_digit()
}

/// go-snakecase's `Snakecase`, byte for byte: runs of `[A-Z0-9]*[a-z0-9]*` joined by `_`,
/// everything else a separator (non-ASCII included). With its quirk that a digit right before
/// the first upper-case letter starts a new word (`sample2Text` → `sample_2text`), so that names
/// match a Segment warehouse's.
pub fn snake_case(name: &str) -> Cow<'_, str> {
    let data = name.as_bytes();
    let size = data.len();
    let mut index = 0;
    while index < size {
        let c = data[index];
        let keeps = is_lower(c)
            || is_digit(c)
            || (c == b'_' && index + 1 < size && (is_lower(data[index + 1]) || is_digit(data[index + 1])));
        if !keeps {
            break;
        }
        index += 1;
    }
    if index == size {
        return Cow::Borrowed(name);
    }
    if index > 0 && is_digit(data[index - 1]) {
        index -= 1;
    }
    let mut out: Vec<u8> = data[..index].to_vec();
    while index < size {
        let c = data[index];
        if !(is_lower(c) || is_upper(c) || is_digit(c)) {
            index += 1;
            continue;
        }
        if !out.is_empty() {
            out.push(b'_');
        }
        while index < size && (is_upper(data[index]) || is_digit(data[index])) {
            out.push(data[index].to_ascii_lowercase());
            index += 1;
        }
        while index < size && (is_lower(data[index]) || is_digit(data[index])) {
            out.push(data[index]);
            index += 1;
        }
    }
    // Only ASCII bytes were kept.
    Cow::Owned(out.into_iter().map(char::from).collect())
}

/// 8 hex digits of BLAKE2b-32 of `name`.
pub fn digest(name: &str) -> String {
    let mut hasher = blake2::Blake2bVar::new(4).expect("4 is a valid BLAKE2b output size");
    hasher.update(name.as_bytes());
    let mut out = [0u8; 4];
    hasher.finalize_variable(&mut out).expect("the output is 4 bytes");
    out.iter().map(|b| format!("{b:02x}")).collect()
}

/// `name` when it fits in 63 bytes; else its first 54 bytes, `_` and a digest of the whole name
/// (PostgreSQL would truncate, merging distinct long names).
pub fn fit_identifier(name: String) -> String {
    if name.len() <= MAX_IDENTIFIER_BYTES {
        return name;
    }
    let mut cut = MAX_IDENTIFIER_BYTES - 9;
    while !name.is_char_boundary(cut) {
        cut -= 1; // never taken for our ASCII names; kept for any name
    }
    format!("{}_{}", &name[..cut], digest(&name))
}

/// The column of `key` inside the object whose columns start with `prefix` (empty at the root).
/// A key with no ASCII letter or digit is `_` and its digest, so that its values are kept.
pub fn column_name(prefix: &str, key: &str) -> String {
    let part = snake_case(key);
    let part = if part.is_empty() {
        Cow::Owned(format!("_{}", digest(key)))
    } else {
        part
    };
    fit_identifier(if prefix.is_empty() {
        part.into_owned()
    } else {
        format!("{prefix}_{part}")
    })
}

/// The table of a track event: its name in snake_case (`Order Completed` → `order_completed`);
/// `_` before a fixed table's name (`Users` → `_users`); `event_` and a digest when nothing of
/// the name is left.
pub fn event_table_name(event: &str) -> String {
    let name = snake_case(event);
    if name.is_empty() {
        return format!("event_{}", digest(event));
    }
    if FIXED_TABLES.contains(&name.as_ref()) {
        return format!("_{name}");
    }
    fit_identifier(name.into_owned())
}

/// A column's id in one batch.
pub type ColumnId = u32;

/// Where a key sits: at the root of properties/traits, or under a flattened object's column.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Parent {
    Root,
    Column(ColumnId),
}

/// The batch's column names, each once, and the name of each (parent, key) met, so that a key
/// is snake-cased once a batch however many events carry it.
#[derive(Default)]
pub struct ColumnNames {
    names: Vec<Box<str>>,
    // Per name: a bit per `TableKind` that reserves it (`kind_bit`).
    reserved_by: Vec<u8>,
    ids: FxHashMap<Box<str>, ColumnId>,
    // children[0]: keys at the root; children[id + 1]: keys under column `id` (keys as bytes: a
    // known key is found without checking its UTF-8 again).
    children: Vec<FxHashMap<Box<[u8]>, ColumnId>>,
}

impl ColumnNames {
    /// The id of `name`, made on first use.
    pub fn intern(&mut self, name: &str) -> ColumnId {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as ColumnId;
        self.names.push(name.into());
        let reserved_by = TableKind::ALL
            .iter()
            .filter(|kind| kind.reserves(name))
            .fold(0, |bits, kind| bits | kind_bit(*kind));
        self.reserved_by.push(reserved_by);
        self.ids.insert(name.into(), id);
        id
    }

    /// The column of `key` (UTF-8) under `parent`.
    pub fn child(&mut self, parent: Parent, key: &[u8]) -> ColumnId {
        let slot = match parent {
            Parent::Root => 0,
            Parent::Column(id) => id as usize + 1,
        };
        if let Some(&id) = self.children.get(slot).and_then(|keys| keys.get(key)) {
            return id;
        }
        let text = std::str::from_utf8(key).unwrap_or_default();
        let prefix = match parent {
            Parent::Root => "",
            Parent::Column(id) => &self.names[id as usize],
        };
        let id = self.intern(&column_name(prefix, text));
        if self.children.len() <= slot {
            self.children.resize_with(slot + 1, FxHashMap::default);
        }
        self.children[slot].insert(key.into(), id);
        id
    }

    pub fn name(&self, id: ColumnId) -> &str {
        &self.names[id as usize]
    }

    /// Whether a property or trait of a `kind` table may not take column `id`.
    pub fn is_reserved(&self, id: ColumnId, kind: TableKind) -> bool {
        self.reserved_by[id as usize] & kind_bit(kind) != 0
    }
}

fn kind_bit(kind: TableKind) -> u8 {
    1 << kind as u8
}
