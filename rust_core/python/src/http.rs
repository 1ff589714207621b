//! The HTTP port (`tributary_http`) for Python: started over an open engine, stopped at shutdown.

use std::net::ToSocketAddrs;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use std::sync::Mutex;
use tributary_http::{HttpSettings, Limits};

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
    #[pyo3(signature = (engine, host, port, *, rate_limit=1000.0, workers=2, admin_token_digests=Vec::new(), space="default".to_owned()))]
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
    ) -> PyResult<Self> {
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
