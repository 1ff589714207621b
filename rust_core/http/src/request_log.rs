//! A `Request-Id` header on every response (Segment's Profile API sets one), and, when asked
//! (`cdp serve --log-requests`), one log line per request with that id: method, path, status and
//! duration. The lines are written here, in the server's log format (JSON lines, as the Python
//! side's, or text), without passing through Python's logging: no GIL per request.

use std::hash::{BuildHasher, RandomState};
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

/// How request lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// Different in every process, so ids of two runs do not collide.
static PROCESS: LazyLock<u64> = LazyLock::new(|| RandomState::new().hash_one(std::process::id()));
static NEXT: AtomicU64 = AtomicU64::new(1);

/// The next id: the process's 16 hex digits, then the request's number.
pub fn next() -> String {
    format!("{:016x}-{:x}", *PROCESS, NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The request log's setting: None, no lines.
pub struct RequestLog(pub Option<LogFormat>);

pub async fn add(State(log): State<Arc<RequestLog>>, request: Request, next_layer: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = log.0.map(|_| loggable_path(request.uri().path()));
    let mut response = next_layer.run(request).await;
    let id = next();
    if let (Some(format), Some(path)) = (log.0, path) {
        let line = line(format, &id, method.as_str(), &path, response.status().as_u16(), started);
        // A failed write to stderr has nowhere better to be reported.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("request-id", value);
    }
    response
}

/// The path as logged: a webhook source's key (the segment after `/v1/webhook/{source}/`) is a
/// credential, so it is replaced by `***`.
fn loggable_path(path: &str) -> String {
    if let Some(rest) = path.strip_prefix("/v1/webhook/") {
        if let Some((source, _key)) = rest.split_once('/') {
            return format!("/v1/webhook/{source}/***");
        }
    }
    path.to_owned()
}

fn line(format: LogFormat, id: &str, method: &str, path: &str, status: u16, started: Instant) -> String {
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let now = chrono::Utc::now();
    match format {
        LogFormat::Json => {
            let entry = json!({
                "ts": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "level": "info",
                "logger": "tributary.http",
                "msg": "request",
                "request_id": id,
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": (ms * 1000.0).round() / 1000.0,
            });
            format!("{entry}\n")
        }
        LogFormat::Text => format!(
            "{} INFO tributary.http: {method} {path} {status} {ms:.3} ms request_id={id}\n",
            now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_within_a_process() {
        let (a, b) = (next(), next());
        assert_ne!(a, b);
        assert_eq!(a.split('-').next(), b.split('-').next(), "same process part");
    }

    #[test]
    fn a_json_line_is_one_object_with_the_requests_fields() {
        let text = line(LogFormat::Json, "id-1", "GET", "/health", 200, Instant::now());
        assert!(text.ends_with('\n') && text.matches('\n').count() == 1);
        let entry: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(entry["request_id"], "id-1");
        assert_eq!(entry["status"], 200);
        assert_eq!(entry["path"], "/health");
        assert!(entry["duration_ms"].as_f64().unwrap() >= 0.0);
        let text = line(LogFormat::Text, "id-2", "POST", "/v1/batch", 429, Instant::now());
        assert!(text.contains(" POST /v1/batch 429 ") && text.contains("request_id=id-2"));
    }

    #[test]
    fn a_webhook_sources_key_is_not_logged() {
        assert_eq!(loggable_path("/v1/webhook/stripe/secret-key"), "/v1/webhook/stripe/***");
        assert_eq!(loggable_path("/v1/webhook/stripe"), "/v1/webhook/stripe");
        assert_eq!(loggable_path("/v1/track"), "/v1/track");
    }
}
