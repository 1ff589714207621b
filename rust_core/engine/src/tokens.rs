//! Access tokens with a role, made by `AdminService.CreateToken`: "read" for the Profile API,
//! "admin" for everything. Stored only as SHA-256 digests computed by the caller, as write keys
//! are; the server's configured admin tokens are checked by the callers, not stored.

use prost::Message;

use crate::error::{EngineError, Result};
use crate::ingest::Engine;
use crate::proto::{self, AccessToken, CreateTokenRequest, ListTokensRequest, ListTokensResponse};
use crate::time;

const META_NEXT_TOKEN: &str = "next_token_id";

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The Profile API.
    Read,
    /// Everything.
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Self::Read),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// True when a token of this role may do what `needed` allows.
    pub fn allows(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }
}

impl Engine {
    /// `AdminService.CreateToken` on encoded bytes (the caller generated the token and put its
    /// digest in the request); returns the encoded `AccessToken`.
    pub fn create_token(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: CreateTokenRequest = proto::decode_request(request)?;
        if Role::parse(&request.role).is_none() {
            return Err(EngineError::InvalidRequest(format!(
                "role must be \"read\" or \"admin\", got {:?}",
                request.role
            )));
        }
        let name = request.name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(EngineError::InvalidRequest("name must be 1 to 100 characters".into()));
        }
        if request.token_digest.len() != 32 {
            return Err(EngineError::InvalidRequest("token_digest must be 32 bytes".into()));
        }
        let store = &self.shared.store;
        let dbs = &store.log_dbs;
        let (encoded, grows) = store.log.write_with_growth(|txn| {
            if dbs.tokens.get(txn, &request.token_digest)?.is_some() {
                return Err(EngineError::InvalidRequest("this token already exists".into()));
            }
            let id = dbs.meta.get(txn, META_NEXT_TOKEN)?.unwrap_or(1) as u32;
            let token = AccessToken {
                id,
                name: name.to_owned(),
                role: request.role.clone(),
                created_at_ms: time::now_ms(),
            };
            let encoded = token.encode_to_vec();
            dbs.tokens.put(txn, &request.token_digest, &encoded)?;
            dbs.meta.put(txn, META_NEXT_TOKEN, &(u64::from(id) + 1))?;
            Ok(encoded)
        })?;
        self.shared
            .stats
            .map_grows
            .fetch_add(u64::from(grows), std::sync::atomic::Ordering::Relaxed);
        Ok(encoded)
    }

    /// The role of the token with this digest, if it is one.
    pub fn token_role(&self, digest: &[u8]) -> Result<Option<Role>> {
        let txn = self.shared.store.log.read()?;
        let Some(value) = self.shared.store.log_dbs.tokens.get(&txn.txn, digest)? else {
            return Ok(None);
        };
        let token: AccessToken = proto::decode_record(value, "a token record")?;
        Ok(Role::parse(&token.role))
    }

    /// `AdminService.ListTokens` on encoded bytes: every token (never the secrets).
    pub fn list_tokens(&self, request: &[u8]) -> Result<Vec<u8>> {
        proto::decode_request::<ListTokensRequest>(request)?;
        let txn = self.shared.store.log.read()?;
        let mut tokens: Vec<AccessToken> = Vec::new();
        for entry in self.shared.store.log_dbs.tokens.iter(&txn.txn)? {
            let (_, value) = entry?;
            tokens.push(proto::decode_record(value, "a token record")?);
        }
        tokens.sort_by_key(|token| token.id);
        Ok(ListTokensResponse { tokens }.encode_to_vec())
    }
}
