//! Engine settings. Every option has a safe default.

use std::path::PathBuf;
use std::time::Duration;

/// How the engine opens its store and groups its commits.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Directory of the LMDB environment.
    pub data_dir: PathBuf,
    /// Initial LMDB map size in bytes; the map grows when it fills.
    pub map_size: usize,
    /// How long a (source, messageId) pair is remembered for deduplication.
    pub dedupe_window: Duration,
    /// Upper bound of events in one group commit.
    pub max_group_events: usize,
    /// Benchmark-only: no fsync on commit. Can lose acknowledged events on a crash.
    pub unsafe_no_sync: bool,
    /// Largest accepted event, in encoded bytes (Segment: 32 KB).
    pub max_event_bytes: usize,
    /// Snapshots of the identity state: loaded at start-up (then only the log after them is
    /// replayed), written at shutdown and every `snapshot_every_events` resolved events (0: only
    /// at shutdown). Off: none read or written, start-up replays the whole log.
    pub snapshots: bool,
    pub snapshot_every_events: u64,
    /// Rejected events kept for inspection (the oldest go first); their counts are kept for ever.
    pub max_rejected_kept: usize,
    /// How often real-time audiences and computed traits with time windows are re-evaluated.
    pub engage_tick: Duration,
    /// Ingest requests a second each source may make, over every surface together (Segment's
    /// default: 1,000); ≤ 0: no limit.
    pub source_rate_limit: f64,
    /// Tests only: a privacy deletion waits this long after each stage (to kill the process
    /// mid-way and see it resume).
    pub deletion_stage_pause: Duration,
}

impl EngineConfig {
    /// Safe defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            map_size: 1 << 30,
            dedupe_window: Duration::from_secs(7 * 24 * 3600),
            max_group_events: 50_000,
            unsafe_no_sync: false,
            max_event_bytes: 32 * 1024,
            snapshots: true,
            snapshot_every_events: 2_000_000,
            max_rejected_kept: 10_000,
            engage_tick: Duration::from_secs(60),
            source_rate_limit: 0.0,
            deletion_stage_pause: Duration::ZERO,
        }
    }
}
