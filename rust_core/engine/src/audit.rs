//! The audit log: one record per administrative action (who, what, on what, when, outcome),
//! in the `audit` database of the log environment.
//!
//! Invariants:
//! - append-only: a record is written once, under the next sequence number (`PutFlags::APPEND`
//!   refuses anything else), and nothing in the engine updates or deletes one;
//! - hash-chained: the stored value is `hash (32 bytes) || body`, where body is the encoded
//!   `AuditRecord` with `hash` empty and `prev_hash` the previous record's hash (32 zero bytes
//!   for the first), and `hash = SHA-256(prev_hash || body)`. Any change to a stored byte, a
//!   removed record or a reordering breaks the chain at that record, which `verify_audit_log`
//!   names;
//! - no secrets: callers pass summaries without keys, tokens or settings' secrets.

use heed::PutFlags;
use prost::Message;
use sha2::{Digest, Sha256};

use crate::error::{EngineError, Result};
use crate::ingest::Engine;
use crate::proto::{
    self, AuditRecord, ListAuditLogRequest, ListAuditLogResponse, VerifyAuditLogRequest, VerifyAuditLogResponse,
};
use crate::time;

const HASH_BYTES: usize = 32;
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// What a caller records; the engine adds the sequence number, the time and the chain.
#[derive(Clone, Debug, Default)]
pub struct AuditEntry {
    pub actor: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub summary: String,
}

fn chained_hash(prev_hash: &[u8], body: &[u8]) -> [u8; HASH_BYTES] {
    let mut hasher = Sha256::new();
    hasher.update(prev_hash);
    hasher.update(body);
    hasher.finalize().into()
}

/// A stored value as the record readers see (its hash filled in).
fn decode_stored(value: &[u8]) -> Result<([u8; HASH_BYTES], AuditRecord)> {
    if value.len() < HASH_BYTES {
        return Err(EngineError::Storage("an audit record is shorter than its hash".into()));
    }
    let (hash, body) = value.split_at(HASH_BYTES);
    let mut record: AuditRecord = proto::decode_record(body, "an audit record")?;
    record.hash = hash.to_vec();
    Ok((hash.try_into().expect("32 bytes"), record))
}

impl Engine {
    /// Appends a record (durably: it is committed before this returns); returns its sequence.
    pub fn append_audit(&self, entry: AuditEntry) -> Result<u64> {
        let db = self.shared.store.log_dbs.audit;
        self.write_log(|txn| {
            let (seq, prev_hash) = match db.last(txn)? {
                Some((seq, value)) => (seq + 1, decode_stored(value)?.0.to_vec()),
                None => (1, vec![0; HASH_BYTES]),
            };
            let body = AuditRecord {
                seq,
                time_ms: time::now_ms(),
                actor: entry.actor.clone(),
                action: entry.action.clone(),
                target: entry.target.clone(),
                outcome: entry.outcome.clone(),
                summary: entry.summary.clone(),
                prev_hash: prev_hash.clone(),
                hash: Vec::new(),
            }
            .encode_to_vec();
            let mut value = chained_hash(&prev_hash, &body).to_vec();
            value.extend_from_slice(&body);
            db.put_with_flags(txn, PutFlags::APPEND, &seq, &value)?;
            Ok(seq)
        })
    }

    /// `AdminService.ListAuditLog` on encoded bytes.
    pub fn list_audit_log(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: ListAuditLogRequest = proto::decode_request(request)?;
        let limit = match request.limit as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        let db = self.shared.store.log_dbs.audit;
        let txn = self.shared.store.log.read()?;
        let mut records = Vec::new();
        let mut next_seq = 0;
        if request.from_seq > 0 {
            for entry in db.range(&txn.txn, &(request.from_seq..))? {
                let (seq, value) = entry?;
                if records.len() == limit {
                    next_seq = seq;
                    break;
                }
                records.push(decode_stored(value)?.1);
            }
        } else {
            let before = if request.before_seq == 0 {
                u64::MAX
            } else {
                request.before_seq
            };
            for entry in db.rev_range(&txn.txn, &(..before))? {
                let (_, value) = entry?;
                if records.len() == limit {
                    // More remain: the next page is older than the last one answered.
                    next_seq = records.last().map_or(0, |r: &AuditRecord| r.seq);
                    break;
                }
                records.push(decode_stored(value)?.1);
            }
        }
        Ok(ListAuditLogResponse { records, next_seq }.encode_to_vec())
    }

    /// `AdminService.VerifyAuditLog` on encoded bytes: walks the chain from the first record.
    pub fn verify_audit_log(&self, request: &[u8]) -> Result<Vec<u8>> {
        proto::decode_request::<VerifyAuditLogRequest>(request)?;
        let txn = self.shared.store.log.read()?;
        let mut prev_hash = vec![0u8; HASH_BYTES];
        let mut checked = 0u64;
        let broken = |seq: u64, checked: u64, reason: String| {
            Ok(VerifyAuditLogResponse {
                ok: false,
                records: checked,
                first_broken_seq: seq,
                reason,
            }
            .encode_to_vec())
        };
        for entry in self.shared.store.log_dbs.audit.iter(&txn.txn)? {
            let (seq, value) = entry?;
            let expected = checked + 1;
            if seq != expected {
                return broken(
                    expected,
                    checked,
                    format!("record {expected} is missing (the next is {seq})"),
                );
            }
            if value.len() < HASH_BYTES {
                return broken(seq, checked, "the record is shorter than its hash".into());
            }
            let (hash, body) = value.split_at(HASH_BYTES);
            let Ok(record) = AuditRecord::decode(body) else {
                return broken(seq, checked, "the record does not decode".into());
            };
            if record.seq != seq || record.prev_hash != prev_hash {
                return broken(seq, checked, "the record does not follow the one before it".into());
            }
            if chained_hash(&prev_hash, body).as_slice() != hash {
                return broken(seq, checked, "the record's hash does not match its content".into());
            }
            prev_hash = hash.to_vec();
            checked += 1;
        }
        Ok(VerifyAuditLogResponse {
            ok: true,
            records: checked,
            first_broken_seq: 0,
            reason: String::new(),
        }
        .encode_to_vec())
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::AuditEntry;
    use crate::config::EngineConfig;
    use crate::ingest::Engine;
    use crate::proto::{ListAuditLogRequest, ListAuditLogResponse, VerifyAuditLogResponse};

    fn entry(n: u32) -> AuditEntry {
        AuditEntry {
            actor: "configured admin token".into(),
            action: "AdminService/CreateSource".into(),
            target: format!("name=s{n}"),
            outcome: "ok".into(),
            summary: String::new(),
        }
    }

    fn verify(engine: &Engine) -> VerifyAuditLogResponse {
        VerifyAuditLogResponse::decode(engine.verify_audit_log(&[]).unwrap().as_slice()).unwrap()
    }

    fn list(engine: &Engine, request: ListAuditLogRequest) -> ListAuditLogResponse {
        ListAuditLogResponse::decode(engine.list_audit_log(&request.encode_to_vec()).unwrap().as_slice()).unwrap()
    }

    #[test]
    fn records_chain_page_both_ways_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
            for n in 1..=5 {
                assert_eq!(engine.append_audit(entry(n)).unwrap(), u64::from(n));
            }
        }
        let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
        engine.append_audit(entry(6)).unwrap();
        let verified = verify(&engine);
        assert!(verified.ok && verified.records == 6, "{verified:?}");

        let page = list(
            &engine,
            ListAuditLogRequest {
                limit: 4,
                ..Default::default()
            },
        );
        let seqs: Vec<u64> = page.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [6, 5, 4, 3], "newest first");
        let rest = list(
            &engine,
            ListAuditLogRequest {
                limit: 4,
                before_seq: page.next_seq,
                ..Default::default()
            },
        );
        assert_eq!(rest.records.iter().map(|r| r.seq).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(rest.next_seq, 0);
        let from = list(
            &engine,
            ListAuditLogRequest {
                limit: 2,
                from_seq: 3,
                ..Default::default()
            },
        );
        assert_eq!(from.records.iter().map(|r| r.seq).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(from.next_seq, 5);
        let first = &from.records[0];
        assert_eq!(first.target, "name=s3");
        assert_eq!(
            first.prev_hash,
            list(
                &engine,
                ListAuditLogRequest {
                    from_seq: 2,
                    limit: 1,
                    ..Default::default()
                }
            )
            .records[0]
                .hash
        );
    }

    #[test]
    fn a_changed_or_removed_record_is_named_by_verification() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
        for n in 1..=4 {
            engine.append_audit(entry(n)).unwrap();
        }
        let db = engine.shared.store.log_dbs.audit;
        // Tamper as someone with the files would: change record 3's target in place.
        engine
            .write_log(|txn| {
                let mut value = db.get(txn, &3)?.unwrap().to_vec();
                let at = value.windows(3).position(|w| w == b"=s3").unwrap();
                value[at + 2] = b'9';
                db.put(txn, &3, &value)?;
                Ok(())
            })
            .unwrap();
        let verified = verify(&engine);
        assert!(!verified.ok);
        assert_eq!((verified.first_broken_seq, verified.records), (3, 2), "{verified:?}");

        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
        for n in 1..=4 {
            engine.append_audit(entry(n)).unwrap();
        }
        let db = engine.shared.store.log_dbs.audit;
        engine.write_log(|txn| Ok(db.delete(txn, &2)?)).unwrap();
        let verified = verify(&engine);
        assert_eq!((verified.ok, verified.first_broken_seq), (false, 2), "{verified:?}");
    }
}
