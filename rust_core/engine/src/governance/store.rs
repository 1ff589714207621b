//! Where governance lives in the log environment:
//! - `plans`:           name, 0, version u32 → encoded `TrackingPlan` (every version kept)
//! - `source_policies`: source id u32 → encoded `SourcePolicy` (its `source` left empty)
//! - `violations`:      violation key → encoded `Violation` (totals, first/last seen, example)
//! - `violation_hours`: violation key, hour u32 → count u64 (counts over time)
//! - `privacy`:         `settings` → encoded `PiiSettings`
//!
//! A violation key is the source id (big-endian), then the event and the field each as a
//! big-endian u16 length and bytes, then the kind's number: no separator a name could contain.
//! Violations are counted by the writer thread in the transaction of their group, so counts are
//! as durable as the events (and refused events are counted though not stored).

use heed::types::Bytes;
use heed::{Database, RwTxn};
use prost::Message;
use rustc_hash::FxHashMap;

use super::plan::Found;
use crate::error::Result;
use crate::proto::{HourCount, Violation};
use crate::store::{BeU32, BeU64};

#[derive(Clone, Copy)]
pub struct GovernanceDbs {
    pub plans: Database<Bytes, Bytes>,
    pub policies: Database<BeU32, Bytes>,
    pub violations: Database<Bytes, Bytes>,
    pub violation_hours: Database<Bytes, BeU64>,
    /// `settings` → the encoded `PiiSettings` (custom classes of personal data).
    pub privacy: Database<heed::types::Str, Bytes>,
}

/// Segment's violation kinds, numbered for keys.
pub const KINDS: [&str; 6] = [
    "Required",
    "Invalid Type",
    "Invalid Value",
    "Unplanned Property",
    "Unplanned Event",
    "Common Schema",
];

const HOUR_MS: i64 = 3_600_000;

pub fn plan_key(name: &str, version: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 5);
    key.extend_from_slice(name.as_bytes());
    key.push(0);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

/// The name and version of a `plans` key.
pub fn parse_plan_key(key: &[u8]) -> Option<(&str, u32)> {
    let (name, version) = key.split_at_checked(key.len().checked_sub(5)?)?;
    let version = version.strip_prefix(&[0])?;
    Some((
        std::str::from_utf8(name).ok()?,
        u32::from_be_bytes(version.try_into().ok()?),
    ))
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ViolationKey {
    pub source: u32,
    pub event: String,
    pub field: String,
    pub kind: u8,
}

impl ViolationKey {
    fn encode(&self) -> Vec<u8> {
        let mut key = Vec::with_capacity(9 + self.event.len() + self.field.len());
        key.extend_from_slice(&self.source.to_be_bytes());
        for text in [&self.event, &self.field] {
            // Names are cut to what a u16 length can say (event names are far shorter).
            let bytes = &text.as_bytes()[..text.len().min(u16::MAX as usize)];
            key.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            key.extend_from_slice(bytes);
        }
        key.push(self.kind);
        key
    }

    fn decode(key: &[u8]) -> Option<Self> {
        let (source, mut rest) = key.split_at_checked(4)?;
        let mut texts = [String::new(), String::new()];
        for text in &mut texts {
            let (len, after) = rest.split_at_checked(2)?;
            let len = u16::from_be_bytes(len.try_into().ok()?) as usize;
            let (bytes, after) = after.split_at_checked(len)?;
            *text = String::from_utf8_lossy(bytes).into_owned();
            rest = after;
        }
        let [event, field] = texts;
        let [kind] = rest else { return None };
        Some(Self {
            source: u32::from_be_bytes(source.try_into().ok()?),
            event,
            field,
            kind: *kind,
        })
    }
}

/// Violations of one request or group, counted in memory before they are written.
#[derive(Default)]
pub struct Tally {
    pub counts: FxHashMap<ViolationKey, Seen>,
}

#[derive(Clone)]
pub struct Seen {
    pub count: u64,
    pub rule: String,
    pub description: String,
    pub example: String,
}

impl Tally {
    pub fn add(&mut self, source: u32, event: &str, found: Vec<Found>) {
        for f in found {
            let kind = KINDS.iter().position(|k| *k == f.kind).unwrap_or(2) as u8;
            let key = ViolationKey {
                source,
                event: event.to_owned(),
                field: f.field,
                kind,
            };
            let seen = self.counts.entry(key).or_insert_with(|| Seen {
                count: 0,
                rule: String::new(),
                description: String::new(),
                example: String::new(),
            });
            seen.count += 1;
            seen.rule = f.rule;
            seen.description = f.description;
            if let Some(example) = f.example {
                seen.example = example;
            }
        }
    }

    /// Adds `other`'s counts (by reference: a write that is retried merges again from scratch).
    pub fn merge_from(&mut self, other: &Tally) {
        for (key, seen) in &other.counts {
            match self.counts.get_mut(key) {
                Some(mine) => {
                    mine.count += seen.count;
                    mine.rule.clone_from(&seen.rule);
                    mine.description.clone_from(&seen.description);
                    if !seen.example.is_empty() {
                        mine.example.clone_from(&seen.example);
                    }
                }
                None => {
                    self.counts.insert(key.clone(), seen.clone());
                }
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// Adds a group's violations to the totals and to the hour of `now_ms`.
pub fn write(txn: &mut RwTxn<'_>, dbs: &GovernanceDbs, tally: &Tally, now_ms: i64) -> Result<()> {
    let hour = (now_ms.div_euclid(HOUR_MS)) as u32;
    for (key, seen) in &tally.counts {
        let encoded_key = key.encode();
        let mut record = match dbs.violations.get(txn, &encoded_key)? {
            Some(bytes) => Violation::decode(bytes).unwrap_or_default(),
            None => Violation {
                first_seen_ms: now_ms,
                ..Default::default()
            },
        };
        record.total += seen.count;
        record.last_seen_ms = now_ms;
        record.rule.clone_from(&seen.rule);
        record.description.clone_from(&seen.description);
        if !seen.example.is_empty() {
            record.example.clone_from(&seen.example);
        }
        dbs.violations.put(txn, &encoded_key, &record.encode_to_vec())?;
        let mut hour_key = encoded_key;
        hour_key.extend_from_slice(&hour.to_be_bytes());
        let before = dbs.violation_hours.get(txn, &hour_key)?.unwrap_or(0);
        dbs.violation_hours.put(txn, &hour_key, &(before + seen.count))?;
    }
    Ok(())
}

/// The violations matching the filters, with their counts since `since_ms`, most frequent first.
pub fn list(
    txn: &heed::RoTxn<'_, heed::WithoutTls>,
    dbs: &GovernanceDbs,
    source: Option<u32>,
    event: Option<&str>,
    since_ms: i64,
) -> Result<Vec<(u32, Violation)>> {
    let since_hour = since_ms.div_euclid(HOUR_MS) as u32;
    // (LMDB refuses an empty key: no prefix means the whole database.)
    type Entries<'t> = Box<dyn Iterator<Item = heed::Result<(&'t [u8], &'t [u8])>> + 't>;
    let iter: Entries<'_> = match source {
        Some(source) => Box::new(dbs.violations.prefix_iter(txn, &source.to_be_bytes())?),
        None => Box::new(dbs.violations.iter(txn)?),
    };
    let mut found = Vec::new();
    for entry in iter {
        let (key, value) = entry?;
        let Some(decoded) = ViolationKey::decode(key) else {
            continue;
        };
        if event.is_some_and(|e| e != decoded.event) {
            continue;
        }
        let mut violation = Violation::decode(value).unwrap_or_default();
        let mut start = key.to_vec();
        start.extend_from_slice(&since_hour.to_be_bytes());
        let mut hours = Vec::new();
        for hour in dbs.violation_hours.prefix_iter(txn, key)? {
            let (hour_key, count) = hour?;
            if hour_key < start.as_slice() {
                continue;
            }
            let at = u32::from_be_bytes(hour_key[key.len()..].try_into().unwrap_or_default());
            hours.push(HourCount {
                hour_ms: i64::from(at) * HOUR_MS,
                count,
            });
        }
        violation.count = hours.iter().map(|h| h.count).sum();
        if violation.count == 0 {
            continue;
        }
        violation.hours = hours;
        violation.event = decoded.event;
        violation.field = decoded.field;
        violation.r#type = KINDS
            .get(decoded.kind as usize)
            .copied()
            .unwrap_or("Invalid Value")
            .to_owned();
        found.push((decoded.source, violation));
    }
    found.sort_by(|a, b| {
        b.1.count
            .cmp(&a.1.count)
            .then_with(|| b.1.last_seen_ms.cmp(&a.1.last_seen_ms))
    });
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_whatever_the_names_hold() {
        let key = ViolationKey {
            source: 7,
            event: "Order\0Completed\u{1f}".into(),
            field: "properties.a.$".into(),
            kind: 3,
        };
        assert_eq!(ViolationKey::decode(&key.encode()), Some(key));
        assert_eq!(parse_plan_key(&plan_key("shop", 3)), Some(("shop", 3)));
        assert_eq!(parse_plan_key(b"x"), None);
    }
}
