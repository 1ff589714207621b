//! The debugger's Audiences tab reads `GET /debugger/api/audiences`: every saved audience and
//! computed trait with its status, its size now and its size history. The history is the
//! real-time worker's (`Engine::audience_sizes`): a point after each change it wrote since the
//! server started, the last 1,000, none for computed traits. Entries and exits themselves reach
//! the page through the stream (`Audience Entered` / `Audience Exited` tracks, and the group calls
//! of ACCOUNTS audiences), not here.

use std::sync::Arc;

use axum::extract::State;
use axum::response::Response;
use prost::Message;
use serde_json::{json, Value};
use tributary_engine::event_json::iso8601_ms;
use tributary_engine::proto::{audience::Status, Audience, DefinitionType, EntityKind, ListAudiencesResponse};
use tributary_engine::{time, EngineError};

use super::{blocking_json, Debugger};

pub(super) async fn audiences(State(debugger): State<Arc<Debugger>>) -> Response {
    blocking_json(&debugger, |debugger| {
        let engine = &debugger.engine;
        let reply = engine.list_audiences(&[])?;
        let listed = ListAudiencesResponse::decode(reply.as_slice())
            .map_err(|e| EngineError::Storage(format!("audiences did not decode: {e}")))?;
        let mut audiences = Vec::with_capacity(listed.audiences.len());
        for audience in &listed.audiences {
            let sizes = match engine.audience_sizes(&audience.key) {
                Ok(sizes) => sizes,
                // Deleted since the list was read: it goes with the next refresh.
                Err(EngineError::NotFound(_)) => continue,
                Err(other) => return Err(other),
            };
            audiences.push(audience_json(audience, &sizes));
        }
        // The server's clock: the chart runs its last step up to now, whatever the page's clock.
        Ok(json!({"audiences": audiences, "now": iso8601_ms(time::now_ms())}))
    })
    .await
}

/// One definition as the page shows it; `sizes` are (time ms, size), oldest first.
fn audience_json(audience: &Audience, sizes: &[(i64, u64)]) -> Value {
    let is_trait = audience.r#type == DefinitionType::ComputedTrait as i32;
    let accounts = audience.kind == EntityKind::Accounts as i32;
    let computing = audience.status == Status::Computing as i32;
    let query = if audience.canonical_query.is_empty() {
        &audience.query
    } else {
        &audience.canonical_query
    };
    let sizes: Vec<Value> = sizes
        .iter()
        .map(|&(at_ms, size)| json!([iso8601_ms(at_ms), size]))
        .collect();
    json!({
        "key": audience.key,
        "name": if audience.name.is_empty() { &audience.key } else { &audience.name },
        "type": if is_trait { "trait" } else { "audience" },
        "kind": if accounts { "accounts" } else { "users" },
        "query": query,
        "status": if computing { "computing" } else { "ready" },
        // Of the first evaluation's events, written (100 when ready).
        "progress": audience.progress_percent,
        "size": audience.size,
        "sizes": sizes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saved(key: &str) -> Audience {
        Audience {
            key: key.to_owned(),
            query: "event('Order Completed').count()>=1".to_owned(),
            canonical_query: "event('Order Completed').count() >= 1".to_owned(),
            status: Status::Ready as i32,
            size: 2,
            progress_percent: 100,
            ..Default::default()
        }
    }

    #[test]
    fn an_audience_lists_its_canonical_query_status_and_size_history() {
        // 2026-03-01T10:00:00Z and one second and a half later.
        let at = 1_772_359_200_000;
        let shown = audience_json(&saved("buyers"), &[(at, 1), (at + 1_500, 2)]);
        assert_eq!(
            shown,
            json!({
                "key": "buyers",
                "name": "buyers",
                "type": "audience",
                "kind": "users",
                "query": "event('Order Completed').count() >= 1",
                "status": "ready",
                "progress": 100,
                "size": 2,
                "sizes": [["2026-03-01T10:00:00Z", 1], ["2026-03-01T10:00:01.500Z", 2]],
            })
        );
    }

    #[test]
    fn a_computing_trait_about_accounts_says_so() {
        let audience = Audience {
            name: "Orders".to_owned(),
            r#type: DefinitionType::ComputedTrait as i32,
            kind: EntityKind::Accounts as i32,
            status: Status::Computing as i32,
            progress_percent: 40,
            canonical_query: String::new(),
            ..saved("orders")
        };
        let shown = audience_json(&audience, &[]);
        assert_eq!(
            (
                &shown["name"],
                &shown["type"],
                &shown["kind"],
                &shown["status"],
                &shown["progress"]
            ),
            (
                &json!("Orders"),
                &json!("trait"),
                &json!("accounts"),
                &json!("computing"),
                &json!(40)
            )
        );
        assert_eq!(shown["query"], "event('Order Completed').count()>=1"); // as written, lacking a canonical form
        assert_eq!(shown["sizes"], json!([]));
    }
}
