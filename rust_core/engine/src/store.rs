//! The LMDB environment and its databases.
//!
//! Layout (all integer keys big-endian so iteration is ordered):
//! - `events`:         seq u64 → [source u32][encoded Event]             (append-only log)
//! - `dedupe`:         hash128(source, messageId) → seq u64, fingerprint u64, received ms i64
//! - `dedupe_by_time`: received ms i64 + dedupe key → ()                  (expiry sweep order)
//! - `identifiers`:    "type\x1fvalue" → id u64, first seq u64
//! - `ident_events`:   id u64 + seq u64 → ()                              (events per identifier)
//! - `sources`:        source id u32 → encoded `Source`
//! - `source_keys`:    sha256(write key) → source id u32
//! - `meta`:           counter name → u64
//!
//! Resizing the map requires that no transaction of this process is open, so every
//! transaction is taken under `gate` (shared for use, exclusive for resize).

use std::fs;

use heed::types::{Bytes, Str, Unit, U32, U64};
use heed::{
    byteorder::BigEndian, Database, Env, EnvFlags, EnvOpenOptions, RoTxn, RwTxn, WithoutTls,
};
use parking_lot::{RwLock, RwLockReadGuard};

use crate::config::EngineConfig;
use crate::error::{EngineError, Result};

pub type BeU64 = U64<BigEndian>;
pub type BeU32 = U32<BigEndian>;

#[derive(Clone, Copy)]
pub struct Databases {
    pub events: Database<BeU64, Bytes>,
    pub dedupe: Database<Bytes, Bytes>,
    pub dedupe_by_time: Database<Bytes, Unit>,
    pub identifiers: Database<Bytes, Bytes>,
    pub ident_events: Database<Bytes, Unit>,
    pub sources: Database<BeU32, Bytes>,
    pub source_keys: Database<Bytes, BeU32>,
    pub meta: Database<Str, BeU64>,
}

pub struct Store {
    env: Env<WithoutTls>,
    path: std::path::PathBuf,
    pub dbs: Databases,
    gate: RwLock<()>,
}

/// A read transaction that keeps the map from being resized while it lives.
pub struct ReadTxn<'a> {
    pub txn: RoTxn<'a, WithoutTls>,
    _gate: RwLockReadGuard<'a, ()>,
}

/// A write transaction under the same guard.
pub struct WriteTxn<'a> {
    pub txn: RwTxn<'a>,
    _gate: RwLockReadGuard<'a, ()>,
}

impl WriteTxn<'_> {
    pub fn commit(self) -> Result<()> {
        self.txn.commit().map_err(EngineError::from)
    }
}

impl Store {
    pub fn open(config: &EngineConfig) -> Result<Self> {
        fs::create_dir_all(&config.data_dir).map_err(|e| {
            EngineError::Storage(format!("cannot create {}: {e}", config.data_dir.display()))
        })?;
        // Without TLS: read transactions are not tied to a thread (Python threads come and go).
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options
            .map_size(config.map_size)
            .max_dbs(16)
            .max_readers(512);
        if config.unsafe_no_sync {
            log::warn!("unsafe benchmark mode: LMDB commits are not fsync'd; a crash can lose acknowledged events");
            // SAFETY: NO_SYNC only weakens durability; memory safety is unaffected. Chosen
            // explicitly by the benchmark-only switch.
            unsafe { options.flags(EnvFlags::NO_SYNC | EnvFlags::NO_META_SYNC) };
        }
        // SAFETY: the environment is opened once per process (the engine owns it) and the
        // files are not modified by other means while it is open.
        let env = unsafe { options.open(&config.data_dir) }?;
        let mut wtxn = env.write_txn()?;
        let dbs = Databases {
            events: env.create_database(&mut wtxn, Some("events"))?,
            dedupe: env.create_database(&mut wtxn, Some("dedupe"))?,
            dedupe_by_time: env.create_database(&mut wtxn, Some("dedupe_by_time"))?,
            identifiers: env.create_database(&mut wtxn, Some("identifiers"))?,
            ident_events: env.create_database(&mut wtxn, Some("ident_events"))?,
            sources: env.create_database(&mut wtxn, Some("sources"))?,
            source_keys: env.create_database(&mut wtxn, Some("source_keys"))?,
            meta: env.create_database(&mut wtxn, Some("meta"))?,
        };
        wtxn.commit()?;
        Ok(Self {
            env,
            dbs,
            gate: RwLock::new(()),
            path: config.data_dir.clone(),
        })
    }

    pub fn read(&self) -> Result<ReadTxn<'_>> {
        let gate = self.gate.read();
        Ok(ReadTxn {
            txn: self.env.read_txn()?,
            _gate: gate,
        })
    }

    pub fn write(&self) -> Result<WriteTxn<'_>> {
        let gate = self.gate.read();
        Ok(WriteTxn {
            txn: self.env.write_txn()?,
            _gate: gate,
        })
    }

    /// Doubles the map. Waits until no transaction of this process is open.
    pub fn grow(&self) -> Result<usize> {
        let _exclusive = self.gate.write();
        let new_size = self.env.info().map_size.saturating_mul(2);
        // SAFETY: the exclusive gate guarantees no transaction of this process is open, which
        // is what mdb_env_set_mapsize requires.
        unsafe { self.env.resize(new_size) }
            .map_err(|e| EngineError::StorageFull(format!("cannot grow the map: {e}")))?;
        log::info!("LMDB map grown to {new_size} bytes");
        Ok(new_size)
    }

    pub fn map_size(&self) -> usize {
        self.env.info().map_size
    }

    /// Bytes available to us on the data directory's filesystem, if it can be asked.
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
            EngineError::Storage(message)
                if self
                    .available_bytes()
                    .is_some_and(|free| free < NEARLY_FULL) =>
            {
                EngineError::StorageFull(format!("the disk is full ({message})"))
            }
            other => other,
        }
    }
}
