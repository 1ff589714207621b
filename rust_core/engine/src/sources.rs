//! Sources and their write keys. Keys are stored only as SHA-256 digests computed by the caller:
//! `source_keys` maps each working key's digest to its source, and the source's record lists
//! every key it was issued (number, creation time, digest, retirement time) for readers, who
//! never get the digests. A source has one or two working keys: `rotate_write_key` adds one
//! while the current one keeps working (a rotation), `revoke_write_key` retires one, never the
//! last. A retired key leaves `source_keys` in the same transaction, so it stops working at once
//! (see `credentials`). A webhook source also keeps the mappings that turn its tool's payloads
//! into events, and the secret its tool signs with.
//!
//! Sources made before keys were listed in their record have an empty list: their keys are read
//! from `source_keys` (numbered from 1, dated as the source) and written into the record by the
//! next rotation.

use heed::RwTxn;
use prost::Message;

use crate::error::{EngineError, Result};
use crate::ingest::Engine;
use crate::proto::{
    self, ListSourcesRequest, ListSourcesResponse, RevokeWriteKeyRequest, RevokeWriteKeyResponse,
    RotateWriteKeyRequest, RotateWriteKeyResponse, Source, SourceKind, WebhookSource, WriteKey,
};
use crate::time;

const META_NEXT_SOURCE: &str = "next_source_id";
/// Working keys a source may have at once: the current one and its successor.
pub const MAX_ACTIVE_KEYS: usize = 2;

impl Engine {
    /// Creates a source owning the given key digest; returns the encoded `Source`.
    pub fn create_source(&self, name: &str, key_digest: &[u8]) -> Result<Vec<u8>> {
        self.create_source_of_kind(name, key_digest, None)
    }

    /// Creates a source, a webhook source when `webhook` is given (its mappings checked by the
    /// caller, which knows the mapping language); returns the encoded `Source`.
    pub fn create_source_of_kind(
        &self,
        name: &str,
        key_digest: &[u8],
        webhook: Option<WebhookSource>,
    ) -> Result<Vec<u8>> {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(EngineError::InvalidRequest("name must be 1 to 100 characters".into()));
        }
        if webhook.is_some() && !is_url_safe(name) {
            return Err(EngineError::InvalidRequest(format!(
                "name: a webhook source's name is part of its URL: letters, digits, '-', '_' and '.' only, got {name:?}"
            )));
        }
        if key_digest.len() != 32 {
            return Err(EngineError::InvalidRequest("key digest must be 32 bytes".into()));
        }
        let dbs = &self.shared.store.log_dbs;
        let encoded = self.write_credentials(|txn| {
            if dbs.source_keys.get(txn, key_digest)?.is_some() || dbs.tokens.get(txn, key_digest)?.is_some() {
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
            let created_at_ms = time::now_ms();
            let source = Source {
                id,
                name: name.to_owned(),
                created_at_ms,
                kind: if webhook.is_some() {
                    SourceKind::Webhook as i32
                } else {
                    SourceKind::Events as i32
                },
                webhook: webhook.clone(),
                keys: vec![WriteKey {
                    number: 1,
                    created_at_ms,
                    digest: key_digest.to_vec(),
                    revoked_at_ms: 0,
                }],
            };
            dbs.sources.put(txn, &id, &source.encode_to_vec())?;
            dbs.source_keys.put(txn, key_digest, &id)?;
            dbs.meta.put(txn, META_NEXT_SOURCE, &(u64::from(id) + 1))?;
            Ok(redacted(source).encode_to_vec())
        })?;
        Ok(encoded)
    }

    /// The source owning a key digest, if any.
    pub fn source_for_key(&self, key_digest: &[u8]) -> Result<Option<u32>> {
        let txn = self.shared.store.log.read()?;
        Ok(self.shared.store.log_dbs.source_keys.get(&txn.txn, key_digest)?)
    }

    /// The source owning a key digest if it takes Segment events (gRPC, the Tracking API): a
    /// webhook source's key, given to a SaaS tool in its URL, opens its webhook route only.
    pub fn events_source_for_key(&self, key_digest: &[u8]) -> Result<Option<u32>> {
        let store = &self.shared.store;
        let txn = store.log.read()?;
        let Some(id) = store.log_dbs.source_keys.get(&txn.txn, key_digest)? else {
            return Ok(None);
        };
        let kind = match store.log_dbs.sources.get(&txn.txn, &id)? {
            Some(value) => proto::decode_record::<Source>(value, "a source record")?.kind,
            None => SourceKind::Events as i32,
        };
        Ok((kind == SourceKind::Events as i32).then_some(id))
    }

    /// The source named `name` (with its secrets), if any. Sources are few: a scan.
    pub fn source_named(&self, name: &str) -> Result<Option<Source>> {
        let txn = self.shared.store.log.read()?;
        for entry in self.shared.store.log_dbs.sources.iter(&txn.txn)? {
            let (_, value) = entry?;
            let source: Source = proto::decode_record(value, "a source record")?;
            if source.name == name {
                return Ok(Some(source));
            }
        }
        Ok(None)
    }

    /// Replaces a webhook source's mappings (checked by the caller); returns the encoded
    /// `Source`, without its signing secret.
    pub fn update_webhook_source(&self, name: &str, mappings: &str) -> Result<Vec<u8>> {
        let dbs = &self.shared.store.log_dbs;
        let updated = self.write_log(|txn| {
            let mut found = None;
            for entry in dbs.sources.iter(txn)? {
                let (id, value) = entry?;
                let source: Source = proto::decode_record(value, "a source record")?;
                if source.name == name {
                    found = Some((id, source));
                    break;
                }
            }
            let Some((id, mut source)) = found else {
                return Err(EngineError::NotFound(format!("no source named {name:?}")));
            };
            let Some(webhook) = source.webhook.as_mut() else {
                return Err(EngineError::InvalidRequest(format!(
                    "name: source {name:?} is not a webhook source"
                )));
            };
            webhook.mappings = mappings.to_owned();
            dbs.sources.put(txn, &id, &source.encode_to_vec())?;
            Ok(source)
        })?;
        Ok(redacted(updated).encode_to_vec())
    }

    /// `AdminService.ListSources` on encoded bytes: every source, without signing secrets.
    pub fn list_sources(&self, request: &[u8]) -> Result<Vec<u8>> {
        proto::decode_request::<ListSourcesRequest>(request)?;
        let txn = self.shared.store.log.read()?;
        let mut sources = Vec::new();
        let dbs = &self.shared.store.log_dbs;
        for entry in dbs.sources.iter(&txn.txn)? {
            let (id, value) = entry?;
            let mut source: Source = proto::decode_record(value, "a source record")?;
            if source.keys.is_empty() {
                source.keys = legacy_keys(dbs, &txn.txn, id, source.created_at_ms)?;
            }
            sources.push(redacted(source));
        }
        Ok(ListSourcesResponse { sources }.encode_to_vec())
    }

    /// `AdminService.RotateWriteKey` on encoded bytes (the caller generated the key and put its
    /// digest in the request): the source gets the new key beside its current one (refused when
    /// it has two already), or instead of every older one with `revoke_previous`. Returns the
    /// encoded response without the key (the caller adds it).
    pub fn rotate_write_key(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: RotateWriteKeyRequest = proto::decode_request(request)?;
        if request.key_digest.len() != 32 {
            return Err(EngineError::InvalidRequest("key_digest must be 32 bytes".into()));
        }
        let dbs = &self.shared.store.log_dbs;
        let source = self.write_credentials(|txn| {
            if dbs.source_keys.get(txn, &request.key_digest)?.is_some()
                || dbs.tokens.get(txn, &request.key_digest)?.is_some()
            {
                return Err(EngineError::InvalidRequest("this write key already exists".into()));
            }
            let (id, mut source) = source_named_in(dbs, txn, &request.source)?;
            let now = time::now_ms();
            let active: Vec<u32> = source.keys.iter().filter(|k| k.revoked_at_ms == 0).map(|k| k.number).collect();
            if request.revoke_previous {
                for key in source.keys.iter_mut().filter(|k| k.revoked_at_ms == 0) {
                    key.revoked_at_ms = now;
                    dbs.source_keys.delete(txn, &key.digest)?;
                }
            } else if active.len() >= MAX_ACTIVE_KEYS {
                return Err(EngineError::FailedPrecondition(format!(
                    "source {:?} has {MAX_ACTIVE_KEYS} working keys already ({}): retire one first, or rotate with revoke_previous",
                    source.name,
                    numbers(&active)
                )));
            }
            let number = source.keys.iter().map(|k| k.number).max().unwrap_or(0) + 1;
            source.keys.push(WriteKey {
                number,
                created_at_ms: now,
                digest: request.key_digest.clone(),
                revoked_at_ms: 0,
            });
            dbs.source_keys.put(txn, &request.key_digest, &id)?;
            dbs.sources.put(txn, &id, &source.encode_to_vec())?;
            Ok(source)
        })?;
        Ok(RotateWriteKeyResponse {
            source: Some(redacted(source)),
            ..Default::default()
        }
        .encode_to_vec())
    }

    /// `AdminService.RevokeWriteKey` on encoded bytes: retires one working key of a source, not
    /// its last one.
    pub fn revoke_write_key(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: RevokeWriteKeyRequest = proto::decode_request(request)?;
        let dbs = &self.shared.store.log_dbs;
        let source = self.write_credentials(|txn| {
            let (id, mut source) = source_named_in(dbs, txn, &request.source)?;
            let active = source.keys.iter().filter(|k| k.revoked_at_ms == 0).count();
            let name = source.name.clone();
            let Some(key) = source.keys.iter_mut().find(|k| k.number == request.number) else {
                return Err(EngineError::NotFound(format!(
                    "source {name:?} has no write key number {}",
                    request.number
                )));
            };
            if key.revoked_at_ms != 0 {
                return Err(EngineError::FailedPrecondition(format!(
                    "write key {} of source {name:?} is already retired",
                    key.number
                )));
            }
            if active <= 1 {
                return Err(EngineError::FailedPrecondition(format!(
                    "write key {} is source {name:?}'s only working key: rotate first (with revoke_previous to replace it)",
                    key.number
                )));
            }
            key.revoked_at_ms = time::now_ms();
            dbs.source_keys.delete(txn, &key.digest)?;
            dbs.sources.put(txn, &id, &source.encode_to_vec())?;
            Ok(source)
        })?;
        Ok(RevokeWriteKeyResponse {
            source: Some(redacted(source)),
        }
        .encode_to_vec())
    }
}

/// The source named `name` in a write transaction, its key list filled in.
fn source_named_in(dbs: &crate::store::LogDatabases, txn: &RwTxn<'_>, name: &str) -> Result<(u32, Source)> {
    let name = name.trim();
    if name.is_empty() {
        return Err(EngineError::InvalidRequest("source: give the source's name".into()));
    }
    for entry in dbs.sources.iter(txn)? {
        let (id, value) = entry?;
        let mut source: Source = proto::decode_record(value, "a source record")?;
        if source.name == name {
            if source.keys.is_empty() {
                source.keys = legacy_keys(dbs, txn, id, source.created_at_ms)?;
            }
            return Ok((id, source));
        }
    }
    Err(EngineError::NotFound(format!("no source named {name:?}")))
}

/// The keys of a source made before records listed them: its digests in `source_keys`.
fn legacy_keys(
    dbs: &crate::store::LogDatabases,
    txn: &heed::RoTxn<'_, heed::WithoutTls>,
    id: u32,
    created_at_ms: i64,
) -> Result<Vec<WriteKey>> {
    let mut keys = Vec::new();
    for entry in dbs.source_keys.iter(txn)? {
        let (digest, owner) = entry?;
        if owner == id {
            keys.push(WriteKey {
                number: keys.len() as u32 + 1,
                created_at_ms,
                digest: digest.to_vec(),
                revoked_at_ms: 0,
            });
        }
    }
    Ok(keys)
}

fn numbers(numbers: &[u32]) -> String {
    numbers.iter().map(u32::to_string).collect::<Vec<_>>().join(" and ")
}

/// A source as answered to readers: whether it has a signing secret, not the secret; its keys'
/// numbers and times, not their digests.
pub fn redacted(mut source: Source) -> Source {
    if let Some(webhook) = source.webhook.as_mut() {
        webhook.signed = !webhook.signing_secret.is_empty();
        webhook.signing_secret.clear();
    }
    for key in &mut source.keys {
        key.digest.clear();
    }
    source
}

/// What may stand in a URL path segment as it is.
fn is_url_safe(name: &str) -> bool {
    name.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && name != "."
        && name != ".."
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

    #[test]
    fn a_webhook_source_keeps_its_secret_from_readers_and_takes_new_mappings() {
        use crate::error::EngineError;
        use crate::proto::{ListSourcesResponse, Source, SourceKind, WebhookSource};
        use prost::Message;

        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
        let webhook = WebhookSource {
            mappings: "[]".into(),
            signing_secret: "whsec_c2VjcmV0".into(),
            signed: false,
        };
        let created = engine
            .create_source_of_kind("stripe", &[1; 32], Some(webhook.clone()))
            .unwrap();
        let created = Source::decode(created.as_slice()).unwrap();
        assert_eq!(created.kind, SourceKind::Webhook as i32);
        let answered = created.webhook.unwrap();
        assert!(answered.signed && answered.signing_secret.is_empty());
        let stored = engine.source_named("stripe").unwrap().unwrap();
        assert_eq!(stored.webhook.unwrap().signing_secret, "whsec_c2VjcmV0");

        let updated = engine.update_webhook_source("stripe", r#"[{"mapping": {}}]"#).unwrap();
        let updated = Source::decode(updated.as_slice()).unwrap().webhook.unwrap();
        assert_eq!(updated.mappings, r#"[{"mapping": {}}]"#);
        assert!(updated.signing_secret.is_empty());
        let listed = ListSourcesResponse::decode(engine.list_sources(&[]).unwrap().as_slice()).unwrap();
        assert!(listed.sources[0].webhook.as_ref().unwrap().signing_secret.is_empty());
        assert_eq!(
            engine
                .source_named("stripe")
                .unwrap()
                .unwrap()
                .webhook
                .unwrap()
                .signing_secret,
            "whsec_c2VjcmV0",
            "an update keeps the secret"
        );

        assert_eq!(engine.source_for_key(&[1; 32]).unwrap(), Some(created.id));
        assert_eq!(
            engine.events_source_for_key(&[1; 32]).unwrap(),
            None,
            "not for Segment events"
        );
        engine.create_source("plain", &[2; 32]).unwrap();
        assert!(engine.events_source_for_key(&[2; 32]).unwrap().is_some());
        assert!(matches!(
            engine.update_webhook_source("plain", "[]"),
            Err(EngineError::InvalidRequest(_))
        ));
        assert!(matches!(
            engine.update_webhook_source("nobody", "[]"),
            Err(EngineError::NotFound(_))
        ));
        for name in ["a/b", "..", "spaced name", "naïve"] {
            assert!(
                matches!(
                    engine.create_source_of_kind(name, &[3; 32], Some(webhook.clone())),
                    Err(EngineError::InvalidRequest(_))
                ),
                "{name}"
            );
        }
        assert!(
            engine.create_source("spaced name", &[3; 32]).is_ok(),
            "an events source may have any name"
        );
    }
}
