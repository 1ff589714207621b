//! The debugger: a page (`/debugger`, plain HTML/CSS/JS compiled into the binary: no build
//! step, no CDN, works offline) and the JSON and server-sent-event routes it reads, each behind
//! an admin token (`Authorization: Bearer`, checked by `access::enforce` from the port's route
//! table before a handler runs): the live stream of stored and rejected events, an
//! event's identity decision, the rejected store, per-source counters, the saved audiences
//! (`audiences`), tracking-plan violations (`violations`) and predictions with their quality
//! reports and charts (`predictions`).

mod audiences;
mod predictions;
mod violations;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use prost::Message;
use serde_json::{json, Value};
use tributary_engine::event_detail::EventDetail;
use tributary_engine::event_json::{event_json, iso8601};
use tributary_engine::proto::{self, RejectedEvent};
use tributary_engine::reads::TailFilter;
use tributary_engine::{Engine, EngineError};

use crate::api_error::ApiError;

/// Events the stream starts with when the page does not say where to resume.
const BACKLOG: u64 = 50;
/// How long one wait for new events lasts: also how soon a rejection reaches the stream.
const POLL: Duration = Duration::from_millis(500);

pub struct Debugger {
    engine: Arc<Engine>,
    /// Source names by id (sources are never renamed or deleted in this version).
    names: Mutex<HashMap<u32, String>>,
}

impl Debugger {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self {
            engine,
            names: Mutex::new(HashMap::new()),
        }
    }

    fn source_name(&self, id: u32) -> String {
        if let Some(name) = self.names.lock().get(&id) {
            return name.clone();
        }
        if let Ok(sources) = self.sources() {
            let mut names = self.names.lock();
            for source in sources {
                names.insert(source.id, source.name);
            }
        }
        self.names.lock().get(&id).cloned().unwrap_or_default()
    }

    fn sources(&self) -> Result<Vec<proto::Source>, EngineError> {
        let reply = self.engine.list_sources(&[])?;
        let sources = proto::ListSourcesResponse::decode(reply.as_slice())
            .map_err(|e| EngineError::Storage(format!("sources did not decode: {e}")))?;
        Ok(sources.sources)
    }

    fn event_message(&self, seq: u64, source_id: u32, event: &proto::Event) -> Value {
        json!({"seq": seq, "source_id": source_id, "source": self.source_name(source_id), "event": event_json(event)})
    }

    fn rejected_record(&self, record: &RejectedEvent) -> Value {
        json!({
            "id": record.id,
            "source_id": record.source_id,
            "source": self.source_name(record.source_id),
            "received_at": record.received_at.as_ref().map(iso8601),
            "message_id": record.message_id,
            "field": record.field,
            "reason": record.reason,
            "event": record.event.as_ref().map(event_json),
            "raw": (!record.raw.is_empty()).then(|| String::from_utf8_lossy(&record.raw).into_owned()),
        })
    }
}

const PAGE: &str = include_str!("../static/debugger.html");
const SCRIPT: &str = include_str!("../static/debugger.js");
const STYLE: &str = include_str!("../static/debugger.css");
/// The Audiences tab: its own file, loaded after debugger.js and using what that one exposes.
const AUDIENCES_SCRIPT: &str = include_str!("../static/debugger-audiences.js");
/// The Violations tab, likewise.
const VIOLATIONS_SCRIPT: &str = include_str!("../static/debugger-violations.js");
/// The Predictions tab, likewise.
const PREDICTIONS_SCRIPT: &str = include_str!("../static/debugger-predictions.js");

pub fn router(debugger: Arc<Debugger>) -> Router {
    let file = |body: &'static str, kind: &'static str| {
        get(move || async move {
            (
                [(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "no-cache")],
                body,
            )
        })
    };
    Router::new()
        .route("/debugger", file(PAGE, "text/html; charset=utf-8"))
        .route("/debugger/debugger.js", file(SCRIPT, "text/javascript; charset=utf-8"))
        .route("/debugger/debugger.css", file(STYLE, "text/css; charset=utf-8"))
        .route(
            "/debugger/debugger-audiences.js",
            file(AUDIENCES_SCRIPT, "text/javascript; charset=utf-8"),
        )
        .route(
            "/debugger/debugger-violations.js",
            file(VIOLATIONS_SCRIPT, "text/javascript; charset=utf-8"),
        )
        .route(
            "/debugger/debugger-predictions.js",
            file(PREDICTIONS_SCRIPT, "text/javascript; charset=utf-8"),
        )
        .route("/debugger/api/stream", get(stream))
        .route("/debugger/api/sources", get(sources))
        .route("/debugger/api/rejected", get(rejected))
        .route("/debugger/api/events/{seq}", get(event))
        .route("/debugger/api/audiences", get(audiences::audiences))
        .route("/debugger/api/violations", get(violations::violations))
        .route("/debugger/api/predictions", get(predictions::predictions))
        .route("/debugger/api/predictions/{key}/report", get(predictions::report))
        .route(
            "/debugger/api/predictions/{key}/calibration.png",
            get(predictions::calibration_chart),
        )
        .route(
            "/debugger/api/predictions/{key}/gains.png",
            get(predictions::gains_chart),
        )
        .with_state(debugger)
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(status, code, message)
}

fn engine_error(err: EngineError) -> ApiError {
    match err {
        EngineError::NotFound(why) => error(StatusCode::NOT_FOUND, "not_found", why),
        EngineError::InvalidRequest(why) => error(StatusCode::BAD_REQUEST, "validation_error", why),
        other => error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", other.to_string()),
    }
}

/// Runs an engine read on a blocking thread and answers its JSON.
async fn blocking_json(
    debugger: &Arc<Debugger>,
    read: impl FnOnce(&Debugger) -> Result<Value, EngineError> + Send + 'static,
) -> Response {
    let debugger = Arc::clone(debugger);
    match tokio::task::spawn_blocking(move || read(&debugger)).await {
        Ok(Ok(body)) => axum::Json(body).into_response(),
        Ok(Err(err)) => engine_error(err).into_response(),
        Err(_) => error(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "the read failed").into_response(),
    }
}

fn number<T: std::str::FromStr>(params: &HashMap<String, String>, name: &str) -> Result<Option<T>, ApiError> {
    match params.get(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                "validation_error",
                format!("{name} must be a number, got {text:?}"),
            )
        }),
    }
}

async fn sources(State(debugger): State<Arc<Debugger>>) -> Response {
    blocking_json(&debugger, |debugger| {
        let stored = debugger.engine.stats().stored_by_source.lock().clone();
        let mut rejected: HashMap<u32, u64> = HashMap::new();
        for count in debugger.engine.rejection_counts(0)? {
            *rejected.entry(count.source_id).or_default() += count.count;
        }
        let sources: Vec<Value> = debugger
            .sources()?
            .into_iter()
            .map(|source| {
                json!({
                    "id": source.id,
                    "name": source.name,
                    "received": stored.get(&source.id).copied().unwrap_or(0),
                    "rejected": rejected.get(&source.id).copied().unwrap_or(0),
                })
            })
            .collect();
        Ok(json!({"sources": sources}))
    })
    .await
}

async fn rejected(State(debugger): State<Arc<Debugger>>, Query(params): Query<HashMap<String, String>>) -> Response {
    let (source, limit) = match (number::<u32>(&params, "source"), number::<usize>(&params, "limit")) {
        (Ok(source), Ok(limit)) => (source.unwrap_or(0), limit.unwrap_or(0)),
        (Err(failure), _) | (_, Err(failure)) => return failure.into_response(),
    };
    blocking_json(&debugger, move |debugger| {
        let (records, _) = debugger.engine.rejected(source, 0, limit)?;
        let records: Vec<Value> = records.iter().map(|r| debugger.rejected_record(r)).collect();
        let counts: Vec<Value> = debugger
            .engine
            .rejection_counts(source)?
            .into_iter()
            .map(|c| {
                json!({
                    "source_id": c.source_id,
                    "source": debugger.source_name(c.source_id),
                    "field": c.field,
                    "reason": c.reason,
                    "count": c.count,
                })
            })
            .collect();
        Ok(json!({"rejected": records, "counts": counts}))
    })
    .await
}

async fn event(State(debugger): State<Arc<Debugger>>, Path(seq): Path<String>) -> Response {
    let Ok(seq) = seq.parse::<u64>() else {
        return error(
            StatusCode::BAD_REQUEST,
            "validation_error",
            format!("an event is named by its number, got {seq:?}"),
        )
        .into_response();
    };
    blocking_json(&debugger, move |debugger| {
        let EventDetail {
            seq,
            source_id,
            event,
            identity,
        } = debugger.engine.event_detail(seq)?;
        let identity = identity.map(|identity| {
            let identifiers: Vec<Value> = identity
                .identifiers
                .iter()
                .map(|i| {
                    json!({
                        "type": i.r#type,
                        "value": i.value,
                        "first_message_id": i.first_message_id,
                        "first_seen": i.first_seen.as_ref().map(iso8601),
                    })
                })
                .collect();
            let merges: Vec<Value> = identity
                .merges
                .iter()
                .map(|m| {
                    json!({
                        "survivor_id": m.survivor_id,
                        "merged_id": m.merged_id,
                        "message_id": m.message_id,
                        "timestamp": m.timestamp.as_ref().map(iso8601),
                    })
                })
                .collect();
            let refused: Vec<Value> = identity
                .refused
                .iter()
                .map(|(identifier, reason)| json!({"identifier": identifier, "reason": reason}))
                .collect();
            json!({
                "profile_id": identity.profile_id,
                "identifiers": identifiers,
                "new_identifiers": identity.new_identifiers,
                "merges": merges,
                "refused": refused,
                "decision": identity.decision,
            })
        });
        let mut body = debugger.event_message(seq, source_id, &event);
        body["identity"] = identity.unwrap_or(Value::Null);
        // Destinations come with Connections: none deliver yet.
        body["deliveries"] = json!([]);
        Ok(body)
    })
    .await
}

/// Server-sent events: the last `BACKLOG` stored events (or those after `?after=`), then every
/// event as it is committed (`event: event`) and every rejection as it is kept
/// (`event: rejected`). A blocking thread per open page follows the log; it stops when the page
/// goes away.
async fn stream(State(debugger): State<Arc<Debugger>>, Query(params): Query<HashMap<String, String>>) -> Response {
    let after = match number::<u64>(&params, "after") {
        Ok(after) => after,
        Err(failure) => return failure.into_response(),
    };
    let (sender, receiver) = tokio::sync::mpsc::channel::<SseEvent>(256);
    let feeding = Arc::clone(&debugger);
    tokio::task::spawn_blocking(move || {
        if let Err(err) = feed(&feeding, after, &sender) {
            log::warn!("a debugger stream stopped: {err}");
        }
    });
    let events = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver
            .recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), receiver))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)).text("keep-alive"))
        .into_response()
}

fn feed(
    debugger: &Debugger,
    after: Option<u64>,
    sender: &tokio::sync::mpsc::Sender<SseEvent>,
) -> Result<(), EngineError> {
    let engine = &debugger.engine;
    let mut position = after.unwrap_or_else(|| engine.last_seq().saturating_sub(BACKLOG));
    let mut rejected_seen = engine.last_rejected_id();
    let filter = TailFilter::default();
    while !sender.is_closed() && engine.is_open() {
        let (events, next) = engine.tail_events(position, 500, &filter, POLL)?;
        position = next;
        for (seq, source_id, event) in events {
            let data = debugger.event_message(seq, source_id, &event).to_string();
            let message = SseEvent::default().id(seq.to_string()).event("event").data(data);
            if sender.blocking_send(message).is_err() {
                return Ok(());
            }
        }
        let last = engine.last_rejected_id();
        if last > rejected_seen {
            let (mut records, _) = engine.rejected(0, 0, (last - rejected_seen) as usize)?;
            records.retain(|r| r.id > rejected_seen);
            records.reverse(); // oldest first, as they happened
            for record in &records {
                let data = debugger.rejected_record(record).to_string();
                if sender
                    .blocking_send(SseEvent::default().event("rejected").data(data))
                    .is_err()
                {
                    return Ok(());
                }
            }
            rejected_seen = last;
        }
    }
    Ok(())
}
