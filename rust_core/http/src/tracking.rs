//! Segment's Tracking API: `POST /v1/track|identify|page|screen|group|alias` (one message) and
//! `/v1/batch|import` (`{"batch": [...], "context", "integrations", "sentAt"}`). A request's
//! bytes go to the engine's JSON entry point in one call, the same one gRPC's JSON form uses, on
//! a blocking thread (validation, then the wait for the durable, resolved acknowledgement).
//!
//! Answers as Segment's: `200 {"success": true}`; `400 {"code", "message"}` for a body that is
//! not JSON or is too large; `401` for a missing or unknown write key; `403` for a credential
//! that is not a source's write key (an access token, a webhook source's key); `429` with
//! `Retry-After` past the source's rate limit (one bucket per source, shared with gRPC). Unlike Segment, the 200 also lists the messages refused
//! (`rejected`, each with the field and the reason) instead of dropping them silently. CORS is
//! open: browsers post cross-origin (analytics.js).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::json;
use tributary_engine::proto::EventType;
use tributary_engine::segment_json::JsonOptions;
use tributary_engine::{Engine, EngineError};

use crate::access::{Access, Denied};
use crate::auth;
use crate::body::{self, BodyError, Limits};

/// What the routes share.
pub struct Tracking {
    engine: Arc<Engine>,
    limits: Limits,
    /// Write keys are looked up through the port's access checks (and the engine's cache,
    /// which forgets retired keys at once).
    access: Arc<Access>,
}

impl Tracking {
    pub fn new(engine: Arc<Engine>, limits: Limits, access: Arc<Access>) -> Self {
        Self { engine, limits, access }
    }
}

pub fn router(tracking: Arc<Tracking>) -> Router {
    Router::new()
        .route("/v1/{call}", post(ingest).options(preflight))
        .with_state(tracking)
}

/// The call a route names; `None` for a batch (each message names its own `type`).
fn route(call: &str) -> Option<Option<EventType>> {
    Some(Some(match call {
        "track" => EventType::Track,
        "identify" => EventType::Identify,
        "page" => EventType::Page,
        "screen" => EventType::Screen,
        "group" => EventType::Group,
        "alias" => EventType::Alias,
        "batch" | "import" => return Some(None),
        _ => return None,
    }))
}

async fn ingest(
    State(tracking): State<Arc<Tracking>>,
    Path(call): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let origin = headers.get(header::ORIGIN).cloned();
    let answer = answer(&tracking, &call, &headers, body).await;
    with_cors(answer, origin)
}

async fn answer(tracking: &Arc<Tracking>, call: &str, headers: &HeaderMap, body: Body) -> Response {
    let Some(route_type) = route(call) else {
        return error(StatusCode::NOT_FOUND, "not_found", format!("no route /v1/{call}"));
    };
    let limit = match route_type {
        Some(_) => tracking.limits.message_bytes,
        None => tracking.limits.batch_bytes,
    };
    let data = match request_body(body, headers, tracking.limits.batch_bytes, limit).await {
        Ok(data) => data,
        Err(response) => return response,
    };
    let write_key =
        match headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or_default())
        {
            Some(header) => match auth::key_from_header(header) {
                Ok(key) => key,
                Err(why) => return error(StatusCode::UNAUTHORIZED, "unauthorized", why),
            },
            None => match auth::key_from_body(&data) {
                Some(key) => key,
                None => return error(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "missing write key: send 'Authorization: Basic base64(<write key>:)' or \"writeKey\" in the body",
                ),
            },
        };
    let tracking = Arc::clone(tracking);
    let submitted = tokio::task::spawn_blocking(move || {
        let source = match tracking.access.write_key_source(&write_key) {
            Ok(source) => source,
            Err(Denied::Failed(err)) => return Err(err),
            Err(denied) => return Ok(Submitted::Refused(denied)),
        };
        if let Err(wait_s) = tracking.engine.admit_source(source) {
            return Ok(Submitted::RateLimited(wait_s));
        }
        let options = JsonOptions {
            route_type,
            ..JsonOptions::default()
        };
        tracking
            .engine
            .submit_json(source, &data, &options)?
            .wait()
            .map(Submitted::Done)
    })
    .await;
    match submitted {
        Ok(Ok(Submitted::Done(outcome))) => (StatusCode::OK, axum::Json(accepted(&outcome))).into_response(),
        Ok(Ok(Submitted::Refused(Denied::Forbidden(why)))) => error(StatusCode::FORBIDDEN, "forbidden", why),
        Ok(Ok(Submitted::Refused(Denied::Unauthenticated(why)))) => {
            error(StatusCode::UNAUTHORIZED, "unauthorized", why)
        }
        Ok(Ok(Submitted::Refused(Denied::Failed(err)))) => engine_failure(err),
        Ok(Ok(Submitted::RateLimited(wait_s))) => rate_limited(wait_s),
        Ok(Err(err)) => engine_failure(err),
        Err(err) => task_failure(&err),
    }
}

/// A request's body, decompressed, at most `limit` bytes; `read_limit` bounds the raw bytes read
/// (the largest route's limit whatever the route: compressed JSON is smaller). `Err`: the 400.
pub(crate) async fn request_body(
    body: Body,
    headers: &HeaderMap,
    read_limit: usize,
    limit: usize,
) -> Result<Vec<u8>, Response> {
    let Ok(raw) = axum::body::to_bytes(body, read_limit + 1).await else {
        return Err(too_large(read_limit));
    };
    let encoding = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok());
    body::decoded(&raw, encoding, limit).map_err(|err| match err {
        BodyError::TooLarge { limit } => too_large(limit),
        BodyError::BadGzip => error(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "the gzip body could not be decompressed",
        ),
        BodyError::UnknownEncoding(name) => error(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("unsupported Content-Encoding {name:?} (gzip or none)"),
        ),
    })
}

/// The 200 answer's body: `{"success": true}`, and the messages refused, if any.
pub(crate) fn accepted(outcome: &tributary_engine::ingest::BatchOutcome) -> serde_json::Value {
    let mut reply = json!({"success": true});
    if !outcome.rejections.is_empty() {
        reply["rejected"] = outcome
            .rejections
            .iter()
            .map(|r| json!({"index": r.index, "messageId": r.message_id, "field": r.field, "reason": r.reason}))
            .collect();
    }
    reply
}

/// 429 with `Retry-After` (seconds), as Segment's clients expect.
pub(crate) fn rate_limited(wait_s: u64) -> Response {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("this source is over its rate limit: retry in {wait_s} s"),
    );
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from(wait_s));
    headers.insert("x-ratelimit-reset", HeaderValue::from(wait_s));
    response
}

/// The answer to an engine error while ingesting.
pub(crate) fn engine_failure(err: EngineError) -> Response {
    match err {
        EngineError::InvalidRequest(why) => error(StatusCode::BAD_REQUEST, "invalid_json", why),
        EngineError::StorageFull(why) => error(StatusCode::INSUFFICIENT_STORAGE, "storage_full", why),
        EngineError::ShutDown => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the server is shutting down",
        ),
        err => {
            log::error!("an HTTP ingest request failed: {err}");
            error(StatusCode::INTERNAL_SERVER_ERROR, "internal", err.to_string())
        }
    }
}

/// The answer when the blocking task itself failed (it panicked).
pub(crate) fn task_failure(err: &tokio::task::JoinError) -> Response {
    log::error!("an HTTP ingest task failed: {err}");
    error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "the request could not be handled",
    )
}

/// What became of a request past its body and key.
enum Submitted {
    Done(tributary_engine::ingest::BatchOutcome),
    Refused(Denied),
    RateLimited(u64),
}

pub(crate) fn too_large(limit: usize) -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "request_too_large",
        format!("the body is over {limit} bytes (after decompression)"),
    )
}

/// Segment's error body: `{"code", "message"}`.
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"code": code, "message": message.into()}))).into_response()
}

/// A browser's preflight of a cross-origin POST.
async fn preflight(headers: HeaderMap) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let out = response.headers_mut();
    out.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    let asked = headers.get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned();
    out.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        asked.unwrap_or(HeaderValue::from_static(
            "Authorization, Content-Type, Content-Encoding",
        )),
    );
    out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
    with_cors(response, headers.get(header::ORIGIN).cloned())
}

/// Allows the calling origin (any: write keys are public in browsers, as Segment's are).
fn with_cors(mut response: Response, origin: Option<HeaderValue>) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        origin.unwrap_or(HeaderValue::from_static("*")),
    );
    headers.insert(header::VARY, HeaderValue::from_static("Origin"));
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    response
}
