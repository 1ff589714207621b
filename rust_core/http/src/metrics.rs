//! `GET /metrics` in Prometheus' text format: the HTTP port's requests by route and status and
//! their latency by route, and the engine's own counters (events accepted, duplicate,
//! conflicting, rejected; group commits; events stored; map size and grows; identifier postings
//! not yet flushed), read at each scrape.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tributary_engine::Engine;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

type Latency = Family<RouteLabels, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Latency,
}

/// The routes, as labels (a fixed set: an unknown path counts as "other").
const ROUTES: &[&str] = &[
    "/v1/track",
    "/v1/identify",
    "/v1/page",
    "/v1/screen",
    "/v1/group",
    "/v1/alias",
    "/v1/batch",
    "/v1/import",
    "/health",
    "/metrics",
];

/// The Profile API's routes, by their last segment.
const PROFILE_ROUTES: &[&str] = &[
    "/v1/spaces/{space}/collections/{collection}/profiles/{id}/traits",
    "/v1/spaces/{space}/collections/{collection}/profiles/{id}/events",
    "/v1/spaces/{space}/collections/{collection}/profiles/{id}/external_ids",
    "/v1/spaces/{space}/collections/{collection}/profiles/{id}/links",
    "/v1/spaces/{space}/collections/{collection}/profiles/{id}/metadata",
];

fn route_label(path: &str) -> &'static str {
    if let Some(found) = ROUTES.iter().copied().find(|route| *route == path) {
        return found;
    }
    if path.starts_with("/v1/spaces/") {
        let last = path.rsplit('/').next().unwrap_or_default();
        return PROFILE_ROUTES
            .iter()
            .copied()
            .find(|route| route.rsplit('/').next() == Some(last))
            .unwrap_or("other");
    }
    if path.starts_with("/debugger/api/events/") {
        return "/debugger/api/events/{seq}";
    }
    if path == "/debugger" || path.starts_with("/debugger/") {
        return DEBUGGER_ROUTES
            .iter()
            .copied()
            .find(|route| *route == path)
            .unwrap_or("other");
    }
    "other"
}

const DEBUGGER_ROUTES: &[&str] = &[
    "/debugger",
    "/debugger/debugger.js",
    "/debugger/debugger.css",
    "/debugger/api/stream",
    "/debugger/api/sources",
    "/debugger/api/rejected",
];

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 4 s: an ack waits for a group commit's fsync.
    Histogram::new(exponential_buckets(0.0005, 2.0, 14))
}

impl Metrics {
    pub fn new(engine: Arc<Engine>) -> Self {
        let mut registry = Registry::with_prefix("tributary");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: Latency = Family::new_with_constructor(latency_histogram);
        registry.register("http_requests", "HTTP requests by route and status", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency by route, to the response (for ingest: durable and resolved)",
            latency.clone(),
        );
        registry.register_collector(Box::new(EngineCounters(engine)));
        Self {
            registry,
            requests,
            latency,
        }
    }

    fn observe(&self, route: &'static str, status: u16, seconds: f64) {
        self.requests.get_or_create(&RequestLabels { route, status }).inc();
        self.latency.get_or_create(&RouteLabels { route }).observe(seconds);
    }

    fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// Counts and times every request of the port.
pub async fn record(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let route = route_label(request.uri().path());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.observe(route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}

pub async fn serve(State(metrics): State<Arc<Metrics>>) -> Response {
    let rendered = tokio::task::spawn_blocking(move || metrics.render()).await;
    match rendered {
        Ok(Ok(text)) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        _ => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// The engine's counters, read at each scrape.
struct EngineCounters(Arc<Engine>);

impl std::fmt::Debug for EngineCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EngineCounters")
    }
}

impl Collector for EngineCounters {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = self.0.stats();
        for (name, help, value) in [
            ("events_accepted", "Events stored", &stats.accepted),
            (
                "events_duplicate",
                "Events already stored (same source and messageId)",
                &stats.duplicates,
            ),
            (
                "events_conflicting",
                "Events reusing a messageId with other content",
                &stats.conflicts,
            ),
            ("events_rejected", "Events refused by validation", &stats.rejected),
            ("commits", "Group commits of the log", &stats.commits),
            ("map_grows", "Times the LMDB map grew", &stats.map_grows),
        ] {
            let counter = ConstCounter::new(value.load(Relaxed));
            counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)?;
        }
        let unflushed = self.0.index_lag().unwrap_or(0);
        for (name, help, value) in [
            ("events_stored", "The log's last event sequence", self.0.last_seq()),
            ("map_bytes", "Size of the LMDB map", self.0.map_size() as u64),
            (
                "index_unflushed_events",
                "Events whose identifier postings are only in memory",
                unflushed,
            ),
        ] {
            let gauge = ConstGauge::new(value as i64);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        // Kept counts of the rejected store: they survive restarts, as the store does.
        let counts = self.0.rejection_counts(0).unwrap_or_default();
        let mut family = encoder.encode_descriptor(
            "events_rejected_by_reason",
            "Events refused, by source, field and reason (numbers in reasons read N), since the store was created",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for count in counts {
            let labels = RejectionLabels {
                source_id: count.source_id,
                field: count.field,
                reason: count.reason,
            };
            ConstCounter::new(count.count).encode(family.encode_family(&labels)?)?;
        }
        encode_delivery(&self.0, &mut encoder)
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabels {
    destination: String,
}

/// Per destination: delivered, retried, dead-lettered and filtered events, the backlog, whether
/// it is lagging (past its `max_backlog`: the gauge to alert on), and the received-to-delivered
/// latency.
fn encode_delivery(engine: &Engine, encoder: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
    use prometheus_client::metrics::MetricType;
    use std::sync::atomic::Ordering::Relaxed;
    let destinations = engine.delivery_metrics().unwrap_or_default();
    let label = |name: &str| DestinationLabels {
        destination: name.to_owned(),
    };
    for (metric, help, read) in [
        (
            "destination_events_delivered",
            "Events a destination acknowledged",
            (|c| c.delivered.load(Relaxed)) as fn(&tributary_engine::delivery::stats::DestinationCounters) -> u64,
        ),
        (
            "destination_events_retried",
            "Events of failed deliveries tried again",
            |c| c.retried.load(Relaxed),
        ),
        (
            "destination_events_dead_lettered",
            "Events put in the dead-letter store",
            |c| c.dead_lettered.load(Relaxed),
        ),
        (
            "destination_events_filtered",
            "Events a destination's routing left out",
            |c| c.filtered.load(Relaxed),
        ),
    ] {
        let mut family = encoder.encode_descriptor(metric, help, None, MetricType::Counter)?;
        for d in &destinations {
            ConstCounter::new(read(&d.counters)).encode(family.encode_family(&label(&d.name))?)?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "destination_backlog_events",
        "Events in the log after a destination's cursor",
        None,
        MetricType::Gauge,
    )?;
    for d in &destinations {
        ConstGauge::new(d.backlog as i64).encode(family.encode_family(&label(&d.name))?)?;
    }
    let mut family = encoder.encode_descriptor(
        "destination_lagging",
        "1 while a destination's backlog is past its max_backlog",
        None,
        MetricType::Gauge,
    )?;
    for d in &destinations {
        ConstGauge::new(i64::from(d.lagging)).encode(family.encode_family(&label(&d.name))?)?;
    }
    let mut family = encoder.encode_descriptor(
        "destination_delivery_latency_seconds",
        "From an event's receipt to its delivery",
        None,
        MetricType::Histogram,
    )?;
    for d in &destinations {
        let latency = d.counters.latency.lock().clone();
        family
            .encode_family(&label(&d.name))?
            .encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                latency.sum,
                latency.count(),
                &latency.cumulative(),
                None,
            )?;
    }
    Ok(())
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    source_id: u32,
    field: String,
    reason: String,
}
