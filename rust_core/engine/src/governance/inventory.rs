//! The PII inventory: where each class of personal data was seen, per source and field, with
//! counts and first/last seen. It is derived from the log by a background thread (at a lower
//! priority, like the identifier indexer) that works while ingest is quiet, so classifying every
//! field of every event costs the ingest path nothing; it catches up after a burst and resumes
//! where it stopped after a restart.
//! No value is kept: only the field, the class and the counts.
//!
//! Stored in the index environment (derived state): `pii_inventory`: source u32, class name
//! length u8, class name, field → count u64, first seen ms i64, last seen ms i64 (little-endian);
//! `meta.pii_through`: the last log sequence classified.

use std::sync::atomic::Ordering;
use std::time::Duration;

use heed::types::Bytes;
use heed::Database;
use prost::Message;
use rustc_hash::FxHashMap;

use super::pii::{walk, Classifier};
use crate::error::{EngineError, Result};
use crate::ingest::{Engine, Shared};
use crate::proto::{self, Event, ListPiiInventoryRequest, ListPiiInventoryResponse, PiiField};

pub type InventoryDb = Database<Bytes, Bytes>;

const THROUGH: &str = "pii_through";
/// Events classified per transaction.
const CHUNK: u64 = 20_000;
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// How long the log must not grow before the inventory classifies.
const QUIET: Duration = Duration::from_millis(250);
/// How far behind the log the inventory may fall before it classifies even while ingest is busy.
const MAX_LAG: u64 = 2_000_000;

fn key(source: u32, class: &str, field: &str) -> Vec<u8> {
    let class = &class.as_bytes()[..class.len().min(255)];
    let mut key = Vec::with_capacity(5 + class.len() + field.len());
    key.extend_from_slice(&source.to_be_bytes());
    key.push(class.len() as u8);
    key.extend_from_slice(class);
    key.extend_from_slice(field.as_bytes());
    key
}

fn parse_key(key: &[u8]) -> Option<(u32, &str, &str)> {
    let (source, rest) = key.split_at_checked(4)?;
    let (&len, rest) = rest.split_first()?;
    let (class, field) = rest.split_at_checked(len as usize)?;
    Some((
        u32::from_be_bytes(source.try_into().ok()?),
        std::str::from_utf8(class).ok()?,
        std::str::from_utf8(field).ok()?,
    ))
}

#[derive(Clone, Copy)]
struct Seen {
    count: u64,
    first_ms: i64,
    last_ms: i64,
}

impl Seen {
    fn decode(bytes: &[u8]) -> Option<Self> {
        let word = |i: usize| bytes.get(i * 8..i * 8 + 8).and_then(|b| b.try_into().ok());
        Some(Self {
            count: u64::from_le_bytes(word(0)?),
            first_ms: i64::from_le_bytes(word(1)?),
            last_ms: i64::from_le_bytes(word(2)?),
        })
    }

    fn encode(&self) -> [u8; 24] {
        let mut out = [0; 24];
        out[..8].copy_from_slice(&self.count.to_le_bytes());
        out[8..16].copy_from_slice(&self.first_ms.to_le_bytes());
        out[16..].copy_from_slice(&self.last_ms.to_le_bytes());
        out
    }

    fn add(&mut self, other: Seen) {
        self.count += other.count;
        self.first_ms = self.first_ms.min(other.first_ms);
        self.last_ms = self.last_ms.max(other.last_ms);
    }
}

/// The inventory thread's loop: classify what the log gained, until the engine closes. It is
/// catch-up work that yields to ingest: it classifies only once the log has stopped growing for
/// `QUIET` (measured here on two cores, classifying beside a full-speed stream cost ingest
/// 10–15 % even at a lower priority), or when it has fallen `MAX_LAG` events behind.
pub(crate) fn run(shared: &Shared) {
    crate::index::lower_thread_priority();
    let mut through = match classified_through(shared) {
        Ok(through) => through,
        Err(err) => {
            log::error!("the PII inventory cannot start: {err}");
            return;
        }
    };
    let mut seen = through;
    loop {
        if shared.governance.stopping.load(Ordering::Acquire) {
            return;
        }
        let last = {
            let mut committed = shared.committed.lock();
            if *committed <= through {
                shared.committed_changed.wait_for(&mut committed, IDLE_WAIT);
            }
            *committed
        };
        if last <= through {
            continue;
        }
        let busy = last != seen;
        seen = last;
        if busy && last - through < MAX_LAG {
            std::thread::sleep(QUIET);
            continue;
        }
        match classify(shared, through, last.min(through + CHUNK)) {
            Ok(done) => through = done,
            Err(err) => {
                log::error!("classifying events for the PII inventory failed (will retry): {err}");
                std::thread::sleep(IDLE_WAIT);
            }
        }
    }
}

fn classified_through(shared: &Shared) -> Result<u64> {
    let txn = shared.store.index.read()?;
    Ok(shared.store.index_dbs.meta.get(&txn.txn, THROUGH)?.unwrap_or(0))
}

/// Classifies the events after `after` up to `end`, and records them; returns `end`.
fn classify(shared: &Shared, after: u64, end: u64) -> Result<u64> {
    let classifier = shared.governance.classifier();
    let mut found: FxHashMap<(u32, String, String), Seen> = FxHashMap::default();
    {
        let txn = shared.store.log.read()?;
        for entry in shared.store.log_dbs.events.range(&txn.txn, &(after + 1..=end))? {
            let (_, value) = entry?;
            let Some((source, encoded)) = value.split_at_checked(4) else {
                continue;
            };
            let source = u32::from_be_bytes(source.try_into().expect("4 bytes"));
            let Ok(event) = Event::decode(encoded) else {
                continue;
            };
            let at = event.received_at.as_ref().map_or(0, crate::time::to_ms);
            classify_event(&classifier, source, &event, at, &mut found);
        }
    }
    let dbs = &shared.store.index_dbs;
    shared.store.index.write_with_growth(|txn| {
        for ((source, class, field), seen) in &found {
            let key = key(*source, class, field);
            let mut total = dbs
                .pii_inventory
                .get(txn, &key)?
                .and_then(Seen::decode)
                .unwrap_or(Seen {
                    count: 0,
                    first_ms: i64::MAX,
                    last_ms: i64::MIN,
                });
            total.add(*seen);
            dbs.pii_inventory.put(txn, &key, &total.encode())?;
        }
        dbs.meta.put(txn, THROUGH, &end)?;
        Ok(())
    })?;
    Ok(end)
}

fn classify_event(
    classifier: &Classifier,
    source: u32,
    event: &Event,
    at: i64,
    found: &mut FxHashMap<(u32, String, String), Seen>,
) {
    for (part, bytes) in [
        ("properties", &event.properties),
        ("traits", &event.traits),
        ("context", &event.context),
    ] {
        let Ok(Some(map)) = crate::json::parse_object(bytes) else {
            continue;
        };
        walk(&map, part, &mut |path, key, value| {
            if let Some(class) = classifier.classify(key, value) {
                let seen = Seen {
                    count: 1,
                    first_ms: at,
                    last_ms: at,
                };
                found
                    .entry((source, classifier.name(class).to_owned(), path.to_owned()))
                    .and_modify(|s| s.add(seen))
                    .or_insert(seen);
            }
        });
    }
}

impl Engine {
    /// `AdminService.ListPiiInventory`: where each class was seen, by source and field.
    pub fn list_pii_inventory(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: ListPiiInventoryRequest = proto::decode_request(request)?;
        let source = match request.source.as_str() {
            "" => None,
            name => Some(
                self.source_named(name)?
                    .ok_or_else(|| EngineError::NotFound(format!("no source named {name:?}")))?
                    .id,
            ),
        };
        let names = {
            let txn = self.shared.store.log.read()?;
            self.source_names(&txn.txn)?
        };
        let txn = self.shared.store.index.read()?;
        let dbs = &self.shared.store.index_dbs;
        // (LMDB refuses an empty key: no prefix means the whole database.)
        type Entries<'t> = Box<dyn Iterator<Item = heed::Result<(&'t [u8], &'t [u8])>> + 't>;
        let iter: Entries<'_> = match source {
            Some(source) => Box::new(dbs.pii_inventory.prefix_iter(&txn.txn, &source.to_be_bytes())?),
            None => Box::new(dbs.pii_inventory.iter(&txn.txn)?),
        };
        let mut fields = Vec::new();
        for entry in iter {
            let (key, value) = entry?;
            let (Some((source, class, field)), Some(seen)) = (parse_key(key), Seen::decode(value)) else {
                continue;
            };
            if !request.class.is_empty() && request.class != class {
                continue;
            }
            fields.push(PiiField {
                source: names.get(&source).cloned().unwrap_or_else(|| source.to_string()),
                class: class.to_owned(),
                field: field.to_owned(),
                count: seen.count,
                first_seen_ms: seen.first_ms,
                last_seen_ms: seen.last_ms,
            });
        }
        let classified_through = dbs.meta.get(&txn.txn, THROUGH)?.unwrap_or(0);
        drop(txn);
        Ok(ListPiiInventoryResponse {
            fields,
            classified_through,
            last_seq: self.last_seq(),
        }
        .encode_to_vec())
    }
}
