//! The cdp.v1 message types, generated at build time from `proto/cdp/v1`.
#![allow(clippy::all, missing_docs)]

pub mod cdp {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/cdp.v1.rs"));
    }
}

pub use cdp::v1::*;
