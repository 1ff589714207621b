//! What each destination's worker reports: counts since the server started, its state and last
//! error, and a histogram of received-to-delivered latency. Read by `DeliveryStats` and by
//! `/metrics`; kept in memory (the counts are per process, as Prometheus counters are).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use parking_lot::Mutex;
use rustc_hash::FxHashMap;

/// Upper bounds of the latency buckets, in seconds: 5 ms to about 11 hours (a destination may
/// be down for hours and its backlog delivered late).
pub const LATENCY_BOUNDS: [f64; 22] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
    7200.0, 14400.0, 28800.0, 40000.0,
];

#[derive(Default)]
pub struct DestinationCounters {
    pub delivered: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub filtered: AtomicU64,
    /// The worker's state and last error (with its time, Unix ms).
    pub status: Mutex<Status>,
    pub latency: Mutex<Latency>,
}

/// One destination as `/metrics` shows it.
pub struct DestinationMetrics {
    pub name: String,
    /// Events in the log after its cursor.
    pub backlog: u64,
    /// The backlog is past the destination's `max_backlog`.
    pub lagging: bool,
    pub counters: Arc<DestinationCounters>,
}

#[derive(Default, Clone)]
pub struct Status {
    pub state: String,
    pub last_error: String,
    pub last_error_at_ms: i64,
    pub replays: u32,
}

/// Counts per bucket (the last one is +Inf) and their sum, in seconds.
#[derive(Clone)]
pub struct Latency {
    pub counts: [u64; LATENCY_BOUNDS.len() + 1],
    pub sum: f64,
}

impl Default for Latency {
    fn default() -> Self {
        Self {
            counts: [0; LATENCY_BOUNDS.len() + 1],
            sum: 0.0,
        }
    }
}

impl Latency {
    pub fn observe(&mut self, seconds: f64, times: u64) {
        let bucket = LATENCY_BOUNDS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BOUNDS.len());
        self.counts[bucket] += times;
        self.sum += seconds * times as f64;
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The upper bound of the bucket holding quantile `q` (0 when empty), in milliseconds.
    pub fn quantile_ms(&self, q: f64) -> f64 {
        let total = self.count();
        if total == 0 {
            return 0.0;
        }
        let rank = (q * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                let bound = LATENCY_BOUNDS
                    .get(i)
                    .copied()
                    .unwrap_or(LATENCY_BOUNDS[LATENCY_BOUNDS.len() - 1]);
                return bound * 1000.0;
            }
        }
        0.0
    }

    /// (upper bound, cumulative count) pairs, as Prometheus encodes a histogram.
    pub fn cumulative(&self) -> Vec<(f64, u64)> {
        let mut seen = 0;
        LATENCY_BOUNDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .zip(self.counts)
            .map(|(bound, count)| {
                seen += count;
                (bound, seen)
            })
            .collect()
    }
}

/// Every destination's counters, by destination id.
#[derive(Default)]
pub struct DeliveryCounters {
    by_id: Mutex<FxHashMap<u32, Arc<DestinationCounters>>>,
}

impl DeliveryCounters {
    pub fn of(&self, id: u32) -> Arc<DestinationCounters> {
        self.by_id.lock().entry(id).or_default().clone()
    }

    pub fn forget(&self, id: u32) {
        self.by_id.lock().remove(&id);
    }
}

/// What a worker reports after settling a batch.
#[derive(Default, Clone, Copy)]
pub struct Report {
    pub delivered: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub filtered: u64,
    /// Receive time of the delivered events (Unix ms), for the latency histogram; 0: none.
    pub received_ms: i64,
}

impl DestinationCounters {
    pub fn add(&self, report: &Report, now_ms: i64) {
        self.delivered.fetch_add(report.delivered, Relaxed);
        self.retried.fetch_add(report.retried, Relaxed);
        self.dead_lettered.fetch_add(report.dead_lettered, Relaxed);
        self.filtered.fetch_add(report.filtered, Relaxed);
        if report.delivered > 0 && report.received_ms > 0 {
            let seconds = (now_ms - report.received_ms).max(0) as f64 / 1000.0;
            self.latency.lock().observe(seconds, report.delivered);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_come_from_the_buckets() {
        let mut latency = Latency::default();
        assert_eq!(latency.quantile_ms(0.5), 0.0);
        latency.observe(0.003, 90);
        latency.observe(20.0, 10);
        assert_eq!(latency.quantile_ms(0.5), 5.0);
        assert_eq!(latency.quantile_ms(0.95), 30_000.0);
        let cumulative = latency.cumulative();
        assert_eq!(cumulative.first(), Some(&(0.005, 90)));
        assert_eq!(cumulative.last(), Some(&(f64::INFINITY, 100)));
    }
}
