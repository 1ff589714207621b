//! Webhook sources: a SaaS tool POSTs its own JSON to `/v1/webhook/{source}/{write key}` (the
//! key in the path, as tools take a bare URL) or to `/v1/webhook/{source}` signed as Standard
//! Webhooks with the source's signing secret. The source's mappings turn the payload into Segment
//! events (the mapping language lives in Python: `WebhookMapper`), which then go to the engine's
//! JSON entry point like a Tracking API batch: the same validation, dedupe and acknowledgement.
//! A mapped event without a messageId gets one derived from its content, so a tool's redelivery
//! of the same payload adds nothing.
//!
//! Answers: `200 {"success": true, "events": n}` (n = 0 when no mapping's trigger matched: the
//! tool must not retry a payload that is simply not wanted), with `rejected` as on the Tracking
//! API; `400` for a payload the mappings cannot read; `401` for a wrong key or signature; `404`
//! for no webhook source of that name; `429` past the source's rate limit.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tributary_engine::proto::{Source, SourceKind};
use tributary_engine::segment_json::JsonOptions;
use tributary_engine::{Engine, EngineError};

use crate::auth;
use crate::body::Limits;
use crate::tracking::{accepted, engine_failure, error, rate_limited, request_body, task_failure};
use crate::webhook_signature::{self, Signed};

/// One payload for the mappings.
pub struct WebhookPayload<'a> {
    pub source: &'a str,
    /// The source's mappings (JSON, as saved).
    pub mappings: &'a str,
    pub body: &'a [u8],
}

/// Why a payload could not become events.
pub enum MapFailure {
    /// The payload (not JSON, or a mapping's output is not an event): a 400 naming the problem.
    BadPayload(String),
    /// Anything else: a 500.
    Internal(String),
}

/// What turns a payload into events: `{"batch": [...]}` JSON and how many events it holds.
pub trait WebhookMapper: Send + Sync {
    fn map(&self, payload: &WebhookPayload<'_>) -> Result<(Vec<u8>, usize), MapFailure>;
}

pub struct WebhookSources {
    engine: Arc<Engine>,
    limits: Limits,
    mapper: Option<Arc<dyn WebhookMapper>>,
}

impl WebhookSources {
    pub fn new(engine: Arc<Engine>, limits: Limits, mapper: Option<Arc<dyn WebhookMapper>>) -> Self {
        Self { engine, limits, mapper }
    }
}

pub fn router(sources: Arc<WebhookSources>) -> Router {
    Router::new()
        .route("/v1/webhook/{source}", post(signed))
        .route("/v1/webhook/{source}/{key}", post(keyed))
        .with_state(sources)
}

/// How a request proves it comes from the source's tool.
enum Proof {
    Key(String),
    Signature {
        id: String,
        timestamp: String,
        signatures: String,
    },
}

async fn keyed(
    State(sources): State<Arc<WebhookSources>>,
    Path((source, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    receive(sources, source, Proof::Key(key), headers, body).await
}

async fn signed(
    State(sources): State<Arc<WebhookSources>>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (Some(id), Some(timestamp), Some(signatures)) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    ) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "unsigned: POST to /v1/webhook/{source}/{write key}, or sign with webhook-id, webhook-timestamp and webhook-signature (Standard Webhooks)",
        );
    };
    let proof = Proof::Signature {
        id,
        timestamp,
        signatures,
    };
    receive(sources, source, proof, headers, body).await
}

/// What became of a payload past its body.
enum Received {
    Done(tributary_engine::ingest::BatchOutcome, usize),
    NoEvents,
    Refused(StatusCode, &'static str, String),
    RateLimited(u64),
}

async fn receive(sources: Arc<WebhookSources>, name: String, proof: Proof, headers: HeaderMap, body: Body) -> Response {
    let limit = sources.limits.batch_bytes;
    let data = match request_body(body, &headers, limit, limit).await {
        Ok(data) => data,
        Err(response) => return response,
    };
    let received = tokio::task::spawn_blocking(move || {
        let Some(source) = sources.engine.source_named(&name)? else {
            return Ok(not_found(&name));
        };
        let Some(webhook) = source
            .webhook
            .as_ref()
            .filter(|_| source.kind == SourceKind::Webhook as i32)
        else {
            return Ok(not_found(&name));
        };
        match &proof {
            Proof::Key(key) => {
                if sources.engine.source_for_key(&auth::digest(key))? != Some(source.id) {
                    return Ok(unauthorized(format!(
                        "this is not the write key of webhook source {name:?}"
                    )));
                }
            }
            Proof::Signature {
                id,
                timestamp,
                signatures,
            } => {
                if webhook.signing_secret.is_empty() {
                    return Ok(unauthorized(format!(
                        "webhook source {name:?} has no signing secret: POST to /v1/webhook/{name}/{{write key}}"
                    )));
                }
                let signed = Signed {
                    id,
                    timestamp,
                    signatures,
                };
                let now = tributary_engine::time::now_ms() / 1000;
                if let Err(why) = webhook_signature::verify(&webhook.signing_secret, &signed, &data, now) {
                    return Ok(unauthorized(why.to_owned()));
                }
            }
        }
        if let Err(wait_s) = sources.engine.admit_source(source.id) {
            return Ok(Received::RateLimited(wait_s));
        }
        map_and_submit(&sources, &source, &webhook.mappings, &data)
    })
    .await;
    match received {
        Ok(Ok(Received::Done(outcome, events))) => {
            let mut reply = accepted(&outcome);
            reply["events"] = events.into();
            (StatusCode::OK, axum::Json(reply)).into_response()
        }
        Ok(Ok(Received::NoEvents)) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"success": true, "events": 0})),
        )
            .into_response(),
        Ok(Ok(Received::Refused(status, code, why))) => error(status, code, why),
        Ok(Ok(Received::RateLimited(wait_s))) => rate_limited(wait_s),
        Ok(Err(err)) => engine_failure(err),
        Err(err) => task_failure(&err),
    }
}

fn map_and_submit(
    sources: &WebhookSources,
    source: &Source,
    mappings: &str,
    data: &[u8],
) -> Result<Received, EngineError> {
    let Some(mapper) = sources.mapper.as_ref() else {
        return Ok(Received::Refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "this server runs without the webhook mapper".to_owned(),
        ));
    };
    let payload = WebhookPayload {
        source: &source.name,
        mappings,
        body: data,
    };
    let (batch, events) = match mapper.map(&payload) {
        Ok(mapped) => mapped,
        Err(MapFailure::BadPayload(why)) => {
            return Ok(Received::Refused(StatusCode::BAD_REQUEST, "invalid_payload", why))
        }
        Err(MapFailure::Internal(why)) => {
            log::error!("mapping a payload of webhook source {:?} failed: {why}", source.name);
            return Ok(Received::Refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the payload could not be mapped".to_owned(),
            ));
        }
    };
    if events == 0 {
        return Ok(Received::NoEvents);
    }
    // An event the mappings gave no messageId gets one derived from its content: a tool delivers
    // again when unsure the first delivery arrived, and the repeat is then deduplicated.
    let options = JsonOptions {
        content_message_ids: true,
        ..JsonOptions::default()
    };
    let outcome = sources.engine.submit_json(source.id, &batch, &options)?.wait()?;
    Ok(Received::Done(outcome, events))
}

fn not_found(name: &str) -> Received {
    Received::Refused(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no webhook source named {name:?}"),
    )
}

fn unauthorized(why: String) -> Received {
    Received::Refused(StatusCode::UNAUTHORIZED, "unauthorized", why)
}
