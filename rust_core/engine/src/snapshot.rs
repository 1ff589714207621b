//! Snapshots of the derived identity state (the graph, the account links and the log seq they
//! cover), so that start-up loads the latest one and replays only the log after it instead of
//! the whole log.
//!
//! A snapshot is a cache of what the log determines: any snapshot that cannot be used (missing,
//! truncated, corrupt, of another format version, or built under other identity rules or
//! separations than the log now holds) is ignored and the log replayed in full.
//!
//! Atomicity: a snapshot is written to `<name>.tmp`, fsync'd, and renamed over the previous one
//! (then the directory is fsync'd), so a crash at any instant leaves either the previous snapshot
//! or the new one, whole. A checksum over the body catches what a torn write could leave anyway.
//!
//! Layout: `MAGIC`, format version (u32 LE), body length (u64 LE), body (postcard), xxh3-64 of the
//! body (u64 LE). postcard: a compact, specified serde format (varints) from a maintained crate.

use std::fs;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Serialize};
use xxhash_rust::xxh3::{xxh3_64, Xxh3};

use crate::error::{EngineError, Result};

const MAGIC: &[u8; 8] = b"TRIBSNAP";
/// Bump when anything serialised changes shape: older snapshots are then ignored.
pub const FORMAT_VERSION: u32 = 8;
const HEADER: usize = 8 + 4 + 8;

/// Where the snapshots of one data directory live.
#[derive(Clone)]
pub struct Snapshots {
    dir: PathBuf,
}

impl Snapshots {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            dir: data_dir.join("snapshots"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.snap"))
    }

    /// Serialises `value` into the bytes of a snapshot file (done while the state is locked,
    /// so that writing the file need not be).
    pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(1 << 20);
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&[0; 8]); // body length, filled in below
        let mut bytes = postcard::to_io(value, bytes)
            .map_err(|e| EngineError::Storage(format!("cannot encode a snapshot: {e}")))?;
        let body_len = (bytes.len() - HEADER) as u64;
        bytes[12..HEADER].copy_from_slice(&body_len.to_le_bytes());
        let checksum = xxh3_64(&bytes[HEADER..]);
        bytes.extend_from_slice(&checksum.to_le_bytes());
        Ok(bytes)
    }

    /// Writes a snapshot atomically (see the module docs).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        let io = |what: &str, e: std::io::Error| EngineError::Storage(format!("snapshot {name}: cannot {what}: {e}"));
        fs::create_dir_all(&self.dir).map_err(|e| io("create its directory", e))?;
        let path = self.path(name);
        let tmp = path.with_extension("snap.tmp");
        let file = fs::File::create(&tmp).map_err(|e| io("create the file", e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(bytes).map_err(|e| io("write", e))?;
        let file = out.into_inner().map_err(|e| io("write", e.into_error()))?;
        file.sync_all().map_err(|e| io("fsync", e))?;
        drop(file);
        fs::rename(&tmp, &path).map_err(|e| io("rename into place", e))?;
        fs::File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| io("fsync its directory", e))?;
        Ok(())
    }

    /// The snapshot `name`, or why it cannot be used (`Ok(Err(reason))`): the caller then
    /// rebuilds from the log. `Err` only for faults reading a file that exists.
    /// Removes a snapshot (absent already: nothing to do), durably.
    pub fn remove(&self, name: &str) -> Result<()> {
        let io = |what: &str, e: std::io::Error| EngineError::Storage(format!("snapshot {name}: cannot {what}: {e}"));
        match fs::remove_file(self.path(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io("remove it", e)),
        }
        fs::File::open(&self.dir)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| io("fsync its directory", e))
    }

    pub fn read<T: DeserializeOwned>(&self, name: &str) -> Result<std::result::Result<T, String>> {
        let path = self.path(name);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Err("there is none".into())),
            Err(e) => return Err(EngineError::Storage(format!("cannot read {}: {e}", path.display()))),
        };
        Ok(decode(&bytes))
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> std::result::Result<T, String> {
    if bytes.len() < HEADER + 8 || &bytes[..8] != MAGIC {
        return Err("not a snapshot file".into());
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != FORMAT_VERSION {
        return Err(format!("format version {version}, this build reads {FORMAT_VERSION}"));
    }
    let body_len = u64::from_le_bytes(bytes[12..HEADER].try_into().expect("8 bytes")) as usize;
    if bytes.len() != HEADER + body_len + 8 {
        return Err(format!("truncated: {} bytes of {}", bytes.len(), HEADER + body_len + 8));
    }
    let body = &bytes[HEADER..HEADER + body_len];
    let checksum = u64::from_le_bytes(bytes[HEADER + body_len..].try_into().expect("8 bytes"));
    if xxh3_64(body) != checksum {
        return Err("its checksum does not match".into());
    }
    postcard::from_bytes(body).map_err(|e| format!("cannot decode it: {e}"))
}

/// A fingerprint of the identity administration (rules and separations) a state was built
/// under: a snapshot is only used under the same one.
pub fn administration_fingerprint(rules: &[u8], actions: &[u8]) -> u128 {
    let mut hasher = Xxh3::new();
    hasher.update(&(rules.len() as u64).to_le_bytes());
    hasher.update(rules);
    hasher.update(actions);
    hasher.digest128()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_round_trips_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let snapshots = Snapshots::new(dir.path());
        let value: (u64, Vec<String>) = (7, vec!["a".into(), "é".into()]);
        let bytes = Snapshots::encode(&value).unwrap();
        snapshots.write("t", &bytes).unwrap();
        assert_eq!(snapshots.read::<(u64, Vec<String>)>("t").unwrap(), Ok(value.clone()));
        assert!(snapshots.read::<(u64, Vec<String>)>("none").unwrap().is_err());
        let path = dir.path().join("snapshots/t.snap");
        // Truncated, flipped, another version: each refused with a reason, never a panic.
        for damaged in [
            bytes[..bytes.len() - 3].to_vec(),
            {
                let mut b = bytes.clone();
                b[HEADER + 1] ^= 0xff;
                b
            },
            {
                let mut b = bytes.clone();
                b[8] = 99;
                b
            },
            b"garbage".to_vec(),
        ] {
            fs::write(&path, &damaged).unwrap();
            assert!(snapshots.read::<(u64, Vec<String>)>("t").unwrap().is_err());
        }
        // A leftover temporary file of an interrupted write does not hide the last good one.
        snapshots.write("t", &bytes).unwrap();
        fs::write(dir.path().join("snapshots/t.snap.tmp"), b"half a snap").unwrap();
        assert_eq!(snapshots.read::<(u64, Vec<String>)>("t").unwrap(), Ok(value));
    }
}
