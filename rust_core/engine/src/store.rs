//! The two LMDB environments and their databases.
//!
//! The **log** environment (`<data_dir>/log`) holds what an acknowledgement promises; every
//! write to it on the ingest path is an append, so a group commit costs sequential pages only:
//! - `events`:     seq u64 → [source u32][encoded Event]                 (the event log)
//! - `dedupe_log`: seq u64 → dedupe key [16], fingerprint u64, received ms i64
//! - `sources`:    source id u32 → encoded `Source`
//! - `source_keys`: sha256(write key) → source id u32
//! - `meta`:       counter name → u64
//! - `identity`:   `rules`, `actions` → encoded `IdentityRules`, `IdentityActions` (admin)
//! - `destinations`: name → encoded `Destination` (admin)
//! - `tokens`:     sha256(access token) → encoded `AccessToken` (revoked ones stay, stamped)
//! - `audit`:      seq u64 → hash [32] + encoded `AuditRecord` (append-only, hash-chained:
//!   see `audit`)
//! - `plans`, `source_policies`, `violations`, `violation_hours`, `privacy`: governance (see
//!   `governance::store`)
//! - `regulations`, `suppressed`: privacy regulations and the suppression list (see
//!   `governance::regulations`); `deletions`: what a running deletion needs (see
//!   `governance::deletion`)
//!
//! The **index** environment (`<data_dir>/index`) is derived from the log and can be rebuilt
//! from it; a background indexer writes it in large sorted transactions, so its random-key
//! B-tree inserts never sit on the ack path:
//! - `identifiers`:  "type\x1fvalue" → id u64, first seq u64
//! - `ident_events`: id u64 + seq u64 → ()                                (events per identifier)
//! - `meta`:         `indexed_through` (last log seq reflected here), `next_ident_id`,
//!   `pii_through` (the PII inventory's)
//! - `pii_inventory`: where each class of personal data was seen (`governance::inventory`)
//!
//! The **delivery** environment (`<data_dir>/delivery`) holds where each destination is in the
//! log and what it could not take. It is an environment of its own because LMDB has one writer
//! per environment: a cursor commit never waits for, or delays, the ingest group commit.
//! - `cursors`:      destination id u32 → seq u64 (every event up to it is handled)
//! - `dead_letters`: destination id u32 + seq u64 → encoded `DeadLetter`
//!
//! Integer keys are big-endian so iteration is ordered. Resizing a map requires that no
//! transaction of this process is open on it, so every transaction is taken under its
//! environment's `gate` (shared for use, exclusive for resize). The gate is not re-entrant: a
//! thread that holds a transaction on an environment must not open another one on it (a resize
//! waiting between the two would wait for the first while the second waits for the resize).
//! Tests and debug builds check this on every transaction.

use std::fs;
use std::path::{Path, PathBuf};

use heed::types::{Bytes, Str, Unit, U32, U64};
use heed::{byteorder::BigEndian, Database, Env, EnvFlags, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};
use parking_lot::{RwLock, RwLockReadGuard};

use crate::config::EngineConfig;
use crate::error::{EngineError, Result};
use crate::scrub::{ScrubReport, StaleBranchKey, StoreScrubReport};

pub type BeU64 = U64<BigEndian>;
pub type BeU32 = U32<BigEndian>;

/// One LMDB environment with its resize gate.
pub struct Environment {
    env: Env<WithoutTls>,
    path: PathBuf,
    gate: RwLock<()>,
}

/// A read transaction that keeps the map from being resized while it lives.
pub struct ReadTxn<'a> {
    pub txn: RoTxn<'a, WithoutTls>,
    _gate: GateGuard<'a>,
}

/// A write transaction under the same guard.
pub struct WriteTxn<'a> {
    pub txn: RwTxn<'a>,
    _gate: GateGuard<'a>,
}

/// A shared hold on an environment's gate. (Never sent to another thread: the lock guard is not
/// `Send`, which is what makes the per-thread re-entry check below sound.)
struct GateGuard<'a> {
    _shared: RwLockReadGuard<'a, ()>,
    #[cfg(any(test, debug_assertions))]
    _held: reentry::Held,
}

/// Catches a thread opening a second transaction on an environment it already holds one on.
#[cfg(any(test, debug_assertions))]
mod reentry {
    use std::cell::RefCell;

    thread_local! {
        /// Addresses of the gates this thread holds.
        static HELD: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    }

    pub struct Held(usize);

    impl Held {
        pub fn take(gate: usize, path: &std::path::Path) -> Self {
            HELD.with_borrow_mut(|held| {
                assert!(
                    !held.contains(&gate),
                    "a second transaction on {} from a thread that holds one: a resize waiting \
                     between the two would deadlock (pass the open transaction down instead)",
                    path.display()
                );
                held.push(gate);
            });
            Held(gate)
        }
    }

    /// Resizing from a thread that holds a transaction would wait for itself.
    pub fn assert_free(gate: usize, path: &std::path::Path) {
        HELD.with_borrow(|held| {
            assert!(
                !held.contains(&gate),
                "resizing {} from a thread that holds a transaction on it",
                path.display()
            );
        });
    }

    impl Drop for Held {
        fn drop(&mut self) {
            HELD.with_borrow_mut(|held| {
                if let Some(i) = held.iter().rposition(|&g| g == self.0) {
                    held.swap_remove(i);
                }
            });
        }
    }
}

impl WriteTxn<'_> {
    pub fn commit(self) -> Result<()> {
        self.txn.commit().map_err(EngineError::from)
    }
}

impl Environment {
    /// Opens with `flags`, which may only weaken durability (never memory safety).
    fn open(path: &Path, map_size: usize, flags: EnvFlags) -> Result<Self> {
        fs::create_dir_all(path).map_err(|e| EngineError::Storage(format!("cannot create {}: {e}", path.display())))?;
        // Without TLS: read transactions are not tied to a thread (Python threads come and go).
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        // Named databases are cheap (one slot each); the log environment has about twenty.
        options.map_size(map_size).max_dbs(32).max_readers(512);
        // SAFETY: callers pass only NO_SYNC / NO_META_SYNC, which weaken durability, not
        // memory safety.
        unsafe { options.flags(flags) };
        // SAFETY: each environment is opened once per process (the engine owns it) and its
        // files are not modified by other means while it is open.
        let env = unsafe { options.open(path) }?;
        Ok(Self {
            env,
            path: path.to_owned(),
            gate: RwLock::new(()),
        })
    }

    /// The shared side of the gate (see the module docs: never twice on one thread).
    fn enter(&self) -> GateGuard<'_> {
        GateGuard {
            #[cfg(any(test, debug_assertions))]
            _held: reentry::Held::take(std::ptr::from_ref(&self.gate) as usize, &self.path),
            _shared: self.gate.read(),
        }
    }

    pub fn read(&self) -> Result<ReadTxn<'_>> {
        let gate = self.enter();
        Ok(ReadTxn {
            txn: self.env.read_txn()?,
            _gate: gate,
        })
    }

    pub fn write(&self) -> Result<WriteTxn<'_>> {
        let gate = self.enter();
        Ok(WriteTxn {
            txn: self.env.write_txn()?,
            _gate: gate,
        })
    }

    /// Doubles the map. Waits until no transaction of this process is open on it.
    pub fn grow(&self) -> Result<usize> {
        #[cfg(any(test, debug_assertions))]
        reentry::assert_free(std::ptr::from_ref(&self.gate) as usize, &self.path);
        let new_size = {
            let _exclusive = self.gate.write();
            self.grow_exclusive()?
        };
        // Outside the gate: a log record may wait for Python's GIL.
        log::info!("LMDB map of {} grown to {new_size} bytes", self.path.display());
        Ok(new_size)
    }

    /// Doubles the map; the caller holds the exclusive gate.
    fn grow_exclusive(&self) -> Result<usize> {
        let new_size = self.env.info().map_size.saturating_mul(2);
        // SAFETY: the caller's exclusive gate guarantees no transaction of this process is
        // open, which is what mdb_env_set_mapsize requires.
        unsafe { self.env.resize(new_size) }
            .map_err(|e| EngineError::StorageFull(format!("cannot grow the map: {e}")))?;
        Ok(new_size)
    }

    /// Overwrites with zeros every byte of the data file that no transaction can reach, so
    /// that nothing of deleted records stays in it: free pages, the file's tail, unused bytes
    /// of live pages, and branch keys of deleted records (rebuilt first). See `scrub` for why
    /// this is sound and what it costs. Waits, like `grow`, until no transaction of this
    /// process is open on the environment (a reader that can still see deleted records is
    /// waited for, never overwritten under), and holds LMDB's writer lock meanwhile.
    pub fn scrub(&self) -> Result<ScrubReport> {
        #[cfg(any(test, debug_assertions))]
        reentry::assert_free(std::ptr::from_ref(&self.gate) as usize, &self.path);
        let report = {
            let _exclusive = self.gate.write();
            self.scrub_exclusive()?
        };
        log::info!(
            "scrubbed {}: {} bytes zeroed ({} of {} free pages, {} live pages trimmed, {} tail bytes)",
            self.path.display(),
            report.bytes_zeroed,
            report.free_pages_zeroed,
            report.free_pages,
            report.live_pages_trimmed,
            report.tail_bytes_zeroed
        );
        Ok(report)
    }

    /// `scrub` under the exclusive gate: rebuilds the branches of stale branch keys through
    /// LMDB (a few rounds at most), then overwrites.
    fn scrub_exclusive(&self) -> Result<ScrubReport> {
        const REPAIR_ROUNDS: usize = 4;
        let page_size = u64::from(self.env.stat().page_size);
        let mut rounds = 0;
        loop {
            // The writer lock: no commit while the file is read and written.
            let mut writer = self.env.write_txn()?;
            // The newest meta durable: LMDB will never fall back to the previous one, whose
            // tree holds the pages the last transaction freed.
            self.env.force_sync()?;
            let file = self.env.try_clone_inner_file()?;
            let info = self.env.info();
            let survey = crate::scrub::survey(&file, page_size, info.last_page_number as u64, info.last_txn_id as u64)?;
            if survey.stale_branch_keys().is_empty() || rounds == REPAIR_ROUNDS {
                let report = survey.overwrite();
                writer.abort();
                return report;
            }
            rounds += 1;
            match rebuild_branches(&self.env, &mut writer, survey.stale_branch_keys()) {
                Ok(()) => writer.commit()?,
                Err(EngineError::MapFull) => {
                    writer.abort();
                    self.grow_exclusive()?;
                }
                Err(err) => return Err(err),
            }
        }
    }

    pub fn map_size(&self) -> usize {
        self.env.info().map_size
    }

    /// Runs a write transaction, growing the map and retrying whenever it fills. `work` must
    /// leave no trace outside the transaction when it fails.
    pub fn write_with_growth<T>(&self, mut work: impl FnMut(&mut RwTxn<'_>) -> Result<T>) -> Result<(T, u32)> {
        let mut grows = 0;
        loop {
            let attempt = self.write().and_then(|mut txn| {
                let value = work(&mut txn.txn)?;
                txn.commit()?;
                Ok(value)
            });
            match attempt {
                Err(EngineError::MapFull) => {
                    self.grow()?;
                    grows += 1;
                }
                Err(err) => return Err(self.classify_write_error(err)),
                Ok(value) => return Ok((value, grows)),
            }
        }
    }

    /// Bytes available to us on the environment's filesystem, if it can be asked.
    pub fn available_bytes(&self) -> Option<u64> {
        let path = std::ffi::CString::new(self.path.as_os_str().as_encoded_bytes()).ok()?;
        let mut stat = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: `path` is a valid NUL-terminated string and `stat` is a writable statvfs that
        // the call fills completely when it returns 0.
        let stat = unsafe {
            if libc::statvfs(path.as_ptr(), stat.as_mut_ptr()) != 0 {
                return None;
            }
            stat.assume_init()
        };
        #[allow(clippy::useless_conversion)] // the field types differ between platforms
        Some(u64::from(stat.f_bavail) * u64::from(stat.f_frsize))
    }

    /// A storage error while the disk is (nearly) full is a full disk: LMDB reports a short
    /// write as EIO rather than ENOSPC.
    pub fn classify_write_error(&self, err: EngineError) -> EngineError {
        const NEARLY_FULL: u64 = 64 << 20;
        match err {
            EngineError::Storage(message) if self.available_bytes().is_some_and(|free| free < NEARLY_FULL) => {
                EngineError::StorageFull(format!("the disk is full ({message})"))
            }
            other => other,
        }
    }
}

#[derive(Clone, Copy)]
pub struct LogDatabases {
    pub events: Database<BeU64, Bytes>,
    pub dedupe_log: Database<BeU64, Bytes>,
    pub sources: Database<BeU32, Bytes>,
    pub source_keys: Database<Bytes, BeU32>,
    pub meta: Database<Str, BeU64>,
    /// Identity administration: `rules` (an encoded `IdentityRules`) and `actions` (an encoded
    /// `IdentityActions`); the graph is a function of these and the events.
    pub identity: Database<Str, Bytes>,
    /// Refused events by id (`rejected`), and their counts per source and reason.
    pub rejected: crate::rejected::RejectedDb,
    pub rejected_counts: crate::rejected::CountsDb,
    /// Access tokens by SHA-256 digest (`tokens`).
    pub tokens: Database<Bytes, Bytes>,
    /// Audience and computed-trait definitions by key (`audiences`).
    pub audiences: Database<Str, Bytes>,
    /// Destination definitions by name (`destinations`).
    pub destinations: Database<Str, Bytes>,
    /// Predictions (`predict`): definitions, models and scored snapshots, in the records the
    /// server writes.
    pub predictions: Database<Str, Bytes>,
    /// The audit log by sequence number (`audit`): appended to, never changed.
    pub audit: Database<BeU64, Bytes>,
    /// Governance (`governance`): tracking plans, source policies, violation counts.
    pub governance: crate::governance::store::GovernanceDbs,
    /// Privacy regulations and the suppression list (`governance::regulations`).
    pub regulations: crate::governance::regulations::RegulationDbs,
}

#[derive(Clone, Copy)]
pub struct IndexDatabases {
    pub identifiers: Database<Bytes, Bytes>,
    pub ident_events: Database<Bytes, Unit>,
    pub meta: Database<Str, BeU64>,
    /// Where each class of personal data was seen (`governance::inventory`).
    pub pii_inventory: crate::governance::inventory::InventoryDb,
}

#[derive(Clone, Copy)]
pub struct DeliveryDatabases {
    pub cursors: Database<BeU32, BeU64>,
    /// Where the batch a destination is delivering ends (id → log sequence), recorded before it
    /// is sent: after a crash the same batch is read again, so it goes with the same id.
    pub in_flight: Database<BeU32, BeU64>,
    pub dead_letters: Database<Bytes, Bytes>,
    /// Replays not yet done: [destination id][replay number] → [1 if of dead letters][the log
    /// sequences still to deliver, u64 little-endian], so a restart finishes them.
    pub replays: Database<Bytes, Bytes>,
}

pub struct Store {
    /// Held (flock) while the store is open: one process per data directory, because the
    /// dedupe window and the index delta live in this process's memory.
    _lock: fs::File,
    pub log: Environment,
    pub log_dbs: LogDatabases,
    pub index: Environment,
    pub index_dbs: IndexDatabases,
    pub delivery: Environment,
    pub delivery_dbs: DeliveryDatabases,
}

impl Store {
    /// Scrubs the log, index and delivery environments in turn (see `Environment::scrub`).
    pub fn scrub_all(&self) -> Result<StoreScrubReport> {
        Ok(StoreScrubReport {
            log: self.log.scrub()?,
            index: self.index.scrub()?,
            delivery: self.delivery.scrub()?,
        })
    }

    pub fn open(config: &EngineConfig) -> Result<Self> {
        if config.unsafe_no_sync {
            log::warn!("unsafe benchmark mode: LMDB commits are not fsync'd; a crash can lose acknowledged events");
        }
        let lock = lock_data_dir(&config.data_dir)?;
        let unsafe_flags = if config.unsafe_no_sync {
            EnvFlags::NO_SYNC | EnvFlags::NO_META_SYNC
        } else {
            EnvFlags::empty()
        };
        let log = Environment::open(&config.data_dir.join("log"), config.map_size, unsafe_flags)?;
        // The index is derived from the log: a system crash that undoes its last transaction
        // only makes start-up replay a little more of the log, so one flush per commit is
        // enough (NO_META_SYNC keeps it consistent, just not durable to the last commit).
        let index = Environment::open(
            &config.data_dir.join("index"),
            config.map_size,
            unsafe_flags | EnvFlags::NO_META_SYNC,
        )?;
        let (log_dbs, _) = log.write_with_growth(|txn| {
            Ok(LogDatabases {
                events: log.env.create_database(txn, Some("events"))?,
                dedupe_log: log.env.create_database(txn, Some("dedupe_log"))?,
                sources: log.env.create_database(txn, Some("sources"))?,
                source_keys: log.env.create_database(txn, Some("source_keys"))?,
                meta: log.env.create_database(txn, Some("meta"))?,
                identity: log.env.create_database(txn, Some("identity"))?,
                rejected: log.env.create_database(txn, Some("rejected"))?,
                rejected_counts: log.env.create_database(txn, Some("rejected_counts"))?,
                tokens: log.env.create_database(txn, Some("tokens"))?,
                audiences: log.env.create_database(txn, Some("audiences"))?,
                destinations: log.env.create_database(txn, Some("destinations"))?,
                predictions: log.env.create_database(txn, Some("predictions"))?,
                audit: log.env.create_database(txn, Some("audit"))?,
                governance: crate::governance::store::GovernanceDbs {
                    plans: log.env.create_database(txn, Some("plans"))?,
                    policies: log.env.create_database(txn, Some("source_policies"))?,
                    violations: log.env.create_database(txn, Some("violations"))?,
                    violation_hours: log.env.create_database(txn, Some("violation_hours"))?,
                    privacy: log.env.create_database(txn, Some("privacy"))?,
                },
                regulations: crate::governance::regulations::RegulationDbs {
                    regulations: log.env.create_database(txn, Some("regulations"))?,
                    suppressed: log.env.create_database(txn, Some("suppressed"))?,
                    deletions: log.env.create_database(txn, Some("deletions"))?,
                },
            })
        })?;
        let (index_dbs, _) = index.write_with_growth(|txn| {
            Ok(IndexDatabases {
                identifiers: index.env.create_database(txn, Some("identifiers"))?,
                ident_events: index.env.create_database(txn, Some("ident_events"))?,
                meta: index.env.create_database(txn, Some("meta"))?,
                pii_inventory: index.env.create_database(txn, Some("pii_inventory"))?,
            })
        })?;
        // Durable like the log: a cursor moves past dead-lettered events in the transaction that
        // records them, so losing that commit would lose the events for the destination.
        let delivery = Environment::open(
            &config.data_dir.join("delivery"),
            config.map_size.min(1 << 30),
            unsafe_flags,
        )?;
        let (delivery_dbs, _) = delivery.write_with_growth(|txn| {
            Ok(DeliveryDatabases {
                cursors: delivery.env.create_database(txn, Some("cursors"))?,
                in_flight: delivery.env.create_database(txn, Some("in_flight"))?,
                dead_letters: delivery.env.create_database(txn, Some("dead_letters"))?,
                replays: delivery.env.create_database(txn, Some("replays"))?,
            })
        })?;
        Ok(Self {
            _lock: lock,
            log,
            log_dbs,
            index,
            index_dbs,
            delivery,
            delivery_dbs,
        })
    }
}

/// Deletes the records under each stale branch key and puts them back, so that LMDB rebuilds
/// that part of the tree with the keys of live records only (its pages go to the free list).
fn rebuild_branches(env: &Env<WithoutTls>, txn: &mut RwTxn<'_>, stale: &[StaleBranchKey]) -> Result<()> {
    use std::ops::Bound;
    for key in stale {
        let name = std::str::from_utf8(&key.database)
            .map_err(|_| EngineError::Storage("a database name that is not UTF-8".into()))?;
        let Some(db) = env.open_database::<Bytes, Bytes>(txn, Some(name))? else {
            continue;
        };
        let range = (
            Bound::Included(&key.from[..]),
            key.to.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
        );
        let records = db
            .range(txn, &range)?
            .map(|entry| entry.map(|(k, v)| (k.to_vec(), v.to_vec())))
            .collect::<heed::Result<Vec<_>>>()?;
        db.delete_range(txn, &range)?;
        for (k, v) in &records {
            db.put(txn, k, v)?;
        }
    }
    Ok(())
}

/// Takes the data directory's lock file, or says which process-level conflict stopped us.
fn lock_data_dir(dir: &Path) -> Result<fs::File> {
    use std::os::fd::AsRawFd;
    fs::create_dir_all(dir).map_err(|e| EngineError::Storage(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join("tributary.lock");
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| EngineError::Storage(format!("cannot open {}: {e}", path.display())))?;
    // SAFETY: flock on a file descriptor we own; the lock is released when `file` is dropped.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(EngineError::InvalidRequest(format!(
            "the data directory {} is in use by another Tributary process",
            dir.display()
        )));
    }
    Ok(file)
}
