//! How far a re-resolution of the whole log (a rule change) has got, readable from any thread
//! without a lock: `GetIdentityRulesProgress` reports it while `UpdateIdentityRules` runs, so
//! the CLI can draw a progress bar.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};

use crate::proto::{identity_rules_progress::Phase, IdentityRulesProgress};

/// The counters; each phase counts events from 0 to its total.
#[derive(Default)]
pub struct Progress {
    phase: AtomicU8,
    done: AtomicU64,
    total: AtomicU64,
}

/// Events between two updates of the counters (each update is cheap, but not free).
pub const STEP: usize = 4_096;

impl Progress {
    /// Enters `phase`, with `total` events to go through (0: not counted).
    pub fn begin(&self, phase: Phase, total: u64) {
        self.done.store(0, Relaxed);
        self.total.store(total, Relaxed);
        self.phase.store(phase as u8, Relaxed);
    }

    /// Enters `phase`, keeping the counts of the last.
    pub fn enter(&self, phase: Phase) {
        self.phase.store(phase as u8, Relaxed);
    }

    /// A guard that marks the job done when dropped, however it ends.
    pub fn run(&self) -> Running<'_> {
        Running(self)
    }

    pub fn advance(&self, events: u64) {
        self.done.fetch_add(events, Relaxed);
    }

    /// What a reader sees.
    pub fn report(&self) -> IdentityRulesProgress {
        let phase = Phase::try_from(i32::from(self.phase.load(Relaxed))).unwrap_or_default();
        IdentityRulesProgress {
            phase: phase as i32,
            running: !matches!(phase, Phase::Unspecified | Phase::Done),
            done: self.done.load(Relaxed),
            total: self.total.load(Relaxed),
        }
    }
}

/// See `Progress::run`.
pub struct Running<'a>(&'a Progress);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.enter(Phase::Done);
    }
}
