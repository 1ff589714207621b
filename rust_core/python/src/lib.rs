//! `cdp_server._core`: the thin PyO3 layer over the engine. It converts arguments, releases the
//! GIL through `without_gil`, and maps engine errors to Python exceptions in `to_py_err`. No
//! logic lives here.

mod bitmap_bench;
mod http;
mod query;
mod trees;
mod warehouse;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use tributary_engine::ingest::BatchOutcome;
use tributary_engine::proto::EventType;
use tributary_engine::reads::TailFilter;
use tributary_engine::segment_json::JsonOptions;
use tributary_engine::{Engine as CoreEngine, EngineConfig, EngineError, PendingAck};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

create_exception!(_core, CoreError, PyException, "Base of every engine error.");
create_exception!(_core, InvalidRequest, CoreError, "The request is malformed or invalid.");
create_exception!(_core, NotFound, CoreError, "The requested thing does not exist.");
create_exception!(
    _core,
    AlreadyExists,
    CoreError,
    "What the request would create exists already."
);
create_exception!(
    _core,
    FailedPrecondition,
    CoreError,
    "The request is valid but the current state refuses it."
);
create_exception!(
    _core,
    StorageFull,
    CoreError,
    "The disk is full; nothing of the request was stored."
);
create_exception!(_core, ShutDown, CoreError, "The engine is closed.");
create_exception!(_core, StorageFault, CoreError, "An internal storage fault.");

/// The one mapping from engine errors to Python exceptions.
fn to_py_err(err: EngineError) -> PyErr {
    let message = err.to_string();
    match err {
        EngineError::InvalidRequest(_) => InvalidRequest::new_err(message),
        EngineError::NotFound(_) => NotFound::new_err(message),
        EngineError::AlreadyExists(_) => AlreadyExists::new_err(message),
        EngineError::FailedPrecondition(_) => FailedPrecondition::new_err(message),
        EngineError::StorageFull(_) | EngineError::MapFull => StorageFull::new_err(message),
        EngineError::ShutDown => ShutDown::new_err(message),
        EngineError::Storage(_) => StorageFault::new_err(message),
    }
}

/// The one way to call the engine: without the GIL, with errors mapped.
fn without_gil<T, F>(py: Python<'_>, work: F) -> PyResult<T>
where
    F: FnOnce() -> Result<T, EngineError> + Send,
    T: Send,
{
    py.detach(work).map_err(to_py_err)
}

/// The storage and ingest engine over one LMDB data directory.
#[pyclass(frozen, module = "cdp_server._core")]
struct Engine {
    inner: Arc<CoreEngine>,
}

impl Drop for Engine {
    /// Closing joins the engine's threads, which log through Python: they need the GIL that a
    /// deallocation holds, so it is released while they finish.
    fn drop(&mut self) {
        let engine = &self.inner;
        Python::attach(|py| py.detach(|| engine.close()));
    }
}

/// The outcome of a unary `Send`.
#[pyclass(frozen, module = "cdp_server._core")]
struct SendOutcome {
    /// Encoded `cdp.v1.SendResponse`.
    #[pyo3(get)]
    response: Py<PyBytes>,
    /// `(index, message_id, field, reason)` of each refused event.
    #[pyo3(get)]
    rejections: Vec<(u32, String, String, String)>,
}

impl SendOutcome {
    /// Runs `ingest` without the GIL and gives its outcome as the unary answer.
    fn of<F>(py: Python<'_>, ingest: F) -> PyResult<Self>
    where
        F: FnOnce() -> Result<BatchOutcome, EngineError> + Send,
    {
        let (response, rejections) = without_gil(py, || {
            use prost::Message;
            let outcome = ingest()?;
            let rejections = outcome
                .rejections
                .iter()
                .map(|r| (r.index, r.message_id.clone(), r.field.to_owned(), r.reason.clone()))
                .collect::<Vec<_>>();
            Ok((outcome.send_response().encode_to_vec(), rejections))
        })?;
        Ok(SendOutcome {
            response: PyBytes::new(py, &response).unbind(),
            rejections,
        })
    }
}

/// A streamed batch on its way to the store.
#[pyclass(frozen, module = "cdp_server._core")]
struct StreamAck {
    #[pyo3(get)]
    sequence: u64,
    pending: Mutex<Option<PendingAck>>,
}

#[pymethods]
impl StreamAck {
    /// Blocks (without the GIL) until the batch is durable.
    ///
    /// Returns:
    ///     The encoded `cdp.v1.StreamResponse` to send as the ack.
    fn wait<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let pending = self
            .pending
            .lock()
            .map_err(|_| ShutDown::new_err("ack poisoned"))?
            .take();
        let pending = pending.ok_or_else(|| InvalidRequest::new_err("ack already awaited"))?;
        let sequence = self.sequence;
        let bytes = without_gil(py, move || {
            use prost::Message;
            Ok(pending.wait()?.stream_response(sequence).encode_to_vec())
        })?;
        Ok(PyBytes::new(py, &bytes))
    }
}

#[pymethods]
impl Engine {
    /// Opens the store in `data_dir` and starts the writer thread.
    ///
    /// Args:
    ///     data_dir: LMDB environment directory (created if missing).
    ///     map_size: initial map size in bytes; it grows when full.
    ///     dedupe_window_secs: how long (source, messageId) pairs are remembered.
    ///     max_group_events: most events in one group commit.
    ///     unsafe_no_sync: benchmark only; commits are not fsync'd.
    ///     max_event_bytes: largest accepted event.
    ///     snapshots: load the identity snapshot at start-up and write them (off: replay the log).
    ///     snapshot_every_events: write one after this many resolved events (0: at close only).
    ///     engage_tick_secs: how often real-time audiences with time windows are re-evaluated.
    ///     source_rate_limit: ingest requests a second per source, over gRPC and HTTP together
    ///         (0: no limit).
    ///     deletion_stage_pause_secs: tests only: a privacy deletion waits this long after each
    ///         stage.
    #[new]
    #[allow(clippy::too_many_arguments)] // one keyword argument per engine setting, as Python sees it
    #[pyo3(signature = (data_dir, *, map_size=1<<30, dedupe_window_secs=604800.0, max_group_events=50_000, unsafe_no_sync=false, max_event_bytes=32*1024, snapshots=true, snapshot_every_events=2_000_000, max_rejected_kept=10_000, engage_tick_secs=60.0, source_rate_limit=0.0, deletion_stage_pause_secs=0.0))]
    fn new(
        py: Python<'_>,
        data_dir: PathBuf,
        map_size: usize,
        dedupe_window_secs: f64,
        max_group_events: usize,
        unsafe_no_sync: bool,
        max_event_bytes: usize,
        snapshots: bool,
        snapshot_every_events: u64,
        max_rejected_kept: usize,
        engage_tick_secs: f64,
        source_rate_limit: f64,
        deletion_stage_pause_secs: f64,
    ) -> PyResult<Self> {
        if !(engage_tick_secs.is_finite() && engage_tick_secs > 0.0) {
            return Err(InvalidRequest::new_err("engage_tick_secs must be a positive number"));
        }
        if !(dedupe_window_secs.is_finite() && dedupe_window_secs >= 0.0) {
            return Err(InvalidRequest::new_err(
                "dedupe_window_secs must be a non-negative number",
            ));
        }
        let config = EngineConfig {
            map_size,
            dedupe_window: Duration::from_secs_f64(dedupe_window_secs),
            max_group_events: max_group_events.max(1),
            unsafe_no_sync,
            max_event_bytes,
            snapshots,
            snapshot_every_events,
            max_rejected_kept,
            engage_tick: Duration::from_secs_f64(engage_tick_secs),
            source_rate_limit,
            deletion_stage_pause: Duration::from_secs_f64(deletion_stage_pause_secs.clamp(0.0, 3600.0)),
            ..EngineConfig::new(data_dir)
        };
        let inner = without_gil(py, move || CoreEngine::open(config))?;
        Ok(Self { inner: Arc::new(inner) })
    }

    /// Stores an encoded `cdp.v1.SendRequest`; returns once its accepted events are durable.
    fn send(&self, py: Python<'_>, source_id: u32, request: &[u8]) -> PyResult<SendOutcome> {
        let engine = &self.inner;
        SendOutcome::of(py, || engine.send(source_id, request))
    }

    /// Stores a Segment-Spec JSON body as the HTTP Tracking API hands one to the engine (the
    /// same `submit_json` call); returns once its accepted events are durable. The servers do
    /// not call this (HTTP is served from Rust): the fuzzers and tests reach that entry point
    /// through it.
    ///
    /// Args:
    ///     source_id: the source the events are stored under.
    ///     data: the body, decompressed: a message, a batch object, an array or JSON lines.
    ///     route_type: a `cdp.v1.EventType` value: the call of a typed route (`/v1/track`),
    ///         which wins over each message's own `type`; 0 for `/v1/batch`.
    ///
    /// Raises:
    ///     InvalidRequest: the body as a whole is unusable, or `route_type` is unknown.
    #[pyo3(signature = (source_id, data, *, route_type=0))]
    fn send_json(&self, py: Python<'_>, source_id: u32, data: &[u8], route_type: i32) -> PyResult<SendOutcome> {
        let route_type = match EventType::try_from(route_type) {
            Ok(EventType::Unspecified) => None,
            Ok(kind) => Some(kind),
            Err(_) => return Err(InvalidRequest::new_err(format!("unknown route_type {route_type}"))),
        };
        let options = JsonOptions {
            route_type,
            ..JsonOptions::default()
        };
        let engine = &self.inner;
        SendOutcome::of(py, || engine.submit_json(source_id, data, &options)?.wait())
    }

    /// Validates an encoded `cdp.v1.StreamRequest` and queues it for the next group commit.
    ///
    /// Returns:
    ///     A `StreamAck`; its `wait()` gives the encoded ack once the batch is durable.
    fn submit_stream(&self, py: Python<'_>, source_id: u32, request: &[u8]) -> PyResult<StreamAck> {
        let engine = &self.inner;
        let (sequence, pending) = without_gil(py, || engine.submit_stream(source_id, request))?;
        Ok(StreamAck {
            sequence,
            pending: Mutex::new(Some(pending)),
        })
    }

    /// Committed events after sequence `after`, waiting up to `wait_secs` for new ones.
    ///
    /// Returns:
    ///     `(encoded TailResponse messages, sequence to continue after)`.
    #[pyo3(signature = (after, *, limit=500, types=Vec::new(), event_names=Vec::new(), wait_secs=0.5))]
    fn tail<'py>(
        &self,
        py: Python<'py>,
        after: u64,
        limit: usize,
        types: Vec<i32>,
        event_names: Vec<String>,
        wait_secs: f64,
    ) -> PyResult<(Vec<Bound<'py, PyBytes>>, u64)> {
        let engine = &self.inner;
        let filter = TailFilter { types, event_names };
        let wait = Duration::from_secs_f64(wait_secs.clamp(0.0, 60.0));
        let (events, position) = without_gil(py, || engine.tail(after, limit, &filter, wait))?;
        Ok((events.iter().map(|e| PyBytes::new(py, e)).collect(), position))
    }

    /// Creates a source owning a write-key digest (SHA-256); returns an encoded `cdp.v1.Source`.
    /// With `webhook_mappings` (JSON, checked by the caller) it is a webhook source, whose tool
    /// may sign with `signing_secret`.
    #[pyo3(signature = (name, key_digest, *, webhook_mappings=None, signing_secret=String::new()))]
    fn create_source<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        key_digest: &[u8],
        webhook_mappings: Option<String>,
        signing_secret: String,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let engine = &self.inner;
        let webhook = webhook_mappings.map(|mappings| tributary_engine::proto::WebhookSource {
            mappings,
            signing_secret,
            signed: false,
        });
        let bytes = without_gil(py, || engine.create_source_of_kind(name, key_digest, webhook))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Replaces a webhook source's mappings (JSON, checked by the caller); returns the encoded
    /// `cdp.v1.Source`. NOT_FOUND for no such source.
    fn update_webhook_source<'py>(&self, py: Python<'py>, name: &str, mappings: &str) -> PyResult<Bound<'py, PyBytes>> {
        let engine = &self.inner;
        let bytes = without_gil(py, || engine.update_webhook_source(name, mappings))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// The id of the source owning a write-key digest if it takes Segment events, or None (a
    /// webhook source's key opens its webhook route only).
    fn events_source_for_key(&self, py: Python<'_>, key_digest: &[u8]) -> PyResult<Option<u32>> {
        let engine = &self.inner;
        without_gil(py, || engine.events_source_for_key(key_digest))
    }

    /// Who the secret with this SHA-256 digest is, if it is a credential that works now:
    /// `("write_key" | "webhook_key", source id, "")` for a source's write key (a webhook
    /// source's opens its webhook route only), `(role, token id, token name)` for an access
    /// token ("read", "audiences" or "admin"); None otherwise (unknown, revoked, retired).
    /// A cached answer is given without releasing the GIL.
    fn credential(&self, py: Python<'_>, digest: &[u8]) -> PyResult<Option<(&'static str, u32, String)>> {
        use tributary_engine::credentials::Credential;
        let engine = &self.inner;
        let found = match engine.cached_credential(digest) {
            Some(cached) => Some(cached),
            None => without_gil(py, || engine.credential(digest))?,
        };
        Ok(found.map(|credential| match credential {
            Credential::WriteKey { source, events: true } => ("write_key", source, String::new()),
            Credential::WriteKey { source, events: false } => ("webhook_key", source, String::new()),
            Credential::Token { id, name, role } => (role.name(), id, name),
        }))
    }

    /// Takes one ingest request of `source` from its rate-limit bucket (shared with the HTTP
    /// port): 0 when admitted, else the seconds to wait.
    fn admit_source(&self, source: u32) -> u64 {
        self.inner.admit_source(source).err().unwrap_or(0)
    }

    /// Appends a record to the audit log (durably); returns its sequence number. No secret
    /// may be in any argument.
    fn append_audit(
        &self,
        py: Python<'_>,
        actor: String,
        action: String,
        target: String,
        outcome: String,
        summary: String,
    ) -> PyResult<u64> {
        let engine = &self.inner;
        let entry = tributary_engine::audit::AuditEntry {
            actor,
            action,
            target,
            outcome,
            summary,
        };
        without_gil(py, || engine.append_audit(entry))
    }

    /// Highest committed event sequence.
    fn last_seq(&self) -> u64 {
        self.inner.last_seq()
    }

    /// Number of stored events.
    fn event_count(&self, py: Python<'_>) -> PyResult<u64> {
        let engine = &self.inner;
        without_gil(py, || engine.event_count())
    }

    /// Counters since the engine opened, and the current map size.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let stats = self.inner.stats();
        let dict = PyDict::new(py);
        for (name, counter) in [
            ("accepted", &stats.accepted),
            ("duplicates", &stats.duplicates),
            ("conflicts", &stats.conflicts),
            ("rejected", &stats.rejected),
            ("commits", &stats.commits),
            ("map_grows", &stats.map_grows),
        ] {
            dict.set_item(name, counter.load(Ordering::Relaxed))?;
        }
        dict.set_item("map_size", self.inner.map_size())?;
        dict.set_item("clusters_replayed", self.inner.clusters_replayed())?;
        // Committed groups the real-time audience worker has not evaluated yet.
        dict.set_item("engage_backlog", self.inner.engage_backlog())?;
        // 0: start-up loaded no snapshot (none is ever written for an empty log).
        dict.set_item("snapshot_loaded_through", self.inner.loaded_snapshot().unwrap_or(0))?;
        Ok(dict)
    }

    /// Resident memory by part, in bytes: the identity graph (`graph.*`), account links, the
    /// dedupe window and the identifier index's buffers (estimates from the structures' sizes).
    fn memory_usage<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let engine = &self.inner;
        let parts = py.detach(|| engine.memory_usage());
        let dict = PyDict::new(py);
        for (name, bytes) in parts {
            dict.set_item(name, bytes)?;
        }
        Ok(dict)
    }

    /// Finishes queued batches and stops the writer; later calls raise `ShutDown`.
    fn close(&self, py: Python<'_>) {
        let engine = &self.inner;
        py.detach(|| engine.close());
    }
}

/// The Engine's request → response methods. Each takes an encoded `cdp.v1` request, calls the
/// engine method of the same name without the GIL and returns the encoded response: one
/// signature and one body for all of them (`answer`), so they cannot drift apart.
macro_rules! rpc_methods {
    ($($(#[doc = $doc:literal])* $name:ident;)*) => {
        #[pymethods]
        impl Engine {
            $(
                $(#[doc = $doc])*
                fn $name<'py>(&self, py: Python<'py>, request: &[u8]) -> PyResult<Bound<'py, PyBytes>> {
                    self.answer(py, request, CoreEngine::$name)
                }
            )*
        }
    };
}

rpc_methods! {
    /// Answers an encoded `cdp.v1.ListEventsRequest` with an encoded `ListEventsResponse`.
    list_events;
    /// Answers an encoded `cdp.v1.GetProfileRequest` with an encoded `GetProfileResponse`.
    get_profile;
    /// Answers an encoded `cdp.v1.BatchGetProfilesRequest` with an encoded response.
    batch_get_profiles;
    /// Answers an encoded `cdp.v1.GetMergeHistoryRequest` with an encoded response.
    get_merge_history;
    /// Answers an encoded `cdp.v1.ExplainLinkRequest` with an encoded response.
    explain_link;
    /// Answers an encoded `cdp.v1.ListIdentifiersRequest` with an encoded response.
    list_identifiers;
    /// Answers an encoded `cdp.v1.ListLinksRequest` with an encoded response.
    list_links;
    /// Answers an encoded `cdp.v1.RemoveIdentifierRequest` with an encoded response.
    remove_identifier;
    /// Answers an encoded `cdp.v1.SplitProfileRequest` with an encoded response.
    split_profile;
    /// Answers an encoded `cdp.v1.GetIdentityRulesRequest` with an encoded response.
    get_identity_rules;
    /// Answers an encoded `cdp.v1.UpdateIdentityRulesRequest` with an encoded response.
    update_identity_rules;
    /// Answers an encoded `cdp.v1.GetIdentityRulesProgressRequest` with an encoded response.
    get_identity_rules_progress;
    /// Answers an encoded `cdp.v1.ListSeparationsRequest` with an encoded response.
    list_separations;
    /// Answers an encoded `cdp.v1.WithdrawSeparationRequest` with an encoded response.
    withdraw_separation;
    /// Answers an encoded `cdp.v1.ListSourcesRequest` with an encoded response.
    list_sources;
    /// Answers an encoded `cdp.v1.ListRejectedRequest` with an encoded response.
    list_rejected;
    /// Answers an encoded `cdp.v1.CreateTokenRequest` (with the token's digest) with an encoded
    /// `AccessToken`.
    create_token;
    /// Answers an encoded `cdp.v1.ListTokensRequest` with an encoded response.
    list_tokens;
    /// Answers an encoded `cdp.v1.RevokeTokenRequest` with an encoded response.
    revoke_token;
    /// Answers an encoded `cdp.v1.RotateWriteKeyRequest` (with the new key's digest) with an
    /// encoded response (without the key).
    rotate_write_key;
    /// Answers an encoded `cdp.v1.RevokeWriteKeyRequest` with an encoded response.
    revoke_write_key;
    /// Answers an encoded `cdp.v1.ListAuditLogRequest` with an encoded response.
    list_audit_log;
    /// Answers an encoded `cdp.v1.VerifyAuditLogRequest` with an encoded response.
    verify_audit_log;
    /// Answers an encoded `cdp.v1.CreateAudienceRequest` with an encoded response.
    create_audience;
    /// Answers an encoded `cdp.v1.GetAudienceRequest` with an encoded response.
    get_audience;
    /// Answers an encoded `cdp.v1.ListAudiencesRequest` with an encoded response.
    list_audiences;
    /// Answers an encoded `cdp.v1.DeleteAudienceRequest` with an encoded response.
    delete_audience;
    /// Answers an encoded `cdp.v1.PreviewRequest` with an encoded `PreviewResponse`.
    preview_audience;
    /// Answers an encoded `cdp.v1.CheckMembershipRequest` with an encoded response.
    check_membership;
    /// Answers an encoded `cdp.v1.UpdateAudienceRequest` with an encoded response.
    update_audience;
    /// Answers an encoded `cdp.v1.ExplainMembershipRequest` with an encoded response.
    explain_membership;
    /// Answers an encoded `cdp.v1.CreateDestinationRequest` (settings already checked by the
    /// destination's kind) with an encoded `DestinationResponse`.
    create_destination;
    /// Answers an encoded `cdp.v1.UpdateDestinationRequest` with an encoded `DestinationResponse`.
    update_destination;
    /// Answers an encoded `cdp.v1.GetDestinationRequest` with an encoded `DestinationResponse`.
    get_destination;
    /// Answers an encoded `cdp.v1.ListDestinationsRequest` with an encoded response.
    list_destinations;
    /// Answers an encoded `cdp.v1.DeleteDestinationRequest` with an encoded response.
    delete_destination;
    /// Answers an encoded `cdp.v1.SetDestinationPausedRequest` with an encoded `DestinationResponse`.
    set_destination_paused;
    /// Answers an encoded `cdp.v1.DeliveryStatsRequest` with an encoded response.
    delivery_stats;
    /// Answers an encoded `cdp.v1.PutTrackingPlanRequest` with an encoded `TrackingPlan`.
    put_tracking_plan;
    /// Answers an encoded `cdp.v1.GetTrackingPlanRequest` with an encoded `TrackingPlan`.
    get_tracking_plan;
    /// Answers an encoded `cdp.v1.ListTrackingPlansRequest` with an encoded response.
    list_tracking_plans;
    /// Answers an encoded `cdp.v1.SetSourcePolicyRequest` with an encoded `SourcePolicy`.
    set_source_policy;
    /// Answers an encoded `cdp.v1.GetSourcePolicyRequest` with an encoded `SourcePolicy`.
    get_source_policy;
    /// Answers an encoded `cdp.v1.ListViolationsRequest` with an encoded response.
    list_violations;
    /// Answers an encoded `cdp.v1.GetPiiSettingsRequest` with an encoded `PiiSettings`.
    get_pii_settings;
    /// Answers an encoded `cdp.v1.SetPiiSettingsRequest` with an encoded `PiiSettings`.
    set_pii_settings;
    /// Answers an encoded `cdp.v1.ListPiiInventoryRequest` with an encoded response.
    list_pii_inventory;
    /// Answers an encoded `cdp.v1.CreateRegulationRequest` with an encoded `Regulation`.
    create_regulation;
    /// Answers an encoded `cdp.v1.GetRegulationRequest` with an encoded `Regulation`.
    get_regulation;
    /// Answers an encoded `cdp.v1.ListRegulationsRequest` with an encoded response.
    list_regulations;
    /// Answers an encoded `cdp.v1.ListDeadLettersRequest` with an encoded response.
    list_dead_letters;
    /// Answers an encoded `cdp.v1.DeadLettersRequest` (discard) with an encoded `DeadLettersResponse`.
    discard_dead_letters;
}

#[pymethods]
impl Engine {
    /// Answers an encoded `cdp.v1.ListMembersRequest` with encoded `ListMembersResponse` pages.
    fn list_members<'py>(&self, py: Python<'py>, request: &[u8]) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let engine = &self.inner;
        let pages = without_gil(py, || engine.list_members(request))?;
        Ok(pages.iter().map(|page| PyBytes::new(py, page)).collect())
    }

    /// Encoded `cdp.v1.MembershipChange`s of saved definition `key` written after log position
    /// `after`, waiting up to `wait_secs` for some; and the position to resume from.
    #[pyo3(signature = (key, after, *, wait_secs=0.5))]
    fn watch_membership<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        after: u64,
        wait_secs: f64,
    ) -> PyResult<(Vec<Bound<'py, PyBytes>>, u64)> {
        let engine = &self.inner;
        let wait = Duration::from_secs_f64(wait_secs.clamp(0.0, 60.0));
        let (changes, position) = without_gil(py, || engine.watch_membership(key, after, wait))?;
        Ok((changes.iter().map(|c| PyBytes::new(py, c)).collect(), position))
    }
}

/// Packs log sequences for Python (`array('Q', bytes)`): one object, not one per event.
fn pack_seqs(seqs: &[u64]) -> Vec<u8> {
    seqs.iter().flat_map(|seq| seq.to_ne_bytes()).collect()
}

/// 32-bit values packed in native order (`array('I')` or `array('i')` on the Python side).
fn pack_u32(values: impl Iterator<Item = u32>) -> Vec<u8> {
    values.flat_map(u32::to_ne_bytes).collect()
}

fn unpack_seqs(bytes: &[u8]) -> PyResult<Vec<u64>> {
    if !bytes.len().is_multiple_of(8) {
        return Err(InvalidRequest::new_err("sequences must be packed 8-byte integers"));
    }
    Ok(bytes
        .chunks_exact(8)
        .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or_default()))
        .collect())
}

/// Events read for one destination (see `Engine.read_for_delivery`).
#[pyclass(frozen, module = "cdp_server._core")]
struct DeliveryRead {
    /// A JSON array of the events as the destination gets them.
    #[pyo3(get)]
    raw: Py<PyBytes>,
    #[pyo3(get)]
    message_ids: Vec<String>,
    /// Their log sequences, packed (`array('Q', seqs)`).
    #[pyo3(get)]
    seqs: Py<PyBytes>,
    /// Every event up to this sequence was read (in the batch, or filtered out).
    #[pyo3(get)]
    position: u64,
    #[pyo3(get)]
    filtered: u64,
    /// The earliest receive time in the batch (Unix ms; 0 when empty).
    #[pyo3(get)]
    oldest_received_ms: i64,
    /// The read stopped at the end of the log (not at its limits): the same read after a
    /// restart could return more, so record the batch's end before sending it.
    #[pyo3(get)]
    short: bool,
    /// Where each event's JSON starts in `raw`, packed (`array('I')`): the event ends one byte
    /// before the next one starts (the last one before the closing bracket).
    #[pyo3(get)]
    starts: Py<PyBytes>,
    /// Each event's UTC day (days since 1970-01-01, `array('i')`) by its timestamp, else its
    /// receipt; the smallest i32 when it has neither.
    #[pyo3(get)]
    days: Py<PyBytes>,
}

impl DeliveryRead {
    fn new(py: Python<'_>, batch: tributary_engine::delivery::DeliveryBatch) -> Self {
        Self {
            raw: PyBytes::new(py, &batch.raw).unbind(),
            seqs: PyBytes::new(py, &pack_seqs(&batch.seqs)).unbind(),
            message_ids: batch.message_ids,
            position: batch.position,
            filtered: batch.filtered,
            oldest_received_ms: batch.oldest_received_ms,
            short: batch.short,
            starts: PyBytes::new(py, &pack_u32(batch.starts.iter().map(|&s| s as u32))).unbind(),
            days: PyBytes::new(py, &pack_u32(batch.days.iter().map(|&d| d as u32))).unbind(),
        }
    }
}

/// A deletion notice as Python gets it: (regulation, destination, highest removed seq, JSON).
type PendingNotice<'py> = (u64, String, u64, Bound<'py, PyBytes>, bool);
type PredictionRows<'py> = (
    Vec<String>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Bound<'py, PyBytes>,
    Vec<String>,
    u64,
);

/// What delivery workers call: reads, cursors, dead letters and counts.
#[pymethods]
impl Engine {
    /// The next events for destination `name` after log position `after`.
    ///
    /// Args:
    ///     name: the destination.
    ///     after: its position (the cursor, or where the last read stopped).
    ///     limit: most events returned.
    ///     max_bytes: about the most JSON returned.
    ///     wait_secs: how long to wait when the log has nothing after `after`.
    ///     until: no event past this log position (0: no bound): the batch in flight at a crash.
    #[pyo3(signature = (name, after, *, limit=100, max_bytes=4<<20, wait_secs=0.5, until=0))]
    #[allow(clippy::too_many_arguments)]
    fn read_for_delivery(
        &self,
        py: Python<'_>,
        name: &str,
        after: u64,
        limit: usize,
        max_bytes: usize,
        wait_secs: f64,
        until: u64,
    ) -> PyResult<DeliveryRead> {
        let engine = &self.inner;
        let wait = Duration::from_secs_f64(wait_secs.clamp(0.0, 60.0));
        let batch = without_gil(py, || {
            engine.read_for_delivery(name, after, limit, max_bytes, wait, until)
        })?;
        Ok(DeliveryRead::new(py, batch))
    }

    /// The events of `seqs` (packed, ascending) as destination `name` gets them on a replay.
    fn read_seqs_for_delivery(&self, py: Python<'_>, name: &str, seqs: &[u8]) -> PyResult<DeliveryRead> {
        let engine = &self.inner;
        let seqs = unpack_seqs(seqs)?;
        let batch = without_gil(py, || engine.read_seqs_for_delivery(name, &seqs))?;
        Ok(DeliveryRead::new(py, batch))
    }

    /// Destination `name`'s id and the packed log sequences a replay to it delivers: received
    /// in [start_ms, end_ms) (end 0: no end), or with one of `message_ids` when any are given.
    fn replay_selection<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        start_ms: i64,
        end_ms: i64,
        message_ids: Vec<String>,
    ) -> PyResult<(u32, Bound<'py, PyBytes>)> {
        let engine = &self.inner;
        let (id, seqs) = without_gil(py, || engine.replay_selection(name, start_ms, end_ms, &message_ids))?;
        Ok((id, PyBytes::new(py, &pack_seqs(&seqs))))
    }

    /// Destination `name`'s id and the packed sequences of its dead letters (`only` those of
    /// the packed `only`, when not empty).
    fn dead_letter_seqs<'py>(&self, py: Python<'py>, name: &str, only: &[u8]) -> PyResult<(u32, Bound<'py, PyBytes>)> {
        let engine = &self.inner;
        let only = unpack_seqs(only)?;
        let (id, seqs) = without_gil(py, || engine.dead_letter_seqs(name, &only))?;
        Ok((id, PyBytes::new(py, &pack_seqs(&seqs))))
    }

    /// Where destination `id` is in the log: (its cursor, where the batch it was delivering
    /// ends or 0).
    fn delivery_position(&self, py: Python<'_>, id: u32) -> PyResult<(u64, u64)> {
        let engine = &self.inner;
        without_gil(py, || engine.delivery_position(id))
    }

    /// Records, durably, that destination `id` is about to deliver the batch ending at `end`.
    fn begin_delivery(&self, py: Python<'_>, id: u32, end: u64) -> PyResult<()> {
        let engine = &self.inner;
        without_gil(py, || engine.begin_delivery(id, end))
    }

    /// Settles finished work in one durable transaction: the cursor moves to `position` (0:
    /// stays), the events of `dead_seqs` become dead letters with `reason`, and the dead letters
    /// of `delivered` (replayed ones) leave the store. A batch in flight the cursor passes is
    /// forgotten. `replay_number` (0: none): the replay a chunk belonged to, with what is left of
    /// it (`replay_remaining`, packed; empty: done).
    #[pyo3(signature = (id, position, *, dead_seqs=b"".as_slice(), dead_ids=Vec::new(), reason="", attempts=0, first_failed_ms=0, delivered=b"".as_slice(), replay_number=0, replay_remaining=b"".as_slice()))]
    #[allow(clippy::too_many_arguments)]
    fn settle(
        &self,
        py: Python<'_>,
        id: u32,
        position: u64,
        dead_seqs: &[u8],
        dead_ids: Vec<String>,
        reason: &str,
        attempts: u32,
        first_failed_ms: i64,
        delivered: &[u8],
        replay_number: u64,
        replay_remaining: &[u8],
    ) -> PyResult<()> {
        let engine = &self.inner;
        let seqs = unpack_seqs(dead_seqs)?;
        if seqs.len() != dead_ids.len() {
            return Err(InvalidRequest::new_err("dead_seqs and dead_ids differ in length"));
        }
        let delivered = unpack_seqs(delivered)?;
        let dead = tributary_engine::delivery::Dead {
            seqs: &seqs,
            message_ids: &dead_ids,
            reason,
            attempts,
            first_failed_ms,
        };
        let remaining = unpack_seqs(replay_remaining)?;
        let replay = (replay_number > 0).then(|| tributary_engine::delivery::ReplayProgress {
            number: replay_number,
            remaining: &remaining,
        });
        without_gil(py, || engine.settle(id, position, &dead, &delivered, replay))
    }

    /// Records a replay (packed sequences) to destination `id` durably; returns its number.
    fn queue_replay(&self, py: Python<'_>, id: u32, seqs: &[u8], dead_letters: bool) -> PyResult<u64> {
        let engine = &self.inner;
        let seqs = unpack_seqs(seqs)?;
        without_gil(py, || engine.queue_replay(id, &seqs, dead_letters))
    }

    /// Predictions' feature rows at one cutoff (`predict::RowsRequest` as JSON): (columns, the
    /// rows' profile ids as 16-byte little-endian integers, the values as row-major
    /// little-endian f32, the labels as f64 (empty without a label), the columns the leak guard
    /// refused, the last log seq known at the cutoff). Bytes, not a Python object per row.
    fn prediction_rows<'py>(&self, py: Python<'py>, request: &[u8]) -> PyResult<PredictionRows<'py>> {
        let request: tributary_engine::predict::RowsRequest = serde_json::from_slice(request)
            .map_err(|err| to_py_err(EngineError::InvalidRequest(format!("prediction rows: {err}"))))?;
        let engine = &self.inner;
        let table = without_gil(py, || engine.prediction_rows(&request))?;
        let ids: Vec<u8> = table.ids.iter().flat_map(|id| id.to_le_bytes()).collect();
        let values: Vec<u8> = table.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let labels: Vec<u8> = table.labels.iter().flat_map(|v| v.to_le_bytes()).collect();
        Ok((
            table.columns,
            PyBytes::new(py, &ids),
            PyBytes::new(py, &values),
            PyBytes::new(py, &labels),
            table.leaky,
            table.through,
        ))
    }

    /// Writes scores as traits of the profiles `ids` (16-byte little-endian each): `columns`
    /// are (trait name, values as little-endian f64, whole numbers); only changed traits are
    /// written, one identify call per profile, at `at_ms`. Returns (written, unchanged, gone).
    fn write_prediction_scores(
        &self,
        py: Python<'_>,
        key: &str,
        at_ms: i64,
        ids: &[u8],
        columns: Vec<(String, Vec<u8>, bool)>,
    ) -> PyResult<(u64, u64, u64)> {
        let ids: Vec<u128> = ids
            .chunks_exact(16)
            .map(|b| u128::from_le_bytes(b.try_into().expect("16 bytes")))
            .collect();
        let columns: Vec<(String, Vec<serde_json::Value>)> = columns
            .into_iter()
            .map(|(name, values, whole)| {
                let values = values
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .map(|v| {
                        if whole {
                            serde_json::Value::from(v as i64)
                        } else {
                            serde_json::Value::from(v)
                        }
                    })
                    .collect();
                (name, values)
            })
            .collect();
        let engine = &self.inner;
        without_gil(py, || engine.write_prediction_scores(key, at_ms, &ids, &columns))
    }

    /// Every event name with how many identifiers have events of it, most first.
    fn event_name_reach(&self, py: Python<'_>) -> Vec<(String, u64)> {
        let engine = &self.inner;
        py.detach(|| engine.event_name_reach())
    }

    /// Profile ids (16-byte little-endian each) as `GetProfile` shows them.
    #[staticmethod]
    fn profile_ids(ids: &[u8]) -> Vec<String> {
        ids.chunks_exact(16)
            .map(|b| {
                tributary_engine::identity::graph::ProfileId(u128::from_le_bytes(b.try_into().expect("16 bytes")))
                    .to_string()
            })
            .collect()
    }

    /// The prediction records under `prefix`, in key order.
    fn prediction_records<'py>(&self, py: Python<'py>, prefix: &str) -> PyResult<Vec<(String, Bound<'py, PyBytes>)>> {
        let engine = &self.inner;
        let records = without_gil(py, || engine.prediction_records(prefix))?;
        Ok(records
            .into_iter()
            .map(|(key, value)| (key, PyBytes::new(py, &value)))
            .collect())
    }

    /// Stores (bytes) or removes (None) prediction records, in one transaction.
    fn put_prediction_records(&self, py: Python<'_>, records: Vec<(String, Option<Vec<u8>>)>) -> PyResult<()> {
        let engine = &self.inner;
        without_gil(py, || engine.put_prediction_records(&records))
    }

    /// Removes every prediction record under `prefix`; returns how many.
    fn delete_prediction_records(&self, py: Python<'_>, prefix: &str) -> PyResult<u64> {
        let engine = &self.inner;
        without_gil(py, || engine.delete_prediction_records(prefix))
    }

    /// Deletion notices not yet taken by their destination: (regulation id, destination name,
    /// the highest removed log sequence (the destination's cursor passes it first), the notice
    /// as JSON, whether an attempt to send it started before (`start_deletion_notice`)).
    fn deletion_notices<'py>(&self, py: Python<'py>) -> PyResult<Vec<PendingNotice<'py>>> {
        let engine = &self.inner;
        let notices = without_gil(py, || engine.deletion_notices())?;
        Ok(notices
            .into_iter()
            .map(|(regulation, name, through, notice, sent)| {
                (regulation, name, through, PyBytes::new(py, &notice), sent)
            })
            .collect())
    }

    /// Records, before the call, that regulation `regulation`'s notice goes to `destination`.
    fn start_deletion_notice(&self, py: Python<'_>, regulation: u64, destination: &str) -> PyResult<()> {
        let engine = &self.inner;
        without_gil(py, || engine.start_deletion_notice(regulation, destination))
    }

    /// Records that destination `destination` took regulation `regulation`'s notice (`ok`) or
    /// gave up on it, with what it did.
    fn finish_deletion_notice(
        &self,
        py: Python<'_>,
        regulation: u64,
        destination: &str,
        ok: bool,
        detail: &str,
    ) -> PyResult<()> {
        let engine = &self.inner;
        without_gil(py, || {
            engine.finish_deletion_notice(regulation, destination, ok, detail)
        })
    }

    /// Destination `id`'s unfinished replays, oldest first: (number, of dead letters, packed
    /// sequences still to deliver).
    fn pending_replays<'py>(&self, py: Python<'py>, id: u32) -> PyResult<Vec<(u64, bool, Bound<'py, PyBytes>)>> {
        let engine = &self.inner;
        let pending = without_gil(py, || engine.pending_replays(id))?;
        Ok(pending
            .into_iter()
            .map(|(number, dead_letters, seqs)| (number, dead_letters, PyBytes::new(py, &pack_seqs(&seqs))))
            .collect())
    }

    /// Adds a worker's counts to destination `id`'s (`received_ms`: the delivered events'
    /// earliest receive time, for the latency histogram).
    #[pyo3(signature = (id, *, delivered=0, retried=0, dead_lettered=0, filtered=0, received_ms=0))]
    fn report_delivery(
        &self,
        id: u32,
        delivered: u64,
        retried: u64,
        dead_lettered: u64,
        filtered: u64,
        received_ms: i64,
    ) {
        self.inner.report_delivery(
            id,
            &tributary_engine::delivery::Report {
                delivered,
                retried,
                dead_lettered,
                filtered,
                received_ms,
            },
        );
    }

    /// Sets destination `id`'s worker state, last error (None: keep it) and running replays.
    #[pyo3(signature = (id, state, error=None, replays=0))]
    fn set_delivery_status(&self, id: u32, state: &str, error: Option<&str>, replays: u32) {
        self.inner.set_delivery_status(id, state, error, replays);
    }
}

impl Engine {
    /// Runs one request → response engine call without the GIL.
    fn answer<'py>(
        &self,
        py: Python<'py>,
        request: &[u8],
        call: fn(&CoreEngine, &[u8]) -> Result<Vec<u8>, EngineError>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let engine = &self.inner;
        let bytes = without_gil(py, || call(engine, request))?;
        Ok(PyBytes::new(py, &bytes))
    }
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // The engine's `log::` records go to Python's `logging`. Loggers are cached, levels are not:
    // Python decides per record (the engine logs rarely), so a level set after import counts.
    // Debug and trace stay in Rust: they must never take the GIL on a hot path.
    let logger = pyo3_log::Logger::new(py, pyo3_log::Caching::Loggers)?.filter(log::LevelFilter::Info);
    // Fails only when a logger is in place already (the module loaded twice): keep that one.
    let _ = logger.install();
    m.add_class::<Engine>()?;
    m.add_class::<http::HttpServer>()?;
    m.add_class::<SendOutcome>()?;
    m.add_class::<StreamAck>()?;
    m.add_class::<DeliveryRead>()?;
    bitmap_bench::register(m)?;
    warehouse::register(m)?;
    query::register(m)?;
    trees::register(m)?;
    m.add("CoreError", py.get_type::<CoreError>())?;
    m.add("InvalidRequest", py.get_type::<InvalidRequest>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("AlreadyExists", py.get_type::<AlreadyExists>())?;
    m.add("FailedPrecondition", py.get_type::<FailedPrecondition>())?;
    m.add("StorageFull", py.get_type::<StorageFull>())?;
    m.add("ShutDown", py.get_type::<ShutDown>())?;
    m.add("StorageFault", py.get_type::<StorageFault>())?;
    Ok(())
}
