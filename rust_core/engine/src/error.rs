//! Engine errors: the caller's mistakes are kept apart from internal faults so that each
//! layer above maps them once (Python exceptions, then gRPC status codes).

use thiserror::Error;

/// Why one event of a batch was refused; `field` uses Segment's JSON names.
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub index: u32,
    pub message_id: String,
    pub field: &'static str,
    pub reason: String,
    /// For JSON input: the line its message starts on; 0 otherwise.
    pub line: u64,
    /// What was refused, kept in the rejected store (moved there, not copied).
    pub content: Refused,
}

/// The refused message itself, as far as it could be read.
#[derive(Clone, Debug, Default, PartialEq)]
pub enum Refused {
    #[default]
    Nothing,
    /// Read as an event, then refused by a rule.
    Event(Box<crate::proto::Event>),
    /// A JSON message that could not be read as an event: its text.
    Raw(Vec<u8>),
}

#[derive(Clone, Debug, Error)]
pub enum EngineError {
    /// The request as a whole is unusable (malformed bytes, bad argument).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// A looked-up thing does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// What the request would create exists already.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The request is valid but the state refuses it (e.g. deleting what another thing uses).
    #[error("failed precondition: {0}")]
    FailedPrecondition(String),
    /// The disk is full (or the map cannot grow): nothing from this request was stored.
    #[error("storage full: {0}")]
    StorageFull(String),
    /// The LMDB map is full: the writer grows it and retries; never seen by callers.
    #[error("LMDB map is full")]
    MapFull,
    /// The engine is closed or closing.
    #[error("engine is shut down")]
    ShutDown,
    /// An internal storage fault.
    #[error("storage error: {0}")]
    Storage(String),
}

impl From<heed::Error> for EngineError {
    fn from(err: heed::Error) -> Self {
        const ENOSPC: i32 = 28;
        match &err {
            heed::Error::Mdb(heed::MdbError::MapFull) => EngineError::MapFull,
            heed::Error::Io(io) if io.raw_os_error() == Some(ENOSPC) => EngineError::StorageFull(err.to_string()),
            heed::Error::Mdb(heed::MdbError::Other(ENOSPC)) => EngineError::StorageFull(err.to_string()),
            _ => EngineError::Storage(err.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, EngineError>;
