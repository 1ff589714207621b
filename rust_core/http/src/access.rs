//! Who may call which route: `ROUTES`, the one table of every route of the port and what it
//! needs, and `enforce`, the one middleware that checks it before any handler runs.
//!
//! Credentials: a source's write key (the Tracking API; a webhook source's key opens its
//! webhook route only), an access token with a role made by `AdminService.CreateToken`, or one
//! of the server's configured admin tokens (role admin). The secret's SHA-256 digest is looked
//! up through `Engine::credential`, whose cache forgets every answer when a token is revoked or
//! a key retired, so a revoked credential stops working at once here too.
//!
//! Answers: no credential, a malformed one or one that is not (or no longer) valid: 401; a valid
//! credential that this route does not take (a write key on a read route, a read token on the
//! debugger, an access token on the Tracking API): 403, naming what the route needs. Never the
//! secret.
//!
//! Routes whose credential is not in a header alone check it in their handler, through
//! `Access::write_key_source`: the Tracking API (its write key may be in the JSON body) and
//! webhook sources (a key in the path or a signature over the body). A route whose path is not
//! in the table is refused (403) and logged: a route added without an entry fails closed.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tributary_engine::credentials::Credential;
use tributary_engine::tokens::Role;
use tributary_engine::{Engine, EngineError};

use crate::api_error::ApiError;
use crate::auth;

/// What a route needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing: health, metrics, the debugger's static page, CORS preflights.
    Public,
    /// A source's write key (Basic, or `writeKey` in the body), checked by the handler.
    WriteKey,
    /// A webhook source's key in the path or its signing secret's signature, checked by the
    /// handler.
    WebhookSource,
    /// An access token allowing this role (admin allows all), as Basic's user name or Bearer.
    Token(Role),
}

/// One route of the port.
#[derive(Clone, Copy, Debug)]
pub struct RouteRule {
    pub method: &'static str,
    /// The path as registered with the router (axum's `{param}` syntax).
    pub path: &'static str,
    pub need: Need,
}

const fn rule(method: &'static str, path: &'static str, need: Need) -> RouteRule {
    RouteRule { method, path, need }
}

/// Every route of the port and what it needs.
pub const ROUTES: &[RouteRule] = &[
    // Segment's Tracking API.
    rule("POST", "/v1/{call}", Need::WriteKey),
    rule("OPTIONS", "/v1/{call}", Need::Public),
    // Webhook sources.
    rule("POST", "/v1/webhook/{source}", Need::WebhookSource),
    rule("POST", "/v1/webhook/{source}/{key}", Need::WebhookSource),
    // Segment's Profile API.
    rule(
        "GET",
        "/v1/spaces/{space}/collections/{collection}/profiles/{lookup}/{what}",
        Need::Token(Role::Read),
    ),
    // The debugger: its page is public (it asks for the token); its data is admin's.
    rule("GET", "/debugger", Need::Public),
    rule("GET", "/debugger/debugger.js", Need::Public),
    rule("GET", "/debugger/debugger.css", Need::Public),
    rule("GET", "/debugger/debugger-audiences.js", Need::Public),
    rule("GET", "/debugger/debugger-violations.js", Need::Public),
    rule("GET", "/debugger/debugger-predictions.js", Need::Public),
    rule("GET", "/debugger/api/stream", Need::Token(Role::Admin)),
    rule("GET", "/debugger/api/sources", Need::Token(Role::Admin)),
    rule("GET", "/debugger/api/rejected", Need::Token(Role::Admin)),
    rule("GET", "/debugger/api/violations", Need::Token(Role::Admin)),
    rule("GET", "/debugger/api/events/{seq}", Need::Token(Role::Admin)),
    rule("GET", "/debugger/api/audiences", Need::Token(Role::Admin)),
    rule("GET", "/debugger/api/predictions", Need::Token(Role::Admin)),
    rule(
        "GET",
        "/debugger/api/predictions/{key}/report",
        Need::Token(Role::Admin),
    ),
    rule(
        "GET",
        "/debugger/api/predictions/{key}/calibration.png",
        Need::Token(Role::Admin),
    ),
    rule(
        "GET",
        "/debugger/api/predictions/{key}/gains.png",
        Need::Token(Role::Admin),
    ),
    // Operations.
    rule("GET", "/health", Need::Public),
    rule("GET", "/metrics", Need::Public),
];

/// What `ROUTES` says of a request: `None` when its path is not in the table at all,
/// `Some(None)` when the path is but this method is not (the router answers 405).
pub fn need_of(method: &str, path: &str) -> Option<Option<Need>> {
    let mut rules = ROUTES.iter().filter(|rule| rule.path == path).peekable();
    rules.peek()?;
    Some(rules.find(|rule| rule.method == method).map(|rule| rule.need))
}

/// Why a request was refused.
pub enum Denied {
    /// 401: no usable credential (missing, malformed, unknown, revoked).
    Unauthenticated(String),
    /// 403: a valid credential this route does not take.
    Forbidden(String),
    /// A storage fault while looking the credential up.
    Failed(EngineError),
}

/// The caller of a token route, for its handler (the Profile API's rate bucket).
#[derive(Clone, Copy)]
pub struct Authorized {
    pub digest: [u8; 32],
}

pub struct Access {
    engine: Arc<Engine>,
    admin_digests: Vec<[u8; 32]>,
}

impl Access {
    pub fn new(engine: Arc<Engine>, admin_digests: Vec<[u8; 32]>) -> Self {
        Self { engine, admin_digests }
    }

    /// The role a secret's digest carries: `Ok(Err(credential))` for a valid credential that is
    /// not a token (a write key).
    fn role(&self, digest: &[u8; 32]) -> Result<Option<Result<Role, Credential>>, EngineError> {
        // Constant-time comparison is not needed against a digest: it reveals nothing usable.
        if self.admin_digests.contains(digest) {
            return Ok(Some(Ok(Role::Admin)));
        }
        Ok(self.engine.credential(digest)?.map(|credential| match credential {
            Credential::Token { role, .. } => Ok(role),
            other => Err(other),
        }))
    }

    /// Checks an `Authorization` header (`Basic base64("<token>:")` or `Bearer <token>`) for a
    /// token allowing `needed`.
    pub fn check_token(&self, header: Option<&str>, needed: Role) -> Result<Authorized, Denied> {
        let expected = "'Authorization: Basic base64(<token>:)' or 'Authorization: Bearer <token>'";
        let Some(header) = header else {
            return Err(Denied::Unauthenticated(format!(
                "missing access token (role {} or admin): send {expected}",
                needed.name()
            )));
        };
        let token = token_of(header)
            .ok_or_else(|| Denied::Unauthenticated(format!("malformed Authorization: expected {expected}")))?;
        let digest = auth::digest(&token);
        match self.role(&digest).map_err(Denied::Failed)? {
            Some(Ok(role)) if role.allows(needed) => Ok(Authorized { digest }),
            Some(Ok(role)) => Err(Denied::Forbidden(format!(
                "this route needs an access token of role {} (or admin); this token's role is {}",
                needed.name(),
                role.name()
            ))),
            Some(Err(_)) => Err(Denied::Forbidden(format!(
                "this route needs an access token of role {} (or admin): a write key only sends events",
                needed.name()
            ))),
            // Unknown and revoked alike: the message tells a caller nothing about which.
            None => Err(Denied::Unauthenticated("invalid access token".into())),
        }
    }

    /// The source whose write key `key` is, if it takes Segment events (the Tracking API).
    pub fn write_key_source(&self, key: &str) -> Result<u32, Denied> {
        let digest = auth::digest(key);
        match self.role(&digest).map_err(Denied::Failed)? {
            Some(Err(Credential::WriteKey { source, events: true })) => Ok(source),
            Some(Err(_)) => Err(Denied::Forbidden(
                "this is a webhook source's key: it opens its webhook route (/v1/webhook/...) only".into(),
            )),
            Some(Ok(_)) => Err(Denied::Forbidden(
                "this is an access token: sending events takes a source's write key".into(),
            )),
            None => Err(Denied::Unauthenticated(
                "invalid write key: no source has this key (or it was retired)".into(),
            )),
        }
    }
}

/// The token of `Bearer <token>` or `Basic base64("<token>:")`.
fn token_of(header: &str) -> Option<String> {
    let (scheme, value) = header.trim().split_once(' ')?;
    let value = value.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return (!value.is_empty()).then(|| value.to_owned());
    }
    auth::key_from_header(header).ok()
}

/// The middleware: checks each request against `ROUTES` before its handler runs.
pub async fn enforce(State(access): State<Arc<Access>>, mut request: Request, next: Next) -> Response {
    let Some(path) = request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()) else {
        return next.run(request).await; // no route: the router's 404
    };
    let need = match need_of(request.method().as_str(), &path) {
        None => {
            log::error!("HTTP route {path} is not in the access table (access::ROUTES): refused");
            return ApiError::new(StatusCode::FORBIDDEN, "forbidden", "this route is not open").into_response();
        }
        Some(None) => return next.run(request).await, // the router's 405
        Some(Some(need)) => need,
    };
    let Need::Token(role) = need else {
        return next.run(request).await; // public, or checked by the handler (see the table)
    };
    let header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match access.check_token(header, role) {
        Ok(authorized) => {
            request.extensions_mut().insert(authorized);
            next.run(request).await
        }
        Err(denied) => denied_answer(denied).into_response(),
    }
}

/// The read routes' error for a refusal.
pub fn denied_answer(denied: Denied) -> ApiError {
    match denied {
        Denied::Unauthenticated(why) => ApiError::new(StatusCode::UNAUTHORIZED, "authentication_error", why),
        Denied::Forbidden(why) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", why),
        Denied::Failed(err) => {
            log::error!("a credential lookup failed: {err}");
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "the credential lookup failed",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;

    use super::*;

    #[test]
    fn tokens_come_as_bearer_or_as_basic_user_name() {
        let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("tok:"));
        assert_eq!(token_of(&basic).as_deref(), Some("tok"));
        assert_eq!(token_of("Bearer tok").as_deref(), Some("tok"));
        assert_eq!(token_of("Bearer "), None);
        assert_eq!(token_of("Basic !!"), None);
        assert_eq!(token_of("Digest x"), None);
    }

    #[test]
    fn every_route_the_modules_register_is_in_the_table() {
        // The routers are built from literal paths in these files: each `.route("...")` must
        // have an entry (at runtime a missing one is refused; this says so at test time).
        let sources = [
            include_str!("lib.rs"),
            include_str!("tracking.rs"),
            include_str!("profile_api.rs"),
            include_str!("debugger.rs"),
            include_str!("health.rs"),
            include_str!("webhook_sources.rs"),
        ];
        let mut registered = Vec::new();
        for source in sources {
            let mut rest = source;
            while let Some(at) = rest.find(".route(") {
                rest = &rest[at + ".route(".len()..];
                let literal = rest.trim_start();
                if let Some(literal) = literal.strip_prefix('"') {
                    registered.push(literal[..literal.find('"').unwrap()].to_owned());
                }
            }
        }
        assert!(registered.len() >= 14, "found the routes: {registered:?}");
        for path in &registered {
            assert!(
                ROUTES.iter().any(|rule| rule.path == path),
                "route {path} is registered but not in access::ROUTES"
            );
        }
        for rule in ROUTES {
            assert!(
                registered.iter().any(|path| path == rule.path),
                "access::ROUTES lists {} {}, which no router registers",
                rule.method,
                rule.path
            );
        }
    }

    #[test]
    fn the_table_answers_by_path_and_method() {
        assert_eq!(need_of("POST", "/v1/{call}"), Some(Some(Need::WriteKey)));
        assert_eq!(need_of("GET", "/v1/{call}"), Some(None));
        assert_eq!(need_of("GET", "/nowhere"), None);
        assert_eq!(
            need_of("GET", "/debugger/api/sources"),
            Some(Some(Need::Token(Role::Admin)))
        );
    }
}
