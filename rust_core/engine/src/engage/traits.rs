//! Engage's trait index: for every identifier node, the latest value each trait was given by an
//! identify call whose primary identifier is that node; for every trait and value, the bitmap of
//! the nodes holding it. Like the event index it is keyed by node, so merges and splits move
//! nothing: a profile's trait is the latest of its nodes' (the fold `profile_reads` does over
//! the profile's identify events, latest timestamp first, then the larger messageId), taken when
//! a definition is evaluated. Values are interned per trait (their JSON text), so a comparator
//! is tested once per distinct value, and the nodes that pass are the OR of those values'
//! bitmaps.
//!
//! Known gap: `profile_reads` keeps at most `MAX_TRAITS` (6,000) traits per profile; this index
//! keeps them all.

use std::cmp::Ordering;

use roaring::RoaringBitmap;
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{Map, Value};

/// One node's latest value of one trait.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub trait_id: u32,
    pub value: u32,
    pub ms: i64,
    pub seq: u64,
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Column {
    /// Value id → the value's JSON text (null is a value: a later null hides an older value).
    texts: Vec<String>,
    ids: FxHashMap<String, u32>,
    /// Value id → the nodes whose latest value it is.
    nodes: Vec<RoaringBitmap>,
    /// The nodes with any value (null included).
    held: RoaringBitmap,
    /// `texts` parsed (rebuilt after a snapshot load: the snapshot format is not
    /// self-describing, so it keeps the text).
    #[serde(skip)]
    parsed: Vec<Value>,
}

impl Column {
    fn intern(&mut self, value: &Value) -> u32 {
        let text = value.to_string();
        if let Some(&id) = self.ids.get(&text) {
            return id;
        }
        let id = self.texts.len() as u32;
        self.ids.insert(text.clone(), id);
        self.texts.push(text);
        self.parsed.push(value.clone());
        self.nodes.push(RoaringBitmap::new());
        id
    }

    /// Drops a value no node holds: its text leaves memory (and the next snapshot); a later
    /// identical value is interned anew.
    fn erase(&mut self, value: u32) {
        let text = std::mem::replace(&mut self.texts[value as usize], "null".to_owned());
        if self.ids.get(&text) == Some(&value) {
            self.ids.remove(&text);
        }
        if let Some(parsed) = self.parsed.get_mut(value as usize) {
            *parsed = Value::Null;
        }
    }

    fn restore(&mut self) {
        if self.parsed.len() != self.texts.len() {
            self.parsed = self
                .texts
                .iter()
                .map(|text| serde_json::from_str(text).unwrap_or(Value::Null))
                .collect();
        }
    }
}

#[derive(Default, serde::Serialize, serde::Deserialize)]
pub struct TraitIndex {
    ids: FxHashMap<String, u32>,
    columns: Vec<Column>,
    /// Node → its entries, by trait id.
    by_node: FxHashMap<u32, Vec<Entry>>,
}

impl TraitIndex {
    /// Records the traits an identify call (at `seq`, `ms`, `message_id`) set under `node`: each
    /// replaces the node's value when it is later (then by messageId, read for the older entry
    /// through `message_id_of`).
    pub fn record(
        &mut self,
        node: u32,
        traits: &Map<String, Value>,
        ms: i64,
        seq: u64,
        message_id: &str,
        message_id_of: &mut dyn FnMut(u64) -> Option<String>,
    ) {
        for (name, value) in traits {
            let trait_id = match self.ids.get(name) {
                Some(&id) => id,
                None => {
                    let id = self.columns.len() as u32;
                    self.ids.insert(name.clone(), id);
                    self.columns.push(Column::default());
                    id
                }
            };
            let column = &mut self.columns[trait_id as usize];
            let entries = self.by_node.entry(node).or_default();
            let at = entries.partition_point(|e| e.trait_id < trait_id);
            let new = Entry {
                trait_id,
                value: 0,
                ms,
                seq,
            };
            match entries.get_mut(at).filter(|e| e.trait_id == trait_id) {
                Some(old) => {
                    if old.seq == seq || later(old, ms, message_id, message_id_of) != Ordering::Less {
                        continue;
                    }
                    let holders = &mut column.nodes[old.value as usize];
                    holders.remove(node);
                    // A value no node holds is dropped (its text would only take memory, and
                    // stay in snapshots after a deletion removed whoever had it).
                    if holders.is_empty() {
                        column.erase(old.value);
                    }
                    let value_id = column.intern(value);
                    *old = Entry { value: value_id, ..new };
                    column.nodes[value_id as usize].insert(node);
                }
                None => {
                    let value_id = column.intern(value);
                    entries.insert(at, Entry { value: value_id, ..new });
                    column.nodes[value_id as usize].insert(node);
                    column.held.insert(node);
                }
            }
        }
    }

    /// Forgets every value recorded under `nodes` (a privacy deletion: the caller records the
    /// identify calls that remain again). A value no node holds any more is erased from its
    /// column (its id stays, empty, so other ids keep their meaning).
    pub fn forget_nodes(&mut self, nodes: &FxHashSet<u32>) {
        for &node in nodes {
            let Some(entries) = self.by_node.remove(&node) else {
                continue;
            };
            for entry in entries {
                let column = &mut self.columns[entry.trait_id as usize];
                column.held.remove(node);
                let holders = &mut column.nodes[entry.value as usize];
                holders.remove(node);
                if holders.is_empty() {
                    column.erase(entry.value);
                }
            }
        }
    }

    /// Parses the interned values again (after a snapshot load).
    pub fn restore(&mut self) {
        self.columns.iter_mut().for_each(Column::restore);
    }

    pub fn trait_id(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The node's latest value of a trait (null included).
    pub fn entry(&self, node: u32, trait_id: u32) -> Option<&Entry> {
        let entries = self.by_node.get(&node)?;
        let at = entries.binary_search_by_key(&trait_id, |e| e.trait_id).ok()?;
        entries.get(at)
    }

    /// The value of an entry.
    pub fn value(&self, entry: &Entry) -> &Value {
        &self.columns[entry.trait_id as usize].parsed[entry.value as usize]
    }

    /// The nodes whose latest value of a trait passes `test` (tested once per distinct value;
    /// null never passes).
    pub fn nodes_where(&self, trait_id: u32, mut test: impl FnMut(&Value) -> bool) -> RoaringBitmap {
        let column = &self.columns[trait_id as usize];
        let mut nodes = RoaringBitmap::new();
        for (value, bitmap) in column.parsed.iter().zip(&column.nodes) {
            if !value.is_null() && !bitmap.is_empty() && test(value) {
                nodes |= bitmap;
            }
        }
        nodes
    }

    /// The nodes with any value of a trait, null included.
    pub fn nodes_holding(&self, trait_id: u32) -> &RoaringBitmap {
        &self.columns[trait_id as usize].held
    }

    /// Bytes held (tables at capacity, strings, bitmaps at their serialized size).
    pub fn memory(&self) -> usize {
        use crate::memory::{heap, string, table};
        let columns: usize = self
            .columns
            .iter()
            .map(|c| {
                c.texts.iter().map(|t| 2 * string(t) + 32).sum::<usize>()
                    + table::<(String, u32)>(c.ids.capacity())
                    + c.nodes.iter().map(|b| b.serialized_size() + 32).sum::<usize>()
            })
            .sum();
        let nodes: usize =
            self.by_node.values().map(heap).sum::<usize>() + table::<(u32, Vec<Entry>)>(self.by_node.capacity());
        columns + nodes + table::<(String, u32)>(self.ids.capacity())
    }
}

/// How the event (`ms`, `message_id`) orders against the entry `old`: Greater when it is later.
fn later(old: &Entry, ms: i64, message_id: &str, message_id_of: &mut dyn FnMut(u64) -> Option<String>) -> Ordering {
    match old.ms.cmp(&ms) {
        Ordering::Equal => {
            let old_id = message_id_of(old.seq).unwrap_or_default();
            old_id.as_str().cmp(message_id)
        }
        ordering => ordering,
    }
}

/// Of two entries of one trait, the later (timestamp, then messageId); `message_id_of` is asked
/// only on a tie.
pub fn latest<'a>(a: &'a Entry, b: &'a Entry, message_id_of: &mut dyn FnMut(u64) -> Option<String>) -> &'a Entry {
    let ordering = match a.ms.cmp(&b.ms) {
        Ordering::Equal if a.seq != b.seq => message_id_of(a.seq).cmp(&message_id_of(b.seq)),
        ordering => ordering,
    };
    if ordering == Ordering::Less {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn traits(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn the_latest_value_wins_per_node_and_the_bitmaps_follow() {
        let mut index = TraitIndex::default();
        let mut no_ties = |_| panic!("no tie to break");
        index.record(1, &traits(json!({"plan": "pro", "age": 30})), 200, 2, "b", &mut no_ties);
        index.record(1, &traits(json!({"plan": "free"})), 100, 3, "c", &mut no_ties); // older
        index.record(2, &traits(json!({"plan": "free"})), 100, 4, "d", &mut no_ties);
        let plan = index.trait_id("plan").unwrap();
        let pro = index.nodes_where(plan, |v| v == &json!("pro"));
        assert_eq!(pro.iter().collect::<Vec<_>>(), vec![1]);
        index.record(1, &traits(json!({"plan": null})), 300, 5, "e", &mut no_ties);
        assert!(index.nodes_where(plan, |v| v == &json!("pro")).is_empty());
        assert!(
            index.value(index.entry(1, plan).unwrap()).is_null(),
            "null hides the value"
        );
        assert_eq!(index.nodes_where(plan, |_| true).iter().collect::<Vec<_>>(), vec![2]);
        let age = index.trait_id("age").unwrap();
        assert_eq!(index.value(index.entry(1, age).unwrap()), &json!(30));
    }

    #[test]
    fn equal_times_are_broken_by_the_larger_message_id() {
        let mut index = TraitIndex::default();
        let ids = ["", "m-b", "m-a"];
        let mut message_id_of = |seq: u64| Some(ids[seq as usize].to_owned());
        index.record(7, &traits(json!({"plan": "pro"})), 100, 1, "m-b", &mut message_id_of);
        index.record(7, &traits(json!({"plan": "free"})), 100, 2, "m-a", &mut message_id_of);
        let plan = index.trait_id("plan").unwrap();
        assert_eq!(index.value(index.entry(7, plan).unwrap()), &json!("pro"));
        let (a, b) = (
            Entry {
                trait_id: 0,
                value: 0,
                ms: 5,
                seq: 1,
            },
            Entry {
                trait_id: 0,
                value: 1,
                ms: 5,
                seq: 2,
            },
        );
        assert_eq!(latest(&a, &b, &mut message_id_of).seq, 1);
    }

    #[test]
    fn a_snapshot_round_trip_keeps_values() {
        let mut index = TraitIndex::default();
        index.record(3, &traits(json!({"tags": ["a", 1], "n": 2.5})), 1, 1, "x", &mut |_| {
            None
        });
        let bytes = postcard::to_stdvec(&index).unwrap();
        let mut back: TraitIndex = postcard::from_bytes(&bytes).unwrap();
        back.restore();
        let tags = back.trait_id("tags").unwrap();
        assert_eq!(back.value(back.entry(3, tags).unwrap()), &json!(["a", 1]));
        assert!(back.memory() > 0);
    }
}
