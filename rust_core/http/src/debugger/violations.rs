//! The debugger's Violations tab reads `GET /debugger/api/violations?since_ms=…`: the
//! tracking-plan violations of every source (`AdminService.ListViolations`), most frequent first,
//! each with its counts per hour, so a data team sees what breaks their plan as it happens.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::Response;
use prost::Message;
use serde_json::json;
use tributary_engine::event_json::iso8601_ms;
use tributary_engine::proto::{ListViolationsRequest, ListViolationsResponse};
use tributary_engine::{time, EngineError};

use super::{blocking_json, Debugger};

/// The window shown when the page does not say (Segment's default view: the last 24 hours).
const DEFAULT_WINDOW_MS: i64 = 24 * 3_600_000;

pub(super) async fn violations(
    State(debugger): State<Arc<Debugger>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let since_ms = params
        .get("since_ms")
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or_else(|| time::now_ms() - DEFAULT_WINDOW_MS);
    blocking_json(&debugger, move |debugger| {
        let request = ListViolationsRequest {
            since_ms,
            limit: 500,
            ..Default::default()
        };
        let reply = debugger.engine.list_violations(&request.encode_to_vec())?;
        let listed = ListViolationsResponse::decode(reply.as_slice())
            .map_err(|e| EngineError::Storage(format!("violations did not decode: {e}")))?;
        let violations: Vec<_> = listed
            .violations
            .iter()
            .map(|v| {
                json!({
                    "source": v.source,
                    "event": v.event,
                    "field": v.field,
                    "type": v.r#type,
                    "rule": v.rule,
                    "description": v.description,
                    "example": v.example,
                    "count": v.count,
                    "total": v.total,
                    "first_seen": iso8601_ms(v.first_seen_ms),
                    "last_seen": iso8601_ms(v.last_seen_ms),
                    "hours": v.hours.iter().map(|h| json!([iso8601_ms(h.hour_ms), h.count])).collect::<Vec<_>>(),
                })
            })
            .collect();
        Ok(json!({"violations": violations, "since": iso8601_ms(since_ms), "now": iso8601_ms(time::now_ms())}))
    })
    .await
}
