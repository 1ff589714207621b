//! `GET /health`: for load balancers and operators, without credentials. 200 while the engine
//! takes events, 503 once it is shutting down; the body says how far storage and the identifier
//! index have got.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::json;
use tributary_engine::Engine;

pub fn router(engine: Arc<Engine>) -> Router {
    Router::new().route("/health", get(health)).with_state(engine)
}

async fn health(State(engine): State<Arc<Engine>>) -> Response {
    let checked = tokio::task::spawn_blocking(move || {
        let lag = engine.index_lag()?;
        let stats = engine.stats();
        let storage = json!({
            "events": engine.last_seq(),
            "map_bytes": engine.map_size(),
            "map_grows": stats.map_grows.load(std::sync::atomic::Ordering::Relaxed),
        });
        Ok::<_, tributary_engine::EngineError>((engine.is_open(), lag, storage))
    })
    .await;
    match checked {
        Ok(Ok((open, lag, storage))) => {
            let status = if open {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            let body = json!({
                "status": if open { "serving" } else { "shutting_down" },
                "ingest": if open { "ok" } else { "closed" },
                "storage": storage,
                "index": {"unflushed_events": lag},
            });
            (status, axum::Json(body)).into_response()
        }
        Ok(Err(err)) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "failing", "error": err.to_string()})),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
