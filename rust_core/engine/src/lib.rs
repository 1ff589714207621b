//! Tributary's engine: decodes Segment-Spec events, validates and normalises them, and stores
//! them durably in LMDB with exact deduplication and an index from every identifier to its
//! events.
//!
//! Invariants every module keeps:
//! - an acknowledgement is only produced after the LMDB transaction holding the events and their
//!   dedupe markers has committed (fsync on, unless the benchmark-only unsafe mode is chosen);
//! - there is one writer thread; concurrent callers share its commits (group commit);
//! - nothing here knows about Python or gRPC.

pub mod audiences;
pub mod audit;
pub mod config;
pub mod credentials;
pub mod dedupe;
pub mod delivery;
pub mod engage;
pub mod error;
pub mod event;
pub mod event_detail;
pub mod event_json;
pub mod governance;
pub mod identifiers;
pub mod identity;
pub mod identity_admin;
pub mod index;
pub mod ingest;
pub mod json;
pub mod memory;
pub mod predict;
pub mod profile_reads;
pub mod profiles;
pub mod progress;
pub mod proto;
pub mod query;
pub mod rate;
pub mod reads;
pub mod rejected;
pub mod scrub;
pub mod segment_json;
pub mod shards;
pub mod snapshot;
pub mod sources;
pub mod store;
pub mod time;
pub mod tokens;
pub mod warehouse;

pub use config::EngineConfig;
pub use error::{EngineError, Rejection};
pub use ingest::{Engine, PendingAck};
