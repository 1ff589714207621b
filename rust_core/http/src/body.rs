//! Request bodies: gzip undone (Segment's libraries compress), sizes held to Segment's limits.

use std::io::Read;

/// Segment's limits on request bodies (after decompression).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// A single-message route (`/v1/track`, …): 32 KB.
    pub message_bytes: usize,
    /// `/v1/batch` and `/v1/import`: 500 KB. (At most 2,500 messages a batch is the engine's
    /// rule, the same on every surface.)
    pub batch_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            message_bytes: 32 * 1024,
            batch_bytes: 500 * 1024,
        }
    }
}

/// Why a body cannot be used at all.
#[derive(Debug, PartialEq, Eq)]
pub enum BodyError {
    TooLarge { limit: usize },
    BadGzip,
    UnknownEncoding(String),
}

/// The body's bytes, decompressed per `Content-Encoding`, at most `limit` of them.
pub fn decoded(raw: &[u8], encoding: Option<&str>, limit: usize) -> Result<Vec<u8>, BodyError> {
    let plain = match encoding.map(str::trim).filter(|e| !e.is_empty()) {
        None => None,
        Some(e) if e.eq_ignore_ascii_case("identity") => None,
        Some(e) if e.eq_ignore_ascii_case("gzip") => {
            let mut out = Vec::new();
            // Reading one byte past the limit tells an oversized body from one exactly at it,
            // without inflating a gzip bomb any further.
            flate2::read::GzDecoder::new(raw)
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|_| BodyError::BadGzip)?;
            Some(out)
        }
        Some(other) => return Err(BodyError::UnknownEncoding(other.to_owned())),
    };
    let bytes = plain.unwrap_or_else(|| raw.to_vec());
    if bytes.len() > limit {
        return Err(BodyError::TooLarge { limit });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_is_undone_and_limits_hold_after_it() {
        assert_eq!(decoded(b"{}", None, 10).unwrap(), b"{}");
        assert_eq!(decoded(&gzip(b"{}"), Some("gzip"), 10).unwrap(), b"{}");
        let big = vec![b' '; 1_000_000];
        assert_eq!(
            decoded(&gzip(&big), Some("GZIP"), 1000),
            Err(BodyError::TooLarge { limit: 1000 })
        );
        assert_eq!(decoded(&big[..11], None, 10), Err(BodyError::TooLarge { limit: 10 }));
        assert_eq!(decoded(b"not gzip", Some("gzip"), 10), Err(BodyError::BadGzip));
        assert_eq!(
            decoded(b"{}", Some("br"), 10),
            Err(BodyError::UnknownEncoding("br".into()))
        );
    }

    proptest::proptest! {
        /// Any bytes under any encoding: the body within the limit, or the reason; never more
        /// than `limit` bytes out (a gzip bomb stops one byte past it).
        #[test]
        fn any_body_is_decoded_within_its_limit_or_refused(
            raw in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
            encoding in proptest::option::of("gzip|GZIP|identity| |br|\\PC{0,8}"),
            limit in 0usize..400,
        ) {
            if let Ok(out) = decoded(&raw, encoding.as_deref(), limit) {
                proptest::prop_assert!(out.len() <= limit);
            }
        }

        /// gzip round-trips: a body at most `limit` bytes comes back whole, a longer one is
        /// TooLarge.
        #[test]
        fn gzip_round_trips_within_the_limit(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2000), limit in 0usize..2000) {
            let answer = decoded(&gzip(&data), Some("gzip"), limit);
            if data.len() <= limit {
                proptest::prop_assert_eq!(answer, Ok(data));
            } else {
                proptest::prop_assert_eq!(answer, Err(BodyError::TooLarge { limit }));
            }
        }
    }
}
