//! Privacy regulations (Segment's `SUPPRESS_ONLY`, `UNSUPPRESS`, `SUPPRESS_WITH_DELETE`,
//! `DELETE_ONLY`), each kept with its receipt: per-store status from INITIALIZED to FINISHED.
//! Deletion's stages are `deletion`'s; this module makes the regulation and its suppression.
//!
//! Suppression refuses, at ingest, every event that carries a suppressed identifier (any of its
//! identifiers: userId, anonymousId, email, custom ones), before anything of it is stored; such
//! events are counted (the rejected store's counts, without their content) and never kept.
//! Nothing stored names the person: the suppression list holds each identifier's 128-bit hash
//! (the one ingest computes), and a regulation's receipt the SHA-256 of each identifier.
//!
//! Stored in the log environment: `regulations`: id u64 → encoded `Regulation`;
//! `suppressed`: xxh3-128 of an identifier's key → the id of the regulation that suppressed it.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use heed::types::Bytes;
use heed::Database;
use prost::Message;
use rustc_hash::FxHashMap;
use sha2::{Digest, Sha256};

use crate::error::{EngineError, Result};
use crate::identifiers::Identifier;
use crate::identity::graph::ProfileLookup;
use crate::ingest::Engine;
use crate::proto::{
    self, CreateRegulationRequest, GetRegulationRequest, ListRegulationsRequest, ListRegulationsResponse, Regulation,
    RegulationStatus, RegulationType, StoreStatus,
};
use crate::store::{BeU64, Store};
use crate::time;

/// Most identifiers one regulation may name (Segment's limit).
pub const MAX_IDENTIFIERS: usize = 5_000;
const DEFAULT_LIST: usize = 100;
const SUPPRESSION_STORE: &str = "suppression list";

#[derive(Clone, Copy)]
pub struct RegulationDbs {
    pub regulations: Database<BeU64, Bytes>,
    pub suppressed: Database<Bytes, BeU64>,
    /// Deletions not finished (`deletion`).
    pub deletions: super::deletion::WorkDb,
}

/// The suppressed identifiers' hashes → the regulation that suppressed each.
pub type Suppressed = FxHashMap<u128, u64>;

/// Loads the suppression list (at start-up).
pub fn load(store: &Store) -> Result<Option<Arc<Suppressed>>> {
    let txn = store.log.read()?;
    let mut suppressed = Suppressed::default();
    for entry in store.log_dbs.regulations.suppressed.iter(&txn.txn)? {
        let (hash, regulation) = entry?;
        if let Ok(hash) = <[u8; 16]>::try_from(hash) {
            suppressed.insert(u128::from_be_bytes(hash), regulation);
        }
    }
    Ok((!suppressed.is_empty()).then(|| Arc::new(suppressed)))
}

/// The regulation that suppressed one of `identifiers`, if any.
pub fn suppressed_by(suppressed: &Suppressed, identifiers: &[Identifier]) -> Option<u64> {
    identifiers.iter().find_map(|i| suppressed.get(&i.hash128()).copied())
}

fn receipt_identifier(identifier: &Identifier) -> String {
    let digest = Sha256::digest(format!("{}:{}", identifier.kind, identifier.value).as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

impl Engine {
    /// `AdminService.CreateRegulation`.
    pub fn create_regulation(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: CreateRegulationRequest = proto::decode_request(request)?;
        let kind = RegulationType::try_from(request.r#type).unwrap_or(RegulationType::Unspecified);
        match kind {
            RegulationType::SuppressOnly
            | RegulationType::Unsuppress
            | RegulationType::SuppressWithDelete
            | RegulationType::DeleteOnly => {}
            RegulationType::Unspecified => {
                return Err(EngineError::InvalidRequest(
                    "type is required: SUPPRESS_ONLY, UNSUPPRESS, SUPPRESS_WITH_DELETE or DELETE_ONLY".into(),
                ))
            }
        }
        if request.identifiers.is_empty() || request.identifiers.len() > MAX_IDENTIFIERS {
            return Err(EngineError::InvalidRequest(format!(
                "identifiers: {} given; 1 to {MAX_IDENTIFIERS}",
                request.identifiers.len()
            )));
        }
        let mut identifiers = Vec::with_capacity(request.identifiers.len());
        for (i, text) in request.identifiers.iter().enumerate() {
            let identifier = Identifier::parse(text.trim()).ok_or_else(|| {
                EngineError::InvalidRequest(format!(
                    "identifiers[{i}]: must be type:value (user_id:42, email:a@example.com), got {:?}",
                    text.chars().take(100).collect::<String>()
                ))
            })?;
            identifiers.push(identifier);
        }
        identifiers.sort();
        identifiers.dedup();
        // A person is their profile: every identifier linked to one given counts too (an email
        // suppresses the userId and anonymousIds it was seen with).
        let mut covered = identifiers.clone();
        {
            let mut state = self.shared.profiles.lock();
            for identifier in &identifiers {
                if let Some(view) = state.graph.view(&ProfileLookup::Identifier(identifier.clone())) {
                    covered.extend(view.identifiers.into_iter().map(|(linked, _)| linked));
                }
            }
        }
        covered.sort();
        covered.dedup();
        let now = time::now_ms();
        let dbs = self.shared.store.log_dbs.regulations;
        let suppress = matches!(kind, RegulationType::SuppressOnly | RegulationType::SuppressWithDelete);
        let delete = matches!(kind, RegulationType::SuppressWithDelete | RegulationType::DeleteOnly);
        let _changes = self.shared.governance.changes.lock();
        let regulation = self.write_log(|txn| {
            let id = dbs.regulations.last(txn)?.map_or(1, |(id, _)| id + 1);
            let mut changed = 0usize;
            for identifier in &covered {
                let key = identifier.hash128().to_be_bytes();
                if kind == RegulationType::DeleteOnly {
                    continue;
                } else if suppress {
                    if dbs.suppressed.get(txn, &key)?.is_none() {
                        dbs.suppressed.put(txn, &key, &id)?;
                        changed += 1;
                    }
                } else if dbs.suppressed.delete(txn, &key)? {
                    changed += 1;
                }
            }
            let linked = covered.len() - identifiers.len();
            let detail = if suppress {
                format!(
                    "{changed} identifiers added: the {} given and {linked} linked to them ({} were suppressed already)",
                    identifiers.len(),
                    covered.len() - changed
                )
            } else {
                format!(
                    "{changed} identifiers removed: the {} given and {linked} linked to them ({} were not suppressed)",
                    identifiers.len(),
                    covered.len() - changed
                )
            };
            let mut regulation = Regulation {
                id,
                r#type: kind as i32,
                identifiers: identifiers.iter().map(receipt_identifier).collect(),
                status: RegulationStatus::Finished as i32,
                created_at_ms: now,
                finished_at_ms: now,
                stores: Vec::new(),
                engine_seconds: 0.0,
            };
            if kind != RegulationType::DeleteOnly {
                regulation.stores.push(StoreStatus {
                    store: SUPPRESSION_STORE.into(),
                    status: RegulationStatus::Finished as i32,
                    detail,
                });
            }
            if delete {
                super::deletion::begin(txn, &self.shared.store, &mut regulation, &covered)?;
            }
            dbs.regulations.put(txn, &id, &regulation.encode_to_vec())?;
            Ok(regulation)
        })?;
        // Applied in memory once durable: the next request of every source sees it.
        self.shared.governance.update_suppressed(|set| {
            for identifier in &covered {
                if suppress {
                    set.entry(identifier.hash128()).or_insert(regulation.id);
                } else {
                    set.remove(&identifier.hash128());
                }
            }
        });
        if delete {
            self.shared.deletions.notify();
        }
        log::info!(
            "regulation {} ({}): {} identifiers",
            regulation.id,
            kind.as_str_name(),
            identifiers.len()
        );
        Ok(regulation.encode_to_vec())
    }

    /// `AdminService.GetRegulation`: a regulation and its receipt.
    pub fn get_regulation(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: GetRegulationRequest = proto::decode_request(request)?;
        let txn = self.shared.store.log.read()?;
        let bytes = self
            .shared
            .store
            .log_dbs
            .regulations
            .regulations
            .get(&txn.txn, &request.id)?;
        let bytes = bytes.ok_or_else(|| EngineError::NotFound(format!("no regulation {}", request.id)))?;
        Ok(bytes.to_vec())
    }

    /// `AdminService.ListRegulations`: newest first.
    pub fn list_regulations(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: ListRegulationsRequest = proto::decode_request(request)?;
        let limit = match request.limit {
            0 => DEFAULT_LIST,
            n => n as usize,
        };
        let txn = self.shared.store.log.read()?;
        let mut regulations = Vec::new();
        for entry in self
            .shared
            .store
            .log_dbs
            .regulations
            .regulations
            .rev_iter(&txn.txn)?
            .take(limit)
        {
            let (_, value) = entry?;
            regulations.push(proto::decode_record(value, "a regulation")?);
        }
        Ok(ListRegulationsResponse {
            regulations,
            suppressed_events: self.shared.stats.suppressed.load(Ordering::Relaxed),
        }
        .encode_to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EngineConfig;
    use crate::proto::{Batch, Event, EventType};

    fn identify(id: &str, user: &str, email: &str) -> Event {
        Event {
            r#type: EventType::Identify as i32,
            message_id: id.into(),
            user_id: user.into(),
            traits: format!(r#"{{"email": "{email}"}}"#).into_bytes(),
            ..Default::default()
        }
    }

    fn stored(engine: &Engine, event: Event) -> bool {
        let outcome = engine
            .submit(
                1,
                Batch {
                    events: vec![event],
                    ..Default::default()
                },
            )
            .unwrap()
            .wait()
            .unwrap();
        outcome.rejections.is_empty()
    }

    fn regulate(engine: &Engine, kind: RegulationType, identifiers: &[&str]) -> Result<Regulation> {
        let request = CreateRegulationRequest {
            r#type: kind as i32,
            identifiers: identifiers.iter().map(|s| (*s).to_owned()).collect(),
        };
        engine
            .create_regulation(&request.encode_to_vec())
            .map(|bytes| Regulation::decode(bytes.as_slice()).unwrap())
    }

    #[test]
    fn suppressed_identifiers_are_refused_at_ingest_until_unsuppressed_and_across_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let open = || Engine::open(EngineConfig::new(dir.path())).unwrap();
        {
            let engine = open();
            assert!(stored(&engine, identify("a", "u1", "ann@example.com")));
            let regulation = regulate(&engine, RegulationType::SuppressOnly, &["email:Ann@Example.com "]).unwrap();
            assert_eq!(regulation.status, RegulationStatus::Finished as i32);
            assert!(regulation.identifiers[0].starts_with("sha256:"));
            assert!(regulation.stores[0]
                .detail
                .starts_with("2 identifiers added: the 1 given and 1 linked"));
            // Any identifier of the event matches: here the email, with another userId.
            assert!(!stored(&engine, identify("b", "someone-else", "ann@example.com")));
            assert!(stored(&engine, identify("c", "u2", "bob@example.com")));
            // The profile's other identifiers too: u1 was linked to the email.
            assert!(!stored(&engine, identify("c2", "u1", "")));
            assert_eq!(engine.shared.stats.suppressed.load(Ordering::Relaxed), 2);
            engine.close();
        }
        let engine = open();
        assert!(
            !stored(&engine, identify("d", "u3", "ann@example.com")),
            "still suppressed after a restart"
        );
        let lifted = regulate(&engine, RegulationType::Unsuppress, &["email:ann@example.com"]).unwrap();
        assert!(
            lifted.stores[0].detail.starts_with("2 identifiers removed"),
            "{}",
            lifted.stores[0].detail
        );
        assert!(stored(&engine, identify("e", "u3", "ann@example.com")));
        // The store keeps no identifier of the person in the regulation records.
        let store = &engine.shared.store;
        let txn = store.log.read().unwrap();
        for entry in store.log_dbs.regulations.regulations.iter(&txn.txn).unwrap() {
            let (_, value) = entry.unwrap();
            assert!(!value.windows(3).any(|w| w == b"ann"));
        }
    }

    #[test]
    fn bad_regulations_are_refused_naming_the_field() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
        let err = regulate(&engine, RegulationType::SuppressOnly, &["user_id:1", "nocolon"]).unwrap_err();
        assert!(err.to_string().contains("identifiers[1]"), "{err}");
        assert!(regulate(&engine, RegulationType::SuppressOnly, &[]).is_err());
        assert!(regulate(&engine, RegulationType::Unspecified, &["user_id:1"]).is_err());
        let many: Vec<String> = (0..=MAX_IDENTIFIERS).map(|i| format!("user_id:{i}")).collect();
        let refs: Vec<&str> = many.iter().map(String::as_str).collect();
        assert!(regulate(&engine, RegulationType::SuppressOnly, &refs).is_err());
        assert!(regulate(&engine, RegulationType::SuppressOnly, &refs[..MAX_IDENTIFIERS]).is_ok());
    }
}
