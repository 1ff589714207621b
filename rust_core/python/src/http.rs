//! The HTTP port (`tributary_http`) for Python: started over an open engine, stopped at shutdown.

use std::net::ToSocketAddrs;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use tributary_http::{HttpSettings, Limits, MapFailure, WebhookMapper, WebhookPayload};

use crate::Engine;

/// Segment's Tracking API on `host:port`, served by Rust threads over `engine`.
#[pyclass(module = "cdp_server._core", frozen)]
pub struct HttpServer {
    inner: Mutex<Option<tributary_http::HttpServer>>,
    port: u16,
}

#[pymethods]
impl HttpServer {
    /// Binds `host:port` (port 0: any free one) and serves until `stop`. Raises OSError when the
    /// address cannot be bound.
    /// `rate_limit`: requests a second each source (and each Profile API token) may make (0: no
    /// limit). `admin_token_digests`: SHA-256 digests of the configured admin tokens. `space`:
    /// the workspace slug of the Profile API's paths.
    #[new]
    /// `log_requests`: "json" or "text" for one line per request on stderr, "" for none.
    /// `webhook_mapper(source, mappings, payload) -> (batch JSON bytes, event count)` turns a
    /// webhook source's payload into events, raising ValueError for a payload it cannot map.
    /// `tls_cert_file` and `tls_key_file` (PEM; both or neither): serve HTTPS.
    #[pyo3(signature = (engine, host, port, *, rate_limit=1000.0, workers=2, admin_token_digests=Vec::new(), space="default".to_owned(), log_requests="", webhook_mapper=None, tls_cert_file=String::new(), tls_key_file=String::new()))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        engine: &Engine,
        host: &str,
        port: u16,
        rate_limit: f64,
        workers: usize,
        admin_token_digests: Vec<Vec<u8>>,
        space: String,
        log_requests: &str,
        webhook_mapper: Option<Py<PyAny>>,
        tls_cert_file: String,
        tls_key_file: String,
    ) -> PyResult<Self> {
        let request_log = match log_requests {
            "" => None,
            "json" => Some(tributary_http::LogFormat::Json),
            "text" => Some(tributary_http::LogFormat::Text),
            other => {
                return Err(pyo3::exceptions::PyValueError::new_err(format!(
                    "log_requests must be \"json\", \"text\" or \"\", got {other:?}"
                )))
            }
        };
        let admin_token_digests = admin_token_digests
            .into_iter()
            .map(|digest| {
                <[u8; 32]>::try_from(digest.as_slice())
                    .map_err(|_| pyo3::exceptions::PyValueError::new_err("an admin token digest must be 32 bytes"))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let address = (host, port)
            .to_socket_addrs()
            .map_err(|e| PyOSError::new_err(format!("cannot resolve {host}: {e}")))?
            .next()
            .ok_or_else(|| PyOSError::new_err(format!("{host} has no address")))?;
        let settings = HttpSettings {
            address,
            limits: Limits::default(),
            rate_limit,
            workers,
            admin_token_digests,
            space,
            request_log,
            webhook_mapper: webhook_mapper.map(|callable| Arc::new(PythonMapper(callable)) as Arc<dyn WebhookMapper>),
            tls: (!tls_cert_file.is_empty()).then(|| (tls_cert_file.into(), tls_key_file.into())),
        };
        let engine = engine.inner.clone();
        let server = py
            .detach(|| tributary_http::HttpServer::start(engine, settings))
            .map_err(|e| PyOSError::new_err(format!("cannot serve HTTP on {host}:{port}: {e}")))?;
        Ok(Self {
            port: server.address().port(),
            inner: Mutex::new(Some(server)),
        })
    }

    /// The port bound.
    #[getter]
    fn port(&self) -> u16 {
        self.port
    }

    /// Stops accepting, lets requests in flight finish, then returns. Safe to call twice.
    fn stop(&self, py: Python<'_>) {
        let server = self.inner.lock().map(|mut inner| inner.take()).unwrap_or(None);
        if let Some(mut server) = server {
            py.detach(move || server.stop());
        }
    }
}

/// The mapping language is Python's (`cdp_server.webhook_sources`): a payload takes the GIL for
/// its mapping only (webhooks arrive one payload a request, not in bulk).
struct PythonMapper(Py<PyAny>);

impl WebhookMapper for PythonMapper {
    fn map(&self, payload: &WebhookPayload<'_>) -> Result<(Vec<u8>, usize), MapFailure> {
        Python::attach(|py| {
            let body = PyBytes::new(py, payload.body);
            let result = self
                .0
                .call1(py, (payload.source, payload.mappings, body))
                .and_then(|out| out.extract::<(Vec<u8>, usize)>(py));
            result.map_err(|err| {
                if err.is_instance_of::<PyValueError>(py) {
                    MapFailure::BadPayload(err.value(py).to_string())
                } else {
                    MapFailure::Internal(err.to_string())
                }
            })
        })
    }
}
