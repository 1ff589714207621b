//! Segment's Profile API: `GET /v1/spaces/{space}/collections/{users|accounts}/profiles/
//! {type}:{value}/traits|events|external_ids|links|metadata` (a profile id `tp_…` works in place
//! of `type:value`), answered in Segment's shapes (`traits` + `cursor`, `data` + `cursor`,
//! `metadata`) and with Segment's errors (`{"error": {"code", "message"}}`: 400, 401, 404, 429).
//! Unlike Segment's, events have no 14-day limit. Auth (checked by `access::enforce` before a
//! handler runs): an access token as HTTP Basic's user name (`cdp token create --role read`, or
//! an admin token); 401 without a valid one, 403 for a credential of another kind or role.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prost::Message;
use serde_json::{json, Map, Value};
use tributary_engine::event_json::{self, iso8601, iso8601_ms};
use tributary_engine::proto::{self, EventType};
use tributary_engine::{Engine, EngineError};

use axum::Extension;
use tributary_engine::rate::RateLimit;

use crate::access::Authorized;
use crate::api_error::ApiError;

/// Segment's page sizes: traits 10 by default (up to 200), lists 10 (up to 100), links 20.
const TRAITS_PAGE: (usize, usize) = (10, 200);
const LIST_PAGE: (usize, usize) = (10, 100);
const LINKS_PAGE: usize = 20;

pub struct ProfileApi {
    engine: Arc<Engine>,
    /// The workspace's slug: the `{space}` of the paths.
    space: String,
    /// Requests a second per access token.
    rate: RateLimit,
}

impl ProfileApi {
    pub fn new(engine: Arc<Engine>, space: String, rate_limit: f64) -> Self {
        Self {
            engine,
            space,
            rate: RateLimit::new(rate_limit),
        }
    }
}

pub fn router(api: Arc<ProfileApi>) -> Router {
    Router::new()
        .route(
            "/v1/spaces/{space}/collections/{collection}/profiles/{lookup}/{what}",
            get(profile),
        )
        .with_state(api)
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "not_found", "Profile was not found."),
            EngineError::InvalidRequest(why) => Self::validation(why),
            EngineError::ShutDown => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                "the server is shutting down",
            ),
            other => {
                log::error!("a Profile API read failed: {other}");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", other.to_string())
            }
        }
    }
}

type Params = HashMap<String, String>;

async fn profile(
    State(api): State<Arc<ProfileApi>>,
    Path((space, collection, lookup, what)): Path<(String, String, String, String)>,
    Query(params): Query<Params>,
    uri: Uri,
    // Set by access::enforce: a token allowing role read checked this request.
    Extension(Authorized { digest }): Extension<Authorized>,
) -> Response {
    // A rate-limit bucket per token.
    let bucket = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
    if let Err(wait_s) = api.rate.take(bucket, std::time::Instant::now()) {
        let mut response = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_error",
            format!("over the rate limit: retry in {wait_s} s"),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(wait_s));
        return response;
    }
    if space != api.space {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no space {space:?} (this server's is {:?})", api.space),
        )
        .into_response();
    }
    let path = uri.path().to_owned();
    let api = Arc::clone(&api);
    let answered = tokio::task::spawn_blocking(move || {
        let request = Request {
            engine: &api.engine,
            lookup: lookup.trim(),
            params: &params,
            path: &path,
        };
        match (collection.as_str(), what.as_str()) {
            ("users", "traits") => request.traits(),
            ("users", "events") => request.events(),
            ("users", "external_ids") => request.external_ids(),
            ("users", "links") => request.account_links(),
            ("users", "metadata") => request.metadata(),
            ("accounts", "traits") => request.account_traits(),
            ("accounts", "links") => request.user_links(),
            ("users" | "accounts", _) => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no route {what:?} for {collection}: traits, events, external_ids, links or metadata"),
            )),
            _ => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no collection {collection:?}: users or accounts"),
            )),
        }
    })
    .await;
    match answered {
        Ok(Ok(body)) => axum::Json(body).into_response(),
        Ok(Err(err)) => err.into_response(),
        Err(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the request could not be handled",
        )
        .into_response(),
    }
}

struct Request<'a> {
    engine: &'a Engine,
    lookup: &'a str,
    params: &'a Params,
    path: &'a str,
}

impl Request<'_> {
    fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A comma-separated list parameter.
    fn list(&self, name: &str) -> Vec<String> {
        self.param(name)
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn limit(&self, (default, most): (usize, usize)) -> Result<usize, ApiError> {
        match self.param("limit") {
            None => Ok(default),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=most).contains(&n) => Ok(n),
                _ => Err(ApiError::validation(format!("limit must be 1 to {most}, got {text:?}"))),
            },
        }
    }

    fn verbose(&self) -> Result<bool, ApiError> {
        match self.param("verbose") {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ApiError::validation(format!(
                "verbose must be true or false, got {other:?}"
            ))),
        }
    }

    /// `{url, has_more, next, limit}`.
    fn cursor(&self, has_more: bool, next: &str, limit: usize) -> Value {
        json!({"url": self.path, "has_more": has_more, "next": if has_more { next } else { "" }, "limit": limit})
    }

    fn traits(&self) -> Result<Value, ApiError> {
        let limit = self.limit(TRAITS_PAGE)?;
        let verbose = self.verbose()?;
        match self.param("class") {
            None | Some("trait") => {}
            // Audiences and computed traits are Engage's (not built yet): none to list.
            Some("audience" | "computed_trait") => {
                return Ok(json!({"traits": {}, "cursor": self.cursor(false, "", limit)}));
            }
            Some(other) => {
                return Err(ApiError::validation(format!(
                    "class must be audience or computed_trait, got {other:?}"
                )))
            }
        }
        let include = self.list("include");
        let all = self.engine.profile_traits(self.lookup)?;
        // Names in order; a page starts after `next`, the last name of the page before.
        let after = self.param("next");
        let mut names = all.into_iter().filter(|t| {
            (include.is_empty() || include.contains(&t.name)) && after.is_none_or(|after| t.name.as_str() > after)
        });
        let mut traits = Map::new();
        for found in names.by_ref().take(limit) {
            let value = if verbose {
                json!({
                    "value": found.value,
                    "source_id": found.source_id.to_string(),
                    "updated_at": iso8601_ms(found.timestamp_ms),
                })
            } else {
                found.value
            };
            traits.insert(found.name, value);
        }
        let has_more = names.next().is_some();
        let last = traits.keys().next_back().cloned().unwrap_or_default();
        Ok(json!({"traits": traits, "cursor": self.cursor(has_more, &last, limit)}))
    }

    fn events(&self) -> Result<Value, ApiError> {
        let limit = self.limit(LIST_PAGE)?;
        let oldest_first = match self.param("sort") {
            None | Some("desc") => false,
            Some("asc") => true,
            Some(other) => return Err(ApiError::validation(format!("sort must be asc or desc, got {other:?}"))),
        };
        let time = |name: &str| -> Result<Option<prost_types::Timestamp>, ApiError> {
            self.param(name)
                .map(|text| {
                    tributary_engine::time::parse_iso8601(text)
                        .map_err(|why| ApiError::validation(format!("{name}: {why}")))
                })
                .transpose()
        };
        let request = proto::ListEventsRequest {
            identifier: self.lookup.to_owned(),
            limit: limit as u32,
            oldest_first,
            cursor: self.param("next").unwrap_or_default().to_owned(),
            include_events: self.list("include"),
            exclude_events: self.list("exclude"),
            start: time("start")?,
            end: time("end")?,
            profile: true,
            by_event_time: true,
        };
        let reply = decode::<proto::ListEventsResponse>(&self.engine.list_events(&request.encode_to_vec())?)?;
        let data: Vec<Value> = reply
            .events
            .iter()
            .zip(reply.source_ids.iter().copied().chain(std::iter::repeat(0)))
            .map(|(event, source_id)| event_data(event, source_id))
            .collect();
        let more = !reply.next_cursor.is_empty();
        Ok(json!({"data": data, "cursor": self.cursor(more, &reply.next_cursor, limit)}))
    }

    fn identifiers(&self, lookup: &str) -> Result<proto::ListIdentifiersResponse, ApiError> {
        let request = proto::ListIdentifiersRequest {
            identifier: lookup.to_owned(),
        };
        decode(&self.engine.list_identifiers(&request.encode_to_vec())?)
    }

    fn external_ids(&self) -> Result<Value, ApiError> {
        let limit = self.limit(LIST_PAGE)?;
        let verbose = self.verbose()?;
        let include = self.list("include");
        let start: usize = match self.param("next") {
            None => 0,
            Some(text) => text
                .parse()
                .map_err(|_| ApiError::validation(format!("next is not a cursor: {text:?}")))?,
        };
        let identifiers = self.identifiers(self.lookup)?.identifiers;
        let mut matching = identifiers
            .iter()
            .filter(|i| include.is_empty() || include.contains(&i.r#type))
            .skip(start);
        let data: Vec<Value> = matching
            .by_ref()
            .take(limit)
            .map(|i| external_id(i, "users", verbose))
            .collect();
        let has_more = matching.next().is_some();
        Ok(json!({"data": data, "cursor": self.cursor(has_more, &(start + data.len()).to_string(), limit)}))
    }

    fn links(&self, lookup: &str) -> Result<proto::ListLinksResponse, ApiError> {
        let request = proto::ListLinksRequest {
            identifier: lookup.to_owned(),
        };
        decode(&self.engine.list_links(&request.encode_to_vec())?)
    }

    /// A user's accounts.
    fn account_links(&self) -> Result<Value, ApiError> {
        let links = self.links(self.lookup)?;
        let data: Vec<Value> = links
            .accounts
            .iter()
            .take(LINKS_PAGE)
            .map(|account| {
                json!({
                    "to_collection": "accounts",
                    "external_ids": [{
                        "id": account.group_id,
                        "type": "group_id",
                        "collection": "accounts",
                        "created_at": account.first_linked.as_ref().map(iso8601),
                        "encoding": "none",
                        "first_message_id": account.first_message_id,
                    }],
                    "traits": event_json::object_value(&account.traits),
                })
            })
            .collect();
        Ok(json!({"data": data, "cursor": self.cursor(links.accounts.len() > LINKS_PAGE, "", LINKS_PAGE)}))
    }

    fn group(&self) -> Result<&str, ApiError> {
        self.lookup
            .strip_prefix("group_id:")
            .map(str::trim)
            .filter(|group| !group.is_empty())
            .ok_or_else(|| {
                ApiError::validation(format!(
                    "accounts are looked up as group_id:<id>, got {:?}",
                    self.lookup
                ))
            })
    }

    /// An account's users, each with its identifiers.
    fn user_links(&self) -> Result<Value, ApiError> {
        let group = self.group()?;
        let links = self.links(&format!("group_id:{group}"))?;
        let mut data = Vec::new();
        for user in links.users.iter().take(LINKS_PAGE) {
            let identifiers = self.identifiers(&user.profile_id)?.identifiers;
            let external_ids: Vec<Value> = identifiers.iter().map(|i| external_id(i, "users", false)).collect();
            data.push(json!({"to_collection": "users", "profile_id": user.profile_id, "external_ids": external_ids}));
        }
        Ok(json!({"data": data, "cursor": self.cursor(links.users.len() > LINKS_PAGE, "", LINKS_PAGE)}))
    }

    fn account_traits(&self) -> Result<Value, ApiError> {
        let limit = self.limit(TRAITS_PAGE)?;
        let include = self.list("include");
        let all = self.engine.account_traits(self.group()?)?;
        let traits: Map<String, Value> = all
            .into_iter()
            .filter(|(name, _)| include.is_empty() || include.contains(name))
            .take(limit)
            .collect();
        Ok(json!({"traits": traits, "cursor": self.cursor(false, "", limit)}))
    }

    /// When the profile was first and last seen, and by which events (in arrival order).
    fn metadata(&self) -> Result<Value, ApiError> {
        let end = |oldest_first: bool| -> Result<(Option<proto::Event>, u32), ApiError> {
            let request = proto::ListEventsRequest {
                identifier: self.lookup.to_owned(),
                limit: 1,
                oldest_first,
                profile: true,
                ..Default::default()
            };
            let mut reply = decode::<proto::ListEventsResponse>(&self.engine.list_events(&request.encode_to_vec())?)?;
            Ok((reply.events.pop(), reply.source_ids.pop().unwrap_or_default()))
        };
        let ((first, first_source), (last, last_source)) = (end(true)?, end(false)?);
        let received = |event: &Option<proto::Event>| event.as_ref().and_then(|e| e.received_at.as_ref()).map(iso8601);
        let message_id = |event: &Option<proto::Event>| event.as_ref().map(|e| e.message_id.clone());
        Ok(json!({"metadata": {
            "created_at": received(&first),
            "updated_at": received(&last),
            "expires_at": Value::Null,
            "first_message_id": message_id(&first),
            "first_source_id": first_source.to_string(),
            "last_message_id": message_id(&last),
            "last_source_id": last_source.to_string(),
        }}))
    }
}

fn decode<M: Message + Default>(bytes: &[u8]) -> Result<M, ApiError> {
    M::decode(bytes).map_err(|e| EngineError::Storage(format!("an engine reply did not decode: {e}")).into())
}

fn external_id(identifier: &proto::ProfileIdentifier, collection: &str, verbose: bool) -> Value {
    let mut out = json!({
        "id": identifier.value,
        "type": identifier.r#type,
        "source_id": identifier.first_source_id.to_string(),
        "collection": collection,
        "created_at": identifier.first_seen.as_ref().map(iso8601),
        "encoding": "none",
    });
    if verbose {
        out["first_message_id"] = identifier.first_message_id.clone().into();
    }
    out
}

/// One event in the Profile API's shape (snake_case; page and screen calls named as Engage
/// names them).
fn event_data(event: &proto::Event, source_id: u32) -> Value {
    let kind = EventType::try_from(event.r#type).unwrap_or(EventType::Unspecified);
    let name = match kind {
        EventType::Track => Some(event.event.clone()),
        EventType::Page => Some("Page Viewed".to_owned()),
        EventType::Screen => Some("Screen Viewed".to_owned()),
        _ => None,
    };
    let object = |bytes: &[u8]| (!bytes.is_empty()).then(|| event_json::object_value(bytes));
    let mut data = json!({
        "type": event_json::type_name(event.r#type),
        "message_id": event.message_id,
        "source_id": source_id.to_string(),
        "timestamp": event.timestamp.as_ref().map(iso8601),
        "received_at": event.received_at.as_ref().map(iso8601),
        "properties": object(&event.properties).unwrap_or_else(|| json!({})),
        "context": object(&event.context).unwrap_or_else(|| json!({})),
    });
    if let Some(name) = name {
        data["event"] = name.into();
    }
    for (key, text) in [
        ("name", &event.name),
        ("user_id", &event.user_id),
        ("anonymous_id", &event.anonymous_id),
        ("group_id", &event.group_id),
    ] {
        if !text.is_empty() {
            data[key] = text.as_str().into();
        }
    }
    if let Some(traits) = object(&event.traits) {
        data["traits"] = traits;
    }
    data
}
