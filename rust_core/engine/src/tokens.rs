//! Access tokens with a role, made by `AdminService.CreateToken`: "read" for profiles (gRPC
//! ProfileService, the HTTP Profile API), "audiences" for AudienceService, "admin" for
//! everything. Stored only as SHA-256 digests computed by the caller, as write keys are; the
//! server's configured admin tokens are checked by the callers, not stored.
//!
//! A token is never deleted: `revoke_token` stamps `revoked_at_ms`, after which
//! `Engine::credential` no longer answers it (at once: see `credentials`), and the record stays
//! for `ListTokens` and the audit log.

use prost::Message;

use crate::error::{EngineError, Result};
use crate::ingest::Engine;
use crate::proto::{
    self, AccessToken, CreateTokenRequest, ListTokensRequest, ListTokensResponse, RevokeTokenRequest,
    RevokeTokenResponse,
};
use crate::time;

const META_NEXT_TOKEN: &str = "next_token_id";

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Profiles: gRPC ProfileService and the HTTP Profile API.
    Read,
    /// Audiences and computed traits: gRPC AudienceService.
    Audiences,
    /// Everything.
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "read" => Some(Self::Read),
            "audiences" => Some(Self::Audiences),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Audiences => "audiences",
            Self::Admin => "admin",
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
                "role must be \"read\", \"audiences\" or \"admin\", got {:?}",
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
        let dbs = &self.shared.store.log_dbs;
        self.write_credentials(|txn| {
            if dbs.tokens.get(txn, &request.token_digest)?.is_some()
                || dbs.source_keys.get(txn, &request.token_digest)?.is_some()
            {
                return Err(EngineError::InvalidRequest("this token already exists".into()));
            }
            let id = dbs.meta.get(txn, META_NEXT_TOKEN)?.unwrap_or(1) as u32;
            let token = AccessToken {
                id,
                name: name.to_owned(),
                role: request.role.clone(),
                created_at_ms: time::now_ms(),
                revoked_at_ms: 0,
            };
            let encoded = token.encode_to_vec();
            dbs.tokens.put(txn, &request.token_digest, &encoded)?;
            dbs.meta.put(txn, META_NEXT_TOKEN, &(u64::from(id) + 1))?;
            Ok(encoded)
        })
    }

    /// `AdminService.RevokeToken` on encoded bytes: by id, or by a name exactly one active
    /// token has. Revoking a revoked token is refused (FAILED_PRECONDITION), so the audit log
    /// shows one revocation per token.
    pub fn revoke_token(&self, request: &[u8]) -> Result<Vec<u8>> {
        let request: RevokeTokenRequest = proto::decode_request(request)?;
        let name = request.name.trim();
        if request.id == 0 && name.is_empty() {
            return Err(EngineError::InvalidRequest("give the token's id or name".into()));
        }
        let dbs = &self.shared.store.log_dbs;
        let revoked = self.write_credentials(|txn| {
            let mut matches: Vec<(Vec<u8>, AccessToken)> = Vec::new();
            for entry in dbs.tokens.iter(txn)? {
                let (digest, value) = entry?;
                let token: AccessToken = proto::decode_record(value, "a token record")?;
                let wanted = if request.id != 0 {
                    token.id == request.id
                } else {
                    token.name == name && token.revoked_at_ms == 0
                };
                if wanted {
                    matches.push((digest.to_vec(), token));
                }
            }
            let (digest, mut token) = match matches.len() {
                0 if request.id != 0 => return Err(EngineError::NotFound(format!("no token with id {}", request.id))),
                0 => return Err(EngineError::NotFound(format!("no active token named {name:?}"))),
                1 => matches.pop().expect("one match"),
                n => {
                    return Err(EngineError::FailedPrecondition(format!(
                        "{n} active tokens are named {name:?}: revoke one by its id (cdp token list)"
                    )))
                }
            };
            if token.revoked_at_ms != 0 {
                return Err(EngineError::FailedPrecondition(format!(
                    "token {} ({:?}) is already revoked",
                    token.id, token.name
                )));
            }
            token.revoked_at_ms = time::now_ms();
            dbs.tokens.put(txn, &digest, &token.encode_to_vec())?;
            Ok(token)
        })?;
        Ok(RevokeTokenResponse { token: Some(revoked) }.encode_to_vec())
    }

    /// `AdminService.ListTokens` on encoded bytes: every token, revoked ones too (never the
    /// secrets).
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

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::Role;
    use crate::config::EngineConfig;
    use crate::credentials::Credential;
    use crate::error::EngineError;
    use crate::ingest::Engine;
    use crate::proto::{CreateTokenRequest, RevokeTokenRequest};

    fn create(engine: &Engine, role: &str, name: &str, digest: u8) {
        let request = CreateTokenRequest {
            role: role.into(),
            name: name.into(),
            token_digest: vec![digest; 32],
        };
        engine.create_token(&request.encode_to_vec()).unwrap();
    }

    fn revoke(engine: &Engine, id: u32, name: &str) -> Result<Vec<u8>, EngineError> {
        engine.revoke_token(&RevokeTokenRequest { id, name: name.into() }.encode_to_vec())
    }

    #[test]
    fn a_revoked_token_stops_working_at_once_even_when_its_answer_was_cached() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::open(EngineConfig::new(dir.path())).unwrap();
        create(&engine, "audiences", "marketing", 1);
        create(&engine, "read", "shop", 2);
        create(&engine, "read", "shop", 3);
        let expected = Credential::Token {
            id: 1,
            name: "marketing".into(),
            role: Role::Audiences,
        };
        assert_eq!(engine.credential(&[1; 32]).unwrap(), Some(expected.clone()));
        assert_eq!(engine.cached_credential(&[1; 32]), Some(expected), "cached");
        revoke(&engine, 0, "marketing").unwrap();
        assert_eq!(engine.cached_credential(&[1; 32]), None, "the cache was emptied");
        assert_eq!(engine.credential(&[1; 32]).unwrap(), None);
        assert!(matches!(
            revoke(&engine, 1, ""),
            Err(EngineError::FailedPrecondition(_))
        ));
        assert!(
            matches!(revoke(&engine, 0, "shop"), Err(EngineError::FailedPrecondition(_))),
            "two tokens have that name"
        );
        revoke(&engine, 3, "").unwrap();
        assert!(engine.credential(&[2; 32]).unwrap().is_some());
        assert!(matches!(revoke(&engine, 9, ""), Err(EngineError::NotFound(_))));
        assert!(matches!(revoke(&engine, 0, "nobody"), Err(EngineError::NotFound(_))));
    }

    #[test]
    fn roles_allow_their_own_calls_and_admin_allows_all() {
        for role in [Role::Read, Role::Audiences, Role::Admin] {
            assert_eq!(Role::parse(role.name()), Some(role));
            assert!(role.allows(role));
            assert!(Role::Admin.allows(role));
        }
        assert!(!Role::Read.allows(Role::Audiences));
        assert!(!Role::Audiences.allows(Role::Read));
        assert!(!Role::Read.allows(Role::Admin));
        assert_eq!(Role::parse("write"), None);
    }
}
