//! The cdp.v1 message types, generated at build time from `proto/cdp/v1`, and the two ways a
//! message is decoded: a request (bad bytes are the caller's mistake) or a stored record (a fault).
#[allow(clippy::all, missing_docs)]
pub mod cdp {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/cdp.v1.rs"));
    }
}

pub use cdp::v1::*;

use std::fmt::Display;

use prost::{Message, Name};

use crate::error::{EngineError, Result};

/// Decodes request bytes; malformed ones are the caller's mistake.
pub fn decode_request<M: Message + Name + Default>(bytes: &[u8]) -> Result<M> {
    M::decode(bytes).map_err(|e| EngineError::InvalidRequest(format!("malformed {}: {e}", M::NAME)))
}

/// Decodes a stored record; one that does not decode is a storage fault. `what` names it.
pub fn decode_record<M: Message + Default>(bytes: &[u8], what: impl Display) -> Result<M> {
    M::decode(bytes).map_err(|e| EngineError::Storage(format!("{what} is corrupt: {e}")))
}
