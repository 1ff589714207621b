//! Segment's per-source rate limit: a token bucket per key (a source id, or whatever the caller
//! counts by), refilled at `per_second` requests a second and holding one second's worth; past
//! it a request is told the seconds to wait (HTTP 429 with `Retry-After`, as Segment's clients
//! expect; gRPC `RESOURCE_EXHAUSTED` with `retry-after` in its trailing metadata).
//!
//! The engine holds the sources' buckets (`Engine::admit_source`), so every ingest surface
//! (gRPC, the Tracking API, webhook sources) draws on one bucket per source: using two surfaces
//! does not double a source's rate.

use std::collections::HashMap;
use std::time::Instant;

use parking_lot::Mutex;

pub struct RateLimit {
    per_second: f64,
    buckets: Mutex<HashMap<u32, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimit {
    /// `per_second` ≤ 0: no limit.
    pub fn new(per_second: f64) -> Self {
        Self {
            per_second,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a request of `source` now: `Ok`, or `Err(seconds to wait)` (at least 1).
    pub fn take(&self, source: u32, now: Instant) -> Result<(), u64> {
        if self.per_second <= 0.0 {
            return Ok(());
        }
        let mut buckets = self.buckets.lock();
        let bucket = buckets.entry(source).or_insert(Bucket {
            tokens: self.per_second,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.per_second).min(self.per_second);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

impl crate::ingest::Engine {
    /// Takes one ingest request of `source` from its bucket: `Ok`, or `Err(seconds to wait)`.
    pub fn admit_source(&self, source: u32) -> Result<(), u64> {
        self.shared.source_rates.take(source, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_source_gets_its_rate_with_one_second_of_burst_and_others_are_apart() {
        let limit = RateLimit::new(10.0);
        let start = Instant::now();
        assert!((0..10).all(|_| limit.take(1, start).is_ok()));
        assert_eq!(limit.take(1, start), Err(1));
        assert!(limit.take(2, start).is_ok(), "each source has its own bucket");
        assert!(
            limit.take(1, start + Duration::from_millis(100)).is_ok(),
            "refilled at 10/s"
        );
        assert!(limit.take(1, start + Duration::from_millis(100)).is_err());
        assert!(RateLimit::new(0.0).take(1, start).is_ok());
    }
}
