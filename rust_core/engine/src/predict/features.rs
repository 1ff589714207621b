//! Point-in-time features: what a profile had done by a cutoff `t`, read from Engage's event
//! index. Only events with time ≤ t that were in the log when its clock stood at `t`
//! (`engage::clock`) count, so a late, replayed or backfilled event never changes a training
//! row of an earlier cutoff.
//!
//! Per event name the model reads: counts over the last 7/30/90/180/365 days and all time,
//! active days, recency and first use, revenue over the last 30/90/365 days and all time, and a
//! count for each of the last 8 weeks; over all of those names: tenure, recency, volume and the
//! gaps between events. Windows end at `t` and are exact to the millisecond (`(t - w, t]`).
//! Days are fractional; a missing value (no such event yet) is NaN, which the trees and the
//! baseline both treat as "never".
//!
//! Trait columns (the traits a prediction names) hold the value the profile's identify calls known
//! at `t` gave it: numbers as they are, booleans as 0/1, numeric strings parsed, anything else
//! missing. The trait index holds each profile's latest value; when that one came after `t`,
//! the profile's earlier identify calls are read back from the log (latest timestamp, then
//! messageId, as `GetProfile` folds them).
//!
//! The profile a row belongs to is today's (the identity graph as it is now): merges found after
//! `t` group the events of identifiers that were apart then. The events themselves are only those
//! known at `t`.

use roaring::RoaringBitmap;

use serde_json::Value;

use crate::engage::evaluate::LogReader;
use crate::engage::{EventIndex, TraitIndex};
use crate::identity::graph::IdentityGraph;

const DAY_MS: i64 = 86_400_000;
/// The count windows, in days.
pub const COUNT_WINDOWS: [i64; 5] = [7, 30, 90, 180, 365];
/// The revenue windows, in days.
pub const REVENUE_WINDOWS: [i64; 3] = [30, 90, 365];
/// Weekly counts of the last this many weeks.
pub const WEEKS: usize = 8;
/// Columns over all the names the model reads.
const PROFILE_COLUMNS: [&str; 5] = [
    "tenure_days",
    "days_since_last",
    "events_total",
    "gap_mean_days",
    "gap_last_days",
];

/// What the features are computed over.
pub struct Spec<'a> {
    /// The event names the model reads (their index ids; None for a name no event had yet).
    pub names: &'a [(String, Option<u32>)],
    /// The traits the model reads (their trait index ids; None for a trait nobody has yet).
    pub traits: &'a [(String, Option<u32>)],
    /// Adds a column that counts each name's events after the cutoff: a leak, on purpose, for
    /// the tests of the leak guard (`leaks`). Never set by the product itself.
    pub probe_leak: bool,
}

/// The columns of `spec`'s rows, in order.
pub fn columns(spec: &Spec<'_>) -> Vec<String> {
    let mut columns: Vec<String> = PROFILE_COLUMNS.iter().map(|&c| c.to_owned()).collect();
    for (name, _) in spec.names {
        columns.extend(COUNT_WINDOWS.iter().map(|w| format!("{name}.count_{w}d")));
        columns.push(format!("{name}.count_all"));
        columns.push(format!("{name}.active_days_365d"));
        columns.push(format!("{name}.active_days_all"));
        columns.push(format!("{name}.days_since_last"));
        columns.push(format!("{name}.days_since_first"));
        columns.extend(REVENUE_WINDOWS.iter().map(|w| format!("{name}.revenue_{w}d")));
        columns.push(format!("{name}.revenue_all"));
        columns.extend((0..WEEKS).map(|k| format!("{name}.week_{k}")));
        if spec.probe_leak {
            columns.push(format!("{name}.leak_after_cutoff"));
        }
    }
    columns.extend(spec.traits.iter().map(|(name, _)| format!("trait.{name}")));
    columns
}

/// The profiles (roots) with any event of the spec's names; the caller keeps those with a row
/// (`Rows::known`) at its cutoff.
pub fn candidates(graph: &IdentityGraph, events: &EventIndex, spec: &Spec<'_>) -> RoaringBitmap {
    let mut nodes = RoaringBitmap::new();
    for id in spec.names.iter().filter_map(|(_, id)| *id) {
        if let Some(with) = events.nodes_with(id) {
            nodes |= with;
        }
    }
    graph.roots_of(&nodes, graph.root_bitmap())
}

/// Computes rows at one cutoff, profile by profile, reusing its scratch space.
pub struct Rows<'a> {
    pub graph: &'a IdentityGraph,
    pub events: &'a EventIndex,
    pub traits: &'a TraitIndex,
    pub log: &'a LogReader<'a>,
    pub spec: &'a Spec<'a>,
    /// The cutoff, ms.
    pub t: i64,
    /// The last seq in the log when its clock stood at `t`.
    pub through: u64,
    /// One name's known events of the profile: (time, revenue).
    scratch: Vec<(i64, f64)>,
    /// The times of all of them.
    all: Vec<i64>,
}

impl<'a> Rows<'a> {
    pub fn new(
        (graph, events, traits, log): (&'a IdentityGraph, &'a EventIndex, &'a TraitIndex, &'a LogReader<'a>),
        spec: &'a Spec<'a>,
        t: i64,
        through: u64,
    ) -> Self {
        Self {
            graph,
            events,
            traits,
            log,
            spec,
            t,
            through,
            scratch: Vec::new(),
            all: Vec::new(),
        }
    }

    /// Appends the row of the profile rooted at `root` to `out`; false (and nothing appended)
    /// when it had no known event of the spec's names by the cutoff.
    pub fn push(&mut self, root: u32, out: &mut Vec<f32>) -> bool {
        let start = out.len();
        out.extend([f32::NAN; PROFILE_COLUMNS.len()]);
        self.all.clear();
        let nodes = self.graph.members_at(root);
        for (_, id) in self.spec.names {
            self.scratch.clear();
            let mut leaked = 0u64;
            if let Some(id) = *id {
                for &node in nodes {
                    let Some(list) = self.events.events(node, id) else {
                        continue;
                    };
                    let revenue = list.revenue();
                    for (i, &(ms, seq)) in list.all().iter().enumerate() {
                        if ms <= self.t && seq <= self.through {
                            self.scratch.push((ms, revenue.get(i).copied().unwrap_or(0.0)));
                        } else if ms > self.t {
                            leaked += 1;
                        }
                    }
                }
            }
            if nodes.len() > 1 {
                self.scratch
                    .sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
            }
            self.all.extend(self.scratch.iter().map(|&(ms, _)| ms));
            name_columns(&self.scratch, self.t, out);
            if self.spec.probe_leak {
                out.push(leaked as f32);
            }
        }
        if self.all.is_empty() {
            out.truncate(start);
            return false;
        }
        if !self.spec.traits.is_empty() {
            self.push_traits(root, out);
        }
        self.all.sort_unstable();
        let days = |ms: i64| ((self.t - ms) as f64 / DAY_MS as f64) as f32;
        let (first, last, n) = (self.all[0], self.all[self.all.len() - 1], self.all.len());
        let profile = &mut out[start..start + PROFILE_COLUMNS.len()];
        profile[0] = days(first);
        profile[1] = days(last);
        profile[2] = n as f32;
        if n >= 2 {
            profile[3] = ((last - first) as f64 / (n - 1) as f64 / DAY_MS as f64) as f32;
            profile[4] = ((last - self.all[n - 2]) as f64 / DAY_MS as f64) as f32;
        }
        true
    }
}

impl Rows<'_> {
    /// The trait columns of the profile rooted at `root`.
    fn push_traits(&self, root: u32, out: &mut Vec<f32>) {
        let nodes = self.graph.members_at(root);
        let mut message_id_of = |seq| self.log.message_id(seq);
        let mut from_log = None;
        for (name, id) in self.spec.traits {
            let latest = id.and_then(|id| {
                let mut best: Option<&crate::engage::traits::Entry> = None;
                for &node in nodes {
                    if let Some(entry) = self.traits.entry(node, id) {
                        best = Some(match best {
                            None => entry,
                            Some(known) => crate::engage::traits::latest(known, entry, &mut message_id_of),
                        });
                    }
                }
                best
            });
            let value = match latest {
                None => f32::NAN,
                // The latest value was known at the cutoff: it was the value then.
                Some(entry) if entry.ms <= self.t && entry.seq <= self.through => number(self.traits.value(entry)),
                Some(_) => {
                    let known = from_log.get_or_insert_with(|| self.traits_from_log(root));
                    known.get(name.as_str()).map_or(f32::NAN, number)
                }
            };
            out.push(value);
        }
    }

    /// The profile's traits as its identify calls known at the cutoff set them, read back from
    /// the log (only the traits the spec names).
    fn traits_from_log(&self, root: u32) -> rustc_hash::FxHashMap<&str, Value> {
        let mut best: rustc_hash::FxHashMap<&str, ((i64, String), Value)> = rustc_hash::FxHashMap::default();
        for &seq in self.graph.trait_events_at(root) {
            if seq > self.through {
                continue;
            }
            let Ok(Some((_, event))) = self.log.event(seq) else {
                continue;
            };
            let ms = event.timestamp.as_ref().map_or(0, crate::time::to_ms);
            if ms > self.t {
                continue;
            }
            let Ok(Some(traits)) = crate::json::parse_object(&event.traits) else {
                continue;
            };
            for (name, _) in self.spec.traits {
                if let Some(value) = traits.get(name) {
                    let key = (ms, event.message_id.clone());
                    if best.get(name.as_str()).is_none_or(|(known, _)| *known < key) {
                        best.insert(name.as_str(), (key, value.clone()));
                    }
                }
            }
        }
        best.into_iter().map(|(name, (_, value))| (name, value)).collect()
    }
}

/// A trait value as a number: numbers, booleans as 0/1, numeric strings; else missing.
fn number(value: &Value) -> f32 {
    match value {
        Value::Number(number) => number.as_f64().map_or(f32::NAN, |n| n as f32),
        Value::Bool(flag) => f32::from(u8::from(*flag)),
        Value::String(text) => text.trim().parse::<f64>().map_or(f32::NAN, |n| n as f32),
        _ => f32::NAN,
    }
}

/// One name's columns from its known events (time order).
fn name_columns(events: &[(i64, f64)], t: i64, out: &mut Vec<f32>) {
    let within = |days: i64| events.iter().filter(move |&&(ms, _)| ms > t - days * DAY_MS);
    for w in COUNT_WINDOWS {
        out.push(within(w).count() as f32);
    }
    out.push(events.len() as f32);
    let active_days = |days: Option<i64>| {
        let mut count = 0u32;
        let mut previous = None;
        for &(ms, _) in events {
            if days.is_some_and(|days| ms <= t - days * DAY_MS) {
                continue;
            }
            let day = ms.div_euclid(DAY_MS);
            if previous != Some(day) {
                count += 1;
                previous = Some(day);
            }
        }
        count as f32
    };
    out.push(active_days(Some(365)));
    out.push(active_days(None));
    let days = |ms: i64| ((t - ms) as f64 / DAY_MS as f64) as f32;
    out.push(events.last().map_or(f32::NAN, |&(ms, _)| days(ms)));
    out.push(events.first().map_or(f32::NAN, |&(ms, _)| days(ms)));
    for w in REVENUE_WINDOWS {
        out.push(within(w).map(|&(_, revenue)| revenue).sum::<f64>() as f32);
    }
    out.push(events.iter().map(|&(_, revenue)| revenue).sum::<f64>() as f32);
    let mut weeks = [0f32; WEEKS];
    for &(ms, _) in events {
        let week = (t - ms) / (7 * DAY_MS);
        if let Some(slot) = usize::try_from(week).ok().and_then(|week| weeks.get_mut(week)) {
            *slot += 1.0;
        }
    }
    out.extend(weeks);
}

/// The columns of `rows` (row-major, `columns` wide) that differ between two computations of
/// the same rows: the leak guard's verdict (see `predict::leaks`). NaN equals NaN.
pub fn differing_columns(a: &[f32], b: &[f32], width: usize) -> Vec<usize> {
    let mut differ = vec![false; width];
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        if x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan()) {
            differ[i % width] = true;
        }
    }
    differ.iter().enumerate().filter(|(_, &d)| d).map(|(i, _)| i).collect()
}
