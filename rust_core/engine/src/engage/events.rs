//! Engage's event index: for every event name, which identifier nodes have events of it on which
//! UTC day (roaring bitmaps), and for every (node, name) the time and log seq of each of its
//! events, in time order. Windows are exact to the millisecond (`within(30 days)` ends at the
//! evaluation time, not at a day boundary), so the per-node list keeps times rather than daily
//! counts: a windowed count is two binary searches, and the seqs lead to the events in the log
//! when a filter reads their properties. An event is recorded under its primary identifier's node (see `docs/engage.md`): the
//! union-find maps nodes to profiles when a definition is evaluated, so merges and splits move
//! nothing here. Derived from the log like the identity graph: kept in its snapshot and replayed.

use std::collections::BTreeMap;

use roaring::{MultiOps, RoaringBitmap};
use rustc_hash::{FxHashMap, FxHashSet};

const DAY_MS: i64 = 86_400_000;

/// The UTC day (days since 1970-01-01) of a time in ms (open windows reach i64::MIN/MAX: the
/// days saturate instead of wrapping).
pub fn day_of(ms: i64) -> i32 {
    ms.div_euclid(DAY_MS).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// The events of one name on one node: (time ms, log seq), ordered by time then seq (arrival),
/// with each event's revenue beside it once any of them had one (Predictions' monetary
/// features: an index of names that never carry revenue holds no column for it).
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct NodeEvents {
    events: Vec<(i64, u64)>,
    revenue: Vec<f64>,
}

impl NodeEvents {
    /// Adds an event; false when it was there already.
    fn add(&mut self, ms: i64, seq: u64, revenue: Option<f64>) -> bool {
        // Events mostly arrive in time order: the end is the usual place.
        let at = self.events.partition_point(|&known| known <= (ms, seq));
        if self.events.get(at.wrapping_sub(1)) == Some(&(ms, seq)) {
            return false;
        }
        if revenue.is_some() || !self.revenue.is_empty() {
            // The column starts with the first event that has revenue: zeros for those before.
            self.revenue.resize(self.events.len(), 0.0);
            self.revenue.insert(at, revenue.unwrap_or(0.0));
        }
        self.events.insert(at, (ms, seq));
        true
    }

    /// The revenue of each event of `all()` (0 for an event without), or empty when none had.
    pub fn revenue(&self) -> &[f64] {
        &self.revenue
    }

    /// Events with `from <= time <= to` (ms).
    pub fn count(&self, from: i64, to: i64) -> u64 {
        self.range(from, to).len() as u64
    }

    /// The (time, seq) of the events with `from <= time <= to`.
    pub fn range(&self, from: i64, to: i64) -> &[(i64, u64)] {
        let start = self.events.partition_point(|&(ms, _)| ms < from);
        let end = self.events.partition_point(|&(ms, _)| ms <= to);
        self.events.get(start..end).unwrap_or_default()
    }

    /// Every event, in order.
    pub fn all(&self) -> &[(i64, u64)] {
        &self.events
    }

    pub fn total(&self) -> u64 {
        self.events.len() as u64
    }

    pub fn first_ms(&self) -> Option<i64> {
        self.events.first().map(|&(ms, _)| ms)
    }

    pub fn last_ms(&self) -> Option<i64> {
        self.events.last().map(|&(ms, _)| ms)
    }
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct NameIndex {
    /// The events of this name on each day.
    days: BTreeMap<i32, Day>,
    /// Nodes with any event of this name.
    all: RoaringBitmap,
}

/// The events of one name on one day.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Day {
    /// The nodes with one or more.
    nodes: RoaringBitmap,
    /// The time (ms) and node of each event, in arrival order: a windowed count over many
    /// profiles reads these lists front to back instead of looking each profile up. Two
    /// columns: a day inside the window needs its nodes only (4 bytes an event, not 16).
    times: Vec<i64>,
    events: Vec<u32>,
}

/// A slot of `EventIndex::count_between`: a `u32`, or a `u8` that stops at 255 (a quarter of
/// the memory to clear and to hit at random, when no verdict tells 255 from more).
pub trait Counter: Copy + Default {
    fn bump(&mut self, by: u8);
    /// Adds another slot's count (a node's, to its profile's).
    fn absorb(&mut self, other: Self);
    fn count(self) -> u32;
}

impl Counter for u32 {
    fn bump(&mut self, by: u8) {
        *self += u32::from(by);
    }
    fn absorb(&mut self, other: Self) {
        *self += other;
    }
    fn count(self) -> u32 {
        self
    }
}

impl Counter for u8 {
    fn bump(&mut self, by: u8) {
        *self = self.saturating_add(by);
    }
    fn absorb(&mut self, other: Self) {
        *self = self.saturating_add(other);
    }
    fn count(self) -> u32 {
        u32::from(self)
    }
}

#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EventIndex {
    ids: FxHashMap<String, u32>,
    names: Vec<NameIndex>,
    /// (node, name id) → its events.
    by_node: FxHashMap<(u32, u32), NodeEvents>,
}

impl EventIndex {
    /// Records the event at `seq`, of `name` at `ms`, with its revenue if any, under `node`
    /// (again: no change).
    pub fn record(&mut self, node: u32, name: &str, ms: i64, seq: u64, revenue: Option<f64>) {
        let id = match self.ids.get(name) {
            Some(&id) => id,
            None => {
                let id = self.names.len() as u32;
                self.ids.insert(name.to_owned(), id);
                self.names.push(NameIndex::default());
                id
            }
        };
        if !self.by_node.entry((node, id)).or_default().add(ms, seq, revenue) {
            return;
        }
        let index = &mut self.names[id as usize];
        let day = index.days.entry(day_of(ms)).or_default();
        day.nodes.insert(node);
        day.times.push(ms);
        day.events.push(node);
        index.all.insert(node);
    }

    /// Forgets every event recorded under `nodes` (a privacy deletion: the caller records the
    /// events that remain again). Costs the days those nodes had events on.
    pub fn forget_nodes(&mut self, nodes: &FxHashSet<u32>) {
        let mut forgotten: Vec<((u32, u32), NodeEvents)> = Vec::new();
        self.by_node.retain(|key, events| {
            let keep = !nodes.contains(&key.0);
            if !keep {
                forgotten.push((*key, std::mem::take(events)));
            }
            keep
        });
        for ((node, name), events) in forgotten {
            let index = &mut self.names[name as usize];
            index.all.remove(node);
            let mut days: Vec<i32> = events.events.iter().map(|&(ms, _)| day_of(ms)).collect();
            days.dedup();
            for day_number in days {
                let Some(day) = index.days.get_mut(&day_number) else {
                    continue;
                };
                day.nodes.remove(node);
                let mut kept = 0;
                for i in 0..day.events.len() {
                    if day.events[i] != node {
                        day.times[kept] = day.times[i];
                        day.events[kept] = day.events[i];
                        kept += 1;
                    }
                }
                day.times.truncate(kept);
                day.events.truncate(kept);
                if day.events.is_empty() {
                    index.days.remove(&day_number);
                }
            }
        }
    }

    /// The id of an event name, if any event had it.
    pub fn name_id(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// Nodes with events of `name` on the days `from..=to`.
    pub fn nodes_between(&self, name: u32, from: i32, to: i32) -> RoaringBitmap {
        let Some(index) = self.names.get(name as usize) else {
            return RoaringBitmap::new();
        };
        if from > to {
            return RoaringBitmap::new();
        }
        // One multi-way union: ORing day by day would copy the growing result's array
        // containers on every step.
        index.days.range(from..=to).map(|(_, day)| &day.nodes).union()
    }

    /// Adds to `counts[node]` each node's events of `name` with `from <= time <= to` (ms).
    /// Days inside the window are counted whole, the two at its ends event by event. `counts`
    /// has a slot per node; the nodes counted are among `nodes_between` of the window's days.
    pub fn count_between<C: Counter>(&self, name: u32, from: i64, to: i64, counts: &mut [C]) {
        let Some(index) = self.names.get(name as usize) else {
            return;
        };
        if from > to {
            return;
        }
        let (first, last) = (day_of(from), day_of(to));
        for (&day, events) in index.days.range(first..=last) {
            let whole = (day != first || from == i64::from(day) * DAY_MS)
                && (day != last || to == i64::from(day + 1) * DAY_MS - 1);
            if whole {
                for &node in &events.events {
                    counts[node as usize].bump(1);
                }
            } else {
                for (&ms, &node) in events.times.iter().zip(&events.events) {
                    counts[node as usize].bump(u8::from(from <= ms && ms <= to));
                }
            }
        }
    }

    /// Nodes with any event of `name`.
    pub fn nodes_with(&self, name: u32) -> Option<&RoaringBitmap> {
        self.names.get(name as usize).map(|index| &index.all)
    }

    /// The events of `name` under `node`.
    pub fn events(&self, node: u32, name: u32) -> Option<&NodeEvents> {
        self.by_node.get(&(node, name))
    }

    /// Event names known.
    pub fn names(&self) -> usize {
        self.names.len()
    }

    /// Every event name with its id.
    pub fn name_ids(&self) -> impl Iterator<Item = (&str, u32)> {
        self.ids.iter().map(|(name, id)| (name.as_str(), *id))
    }

    /// Bytes held: the maps, the per-node day lists and the bitmaps (serialized size, a close
    /// measure of roaring's containers).
    pub fn memory(&self) -> usize {
        use crate::memory::{heap, string, table};
        let ids: usize = self.ids.keys().map(string).sum::<usize>() + table::<(String, u32)>(self.ids.capacity());
        let bitmaps: usize = self
            .names
            .iter()
            .map(|index| {
                index.all.serialized_size()
                    + index
                        .days
                        .values()
                        .map(|day| day.nodes.serialized_size() + heap(&day.times) + heap(&day.events) + 48)
                        .sum::<usize>()
            })
            .sum();
        let nodes: usize = self
            .by_node
            .values()
            .map(|events| heap(&events.events) + heap(&events.revenue))
            .sum::<usize>()
            + table::<((u32, u32), NodeEvents)>(self.by_node.capacity());
        ids + heap(&self.names) + bitmaps + nodes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    #[test]
    fn days_are_utc_days_also_before_1970() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(DAY_MS - 1), 0);
        assert_eq!(day_of(-1), -1);
        assert_eq!(day_of(T0), 20_454);
        assert_eq!((day_of(i64::MIN), day_of(i64::MAX)), (i32::MIN, i32::MAX));
    }

    #[test]
    fn counts_and_bitmaps_follow_the_times_of_events() {
        let mut index = EventIndex::default();
        // Node 1: three orders on day 0, one on day 5; node 2: one on day 5; node 3: a page.
        for (seq, ms) in [T0, T0 + 10, T0 + DAY_MS - 1, T0 + 5 * DAY_MS].into_iter().enumerate() {
            index.record(1, "Order Completed", ms, seq as u64, None);
        }
        index.record(2, "Order Completed", T0 + 5 * DAY_MS + 7, 9, None);
        index.record(3, "Page Viewed", T0, 10, None);
        index.record(1, "Order Completed", T0 + 10, 1, None); // a replayed event changes nothing
        let order = index.name_id("Order Completed").unwrap();
        let day0 = day_of(T0);
        let node1 = index.events(1, order).unwrap();
        assert_eq!(
            (
                node1.count(T0, T0 + DAY_MS - 1),
                node1.count(T0, T0 + 5 * DAY_MS),
                node1.total()
            ),
            (3, 4, 4)
        );
        assert_eq!(node1.count(T0 + 11, T0 + 5 * DAY_MS - 1), 1, "to the millisecond");
        assert_eq!(node1.range(T0 + 10, T0 + 10), &[(T0 + 10, 1)]);
        assert_eq!((node1.first_ms(), node1.last_ms()), (Some(T0), Some(T0 + 5 * DAY_MS)));
        let on = |from, to| index.nodes_between(order, from, to).iter().collect::<Vec<_>>();
        assert_eq!(on(day0, day0), vec![1]);
        assert_eq!(on(day0 + 5, day0 + 30), vec![1, 2]);
        assert_eq!(on(day0 + 6, day0 + 30), Vec::<u32>::new());
        assert_eq!(on(day0 + 5, day0), Vec::<u32>::new(), "an empty range");
        assert_eq!(index.nodes_with(order).unwrap().len(), 2);
        assert!(index.events(3, order).is_none());
        assert_eq!(index.names(), 2);
        assert!(index.memory() > 0);
    }

    #[test]
    fn events_out_of_order_are_kept_in_time_then_seq_order() {
        let mut index = EventIndex::default();
        for (seq, days) in [9, 2, 5, 2, 0].into_iter().enumerate() {
            index.record(7, "Clicked", T0 + days * DAY_MS, seq as u64, None);
        }
        let events = index.events(7, index.name_id("Clicked").unwrap()).unwrap();
        let at = |days: i64| T0 + days * DAY_MS;
        assert_eq!(
            events.all(),
            &[(at(0), 4), (at(2), 1), (at(2), 3), (at(5), 2), (at(9), 0)]
        );
    }

    #[test]
    fn revenue_sits_beside_its_event_once_any_event_has_one() {
        let mut index = EventIndex::default();
        index.record(4, "Order Completed", T0 + 2 * DAY_MS, 1, None);
        index.record(4, "Order Completed", T0 + DAY_MS, 2, Some(12.5));
        index.record(4, "Order Completed", T0, 3, Some(3.0)); // late: goes first
        index.record(4, "Order Completed", T0, 3, Some(99.0)); // a replay changes nothing
        index.record(5, "Page Viewed", T0, 4, None);
        let events = index.events(4, index.name_id("Order Completed").unwrap()).unwrap();
        assert_eq!(events.all(), &[(T0, 3), (T0 + DAY_MS, 2), (T0 + 2 * DAY_MS, 1)]);
        assert_eq!(events.revenue(), &[3.0, 12.5, 0.0]);
        assert!(index
            .events(5, index.name_id("Page Viewed").unwrap())
            .unwrap()
            .revenue()
            .is_empty());
    }
}
