//! Tributary's HTTP port, served from Rust on a tokio runtime of its own inside the engine's
//! process: Segment's Tracking API (`tracking`), so that Segment's and RudderStack's SDKs can
//! send to Tributary by changing one host name; Segment's Profile API (`profile_api`); the
//! debugger page and its routes (`debugger`); `/health` (`health`) and `/metrics` (`metrics`);
//! webhook sources (`webhook_sources`: SaaS tools' payloads mapped into events).

mod access;
mod api_error;
mod auth;
mod body;
mod debugger;
mod health;
mod metrics;
mod profile_api;
mod request_log;
mod tls;
mod tracking;
mod webhook_signature;
mod webhook_sources;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::oneshot;
use tributary_engine::Engine;

pub use body::Limits;
pub use request_log::LogFormat;
pub use webhook_sources::{MapFailure, WebhookMapper, WebhookPayload};

/// What the HTTP port needs besides the engine.
#[derive(Clone)]
pub struct HttpSettings {
    pub address: SocketAddr,
    pub limits: Limits,
    /// Profile API requests a second each access token may make; ≤ 0: no limit. (Sources'
    /// ingest rate is the engine's: `Engine::admit_source`, shared with gRPC.)
    pub rate_limit: f64,
    /// Worker threads of the runtime (requests are short: the engine does the work).
    pub workers: usize,
    /// SHA-256 digests of the server's configured admin tokens (tokens made by
    /// `AdminService.CreateToken` are looked up in the store).
    pub admin_token_digests: Vec<[u8; 32]>,
    /// The workspace's slug: the `{space}` of the Profile API's paths.
    pub space: String,
    /// One log line per request on stderr, in this format (None: no request log).
    pub request_log: Option<LogFormat>,
    /// Turns webhook sources' payloads into events (None: their route answers 503).
    pub webhook_mapper: Option<Arc<dyn WebhookMapper>>,
    /// TLS: the certificate chain and private key files (PEM); None: plain HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// A running HTTP server; `stop` (or dropping it) shuts it down gracefully.
pub struct HttpServer {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
    served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl HttpServer {
    /// Binds `settings.address` and serves until stopped. A port in use is an error here, not
    /// later.
    pub fn start(engine: Arc<Engine>, settings: HttpSettings) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(settings.workers.max(1))
            .thread_name("tributary-http")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(settings.address))?;
        let address = listener.local_addr()?;
        let health = health::router(Arc::clone(&engine));
        let metrics = Arc::new(metrics::Metrics::new(Arc::clone(&engine)));
        let access = Arc::new(access::Access::new(Arc::clone(&engine), settings.admin_token_digests));
        let profiles = profile_api::router(Arc::new(profile_api::ProfileApi::new(
            Arc::clone(&engine),
            settings.space,
            settings.rate_limit,
        )));
        let debugger = debugger::router(Arc::new(debugger::Debugger::new(Arc::clone(&engine))));
        let webhooks = webhook_sources::router(Arc::new(webhook_sources::WebhookSources::new(
            Arc::clone(&engine),
            settings.limits,
            settings.webhook_mapper,
        )));
        let router = tracking::router(Arc::new(tracking::Tracking::new(
            engine,
            settings.limits,
            Arc::clone(&access),
        )))
        .merge(profiles)
        .merge(webhooks)
        .merge(debugger)
        .merge(health)
        .route(
            "/metrics",
            axum::routing::get(metrics::serve).with_state(Arc::clone(&metrics)),
        )
        // Every route is checked against access::ROUTES before its handler runs.
        .layer(axum::middleware::from_fn_with_state(access, access::enforce))
        .layer(axum::middleware::from_fn_with_state(metrics, metrics::record))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(request_log::RequestLog(settings.request_log)),
            request_log::add,
        ));
        let (stop, stopped) = oneshot::channel::<()>();
        let stopped = async {
            let _ = stopped.await;
        };
        let served = match &settings.tls {
            None => runtime.spawn(async move { axum::serve(listener, router).with_graceful_shutdown(stopped).await }),
            Some((cert_file, key_file)) => {
                let config = tls::server_config(cert_file, key_file)?;
                let listener = runtime.block_on(async { tls::TlsListener::new(listener, config) })?;
                runtime.spawn(async move { axum::serve(listener, router).with_graceful_shutdown(stopped).await })
            }
        };
        Ok(Self {
            address,
            stop: Some(stop),
            runtime: Some(runtime),
            served: Some(served),
        })
    }

    /// The bound address (the port the OS chose, when asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting, lets requests in flight finish, then stops the runtime.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let (Some(runtime), Some(served)) = (self.runtime.take(), self.served.take()) {
            match runtime.block_on(served) {
                Ok(Ok(())) => {}
                Ok(Err(err)) => log::error!("the HTTP server failed: {err}"),
                Err(err) => log::error!("the HTTP server task failed: {err}"),
            }
            runtime.shutdown_background();
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop();
    }
}
