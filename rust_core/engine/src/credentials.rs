//! Who a secret is: a source's write key or an access token, looked up by the secret's SHA-256
//! digest (computed by the caller; the store never sees a secret in clear). The server's
//! configured admin tokens are not stored: callers check those first.
//!
//! Every surface (gRPC in Python, the HTTP port in Rust) asks here, and this module keeps the
//! one cache of answers. Invariant: after a call that revokes or retires a credential returns,
//! no later lookup answers it. Each change to the tokens or the write keys bumps `generation`
//! and empties the cache after its transaction commits; a lookup caches its answer only if the
//! generation is still the one it saw before reading the store, so an answer read before a
//! change can never be cached after it. Unknown digests are not cached (they cost one read).

use std::collections::HashMap;

use parking_lot::Mutex;

use crate::error::Result;
use crate::ingest::Engine;
use crate::proto::{self, AccessToken, Source, SourceKind};
use crate::tokens::Role;

/// What a stored secret is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// A source's write key; `events` is false for a webhook source's (it opens its webhook
    /// route only, not gRPC ingest or the Tracking API).
    WriteKey { source: u32, events: bool },
    /// An access token made by `AdminService.CreateToken`, not revoked.
    Token { id: u32, name: String, role: Role },
}

#[derive(Default)]
pub(crate) struct CredentialCache {
    inner: Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    generation: u64,
    answers: HashMap<[u8; 32], Credential>,
}

impl CredentialCache {
    /// Forgets every answer; called after a transaction that changed credentials committed.
    pub(crate) fn invalidate(&self) {
        let mut cached = self.inner.lock();
        cached.generation += 1;
        cached.answers.clear();
    }
}

impl Engine {
    /// The credential whose secret has this digest, if it is one that works now.
    pub fn credential(&self, digest: &[u8]) -> Result<Option<Credential>> {
        let Ok(key) = <[u8; 32]>::try_from(digest) else {
            return Ok(None);
        };
        let cache = &self.shared.credentials;
        let generation = {
            let cached = cache.inner.lock();
            if let Some(found) = cached.answers.get(&key) {
                return Ok(Some(found.clone()));
            }
            cached.generation
        };
        let found = self.read_credential(&key)?;
        if let Some(found) = &found {
            let mut cached = cache.inner.lock();
            if cached.generation == generation {
                cached.answers.insert(key, found.clone());
            }
        }
        Ok(found)
    }

    /// The cached answer for this digest, without reading the store: `None` when it is not
    /// cached (ask `credential`). Cheap enough to call while holding Python's GIL.
    pub fn cached_credential(&self, digest: &[u8]) -> Option<Credential> {
        let key = <[u8; 32]>::try_from(digest).ok()?;
        self.shared.credentials.inner.lock().answers.get(&key).cloned()
    }

    fn read_credential(&self, digest: &[u8; 32]) -> Result<Option<Credential>> {
        let store = &self.shared.store;
        let txn = store.log.read()?;
        if let Some(value) = store.log_dbs.tokens.get(&txn.txn, digest)? {
            let token: AccessToken = proto::decode_record(value, "a token record")?;
            return Ok(match Role::parse(&token.role) {
                Some(role) if token.revoked_at_ms == 0 => Some(Credential::Token {
                    id: token.id,
                    name: token.name,
                    role,
                }),
                _ => None,
            });
        }
        let Some(source) = store.log_dbs.source_keys.get(&txn.txn, digest)? else {
            return Ok(None);
        };
        let kind = match store.log_dbs.sources.get(&txn.txn, &source)? {
            Some(value) => proto::decode_record::<Source>(value, "a source record")?.kind,
            None => SourceKind::Events as i32,
        };
        Ok(Some(Credential::WriteKey {
            source,
            events: kind == SourceKind::Events as i32,
        }))
    }

    /// Runs a write to the log environment that changes credentials, then forgets every cached
    /// answer (after the commit: see the module docs).
    pub(crate) fn write_credentials<T>(&self, work: impl FnMut(&mut heed::RwTxn<'_>) -> Result<T>) -> Result<T> {
        let done = self.write_log(work);
        self.shared.credentials.invalidate();
        done
    }
}
