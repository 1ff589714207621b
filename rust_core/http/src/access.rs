//! Who may read: the Profile API takes an access token as HTTP Basic's user name (as Segment's
//! does), the debugger an admin token as `Bearer`. A token is one of the server's configured
//! admin tokens or one made by `AdminService.CreateToken` with a role; both are known only by
//! their SHA-256 digests.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tributary_engine::tokens::Role;
use tributary_engine::{Engine, EngineError};

use crate::auth;

/// How a route wants its token.
#[derive(Clone, Copy)]
pub enum Scheme {
    /// `Basic base64("<token>:")`.
    Basic,
    /// `Bearer <token>`.
    Bearer,
}

/// Why a request was refused.
pub enum Denied {
    /// No usable credential (missing or malformed): the message says what to send.
    Unauthenticated(String),
    /// A storage fault while looking the token up.
    Failed(EngineError),
}

pub struct Access {
    engine: Arc<Engine>,
    admin_digests: Vec<[u8; 32]>,
    /// Digest → role of tokens found in the store (tokens are never deleted in this version, so
    /// an entry cannot go stale); unknown digests are not cached.
    roles: Mutex<HashMap<[u8; 32], Role>>,
}

impl Access {
    pub fn new(engine: Arc<Engine>, admin_digests: Vec<[u8; 32]>) -> Self {
        Self {
            engine,
            admin_digests,
            roles: Mutex::new(HashMap::new()),
        }
    }

    /// Checks the `Authorization` header for a token that allows `needed`; returns the token's
    /// digest.
    pub fn check(&self, header: Option<&str>, scheme: Scheme, needed: Role) -> Result<[u8; 32], Denied> {
        let expected = match scheme {
            Scheme::Basic => "'Authorization: Basic base64(<token>:)'",
            Scheme::Bearer => "'Authorization: Bearer <admin token>'",
        };
        let Some(header) = header else {
            return Err(Denied::Unauthenticated(format!(
                "missing access token: send {expected}"
            )));
        };
        let token = token_of(header, scheme)
            .ok_or_else(|| Denied::Unauthenticated(format!("malformed Authorization: expected {expected}")))?;
        let digest = auth::digest(&token);
        let role = self.role(&digest).map_err(Denied::Failed)?;
        match role {
            Some(role) if role.allows(needed) => Ok(digest),
            Some(_) => Err(Denied::Unauthenticated(
                "this token's role does not allow this route (an admin token does)".into(),
            )),
            None => Err(Denied::Unauthenticated("invalid access token".into())),
        }
    }

    fn role(&self, digest: &[u8; 32]) -> Result<Option<Role>, EngineError> {
        // Constant-time comparison is not needed against a digest: it reveals nothing usable.
        if self.admin_digests.contains(digest) {
            return Ok(Some(Role::Admin));
        }
        if let Some(role) = self.roles.lock().get(digest) {
            return Ok(Some(*role));
        }
        let found = self.engine.token_role(digest)?;
        if let Some(role) = found {
            self.roles.lock().insert(*digest, role);
        }
        Ok(found)
    }
}

fn token_of(header: &str, scheme: Scheme) -> Option<String> {
    let (given, value) = header.trim().split_once(' ')?;
    let value = value.trim();
    match scheme {
        Scheme::Bearer if given.eq_ignore_ascii_case("bearer") && !value.is_empty() => Some(value.to_owned()),
        Scheme::Basic => auth::key_from_header(header).ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    #[test]
    fn tokens_come_from_the_scheme_the_route_wants() {
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("tok:"));
        assert_eq!(token_of(&basic, Scheme::Basic).as_deref(), Some("tok"));
        assert_eq!(token_of(&basic, Scheme::Bearer), None);
        assert_eq!(token_of("Bearer tok", Scheme::Bearer).as_deref(), Some("tok"));
        assert_eq!(token_of("Bearer ", Scheme::Bearer), None);
        assert_eq!(token_of("Basic !!", Scheme::Basic), None);
    }
}
