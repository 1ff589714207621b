//! Sources and their write keys. Keys are stored only as SHA-256 digests computed by the caller;
//! a source may have several keys (rotation).

use prost::Message;

use crate::error::{EngineError, Result};
use crate::ingest::Engine;
use crate::proto::{self, ListSourcesRequest, ListSourcesResponse, Source};
use crate::time;

const META_NEXT_SOURCE: &str = "next_source_id";

impl Engine {
    /// Creates a source owning the given key digest; returns the encoded `Source`.
    pub fn create_source(&self, name: &str, key_digest: &[u8]) -> Result<Vec<u8>> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(EngineError::InvalidRequest("name must be 1 to 100 characters".into()));
        }
        if key_digest.len() != 32 {
            return Err(EngineError::InvalidRequest("key digest must be 32 bytes".into()));
        }
        let store = &self.shared.store;
        let dbs = &store.log_dbs;
        let encoded = self.write_log(|txn| {
            if dbs.source_keys.get(txn, key_digest)?.is_some() {
                return Err(EngineError::InvalidRequest(
                    "this write key already belongs to a source".into(),
                ));
            }
            for entry in dbs.sources.iter(txn)? {
                let (_, value) = entry?;
                let source: Source = proto::decode_record(value, "a source record")?;
                if source.name == name {
                    return Err(EngineError::InvalidRequest(format!(
                        "a source named {name:?} already exists"
                    )));
                }
            }
            let id = dbs.meta.get(txn, META_NEXT_SOURCE)?.unwrap_or(1) as u32;
            let source = Source {
                id,
                name: name.to_owned(),
                created_at_ms: time::now_ms(),
            };
            let encoded = source.encode_to_vec();
            dbs.sources.put(txn, &id, &encoded)?;
            dbs.source_keys.put(txn, key_digest, &id)?;
            dbs.meta.put(txn, META_NEXT_SOURCE, &(u64::from(id) + 1))?;
            Ok(encoded)
        })?;
        Ok(encoded)
    }

    /// The source owning a key digest, if any.
    pub fn source_for_key(&self, key_digest: &[u8]) -> Result<Option<u32>> {
        let txn = self.shared.store.log.read()?;
        Ok(self.shared.store.log_dbs.source_keys.get(&txn.txn, key_digest)?)
    }

    /// `AdminService.ListSources` on encoded bytes: every source.
    pub fn list_sources(&self, request: &[u8]) -> Result<Vec<u8>> {
        proto::decode_request::<ListSourcesRequest>(request)?;
        let txn = self.shared.store.log.read()?;
        let mut sources = Vec::new();
        for entry in self.shared.store.log_dbs.sources.iter(&txn.txn)? {
            let (_, value) = entry?;
            sources.push(proto::decode_record(value, "a source record")?);
        }
        Ok(ListSourcesResponse { sources }.encode_to_vec())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::EngineConfig;
    use crate::ingest::Engine;

    #[test]
    fn creating_sources_grows_a_full_map_instead_of_failing() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(EngineConfig {
            map_size: 1 << 16,
            ..EngineConfig::new(dir.path())
        })
        .unwrap();
        let start = engine.map_size();
        for i in 0..200u32 {
            let mut digest = [0u8; 32];
            digest[..4].copy_from_slice(&i.to_be_bytes());
            engine
                .create_source(&format!("{i:04}-{}", "s".repeat(90)), &digest)
                .unwrap_or_else(|err| panic!("source {i}: {err}"));
        }
        assert!(engine.map_size() > start, "the map grew");
        assert_eq!(engine.source_for_key(&[0; 32]).unwrap(), Some(1));
        let listed = engine.list_sources(&[]).unwrap();
        let listed = <crate::proto::ListSourcesResponse as prost::Message>::decode(listed.as_slice()).unwrap();
        assert_eq!(listed.sources.len(), 200);
    }
}
