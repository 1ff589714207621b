//! The identifier → events index, maintained off the ack path.
//!
//! After each group commit the writer hands the new (identifier, seq) postings to this index's
//! in-memory delta; a background indexer moves the delta into the index environment in one
//! large sorted transaction at a time. Readers merge the index environment with the delta, so
//! an acknowledged event is listed at once. After a crash, the events after the index's
//! `indexed_through` mark are replayed from the log into the delta.
//!
//! Invariant: every committed event seq is either at or below the index environment's
//! `indexed_through`, or in the delta (`current` or `in_flight`).

use rustc_hash::FxHashMap;
use std::hash::BuildHasherDefault;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Condvar, Mutex};

use crate::dedupe::KeyHasher;
use crate::error::Result;
use crate::identifiers::{self, IdentKey};
use crate::shards::ShardedMap;
use crate::store::Store;

const META_INDEXED_THROUGH: &str = "indexed_through";
const META_NEXT_IDENT: &str = "next_ident_id";
/// The indexer runs at least this often when there is something to index.
const INDEX_INTERVAL: Duration = Duration::from_millis(500);
/// Postings that make the indexer start at once.
const INDEX_BATCH: usize = 500_000;
/// Past this many postings in memory, ingest waits for the indexer (bounded memory).
const MAX_DELTA: usize = 8_000_000;
/// Bound of the indexer's identifier → id cache; past it the cache starts over. The cache is
/// keyed by the identifier's 128-bit hash (as the identity graph's node map is): 24 bytes an
/// entry, not a copy of the identifier's text.
const IDENT_CACHE_LIMIT: usize = 4_000_000;

/// Postings not yet in the index environment.
#[derive(Default)]
pub struct Delta {
    postings: ShardedMap<IdentKey, Vec<u64>, BuildHasherDefault<KeyHasher>>,
    /// Highest log seq covered.
    through: u64,
    count: usize,
}

impl Delta {
    fn add(&mut self, key: IdentKey, seq: u64) {
        self.postings.entry(key).or_default().push(seq);
        self.count += 1;
        self.through = self.through.max(seq);
    }
}

struct Deltas {
    current: Delta,
    in_flight: Option<Arc<Delta>>,
    stopping: bool,
    /// A deletion removed identifiers: the indexer's id cache may name them (see `erase`).
    cache_stale: bool,
}

/// The indexer's identifier hash → id cache (see `IDENT_CACHE_LIMIT`).
pub type IdCache = FxHashMap<[u8; 16], u64>;

pub struct IdentifierIndex {
    deltas: Mutex<Deltas>,
    changed: Condvar,
    /// Bytes of the indexer's id cache, as of its last flush (it lives on the indexer thread).
    cache_bytes: std::sync::atomic::AtomicUsize,
}

/// Stored as `identifiers` value: id, first seq.
fn decode_id(record: &[u8]) -> u64 {
    u64::from_be_bytes(record[..8].try_into().unwrap_or_default())
}

pub fn ident_event_key(id: u64, seq: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&id.to_be_bytes());
    key[8..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn seq_of(key: &[u8]) -> u64 {
    u64::from_be_bytes(key[8..16].try_into().unwrap_or_default())
}

/// A page request over one identifier's events.
pub struct PageQuery {
    pub oldest_first: bool,
    /// Exclusive bound: the last seq of the previous page.
    pub after: Option<u64>,
    pub limit: usize,
}

impl IdentifierIndex {
    /// The last log seq whose postings the index environment holds (later ones are in memory).
    pub fn flushed_through(store: &Store) -> Result<u64> {
        let txn = store.index.read()?;
        Ok(store.index_dbs.meta.get(&txn.txn, META_INDEXED_THROUGH)?.unwrap_or(0))
    }

    /// Opens the index, replaying log events the index environment has not seen yet.
    pub fn recover(store: &Store, custom: &identifiers::CustomIdentifiers) -> Result<Self> {
        let through = Self::flushed_through(store)?;
        let mut current = Delta {
            through,
            ..Delta::default()
        };
        let txn = store.log.read()?;
        for entry in store.log_dbs.events.range(&txn.txn, &((through + 1)..))? {
            let (seq, value) = entry?;
            let event = crate::profiles::decode_stored(seq, value)?;
            for identifier in identifiers::of_event(&event, custom) {
                current.add(IdentKey::new(identifier.key()), seq);
            }
            current.through = seq;
        }
        if current.count > 0 {
            log::info!("replaying {} postings into the identifier index", current.count);
        }
        Ok(Self {
            deltas: Mutex::new(Deltas {
                current,
                in_flight: None,
                stopping: false,
                cache_stale: false,
            }),
            changed: Condvar::new(),
            cache_bytes: Default::default(),
        })
    }

    /// Bytes held: postings waiting to be indexed, and the indexer's id cache.
    pub fn memory(&self) -> Vec<(&'static str, usize)> {
        use crate::memory::heap;
        let delta = |delta: &Delta| {
            delta.postings.memory_bytes()
                + delta
                    .postings
                    .iter()
                    .map(|(key, seqs)| heap(&key.bytes) + heap(seqs))
                    .sum::<usize>()
        };
        let deltas = self.deltas.lock();
        let pending = delta(&deltas.current) + deltas.in_flight.as_deref().map_or(0, delta);
        vec![
            ("index.pending", pending),
            (
                "index.id_cache",
                self.cache_bytes.load(std::sync::atomic::Ordering::Relaxed),
            ),
        ]
    }

    /// Adds the postings of a committed group. Blocks while the delta is over its bound.
    pub fn add(&self, postings: impl IntoIterator<Item = (IdentKey, u64)>, through: u64) {
        let mut deltas = self.deltas.lock();
        while deltas.current.count >= MAX_DELTA && !deltas.stopping {
            self.changed.notify_all();
            self.changed.wait_for(&mut deltas, INDEX_INTERVAL);
        }
        for (key, seq) in postings {
            deltas.current.add(key, seq);
        }
        deltas.current.through = deltas.current.through.max(through);
        if deltas.current.count >= INDEX_BATCH {
            self.changed.notify_all();
        }
    }

    /// One page of the seqs of an identifier's events; `None` when the identifier is unknown.
    pub fn page(&self, store: &Store, key: &[u8], query: &PageQuery) -> Result<Option<Vec<u64>>> {
        // Copy the delta before opening the snapshot: a posting leaves the delta only after the
        // index environment has committed it, so it is in one or the other (or both).
        let lookup = IdentKey::new(key.to_vec());
        let mut seqs: Vec<u64> = {
            let deltas = self.deltas.lock();
            let in_flight = deltas.in_flight.as_ref().and_then(|d| d.postings.get(&lookup));
            deltas
                .current
                .postings
                .get(&lookup)
                .into_iter()
                .chain(in_flight)
                .flatten()
                .copied()
                .collect()
        };
        let in_delta = !seqs.is_empty();
        let txn = store.index.read()?;
        let id = store.index_dbs.identifiers.get(&txn.txn, key)?.map(decode_id);
        let Some(id) = id else {
            return Ok(in_delta.then(|| page_of(seqs, query)));
        };
        let (low, high) = match (query.after, query.oldest_first) {
            (Some(after), true) => (
                ident_event_key(id, after.saturating_add(1)),
                ident_event_key(id, u64::MAX),
            ),
            (Some(after), false) => (ident_event_key(id, 0), ident_event_key(id, after.saturating_sub(1))),
            (None, _) => (ident_event_key(id, 0), ident_event_key(id, u64::MAX)),
        };
        let range = (Bound::Included(&low[..]), Bound::Included(&high[..]));
        let take = query.limit + 1;
        let postings = &store.index_dbs.ident_events;
        if query.oldest_first {
            for entry in postings.range(&txn.txn, &range)?.take(take) {
                seqs.push(seq_of(entry?.0));
            }
        } else {
            for entry in postings.rev_range(&txn.txn, &range)?.take(take) {
                seqs.push(seq_of(entry?.0));
            }
        }
        Ok(Some(page_of(seqs, query)))
    }

    /// The seqs of all of an identifier's events, in arrival order; `None` when the identifier is
    /// unknown.
    pub fn all(&self, store: &Store, key: &[u8]) -> Result<Option<Vec<u64>>> {
        let everything = PageQuery {
            oldest_first: true,
            after: None,
            limit: usize::MAX - 1,
        };
        self.page(store, key, &everything)
    }

    /// A privacy deletion (`governance::deletion`): removes the postings of `seqs` (events no
    /// longer in the log) under each of `identifiers`, and each of those identifiers that no
    /// event lists any more. Returns how many identifiers were removed. The delta is held
    /// meanwhile (after any flush in flight), so the indexer cannot write what this removes.
    pub fn erase(&self, store: &Store, identifiers: &[identifiers::Identifier], seqs: &[u64]) -> Result<usize> {
        let erased: rustc_hash::FxHashSet<u64> = seqs.iter().copied().collect();
        let mut deltas = self.deltas.lock();
        while deltas.in_flight.is_some() {
            self.changed.wait_for(&mut deltas, INDEX_INTERVAL);
        }
        let mut in_delta = rustc_hash::FxHashSet::default();
        for identifier in identifiers {
            let key = IdentKey::new(identifier.key());
            let current = &mut deltas.current;
            if let Some(postings) = current.postings.get_mut(&key) {
                let before = postings.len();
                postings.retain(|seq| !erased.contains(seq));
                current.count -= before - postings.len();
                if postings.is_empty() {
                    current.postings.remove(&key);
                } else {
                    in_delta.insert(key.bytes);
                }
            }
        }
        let dbs = &store.index_dbs;
        let (removed, _) = store.index.write_with_growth(|txn| {
            let mut removed = 0;
            for identifier in identifiers {
                let key = identifier.key();
                let Some(id) = dbs.identifiers.get(txn, &key)?.map(decode_id) else {
                    continue;
                };
                for &seq in seqs {
                    dbs.ident_events.delete(txn, &ident_event_key(id, seq))?;
                }
                let (low, high) = (ident_event_key(id, 0), ident_event_key(id, u64::MAX));
                let range = (Bound::Included(&low[..]), Bound::Included(&high[..]));
                let listed = dbs.ident_events.range(txn, &range)?.next().is_some();
                if !listed && !in_delta.contains(&key) {
                    dbs.identifiers.delete(txn, &key)?;
                    removed += 1;
                }
            }
            Ok(removed)
        })?;
        deltas.cache_stale = true;
        Ok(removed)
    }

    /// Moves the current delta into the index environment; returns the postings written.
    fn flush(&self, store: &Store, cache: &mut IdCache) -> Result<usize> {
        let delta = {
            let mut deltas = self.deltas.lock();
            if std::mem::take(&mut deltas.cache_stale) {
                cache.clear();
            }
            if deltas.current.count == 0 {
                return Ok(0);
            }
            let through = deltas.current.through;
            let taken = Arc::new(std::mem::replace(
                &mut deltas.current,
                Delta {
                    through,
                    ..Delta::default()
                },
            ));
            deltas.in_flight = Some(Arc::clone(&taken));
            taken
        };
        let result = write_delta(store, &delta, cache);
        let mut deltas = self.deltas.lock();
        match result {
            Ok(()) => deltas.in_flight = None,
            Err(_) => {
                // Put it back in front of what arrived meanwhile and try again later.
                let failed = deltas
                    .in_flight
                    .take()
                    .map(|d| Arc::try_unwrap(d).unwrap_or_else(|d| clone_delta(&d)));
                if let Some(mut failed) = failed {
                    let newer = std::mem::take(&mut deltas.current);
                    for (key, seqs) in newer.postings {
                        for seq in seqs {
                            failed.add(key.clone(), seq);
                        }
                    }
                    failed.through = failed.through.max(newer.through);
                    deltas.current = failed;
                }
            }
        }
        self.changed.notify_all();
        result.map(|()| delta.count)
    }

    /// The background indexer: flushes on a timer or when the delta is large, until `stop`.
    pub fn run(&self, store: &Store) {
        lower_thread_priority();
        let mut cache = FxHashMap::default();
        loop {
            let stopping = {
                let mut deltas = self.deltas.lock();
                if deltas.current.count < INDEX_BATCH && !deltas.stopping {
                    self.changed.wait_for(&mut deltas, INDEX_INTERVAL);
                }
                deltas.stopping
            };
            if cache.len() > IDENT_CACHE_LIMIT {
                cache.clear();
            }
            let flushed = self.flush(store, &mut cache);
            self.cache_bytes.store(
                crate::memory::table::<([u8; 16], u64)>(cache.capacity()),
                std::sync::atomic::Ordering::Relaxed,
            );
            if let Err(err) = flushed {
                log::error!("indexing failed (will retry): {err}");
                std::thread::sleep(INDEX_INTERVAL);
            }
            if stopping {
                return;
            }
        }
    }

    /// Asks the indexer to flush what it has and return.
    pub fn stop(&self) {
        self.deltas.lock().stopping = true;
        self.changed.notify_all();
    }
}

/// The indexer is catch-up work: let ingest and reads have the CPU first.
pub(crate) fn lower_thread_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain syscalls on the calling thread's own id; failure only leaves the priority as is.
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10);
    }
}

fn clone_delta(delta: &Delta) -> Delta {
    Delta {
        postings: delta.postings.clone(),
        through: delta.through,
        count: delta.count,
    }
}

/// Sorts, dedupes and cuts the candidate seqs to one page (+1 to tell if there is more).
fn page_of(mut seqs: Vec<u64>, query: &PageQuery) -> Vec<u64> {
    if let Some(after) = query.after {
        seqs.retain(|&seq| if query.oldest_first { seq > after } else { seq < after });
    }
    seqs.sort_unstable();
    seqs.dedup();
    if !query.oldest_first {
        seqs.reverse();
    }
    seqs.truncate(query.limit + 1);
    seqs
}

fn write_delta(store: &Store, delta: &Delta, cache: &mut IdCache) -> Result<()> {
    let dbs = &store.index_dbs;
    let mut entries: Vec<(&IdentKey, &Vec<u64>)> = delta.postings.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.bytes.cmp(&b.0.bytes));
    let (assigned, _) = store.index.write_with_growth(|txn| {
        let mut next_id = dbs.meta.get(txn, META_NEXT_IDENT)?.unwrap_or(1);
        let mut assigned: Vec<([u8; 16], u64)> = Vec::new();
        let mut keys: Vec<[u8; 16]> = Vec::with_capacity(delta.count);
        for (key, seqs) in &entries {
            let hash = key.hash.to_le_bytes();
            let id = match cache.get(&hash) {
                Some(id) => *id,
                None => {
                    let id = match dbs.identifiers.get(txn, &key.bytes)? {
                        Some(record) => decode_id(record),
                        None => {
                            let id = next_id;
                            next_id += 1;
                            let mut record = [0u8; 16];
                            record[..8].copy_from_slice(&id.to_be_bytes());
                            record[8..].copy_from_slice(&seqs.iter().min().copied().unwrap_or(0).to_be_bytes());
                            dbs.identifiers.put(txn, &key.bytes, &record)?;
                            id
                        }
                    };
                    assigned.push((hash, id));
                    id
                }
            };
            keys.extend(seqs.iter().map(|&seq| ident_event_key(id, seq)));
        }
        // Sorted inserts touch each B-tree page once per transaction instead of at random.
        keys.sort_unstable();
        for key in &keys {
            dbs.ident_events.put(txn, key, &())?;
        }
        dbs.meta.put(txn, META_INDEXED_THROUGH, &delta.through)?;
        dbs.meta.put(txn, META_NEXT_IDENT, &next_id)?;
        Ok(assigned)
    })?;
    cache.extend(assigned);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineConfig;
    use crate::identifiers::Identifier;
    use crate::proto::{Event, EventType};
    use prost::Message;

    fn store_with_log(dir: &std::path::Path, users: &[&str]) -> Store {
        let store = Store::open(&EngineConfig::new(dir)).unwrap();
        let mut txn = store.log.write().unwrap();
        for (i, user) in users.iter().enumerate() {
            let event = Event {
                r#type: EventType::Track as i32,
                user_id: (*user).into(),
                ..Default::default()
            };
            let mut value = 1u32.to_be_bytes().to_vec();
            value.extend(event.encode_to_vec());
            store.log_dbs.events.put(&mut txn.txn, &(i as u64 + 1), &value).unwrap();
        }
        txn.commit().unwrap();
        store
    }

    fn newest_first(index: &IdentifierIndex, store: &Store, user: &str, limit: usize) -> Option<Vec<u64>> {
        let key = Identifier::new("user_id", user).key();
        index
            .page(
                store,
                &key,
                &PageQuery {
                    oldest_first: false,
                    after: None,
                    limit,
                },
            )
            .unwrap()
    }

    #[test]
    fn log_events_missing_from_the_index_are_replayed_then_flushed_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_log(dir.path(), &["a", "b", "a", "a"]);
        let index = IdentifierIndex::recover(&store, &Default::default()).unwrap();
        assert_eq!(newest_first(&index, &store, "a", 10), Some(vec![4, 3, 1]));
        assert_eq!(newest_first(&index, &store, "zed", 10), None);
        let mut cache = FxHashMap::default();
        assert_eq!(index.flush(&store, &mut cache).unwrap(), 4);
        // Now only the index environment has them: same answer, no duplicates.
        assert_eq!(newest_first(&index, &store, "a", 10), Some(vec![4, 3, 1]));
        assert_eq!(newest_first(&index, &store, "a", 1), Some(vec![4, 3]));
        // A reopened index has nothing left to replay.
        let reopened = IdentifierIndex::recover(&store, &Default::default()).unwrap();
        assert_eq!(reopened.deltas.lock().current.count, 0);
        assert_eq!(newest_first(&reopened, &store, "b", 10), Some(vec![2]));
    }

    #[test]
    fn pages_merge_the_delta_with_the_index_around_a_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_log(dir.path(), &["a", "a", "a"]);
        let index = IdentifierIndex::recover(&store, &Default::default()).unwrap();
        index.flush(&store, &mut FxHashMap::default()).unwrap();
        index.add(
            [
                (IdentKey::new(Identifier::new("user_id", "a").key()), 4),
                (IdentKey::new(Identifier::new("user_id", "a").key()), 5),
            ],
            5,
        );
        let key = Identifier::new("user_id", "a").key();
        let page = |oldest_first, after| {
            index
                .page(
                    &store,
                    &key,
                    &PageQuery {
                        oldest_first,
                        after,
                        limit: 2,
                    },
                )
                .unwrap()
        };
        assert_eq!(page(false, None), Some(vec![5, 4, 3]));
        assert_eq!(page(false, Some(4)), Some(vec![3, 2, 1]));
        assert_eq!(page(true, Some(2)), Some(vec![3, 4, 5]));
    }
}
